package verify

import (
	"context"
	"errors"
	"slices"

	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/profile"
)

// ComplianceConfigs reads (here rather than in client, which every agent
// embedding capture.Hook links: the profile registry would come with it) the compliance.config events the server recorded
// in tenant (profile.Config; the default scope's are in
// profile.DefaultTenant) among the log's first size entries, in log order:
// its compliance session exported and verified with logKey (client.ExportSession;
// no witness policy is asked for). A tenant without any answers none. It
// needs a token that may read the tenant's sessions.
func ComplianceConfigs(ctx context.Context, c *client.Client, tenant string, size uint64, logKey note.Verifier) ([]*profile.Config, error) {
	var out []*profile.Config
	q := client.ExportQuery{Tenant: tenant}
	for {
		x, err := c.ExportSession(ctx, event.SessionCompliance, q, logKey, nil)
		if errors.Is(err, client.ErrNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		for _, e := range x.Events {
			if e.Index >= size {
				return out, nil
			}
			if e.Event == nil || e.LeafErr != nil {
				continue
			}
			if cfg, err := profile.ParseConfig(e.Index, e.Event); err == nil {
				out = append(out, cfg)
			}
		}
		if x.NextSeq == nil || *x.NextSeq <= q.FromSeq {
			return out, nil
		}
		q.FromSeq = *x.NextSeq
	}
}

// ComplianceTenants lists the tenants whose compliance session holds a
// compliance.config event, as the server's session index says (unverified:
// read the events with ComplianceConfigs). It needs a log-wide read token.
func ComplianceTenants(ctx context.Context, c *client.Client) ([]string, error) {
	var out []string
	q := api.SessionSearch{Kind: profile.KindConfig, Limit: api.MaxSessionSearchLimit}
	for {
		l, err := c.Sessions(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, s := range l.Sessions {
			if s.Session == event.SessionCompliance && !slices.Contains(out, s.Tenant) {
				out = append(out, s.Tenant)
			}
		}
		if l.Next == "" {
			slices.Sort(out)
			return out, nil
		}
		q.Cursor = l.Next
	}
}

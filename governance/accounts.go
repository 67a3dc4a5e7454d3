package governance

import (
	"context"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/identity"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/profile"
)

// RecordAccount appends an account event: a sign-in, a sign-out, a failed
// sign-in or a refusal (identity.Account, its event identity's Request).
// A sign-in's events go in its role's tenant (a token's: the token's,
// which Config.Tokens resolves), in the sign-in's access session; failed
// sign-ins in identity.SessionSignInFailures of a.Tenant, or of the
// default tenant. A token is named by its public id, never by itself.
func (c *Clerk) RecordAccount(ctx context.Context, a identity.Account) error {
	r := auditlog.Reader{TokenID: a.SignIn, Tenant: a.Tenant, Person: a.Person}
	if r.Tenant == "" {
		r.Tenant = profile.DefaultTenant
	}
	if a.Role != nil {
		r.Tenant, r.Role = a.Role.Tenant, a.Role.Name
	}
	if a.Token != "" && c.cfg.Tokens != nil {
		if p, err := c.cfg.Tokens.Check(ctx, a.Token); err == nil {
			r.TokenID, r.Tenant = p.ID, p.Tenant
		}
	}
	ev := a.Request(r.TokenID)
	if r.TokenID == "" {
		r.TokenID = c.cfg.ServerToken
	}
	if _, err := c.record(ctx, r.Tenant, r, ev); err != nil {
		return fmt.Errorf("recording %s: %w", a.Kind, err)
	}
	return nil
}

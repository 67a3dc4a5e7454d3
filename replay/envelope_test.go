package replay_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/replay"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestRebuildEnvelopeLog: on a log of leaf version 3, and one of version
// 4, a session rebuilds,
// verified, from its export and from its pages, with a global token and a
// tenant's, event for event the same.
func TestRebuildEnvelopeLog(t *testing.T) {
	for _, v := range []int{event.LeafVersionEnvelope, event.LeafVersionFields} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) { testRebuildEnvelopeLog(t, v) })
	}
}

func testRebuildEnvelopeLog(t *testing.T, v int) {
	w := newWorld(t, func(c *server.Config) { c.LeafVersion = v })
	const n = 30
	writeInterleaved(t, w, "v3", n)
	tenantToken := w.token(auth.Spec{Name: "clinic-auditor", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	for _, tenant := range []bool{false, true} {
		name := fmt.Sprintf("tenant token %v", tenant)
		src := w.source(w.ts.URL)
		if tenant {
			src.Log, _ = client.New(w.ts.URL, client.WithToken(tenantToken))
		}
		pages := src
		pages.NoExport = true
		q := replay.Query{Session: "v3", Payloads: true}
		ex, err := replay.Rebuild(context.Background(), src, q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pg, err := replay.Rebuild(context.Background(), pages, q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ex.Via != replay.ViaExport || !ex.Verified() || len(ex.Events) != n {
			t.Fatalf("%s: export: via %s, %d events, problems %v", name, ex.Via, len(ex.Events), ex.Problems)
		}
		if !pg.Verified() || len(pg.Events) != n {
			t.Fatalf("%s: pages: %d events, problems %v", name, len(pg.Events), pg.Problems)
		}
		sameEvents(t, name, ex, pg)
	}
}

package server

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// TestTokenLifecycleLogged: a token made behind the server's back (as the
// token command does, on the state database) is in the log before its
// first write, with its scopes; a revocation follows within the cache
// time; the in-process client writes nothing of its own.
func TestTokenLifecycleLogged(t *testing.T) {
	s := newTestServer(t, nil)
	ctx := context.Background()
	first := s.leafAt(t, 0)
	if first.Kind != event.KindTokenCreated || first.Attributes["token.name"] != "admin" || first.Attributes["token.global"] != true {
		t.Fatalf("entry 0 is %+v, want the admin token's creation", first)
	}
	tok, p, err := s.srv.Tokens().Create(ctx, auth.Spec{Name: "agent-9", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}, Actors: []string{"bot-9"}})
	if err != nil {
		t.Fatal(err)
	}
	before := s.size(t)
	w, err := s.client(t, tok).Append(ctx, []*event.Request{{Session: "x", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "bot-9"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.kindsSince(t, before); !slices.Equal(got, []string{event.KindTokenCreated, "tool.call"}) {
		t.Fatalf("first write appended %v, want the token's creation first", got)
	}
	created := s.leafAt(t, w[0].Index-1)
	if created.Tenant != "clinic-a" || created.Attributes["token.id"] != p.ID || created.Writer.Via != event.ViaServer ||
		!slices.Equal(toStrings(created.Attributes["token.scopes"]), []string{"write"}) || !slices.Equal(toStrings(created.Attributes["token.actors"]), []string{"bot-9"}) {
		t.Fatalf("creation event %+v", created)
	}
	if err := s.srv.Tokens().Revoke(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * auth.CacheTTL)
	for {
		kinds := s.kindsSince(t, w[0].Index+1)
		if slices.Contains(kinds, event.KindTokenRevoked) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v: %v", event.KindTokenRevoked, 3*auth.CacheTTL, kinds)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Nothing is logged twice, across a restart either.
	if err := s.srv.gov.RecordTokens(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range s.kindsSince(t, 0) {
		if k == event.KindTokenCreated || k == event.KindTokenRevoked {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d token events, want 3 (admin and agent-9 created, agent-9 revoked)", n)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

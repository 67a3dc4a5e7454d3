package governance_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/backend"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/governance"
	"github.com/llmaudittrail/llmaudittrail/internal/storetest"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/retention"
)

var ctx = context.Background()

// fixture is an engine on a posix storage in a temporary directory and
// the governance over it, as the server makes them.
type fixture struct {
	b *backend.Backend
	l *auditlog.Log
	g *governance.Clerk
}

func newFixture(t *testing.T, mods ...func(*governance.Config)) *fixture {
	t.Helper()
	b, err := backend.Open(ctx, backend.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	l := storetest.Engine(t, b, storetest.NewKeys(t, "test/governance"))
	holds, err := retention.Open(b.State)
	if err != nil {
		t.Fatal(err)
	}
	cfg := governance.Config{Log: l, Retention: holds, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, m := range mods {
		m(&cfg)
	}
	g, err := governance.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{b: b, l: l, g: g}
}

var agent = event.Writer{Token: "tok-agent", Via: event.ViaAPI}

// write appends an event with a payload, for person (on_behalf_of) if
// not "".
func (f *fixture) write(t *testing.T, tenant, session, person, payload string) event.Appended {
	t.Helper()
	r := &event.Request{Session: session, Kind: "llm.request", Actor: event.Actor{Type: "agent", ID: "bot", OnBehalfOf: person},
		Payload: json.RawMessage(fmt.Sprintf("%q", payload))}
	out, err := f.l.Append(ctx, tenant, agent, []*event.Request{r})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// leaf parses an appended leaf and checks that the server wrote it for
// the token tokenID.
func leaf(t *testing.T, a event.Appended, tokenID string) *event.Leaf {
	t.Helper()
	l, err := event.ParseLeaf(a.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if l.Writer == nil || l.Writer.Via != event.ViaServer || l.Writer.Token != tokenID {
		t.Fatalf("%s event written by %+v, want the server for token %s", l.Kind, l.Writer, tokenID)
	}
	return l
}

// wantAttrs checks a leaf's kind, session, actor and attributes exactly.
func wantAttrs(t *testing.T, l *event.Leaf, kind, session string, actor event.Actor, attrs map[string]any) {
	t.Helper()
	if l.Kind != kind || l.Session != session || l.Actor != actor {
		t.Fatalf("leaf %s in %s by %+v; want %s in %s by %+v", l.Kind, l.Session, l.Actor, kind, session, actor)
	}
	got, _ := json.Marshal(l.Attributes)
	want, _ := json.Marshal(attrs)
	if string(got) != string(want) {
		t.Fatalf("%s attributes\n got %s\nwant %s", kind, got, want)
	}
}

var dpo = auditlog.Reader{TokenID: "tok-dpo", Tenant: "clinic"}

func TestHolds(t *testing.T) {
	f := newFixture(t)
	f.write(t, "clinic", "case-1", "dr.who", "notes")
	h, a, err := f.g.PlaceHold(ctx, dpo, api.Target{Session: "case-1"}, "litigation 2026-17")
	if err != nil {
		t.Fatal(err)
	}
	wantAttrs(t, leaf(t, a, "tok-dpo"), "hold.placed", event.SessionHolds, event.Actor{Type: "human", ID: "token.tok-dpo"},
		map[string]any{"hold.id": h.ID, "hold.reason": "litigation 2026-17", "hold.session": "case-1"})

	hs, as, err := f.g.PlaceHold(ctx, dpo, api.Target{Subject: "dr.who"}, "investigation")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := f.l.Pseudonym(ctx, "clinic", "dr.who")
	if err != nil || hs.Subject != ps {
		t.Fatalf("a hold on a subject holds %q; want its pseudonym %q (%v)", hs.Subject, ps, err)
	}
	wantAttrs(t, leaf(t, as, "tok-dpo"), "hold.placed", event.SessionHolds, event.Actor{Type: "human", ID: "token.tok-dpo"},
		map[string]any{"hold.id": hs.ID, "hold.reason": "investigation", "hold.subject": ps})

	r, a, err := f.g.ReleaseHold(ctx, dpo, h.ID)
	if err != nil || r.ID != h.ID {
		t.Fatalf("ReleaseHold = %+v, %v", r, err)
	}
	wantAttrs(t, leaf(t, a, "tok-dpo"), "hold.released", event.SessionHolds, event.Actor{Type: "human", ID: "token.tok-dpo"},
		map[string]any{"hold.id": h.ID, "hold.session": "case-1"})

	for _, tc := range []struct {
		what string
		err  func() error
		want error
	}{
		{"a second release", func() error { _, _, err := f.g.ReleaseHold(ctx, dpo, h.ID); return err }, auditlog.ErrNotFound},
		{"another tenant's hold", func() error {
			_, _, err := f.g.ReleaseHold(ctx, auditlog.Reader{TokenID: "x", Tenant: "other"}, hs.ID)
			return err
		}, auditlog.ErrNotFound},
		{"no reason", func() error { _, _, err := f.g.PlaceHold(ctx, dpo, api.Target{Session: "case-1"}, " "); return err }, event.ErrInvalidEvent},
		{"session and subject", func() error {
			_, _, err := f.g.PlaceHold(ctx, dpo, api.Target{Session: "case-1", Subject: "dr.who"}, "x")
			return err
		}, event.ErrInvalidEvent},
		{"an unknown subject", func() error { _, _, err := f.g.PlaceHold(ctx, dpo, api.Target{Subject: "nobody"}, "x"); return err }, auditlog.ErrNotFound},
	} {
		t.Run(tc.what, func(t *testing.T) {
			if err := tc.err(); !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
		})
	}

	off := newFixture(t, func(c *governance.Config) { c.Retention = nil })
	if _, _, err := off.g.PlaceHold(ctx, dpo, api.Target{Session: "case-1"}, "x"); !errors.Is(err, governance.ErrNoRetention) {
		t.Fatalf("PlaceHold without a retention store = %v", err)
	}
}

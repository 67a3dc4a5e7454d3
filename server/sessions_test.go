package server

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// searchWorld writes sessions in two tenants: clinic-a's a1 (bot-1,
// gpt-4o, a subject, signed) and a2 (bot-2, claude, a tool call a monitor
// alert names), and clinic-b's b1 (bot-1).
type searchWorld struct {
	s                      *testServer
	readerA, writerA, only string
	subject                string // the pseudonym of a1's subject
	a1                     []client.Written
}

func newSearchWorld(t *testing.T) *searchWorld {
	t.Helper()
	s := newTestServer(t, nil)
	ctx := context.Background()
	tok := func(spec auth.Spec) string {
		tk, _, err := s.srv.Tokens().Create(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	w := &searchWorld{s: s,
		readerA: tok(auth.Spec{Name: "reader-a", Tenant: "clinic-a", Scopes: []string{auth.ScopeRead}}),
		writerA: tok(auth.Spec{Name: "writer-a", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}}),
	}
	w.only = w.writerA
	c := func(token string) *client.Client {
		cl, _ := client.New(s.ts.URL, client.WithToken(token))
		return cl
	}
	attrs := func(kv ...string) map[string]json.RawMessage {
		m := map[string]json.RawMessage{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]], _ = json.Marshal(kv[i+1])
		}
		return m
	}
	app := func(cl *client.Client, evs ...*event.Request) []client.Written {
		t.Helper()
		out, err := cl.Append(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	w.a1 = app(c(w.writerA),
		&event.Request{Session: "a1", Kind: "llm.request", Subject: "patient-1", Actor: event.Actor{Type: "agent", ID: "bot-1"}, Attributes: attrs("gen_ai.request.model", "gpt-4o")},
		&event.Request{Session: "a1", Kind: "llm.response", Actor: event.Actor{Type: "agent", ID: "bot-1"}, Attributes: attrs("gen_ai.response.model", "gpt-4o-2024-08-06")})
	a2 := app(c(w.writerA), &event.Request{Session: "a2", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "bot-2"}, Attributes: attrs("gen_ai.request.model", "claude-sonnet-4")})
	app(c(tok(auth.Spec{Name: "writer-b", Tenant: "clinic-b", Scopes: []string{auth.ScopeWrite}})),
		&event.Request{Session: "b1", Kind: "llm.request", Actor: event.Actor{Type: "agent", ID: "bot-1"}, Attributes: attrs("gen_ai.request.model", "gpt-4o")})
	mon := c(tok(auth.Spec{Name: "monitor-a", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite, auth.ScopeMonitor}}))
	alert := attrs("monitor.rule", "tool.forbidden", "monitor.severity", "high")
	alert["monitor.index"] = json.RawMessage(fmt.Sprint(a2[0].Index))
	app(mon, &event.Request{Session: "monitor.m1", Kind: "monitor.alert", Actor: event.Actor{Type: "system", ID: "monitor.m1"}, Attributes: alert})
	admin := c(tok(auth.Spec{Name: "admin-a", Tenant: "clinic-a", Scopes: []string{auth.ScopeAdmin}}))
	if _, err := admin.Enroll(ctx, api.Enrollment{ID: "dr-ada", PrintedName: "Dr. Ada", Secret: "a long secret", IdentityVerifiedBy: "hr"}); err != nil {
		t.Fatal(err)
	}
	ada := c(tok(auth.Spec{Name: "ada", Tenant: "clinic-a", Scopes: []string{auth.ScopeSign}, Actors: []string{"dr-ada"}}))
	waitPublished(t, s, s.size(t))
	if _, err := ada.Sign(ctx, api.SignRequest{Signer: "dr-ada", Secret: "a long secret", Index: w.a1[1].Index,
		LeafHash: hex.EncodeToString(w.a1[1].LeafHash), Meaning: "approved"}); err != nil {
		t.Fatal(err)
	}
	l, err := event.ParseLeaf(w.a1[0].Leaf)
	if err != nil {
		t.Fatal(err)
	}
	w.subject = l.Subject
	return w
}

func (w *searchWorld) search(t *testing.T, token, query string) (int, *api.SessionList, string) {
	t.Helper()
	code, body, _ := w.s.do(t, "GET", "/v1/sessions?"+query, token, nil)
	var l api.SessionList
	if code == http.StatusOK {
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatal(err)
		}
	}
	return code, &l, string(body)
}

func names(l *api.SessionList) string {
	var out []string
	for _, s := range l.Sessions {
		out = append(out, s.Tenant+"/"+s.Session)
	}
	return strings.Join(out, ",")
}

// TestSessionSearch: GET /v1/sessions finds sessions by agent, subject
// pseudonym, model (requested or answered), kind, alerts and signatures
// about their entries, and time; a tenant's token sees its own tenant, a
// global token every tenant or the one it names; pages follow a cursor;
// bad queries are refused.
func TestSessionSearch(t *testing.T) {
	w := newSearchWorld(t)
	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	past := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	for _, c := range []struct {
		name, token, query string
		wantCode           int
		want               string
	}{
		{"by agent", w.readerA, "agent=bot-1", 200, "clinic-a/a1"},
		{"by agent, every tenant", w.s.admin, "agent=bot-1", 200, "clinic-a/a1,clinic-b/b1"}, // a1 was signed last
		{"by agent, one tenant", w.s.admin, "agent=bot-1&tenant=clinic-b", 200, "clinic-b/b1"},
		{"by requested model", w.readerA, "model=claude-sonnet-4", 200, "clinic-a/a2"},
		{"by answered model", w.readerA, "model=gpt-4o-2024-08-06", 200, "clinic-a/a1"},
		{"by subject pseudonym", w.readerA, "subject=" + w.subject, 200, "clinic-a/a1"},
		{"by kind", w.readerA, "kind=tool.call", 200, "clinic-a/a2"},
		{"with an alert", w.readerA, "has_alert=true", 200, "clinic-a/a2"},
		{"without an alert", w.readerA, "has_alert=false&agent=bot-1", 200, "clinic-a/a1"},
		{"with a signature", w.readerA, "has_signature=true", 200, "clinic-a/a1"},
		{"two filters", w.readerA, "agent=bot-1&kind=tool.call", 200, ""},
		{"in the last hour", w.readerA, "agent=bot-2&from=" + past, 200, "clinic-a/a2"},
		{"from the future", w.readerA, "agent=bot-2&from=" + future, 200, ""},
		{"before the last hour", w.readerA, "agent=bot-2&to=" + past, 200, ""},
		{"no such agent", w.readerA, "agent=nobody", 200, ""},
		{"another tenant", w.readerA, "tenant=clinic-b", 403, ""},
		{"no read scope", w.only, "", 403, ""},
		{"no token", "", "", 401, ""},
		{"unknown parameter", w.readerA, "agnet=bot-1", 400, ""},
		{"a parameter twice", w.readerA, "agent=a&agent=b", 400, ""},
		{"limit 0", w.readerA, "limit=0", 400, ""},
		{"limit too large", w.readerA, "limit=100000", 400, ""},
		{"bad cursor", w.readerA, "cursor=abc", 400, ""},
		{"bad time", w.readerA, "from=yesterday", 400, ""},
		{"to before from", w.readerA, "from=" + future + "&to=" + past, 400, ""},
		{"bad boolean", w.readerA, "has_alert=maybe", 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, l, body := w.search(t, c.token, c.query)
			if code != c.wantCode {
				t.Fatalf("GET /v1/sessions?%s = %d %s, want %d", c.query, code, body, c.wantCode)
			}
			if code == 200 && names(l) != c.want {
				t.Fatalf("GET /v1/sessions?%s found %q, want %q", c.query, names(l), c.want)
			}
		})
	}

	t.Run("summary", func(t *testing.T) {
		_, l, _ := w.search(t, w.readerA, "agent=bot-1")
		got := l.Sessions[0]
		want := api.SessionSummary{Tenant: "clinic-a", Session: "a1", Events: 3, FirstIndex: w.a1[0].Index,
			Agents: []string{"bot-1"}, Models: []string{"gpt-4o", "gpt-4o-2024-08-06"}, Signatures: 1}
		// The signature event joins the session it signs: three events.
		if got.Tenant != want.Tenant || got.Session != want.Session || got.Events != want.Events || got.FirstIndex != want.FirstIndex ||
			got.LastIndex <= w.a1[1].Index || strings.Join(got.Agents, ",") != "bot-1" || strings.Join(got.Models, ",") != "gpt-4o,gpt-4o-2024-08-06" ||
			got.Signatures != 1 || got.Alerts != 0 || got.FirstTime == "" || got.LastTime < got.FirstTime {
			t.Fatalf("summary %+v, want like %+v", got, want)
		}
	})

	t.Run("pages", func(t *testing.T) {
		var seen []string
		query := "limit=2&tenant=clinic-a"
		for range 20 {
			_, l, body := w.search(t, w.s.admin, query)
			if len(l.Sessions) > 2 {
				t.Fatalf("a page of %d: %s", len(l.Sessions), body)
			}
			for _, s := range l.Sessions {
				seen = append(seen, s.Session)
			}
			if l.Next == "" {
				break
			}
			query = "limit=2&tenant=clinic-a&cursor=" + url.QueryEscape(l.Next)
		}
		_, all, _ := w.search(t, w.s.admin, "tenant=clinic-a")
		var want []string
		for _, s := range all.Sessions {
			want = append(want, s.Session)
		}
		if strings.Join(seen, ",") != strings.Join(want, ",") || len(want) < 5 {
			t.Fatalf("paged %v, at once %v", seen, want)
		}
	})
}

// TestSessionSearchFilledFromLog: an index made before the search tables
// existed is filled from the log at its next store, and finds what a fresh
// one finds.
func TestSessionSearchFilledFromLog(t *testing.T) {
	w := newSearchWorld(t)
	_, before, _ := w.search(t, w.s.admin, "")
	if len(before.Sessions) < 5 {
		t.Fatalf("only %d sessions", len(before.Sessions))
	}
	cfg := w.s.srv.cfg
	if err := w.s.srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(cfg.DataDir, IndexDB))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{"DROP TABLE search_sessions", "DROP TABLE search_terms", "DELETE FROM index_meta WHERE k = 'search_size'"} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s := newTestServerIn(t, cfg.DataDir, func(c *Config) { *c = cfg })
	s.post(t, "after", "agent.decision", nil) // a store, which fills the search first
	w.s = s
	_, after, body := w.search(t, w.s.admin, "")
	if len(after.Sessions) != len(before.Sessions)+1 || after.Sessions[0].Session != "after" || names(&api.SessionList{Sessions: after.Sessions[1:]}) != names(before) {
		t.Fatalf("after filling: %s\nbefore: %s", body, names(before))
	}
}

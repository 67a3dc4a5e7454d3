package index_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/index"
	"github.com/llmaudittrail/llmaudittrail/internal/dbtest"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
	"github.com/llmaudittrail/llmaudittrail/internal/storetest"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// ev is one leaf to append: tenant/session, kind, actor (an agent), and
// attributes; seq and time follow from the order.
type ev struct {
	tenant, session, kind, agent, subject string
	attrs                                 map[string]any
}

func appendEv(t *testing.T, m *storetest.MemLog, seqs map[string]uint64, e ev) uint64 {
	t.Helper()
	key := e.tenant + "/" + e.session
	a := map[string]any{}
	for k, v := range e.attrs {
		b, _ := json.Marshal(v)
		a[k] = json.Number(string(b))
		if s, ok := v.(string); ok {
			a[k] = s
		}
	}
	l := &event.Leaf{V: event.LeafVersion, ID: event.NewID(), Kind: e.kind, Tenant: e.tenant, Session: e.session, Seq: seqs[key],
		Actor: event.Actor{Type: "agent", ID: e.agent}, Subject: e.subject, Attributes: a,
		Writer: &event.Writer{Token: "tok", Via: event.ViaAPI}}
	idx, _ := m.IntegratedSize(context.Background())
	l.Time = t0.Add(time.Duration(idx) * time.Minute).Format(event.TimeFormat)
	if e.agent == "" {
		l.Actor = event.Actor{Type: "system", ID: "monitor"}
	}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m.Add(b)
	seqs[key]++
	return idx
}

// world writes, in tenants t1 and t2: t1/a (bot-1, gpt-4o, subject ps_1,
// signed), t1/b (bot-2, claude, a tool call that an alert names), t2/c
// (bot-1), and the alert and signature events in sessions of their own.
func world(t *testing.T, m *storetest.MemLog) {
	s := map[string]uint64{}
	appendEv(t, m, s, ev{"t1", "a", "llm.request", "bot-1", "ps_1", map[string]any{"gen_ai.request.model": "gpt-4o"}})
	resp := appendEv(t, m, s, ev{"t1", "a", "llm.response", "bot-1", "", map[string]any{"gen_ai.response.model": "gpt-4o-2024-08-06"}})
	tool := appendEv(t, m, s, ev{"t1", "b", "tool.call", "bot-2", "", map[string]any{"gen_ai.request.model": "claude", "gen_ai.agent.id": "planner"}})
	appendEv(t, m, s, ev{"t2", "c", "llm.request", "bot-1", "", nil})
	appendEv(t, m, s, ev{"t1", "monitor.m", "monitor.alert", "", "", map[string]any{"monitor.index": tool}})
	appendEv(t, m, s, ev{"t1", "monitor.m", "monitor.alert", "", "", map[string]any{"monitor.index": tool}})
	appendEv(t, m, s, ev{"t1", "a", "human.signature", "", "", map[string]any{"signature.index": resp}})
	appendEv(t, m, s, ev{"t1", "monitor.m", "monitor.alert", "", "", map[string]any{"monitor.index": 999999}}) // names no entry
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func forEachDB(t *testing.T, f func(t *testing.T, open func(t *testing.T) *sqldb.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		f(t, func(t *testing.T) *sqldb.DB {
			db, err := sqldb.OpenSQLite(filepath.Join(t.TempDir(), "index.db"), sqlitedb.Rebuildable)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		})
	})
	t.Run("mariadb", func(t *testing.T) {
		f(t, func(t *testing.T) *sqldb.DB {
			db, err := sqldb.OpenMySQL(context.Background(), dbtest.MariaDB(t), sqldb.Pool{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		})
	})
}

func names(l *api.SessionList) string {
	var out []string
	for _, s := range l.Sessions {
		out = append(out, s.Tenant+"/"+s.Session)
	}
	return strings.Join(out, ",")
}

// TestSearch: every filter on both databases, on an index built in one
// catch-up, leaf by leaf, and by two instances at once.
func TestSearch(t *testing.T) {
	ctx := context.Background()
	yes, no := new(true), new(false)
	cases := []struct {
		name string
		q    api.SessionSearch
		want string
	}{
		{"all, the latest first", api.SessionSearch{}, "t1/monitor.m,t1/a,t2/c,t1/b"},
		{"one tenant", api.SessionSearch{Tenant: "t2"}, "t2/c"},
		{"an agent actor", api.SessionSearch{Agent: "bot-1"}, "t1/a,t2/c"},
		{"gen_ai.agent.id", api.SessionSearch{Agent: "planner"}, "t1/b"},
		{"an agent in a tenant", api.SessionSearch{Tenant: "t1", Agent: "bot-1"}, "t1/a"},
		{"a subject", api.SessionSearch{Subject: "ps_1"}, "t1/a"},
		{"a requested model", api.SessionSearch{Model: "claude"}, "t1/b"},
		{"an answered model", api.SessionSearch{Model: "gpt-4o-2024-08-06"}, "t1/a"},
		{"a kind", api.SessionSearch{Kind: "monitor.alert"}, "t1/monitor.m"},
		{"with an alert", api.SessionSearch{HasAlert: yes}, "t1/b"},
		{"without an alert", api.SessionSearch{HasAlert: no, Tenant: "t1"}, "t1/monitor.m,t1/a"},
		{"with a signature", api.SessionSearch{HasSignature: yes}, "t1/a"},
		{"both", api.SessionSearch{HasSignature: yes, HasAlert: yes}, ""},
		{"ids compare byte for byte", api.SessionSearch{Agent: "BOT-1"}, ""},
		{"from the 4th minute", api.SessionSearch{From: t0.Add(3 * time.Minute)}, "t1/monitor.m,t1/a,t2/c"},
		{"before the 3rd minute", api.SessionSearch{To: t0.Add(2 * time.Minute)}, "t1/a"},
		{"a window inside a session's span", api.SessionSearch{From: t0.Add(90 * time.Second), To: t0.Add(100 * time.Second)}, "t1/a"},
	}
	check := func(t *testing.T, x *index.Index) {
		t.Helper()
		for _, c := range cases {
			l, err := x.Search(ctx, c.q)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if names(l) != c.want {
				t.Errorf("%s: %q, want %q", c.name, names(l), c.want)
			}
		}
		l, err := x.Search(ctx, api.SessionSearch{Agent: "bot-1", Tenant: "t1"})
		if err != nil {
			t.Fatal(err)
		}
		a := l.Sessions[0]
		if a.Events != 3 || a.FirstIndex != 0 || a.LastIndex != 6 || a.FirstTime != t0.Format(event.TimeFormat) ||
			strings.Join(a.Agents, ",") != "bot-1" || strings.Join(a.Models, ",") != "gpt-4o,gpt-4o-2024-08-06" || a.Signatures != 1 || a.Alerts != 0 {
			t.Errorf("summary of t1/a: %+v", a)
		}
		if l, _ := x.Search(ctx, api.SessionSearch{HasAlert: yes}); len(l.Sessions) != 1 || l.Sessions[0].Alerts != 2 {
			t.Errorf("t1/b's alerts: %+v", l.Sessions)
		}
		// Pages of one.
		var got []string
		q := api.SessionSearch{Limit: 1}
		for range 10 {
			l, err := x.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, names(l))
			if l.Next == "" {
				break
			}
			q.Cursor = l.Next
		}
		if strings.Join(got, ",") != cases[0].want {
			t.Errorf("paged: %v", got)
		}
		if _, err := x.Search(ctx, api.SessionSearch{Cursor: "x"}); !errors.Is(err, index.ErrBadSearch) {
			t.Errorf("a bad cursor: %v", err)
		}
	}
	forEachDB(t, func(t *testing.T, open func(t *testing.T) *sqldb.DB) {
		t.Run("one catch-up", func(t *testing.T) {
			m := &storetest.MemLog{}
			world(t, m)
			x, err := index.Open(open(t), m, quiet())
			if err != nil {
				t.Fatal(err)
			}
			if err := x.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			check(t, x)
		})
		t.Run("leaf by leaf, twice over", func(t *testing.T) {
			full := &storetest.MemLog{}
			world(t, full)
			db := open(t)
			m := &storetest.MemLog{}
			x, err := index.Open(db, m, quiet())
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range full.Leaves() {
				m.Add(l)
				if err := x.CatchUp(ctx); err != nil {
					t.Fatal(err)
				}
			}
			check(t, x)
			// A second index on the same database finds it done.
			y, err := index.Open(db, m, quiet())
			if err != nil {
				t.Fatal(err)
			}
			if err := y.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			check(t, y)
		})
		t.Run("two instances at once", func(t *testing.T) {
			db := open(t)
			m := &storetest.MemLog{}
			x1, err1 := index.Open(db, m, quiet())
			x2, err2 := index.Open(db, m, quiet())
			if err := errors.Join(err1, err2); err != nil {
				t.Fatal(err)
			}
			world(t, m)
			var wg sync.WaitGroup
			for _, x := range []*index.Index{x1, x2} {
				wg.Go(func() {
					if err := x.CatchUp(ctx); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			check(t, x1)
		})
	})
}

// TestSearchFilledFromLog: an index whose search tables are empty and
// whose search size is unknown (made before the search existed) is filled
// from the log at its next store.
func TestSearchFilledFromLog(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, open func(t *testing.T) *sqldb.DB) {
		db := open(t)
		m := &storetest.MemLog{}
		world(t, m)
		x, err := index.Open(db, m, quiet())
		if err != nil {
			t.Fatal(err)
		}
		if err := x.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		for _, stmt := range []string{"DELETE FROM search_sessions", "DELETE FROM search_terms", "DELETE FROM index_meta WHERE k = 'search_size'"} {
			if _, err := db.Exec(stmt); err != nil {
				t.Fatal(err)
			}
		}
		if l, _ := x.Search(ctx, api.SessionSearch{}); len(l.Sessions) != 0 {
			t.Fatalf("emptied, the search finds %s", names(l))
		}
		appendEv(t, m, map[string]uint64{}, ev{"t3", "d", "llm.request", "bot-9", "", nil})
		if err := x.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		l, err := x.Search(ctx, api.SessionSearch{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := names(l), "t3/d,t1/monitor.m,t1/a,t2/c,t1/b"; got != want {
			t.Fatalf("after the next store: %q, want %q", got, want)
		}
		if l, _ := x.Search(ctx, api.SessionSearch{HasAlert: new(true)}); names(l) != "t1/b" {
			t.Fatalf("alerts after filling: %q", names(l))
		}
	})
}

// TestPeople: the sessions a pseudonym appears in, as subject or as
// on_behalf_of, and the pseudonyms of sessions, which erasures and holds
// rely on; an index made before on_behalf_of was a term (no search_version)
// is rebuilt from the log at Open, so old sessions are found too.
func TestPeople(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, open func(t *testing.T) *sqldb.DB) {
		m := &storetest.MemLog{}
		for i, e := range []struct{ tenant, session, subject, behalf string }{
			{"t1", "a", "ps_patient", ""},
			{"t1", "b", "", "ps_doctor"},
			{"t1", "c", "ps_doctor", "ps_nurse"},
			{"t2", "d", "", "ps_doctor"}, // another tenant's pseudonym of the same name
		} {
			l := &event.Leaf{V: event.LeafVersion, ID: event.NewID(), Kind: "llm.request", Tenant: e.tenant, Session: e.session,
				Time: t0.Add(time.Duration(i) * time.Minute).Format(event.TimeFormat), Subject: e.subject,
				Actor: event.Actor{Type: "agent", ID: "bot", OnBehalfOf: e.behalf}, Writer: &event.Writer{Token: "tok", Via: event.ViaAPI}}
			b, err := l.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			m.Add(b)
		}
		db := open(t)
		check := func(what string) {
			t.Helper()
			x, err := index.Open(db, m, quiet())
			if err != nil {
				t.Fatal(err)
			}
			if err := x.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				tenant, ps string
				want       []string
			}{
				{"t1", "ps_doctor", []string{"b", "c"}},
				{"t1", "ps_nurse", []string{"c"}},
				{"t1", "ps_patient", []string{"a"}},
				{"t2", "ps_doctor", []string{"d"}},
				{"t1", "ps_nobody", nil},
			} {
				if got, err := x.SessionsOf(ctx, tc.tenant, tc.ps); err != nil || !slices.Equal(got, tc.want) {
					t.Errorf("%s: SessionsOf(%s, %s) = %v, %v; want %v", what, tc.tenant, tc.ps, got, err, tc.want)
				}
			}
			if got, err := x.People(ctx, "t1", []string{"b", "c"}); err != nil || !slices.Equal(got, []string{"ps_doctor", "ps_nurse"}) {
				t.Errorf("%s: People(t1, b c) = %v, %v", what, got, err)
			}
		}
		check("a new index")
		// As an index made before the on_behalf_of term: no version, no
		// such terms, and its search two leaves behind the indexed size
		// (sessions c and d not searchable yet).
		for _, q := range []string{`DELETE FROM index_meta WHERE k = 'search_version'`, `DELETE FROM search_terms WHERE field = 'on_behalf_of'`,
			`DELETE FROM search_terms WHERE session IN ('c', 'd')`, `DELETE FROM search_sessions WHERE session IN ('c', 'd')`,
			`UPDATE index_meta SET v = 2 WHERE k = 'search_size'`} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		check("an index of the previous version, reopened")
		if got, err := db.QueryContext(ctx, `SELECT 1 FROM index_meta WHERE k = 'indexed_size' AND v = 4`); err != nil || !got.Next() {
			t.Fatalf("the indexed size changed in the upgrade (%v)", err)
		} else {
			got.Close()
		}
	})
}

// TestStoredTermsLeftOut: a search term that a committed store wrote is
// not inserted again by the same Index (a session's events repeat their
// kind, agent and model), a new term is, and another Index (a restarted
// server) starts with none known.
func TestStoredTermsLeftOut(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.OpenSQLite(filepath.Join(t.TempDir(), "index.db"), sqlitedb.Rebuildable)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m := &storetest.MemLog{}
	seqs := map[string]uint64{}
	appendEv(t, m, seqs, ev{"t1", "a", "llm.request", "bot-1", "", map[string]any{"gen_ai.request.model": "gpt-4o"}})
	x, err := index.Open(db, m, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := x.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	has := func(field, value string) bool {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM search_terms WHERE tenant = 't1' AND session = 'a' AND field = ? AND value = ?`, field, value).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if !has("kind", "llm.request") || !has("model", "gpt-4o") {
		t.Fatal("terms of the first store missing")
	}
	// Out of band (nothing in the server deletes terms): the row is gone,
	// and the Index does not write it again.
	if _, err := db.Exec(`DELETE FROM search_terms WHERE field = 'kind'`); err != nil {
		t.Fatal(err)
	}
	appendEv(t, m, seqs, ev{"t1", "a", "llm.request", "bot-1", "", map[string]any{"gen_ai.request.model": "gpt-5"}})
	if err := x.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if has("kind", "llm.request") {
		t.Fatal("a term stored before was inserted again")
	}
	if !has("model", "gpt-5") {
		t.Fatal("a new term was left out")
	}
	y, err := index.Open(db, m, quiet())
	if err != nil {
		t.Fatal(err)
	}
	appendEv(t, m, seqs, ev{"t1", "a", "llm.request", "bot-1", "", nil})
	if err := y.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if !has("kind", "llm.request") {
		t.Fatal("a new Index did not write the term")
	}
}

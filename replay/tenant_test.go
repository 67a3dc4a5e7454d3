package replay_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/replay"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestRebuildWithTenantToken: a tenant's token reads its sessions' exports
// (which carry their own proof), and, by pages, may not read entry bundles
// (they hold every tenant's entries), so that rebuild reads each entry
// with an inclusion proof to the checkpoint and verifies that proof
// itself: a session verifies either way as it does with a global token,
// and a proof the server got wrong is caught at its entry.
func TestRebuildWithTenantToken(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	writer, _ := client.New(w.ts.URL, client.WithToken(w.write))
	var evs []*event.Request
	for _, k := range []string{"llm.request", "llm.response", "tool.call", "agent.decision"} {
		evs = append(evs, &event.Request{Session: "t-1", Kind: k, Actor: event.Actor{Type: "agent", ID: "triage-bot"}, Payload: json.RawMessage(`{"k":"` + k + `"}`)})
	}
	written, err := writer.Append(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	tenantToken := w.token(auth.Spec{Name: "clinic-auditor", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	rebuild := func(url string, noExport bool) *replay.Session {
		t.Helper()
		src := w.source(url)
		src.Log, _ = client.New(url, client.WithToken(tenantToken))
		src.NoExport = noExport
		s, err := replay.Rebuild(ctx, src, replay.Query{Session: "t-1", Payloads: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := w.source(w.ts.URL).Log.Tiles().ReadEntryBundle(ctx, 0, 1); err != nil {
		t.Fatalf("the global token reads bundles: %v", err)
	}
	for _, noExport := range []bool{false, true} {
		s := rebuild(w.ts.URL, noExport)
		if !s.Verified() || len(s.Events) != len(evs) {
			t.Fatalf("with a tenant's token, via %s: %d events, problems %v", s.Via, len(s.Events), s.Problems)
		}
		for _, e := range s.Events {
			if !e.Included || !e.Chained || e.PayloadStatus != api.PayloadOK {
				t.Fatalf("via %s: entry %d: included %v, chained %v, payload %s", s.Via, e.Index, e.Included, e.Chained, e.PayloadStatus)
			}
		}
	}

	// A server that answers a wrong inclusion proof for one entry.
	bad := written[2].Index
	h := w.srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/entries/"+itoa(bad) {
			h.ServeHTTP(rw, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var body map[string]any
		json.Unmarshal(rec.Body.Bytes(), &body)
		if p, _ := body["inclusion_proof"].([]any); len(p) > 0 {
			p[0] = base64.StdEncoding.EncodeToString(make([]byte, 32))
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(rec.Code)
		json.NewEncoder(rw).Encode(body)
	}))
	t.Cleanup(ts.Close)
	s := rebuild(ts.URL, true) // the export proves inclusion without /v1/entries
	if s.Verified() {
		t.Fatal("a wrong inclusion proof verified")
	}
	p := s.Problems[0]
	if p.Check != replay.CheckInclusion || p.Index == nil || *p.Index != bad || !strings.Contains(p.Message, "does not prove included") {
		t.Fatalf("first problem %s, want inclusion at entry %d", p, bad)
	}
	for _, e := range s.Events {
		if e.Index != bad && !e.Included {
			t.Errorf("entry %d is not included: %v", e.Index, e.Problems)
		}
	}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }

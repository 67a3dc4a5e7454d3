package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/client"
)

// TestReservedSessions (issue #24, finding 9): a token cannot write into
// the sessions the server writes in its own name, nor as the server's own
// actor, through the event API or the capture proxy: 403 reserved_session
// and nothing appended. Names that only look alike stay open.
func TestReservedSessions(t *testing.T) {
	up, upHits := countingUpstream(t)
	s := newTestServer(t, func(c *Config) { c.Upstreams = map[string]string{"gw": up.URL} })
	agent, p := s.token(t, auth.Spec{Name: "agent-a", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}})
	ev := func(session, actorType, actorID string) string {
		return fmt.Sprintf(`{"session":%q,"kind":"tool.call","actor":{"type":%q,"id":%q}}`, session, actorType, actorID)
	}
	time.Sleep(50 * time.Millisecond)
	before := s.size(t)
	for _, tc := range []struct{ name, path, body string }{
		{"own access session", "/v1/events", ev("access."+p.ID, "agent", "bot")},
		{"access.tokens", "/v1/events", ev("access.tokens", "agent", "bot")},
		{"access", "/v1/events", ev("access", "agent", "bot")},
		{"holds", "/v1/events", ev("holds", "agent", "bot")},
		{"erasures", "/v1/events", ev("erasures", "agent", "bot")},
		{"retention", "/v1/events", ev("retention", "agent", "bot")},
		{"signer.<id>", "/v1/events", ev("signer.dr-smith", "agent", "bot")},
		{"reports", "/v1/events", ev("reports", "agent", "bot")},
		{"server actor", "/v1/events", ev("s1", "system", "log-server")},
		{"server actor in a server session", "/v1/events", ev("holds", "system", "log-server")},
		{"one reserved event in a batch", "/v1/events:batch", `{"events":[` + ev("s1", "agent", "bot") + `,` + ev("erasures", "agent", "bot") + `]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := s.do(t, "POST", tc.path, agent, []byte(tc.body))
			var e client.ErrorBody
			json.Unmarshal(body, &e)
			if code != http.StatusForbidden || e.Error.Code != "reserved_session" {
				t.Fatalf("POST %s %s = %d %s, want 403 reserved_session", tc.path, tc.body, code, body)
			}
		})
	}
	for _, session := range []string{"holds", "access.tokens", "signer.x"} {
		t.Run("proxy into "+session, func(t *testing.T) {
			req, _ := http.NewRequest("POST", s.ts.URL+capture.PathPrefix+"gw/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[]}`))
			req.Header.Set(capture.HeaderToken, agent)
			req.Header.Set(capture.HeaderSession, session)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "reserved_session") {
				t.Fatalf("proxy call in session %s = %d %s, want 403 reserved_session", session, resp.StatusCode, body)
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	if after := s.size(t); after != before {
		t.Fatalf("the refused writes appended %d entries", after-before)
	}
	if n := upHits.Load(); n != 0 {
		t.Fatalf("the upstream was called %d times", n)
	}
	// Look-alikes stay open, and so do the system actors of other writers
	// (the capture SDK's gaps, the monitor, replay).
	for _, body := range []string{ev("holds-2", "agent", "bot"), ev("accessory", "agent", "bot"), ev("signers", "agent", "bot"),
		ev("s1", "system", "capture"), ev("s1", "agent", "log-server"), ev("s1", "system", "log-server-2")} {
		if code, b, _ := s.do(t, "POST", "/v1/events", agent, []byte(body)); code != http.StatusCreated {
			t.Errorf("POST %s = %d %s, want 201", body, code, b)
		}
	}
}

// countingUpstream is a provider upstream that answers every call with an
// empty chat completion and counts the calls it got.
func countingUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","model":"m","choices":[]}`)
	}))
	t.Cleanup(up.Close)
	return up, &hits
}

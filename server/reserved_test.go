package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/event"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
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
			var e api.ErrorBody
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

// sessionKinds waits (up to 5 s) until tenant's session has at least n
// entries and returns their kinds.
func (s *testServer) sessionKinds(t *testing.T, tenant, session string, n int) []string {
	t.Helper()
	ctx := context.Background()
	l := s.srv.Log()
	var kinds []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		size, err := l.Reader().IntegratedSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Index().WaitFor(ctx, size); err != nil {
			t.Fatal(err)
		}
		entries, err := l.Index().Session(ctx, tenant, session, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) >= n || time.Now().After(deadline) {
			kinds = kinds[:0]
			unpublished := false
			for _, en := range entries {
				data, err := l.ReadLeaf(ctx, en.Index, size)
				if errors.Is(err, auditlog.ErrNotPublished) && time.Now().Before(deadline) {
					unpublished = true // integrated, not under a checkpoint yet: look again
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				leaf, err := event.ParseLeaf(data)
				if err != nil {
					t.Fatal(err)
				}
				kinds = append(kinds, leaf.Kind)
			}
			if !unpublished {
				return kinds
			}
		}
	}
}

// TestReservedSessionCannotStopCapture (review of #24, finding 1): an
// agent that names a server session (holds) on the MCP relay or on a
// CONNECT is refused with 403 before anything is recorded or forwarded,
// so no capture gap is noted in that session; another agent of the same
// tenant is then recorded as before (fail-closed: its tools/call goes on).
// Before the fix the refused event's gap went ahead of every later batch
// of the tenant and failed with it, for ever.
func TestReservedSessionCannotStopCapture(t *testing.T) {
	s := newTestServer(t, func(c *Config) {
		c.Intercept = &InterceptConfig{}
		c.BatchMaxAge = 2 * time.Millisecond
	})
	attacker, _ := s.token(t, auth.Spec{Name: "attacker", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}})
	victim, vp := s.token(t, auth.Spec{Name: "victim", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}})
	relay := func(t *testing.T, token, session, msg string) (int, []byte) {
		t.Helper()
		b, _ := json.Marshal(api.MCPRelayRequest{Conn: "c-" + session, Server: "tools", Session: session, From: "client", Message: json.RawMessage(msg)})
		code, body, _ := s.do(t, "POST", "/v1/mcp/relay", token, b)
		return code, body
	}
	victimCall := func(t *testing.T, id int) {
		t.Helper()
		code, body := relay(t, victim, "victim-s", fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{}}}`, id))
		var res api.MCPRelayResponse
		if code != http.StatusOK || json.Unmarshal(body, &res) != nil || res.Reply != nil || res.Forward == nil {
			t.Fatalf("the victim's tools/call %d: %d %s, want it forwarded", id, code, body)
		}
	}
	t.Run("relay", func(t *testing.T) {
		before := s.size(t)
		for _, session := range []string{"holds", "access.x", "signer.y", "reports"} {
			code, body := relay(t, attacker, session, `{"jsonrpc":"2.0","id":1,"method":7}`)
			var e api.ErrorBody
			if json.Unmarshal(body, &e); code != http.StatusForbidden || e.Error.Code != "reserved_session" {
				t.Errorf("relay in session %s = %d %s, want 403 reserved_session", session, code, body)
			}
		}
		victimCall(t, 1)
		victimCall(t, 2)
		if got := strings.Join(s.sessionKinds(t, "clinic-a", "victim-s", 2), " "); got != "tool.call tool.call" {
			t.Fatalf("the victim's session: %q, want both tool calls", got)
		}
		time.Sleep(100 * time.Millisecond)
		if after := s.size(t); after != before+2 {
			t.Fatalf("%d entries appended, want the victim's 2", after-before)
		}
	})
	t.Run("connect", func(t *testing.T) {
		var hits atomic.Int64
		internal := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
		t.Cleanup(internal.Close)
		target := strings.TrimPrefix(internal.URL, "http://") // loopback: a tunnel there is refused and recorded
		px := httptest.NewServer(s.srv.InterceptHandler())
		t.Cleanup(px.Close)
		connect := func(t *testing.T, token, session string) (int, string) {
			t.Helper()
			req, _ := http.NewRequest(http.MethodConnect, px.URL, nil)
			req.Host, req.URL.Opaque = target, target
			req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("agent:"+token)))
			if session != "" {
				req.Header.Set(capture.HeaderSession, session)
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}
		before := s.size(t)
		for _, session := range []string{"holds", "erasures", "access.x"} {
			if code, body := connect(t, attacker, session); code != http.StatusForbidden || !strings.Contains(body, "reserved session") {
				t.Errorf("CONNECT with %s: %s = %d %q, want 403 reserved session", capture.HeaderSession, session, code, body)
			}
		}
		time.Sleep(100 * time.Millisecond)
		if after := s.size(t); after != before {
			t.Errorf("the refused CONNECTs appended %d entries", after-before)
		}
		// The victim's own tunnel attempts are recorded.
		for range 2 {
			if code, _ := connect(t, victim, ""); code != http.StatusForbidden {
				t.Fatalf("the victim's CONNECT to loopback = %d, want 403", code)
			}
		}
		if got := strings.Join(s.sessionKinds(t, "clinic-a", "intercept."+vp.ID, 2), " "); got != "capture.tunnel capture.tunnel" {
			t.Fatalf("the victim's session: %q, want both tunnel refusals", got)
		}
		if n := hits.Load(); n != 0 {
			t.Fatalf("the loopback service was reached %d times", n)
		}
	})
}

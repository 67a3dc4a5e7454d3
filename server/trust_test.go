package server

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// token makes a token for the test.
func (s *testServer) token(t *testing.T, spec auth.Spec) (string, *auth.Principal) {
	t.Helper()
	tok, p, err := s.srv.Tokens().Create(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	// As the server's watch would within auth.CacheTTL: the creation is in
	// the log before the token is used.
	if err := s.srv.gov.RecordTokens(context.Background()); err != nil {
		t.Fatal(err)
	}
	return tok, p
}

// TestFindingsFailClosed replays what an attacker did against the server
// before the trust boundaries (issue "Trust boundaries"): each attempt now
// fails closed, and none appends anything.
func TestFindingsFailClosed(t *testing.T) {
	s := newTestServer(t, nil)
	// Every write the attempts below make would land in tenant clinic-b's
	// session "victim" or in new sessions; they count the log's size.
	agentB, _ := s.token(t, auth.Spec{Name: "agent-b", Tenant: "clinic-b", Scopes: []string{auth.ScopeWrite}})
	readerA, _ := s.token(t, auth.Spec{Name: "reader-a", Tenant: "clinic-a", Scopes: []string{auth.ScopeRead}})
	adminA, _ := s.token(t, auth.Spec{Name: "admin-a", Tenant: "clinic-a", Scopes: []string{auth.ScopeAdmin}})
	bound, _ := s.token(t, auth.Spec{Name: "bot", Tenant: "clinic-b", Scopes: []string{auth.ScopeWrite}, Actors: []string{"triage-bot"}})
	globalW, _ := s.token(t, auth.Spec{Name: "global-writer", Tenant: "clinic-b", Global: true, Scopes: []string{auth.ScopeWrite}})
	globalM, _ := s.token(t, auth.Spec{Name: "global-monitor", Tenant: "clinic-a", Global: true, Scopes: []string{auth.ScopeMonitor}})
	alert := func(session, actorType, actorID, about string) string {
		return fmt.Sprintf(`{"session":%q,"kind":"monitor.alert","actor":{"type":%q,"id":%q},"attributes":{"monitor.tenant":%q}}`, session, actorType, actorID, about)
	}
	ev := func(kind string) string {
		return fmt.Sprintf(`{"session":"victim","kind":%q,"actor":{"type":"human","id":"dr.smith"},"payload":{"note":"forged"}}`, kind)
	}
	// One genuine event of clinic-b to read and to correct.
	code, body, _ := s.do(t, "POST", "/v1/events", agentB, []byte(`{"session":"victim","kind":"llm.request","actor":{"type":"agent","id":"triage-bot"},"payload":{"p":1}}`))
	if code != 201 {
		t.Fatalf("genuine write = %d %s", code, body)
	}
	var genuine api.EventResponse
	json.Unmarshal(body, &genuine)
	s.waitCovered(t, genuine.Index)
	before := s.size(t)

	// What anyone may read: enough for witnesses and receipts.
	for _, path := range []string{"/checkpoint", "/tile/0/000.p/1", fmt.Sprintf("/v1/proof/consistency?from=1&to=%d", genuine.Index+1)} {
		if code, body, _ := s.do(t, "GET", path, "", nil); code != 200 {
			t.Errorf("anonymous GET %s = %d %s, want 200", path, code, body)
		}
	}
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		// Anyone read every leaf.
		{"anonymous entry bundle", "GET", "/tile/entries/000", "", "", 401, "unauthenticated"},
		{"anonymous entry", "GET", "/v1/entries/0", "", "", 401, "unauthenticated"},
		{"tenant token reads bundles", "GET", "/tile/entries/000", readerA, "", 403, "forbidden"},
		{"tenant token reads another tenant's entry", "GET", "/v1/entries/0", readerA, "", 404, "not_found"},
		// A write-only agent token forged server events.
		{"forged access.read", "POST", "/v1/events", agentB, ev("access.read"), 403, "reserved_kind"},
		{"forged human.signature", "POST", "/v1/events", agentB, ev("human.signature"), 403, "reserved_kind"},
		{"forged monitor.alert", "POST", "/v1/events", agentB, ev("monitor.alert"), 403, "reserved_kind"},
		{"forged erasure", "POST", "/v1/events", agentB, ev("erasure"), 403, "reserved_kind"},
		{"forged report", "POST", "/v1/events", agentB, ev("report.issued"), 403, "reserved_kind"},
		{"forged kind in a batch", "POST", "/v1/events:batch", agentB, `{"events":[` + ev("llm.request") + `,` + ev("signer.enrolled") + `]}`, 403, "reserved_kind"},
		{"forged writer", "POST", "/v1/events", agentB, `{"session":"victim","kind":"llm.request","actor":{"type":"agent","id":"a"},"writer":{"token":"x","via":"proxy"}}`, 400, "invalid_event"},
		// A tenant's token wrote in another tenant (only a global token
		// names one, for monitor.alert events only).
		{"tenant token writes in another tenant", "POST", "/v1/events?tenant=clinic-a", agentB, ev("llm.request"), 403, "forbidden"},
		{"tenant token writes a batch in another tenant", "POST", "/v1/events:batch?tenant=clinic-a", agentB, `{"events":[` + ev("llm.request") + `]}`, 403, "forbidden"},
		{"global token names an invalid tenant", "POST", "/v1/events?tenant=a%20b", globalW, ev("llm.request"), 400, "bad_query"},
		{"global token writes another kind than monitor.alert in another tenant", "POST", "/v1/events?tenant=clinic-a", globalW, ev("llm.request"), 403, "forbidden"},
		{"global token writes a batch with another kind in another tenant", "POST", "/v1/events:batch?tenant=clinic-a", globalW, `{"events":[` + ev("llm.request") + `]}`, 403, "forbidden"},
		// A global monitor token forged evidence in another tenant: an alert
		// in one of its agents' sessions, under an agent's name, or about
		// a third tenant.
		{"global monitor writes an alert into an agent session of another tenant", "POST", "/v1/events?tenant=clinic-b", globalM, alert("victim", "system", "monitor.m1", "clinic-b"), 403, "forbidden"},
		{"global monitor writes an alert as an agent of another tenant", "POST", "/v1/events?tenant=clinic-b", globalM, alert("monitor.m1", "agent", "triage-bot", "clinic-b"), 403, "forbidden"},
		{"global monitor writes an alert as a system actor that is not a monitor", "POST", "/v1/events?tenant=clinic-b", globalM, alert("monitor.m1", "system", "log-server", "clinic-b"), 403, "forbidden"},
		{"global monitor writes an alert about a third tenant", "POST", "/v1/events:batch?tenant=clinic-b", globalM, `{"events":[` + alert("monitor.m1", "system", "monitor.m1", "clinic-c") + `]}`, 403, "forbidden"},
		// An attribute name the body's field commitment reserves.
		{"attribute _sd", "POST", "/v1/events", agentB, `{"session":"victim","kind":"llm.request","actor":{"type":"agent","id":"a"},"attributes":{"_sd":"x"}}`, 400, "invalid_event"},
		{"attribute _sd_alg", "POST", "/v1/events", agentB, `{"session":"victim","kind":"llm.request","actor":{"type":"agent","id":"a"},"attributes":{"_sd_alg":"x"}}`, 400, "invalid_event"},
		{"bound token claims another actor", "POST", "/v1/events", bound, `{"session":"victim","kind":"llm.request","actor":{"type":"agent","id":"billing-bot"}}`, 403, "actor_not_allowed"},
		// A tenant admin read another tenant's sessions and payloads.
		{"tenant admin reads clinic-b's session", "GET", "/v1/sessions/victim?tenant=clinic-b", adminA, "", 403, "forbidden"},
		{"tenant admin decrypts clinic-b's payload", "GET", fmt.Sprintf("/v1/events/%d/payload", genuine.Index), adminA, "", 404, "not_found"},
		// Duplicate and case-mismatched keys.
		{"duplicate key", "POST", "/v1/events", agentB, `{"session":"s1","session":"victim","kind":"llm.request","actor":{"type":"agent","id":"a"}}`, 400, "invalid_event"},
		{"key in the wrong case", "POST", "/v1/events", agentB, `{"Session":"victim","kind":"llm.request","actor":{"type":"agent","id":"a"}}`, 400, "invalid_event"},
		{"duplicate actor key", "POST", "/v1/events", agentB, `{"session":"victim","kind":"llm.request","actor":{"type":"agent","id":"a","id":"b"}}`, 400, "invalid_event"},
		{"duplicate attribute", "POST", "/v1/events", agentB, `{"session":"victim","kind":"llm.request","actor":{"type":"agent","id":"a"},"attributes":{"x":1,"x":2}}`, 400, "invalid_event"},
		// Corrections of nothing, or of another tenant's entry.
		{"corrects past the log", "POST", "/v1/events", agentB, `{"session":"victim","kind":"llm.correction","actor":{"type":"agent","id":"a"},"corrects":18446744073709551615}`, 400, "invalid_event"},
		{"corrects another tenant", "POST", "/v1/events", adminA, fmt.Sprintf(`{"session":"x","kind":"llm.correction","actor":{"type":"agent","id":"a"},"corrects":%d}`, genuine.Index), 400, "invalid_event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := s.do(t, tc.method, tc.path, tc.token, []byte(tc.body))
			var e api.ErrorBody
			json.Unmarshal(body, &e)
			if code != tc.status || e.Error.Code != tc.code {
				t.Fatalf("%s %s = %d %s, want %d %s", tc.method, tc.path, code, body, tc.status, tc.code)
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	if after := s.size(t); after != before {
		t.Fatalf("the refused attempts appended %d entries", after-before)
	}

	// What is still allowed is attributed: a capture.gap posted by an agent
	// names the token and says it came through the API, unlike one the
	// proxy observed; a correction of an own entry is accepted.
	code, body, _ = s.do(t, "POST", "/v1/events", agentB, []byte(`{"session":"victim","kind":"capture.gap","actor":{"type":"system","id":"capture"}}`))
	if code != 201 {
		t.Fatalf("capture.gap by an agent = %d %s", code, body)
	}
	var gap api.EventResponse
	json.Unmarshal(body, &gap)
	leaf, _ := base64.StdEncoding.DecodeString(gap.Leaf)
	l, err := event.ParseLeaf(leaf)
	_, agentP := s.tokenPrincipal(t, agentB)
	if err != nil || l.Writer == nil || l.Writer.Token != agentP.ID || l.Writer.Via != event.ViaAPI {
		t.Fatalf("leaf %s: writer %+v, want token %s via api", leaf, l.Writer, agentP.ID)
	}
	if code, body, _ := s.do(t, "POST", "/v1/events", agentB, fmt.Appendf(nil, `{"session":"victim","kind":"llm.correction","actor":{"type":"agent","id":"a"},"corrects":%d}`, genuine.Index)); code != 201 {
		t.Fatalf("correction of an own entry = %d %s", code, body)
	}
}

func (s *testServer) tokenPrincipal(t *testing.T, tok string) (string, *auth.Principal) {
	p, err := s.srv.Tokens().Check(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return tok, p
}

// waitCovered waits until a published checkpoint covers index.
func (s *testServer) waitCovered(t *testing.T, index uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cp, _, err := s.srv.Log().Checkpoint(context.Background()); err == nil && cp.Size > index {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint covers %d", index)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSlowReadersAreCutOff: readers that ask for a large entry bundle and
// never read it hold at most MaxReadsPerClient answers, the next are
// refused with 503, and the stuck ones are cut off at the read deadline.
func TestSlowReadersAreCutOff(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.MaxReadsPerClient = 4; c.ReadDeadline = time.Second })
	// A full bundle of 256 large leaves (about 3 MB).
	big := strings.Repeat("x", 3000)
	for b := range 8 {
		var evs []string
		for i := range 32 {
			attrs := fmt.Sprintf(`{"a":%q,"b":%q,"c":%q,"d":%q}`, big, big, big, big)
			evs = append(evs, fmt.Sprintf(`{"session":"big-%d-%d","kind":"llm.request","actor":{"type":"agent","id":"a"},"attributes":%s}`, b, i, attrs))
		}
		if code, body, _ := s.do(t, "POST", "/v1/events:batch", s.admin, []byte(`{"events":[`+strings.Join(evs, ",")+`]}`)); code != 201 {
			t.Fatalf("batch = %d %.200s", code, body)
		}
	}
	s.waitCovered(t, 255)
	addr := strings.TrimPrefix(s.ts.URL, "http://")
	var stuck []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Ask, pipelined, and never read: once the socket buffers hold
		// an answer or two, the server's next write blocks.
		c.(*net.TCPConn).SetReadBuffer(4096)
		for range 4 {
			fmt.Fprintf(c, "GET /tile/entries/000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", s.admin)
		}
		stuck = append(stuck, c)
	}
	time.Sleep(300 * time.Millisecond)
	// The client's fifth read is refused while the four are stuck.
	code, _, hdr := s.do(t, "GET", "/tile/entries/000", s.admin, nil)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("fifth read while four are stuck = %d, want 503 with Retry-After", code)
	}
	// After the read deadline the stuck answers are cut off and reads work.
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _, _ := s.do(t, "GET", "/tile/entries/000", s.admin, nil)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reads still refused (%d) after the read deadline", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A stuck connection got less than the whole bundle.
	stuck[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	n := 0
	r := bufio.NewReader(stuck[0])
	buf := make([]byte, 64<<10)
	for {
		k, err := r.Read(buf)
		n += k
		if err != nil {
			break
		}
	}
	if n >= 3_000_000 {
		t.Fatalf("a reader that did not read got all %d bytes", n)
	}
}

// TestMasterKeyMismatchRefused: the environment's key and the file's, or a
// key the vault was not written with, stop the server at start.
func TestMasterKeyMismatchRefused(t *testing.T) {
	dir := t.TempDir()
	s := newTestServerIn(t, dir, nil)
	s.post(t, "s", "llm.request", map[string]int{"x": 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.srv.Close(ctx)
	other := make([]byte, 32)
	other[0] = 1
	for _, keys := range []KeySources{{MasterKey: other}, {MasterKey: other, MasterKeySource: "file"}, {MasterKey: other, MasterKeySource: "env"}} {
		_, err := Open(context.Background(), Config{DataDir: dir, Keys: keys})
		if !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), MasterKeyEnv) || !strings.Contains(err.Error(), MasterKeyFile) {
			t.Fatalf("Open with another key (%+v) = %v, want ErrKeyMismatch naming %s and %s", keys.MasterKeySource, err, MasterKeyEnv, MasterKeyFile)
		}
	}
	// The file replaced by another key: the vault's key check refuses it.
	os.Remove(filepath.Join(dir, MasterKeyFile))
	if _, err := Open(context.Background(), Config{DataDir: dir, Keys: KeySources{MasterKey: other}}); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("Open with a key the vault was not written with = %v, want ErrKeyMismatch", err)
	}
}

// TestAdminTokenNotRemintedAndNamesChecked: deleting admin.token does not
// mint a new one at the next start; token names and tenants are checked.
func TestAdminTokenNotRemintedAndNamesChecked(t *testing.T) {
	dir := t.TempDir()
	s := newTestServerIn(t, dir, nil)
	if list, _ := s.srv.Tokens().List(context.Background()); len(list) != 1 || !list[0].Global || list[0].Name != "admin" {
		t.Fatalf("first start made tokens %+v, want one global admin", list)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.srv.Close(ctx)
	os.Remove(filepath.Join(dir, AdminToken))
	srv, err := Open(context.Background(), Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	newHTTPTest(t, srv)
	if _, err := os.Stat(filepath.Join(dir, AdminToken)); err == nil {
		t.Fatal("a new admin token was minted at restart")
	}
	if list, _ := srv.Tokens().List(context.Background()); len(list) != 1 {
		t.Fatalf("%d tokens after restart, want the 1 from the first start", len(list))
	}
	for _, spec := range []auth.Spec{
		{Name: "x", Tenant: "bad tenant/../x", Scopes: []string{auth.ScopeRead}},
		{Name: strings.Repeat("n", 5000), Tenant: "t", Scopes: []string{auth.ScopeRead}},
		{Name: "x", Tenant: "t", Scopes: []string{auth.ScopeRead}, Actors: []string{"bad actor"}},
	} {
		if _, _, err := srv.Tokens().Create(context.Background(), spec); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("Create(%.60v) = %v, want ErrInvalid", spec, err)
		}
	}
}

// TestProxyRefusesPathTricks: dot segments and encoded slashes are not
// forwarded.
func TestProxyRefusesPathTricks(t *testing.T) {
	hits := 0
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer up.Close()
	s := newTestServer(t, func(c *Config) { c.Upstreams = map[string]string{"gw": up.URL + "/api"} })
	for _, p := range []string{"/proxy/gw/%2e%2e/%2e%2e/admin", "/proxy/gw/../admin", "/proxy/gw/v1/./x", "/proxy/gw/v1%2fadmin", "/proxy/gw/v1%5cadmin"} {
		req, _ := http.NewRequest("POST", s.ts.URL+p, strings.NewReader("{}"))
		req.URL.RawPath, req.URL.Path = "", ""
		req.URL.Opaque = p
		req.Header.Set("X-Audit-Token", s.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST %s = %d, want 400", p, resp.StatusCode)
		}
	}
	if hits != 0 {
		t.Fatalf("the upstream was called %d times", hits)
	}
}

// TestPublicEntries: with --public-entries, anyone reads entries.
func TestPublicEntries(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.PublicEntries = true })
	r := s.post(t, "s", "llm.request", nil)
	s.waitCovered(t, r.Index)
	for _, p := range []string{"/tile/entries/000.p/1", "/v1/entries/0"} {
		code, body, h := s.do(t, "GET", p, "", nil)
		if code != 200 {
			t.Fatalf("anonymous GET %s on a public log = %d %s", p, code, body)
		}
		if strings.HasPrefix(p, "/tile/") && !strings.HasPrefix(h.Get("Cache-Control"), "public") {
			t.Errorf("public bundle Cache-Control %q", h.Get("Cache-Control"))
		}
	}
}

// TestGlobalMonitorAlertRule: a global monitor token writes a monitor's
// alert (its session and actor monitor.*, about the tenant) in another
// tenant, and it lands there with the token as its writer.
func TestGlobalMonitorAlertRule(t *testing.T) {
	s := newTestServer(t, nil)
	globalM, id := s.token(t, auth.Spec{Name: "global-monitor", Tenant: "clinic-a", Global: true, Scopes: []string{auth.ScopeMonitor}})
	code, body, _ := s.do(t, "POST", "/v1/events?tenant=clinic-b", globalM,
		[]byte(`{"session":"monitor.m1","kind":"monitor.alert","actor":{"type":"system","id":"monitor.m1"},"attributes":{"monitor.tenant":"clinic-b","monitor.session":"victim"}}`))
	if code != 201 {
		t.Fatalf("= %d %s", code, body)
	}
	var r api.EventResponse
	json.Unmarshal(body, &r)
	l, err := event.ParseLeaf(mustB64(t, r.Leaf))
	if err != nil || l.Tenant != "clinic-b" || l.Writer.Token != id.ID {
		t.Fatalf("leaf %+v (%v), want tenant clinic-b written by %s", l, err, id.ID)
	}
}

package capture_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestMCPProxyBodyBudget (review of #24, finding 4): the MCP proxy's request
// bodies come out of the same memory budget as the LLM proxy's: while one
// MCP call holds most of it, a call whose body does not fit is answered 503
// with Retry-After and a JSON-RPC error, and nothing is sent upstream; once
// the first is answered, it fits again.
func TestMCPProxyBodyBudget(t *testing.T) {
	arrived := make(chan int64, 4)
	release := make(chan struct{})
	var calls atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		arrived <- n
		if calls.Add(1) == 1 {
			<-release
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}`)
	}))
	t.Cleanup(up.Close)
	e := newEnv(t, "fail-open", func(c *server.Config, _ *httptest.Server) {
		c.ProxyBodyBudget = capture.DefaultMaxRequestBytes
		c.MCPUpstreams = map[string]string{"slow": up.URL}
	})
	post := func() (*http.Response, error) {
		body := append(append([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"`),
			bytes.Repeat([]byte("x"), 20<<20)...), `"}}}`...)
		req, _ := http.NewRequest("POST", e.ts.URL+"/mcp/slow/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(capture.HeaderToken, e.writeToken)
		return (&http.Client{Timeout: 30 * time.Second}).Do(req)
	}
	first := make(chan *http.Response, 1)
	go func() {
		resp, err := post()
		if err != nil {
			t.Error(err)
		}
		first <- resp
	}()
	<-arrived
	resp, err := post()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var rerr struct {
		ID    json.RawMessage
		Error struct{ Code int }
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || json.Unmarshal(b, &rerr) != nil ||
		rerr.Error.Code != -32000 || string(rerr.ID) != "null" {
		t.Errorf("over the budget: %d Retry-After %q %.200s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	close(release)
	if r := <-first; r == nil || r.StatusCode != 200 {
		t.Fatalf("the first call: %v", r)
	} else {
		r.Body.Close()
	}
	if resp, err := post(); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the first call: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d bodies went upstream, want 2 (the first call and the last)", n)
	}
}

// TestMCPProxyMethods (review of #24, finding 3): only POST carries a
// message to the MCP server; a PUT or PATCH, or a GET or DELETE with a
// body, is refused with 405 and nothing goes upstream unread.
func TestMCPProxyMethods(t *testing.T) {
	var calls atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(up.Close)
	e := newEnv(t, "fail-closed", func(c *server.Config, _ *httptest.Server) {
		c.MCPUpstreams = map[string]string{"tools": up.URL}
	})
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"shell.exec","arguments":{}}}`
	for _, tc := range []struct{ method, body string }{
		{"PUT", call}, {"PATCH", call}, {"PUT", ""}, {"GET", call}, {"DELETE", call},
	} {
		req, _ := http.NewRequest(tc.method, e.ts.URL+"/mcp/tools/", strings.NewReader(tc.body))
		req.Header.Set(capture.HeaderToken, e.writeToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") == "" {
			t.Errorf("%s with %d body bytes: %d %s, want 405", tc.method, len(tc.body), resp.StatusCode, b)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d requests went upstream", n)
	}
	// GET (the SSE stream) and DELETE (the session's end) without a body
	// still go through.
	for _, m := range []string{"GET", "DELETE"} {
		req, _ := http.NewRequest(m, e.ts.URL+"/mcp/tools/", nil)
		req.Header.Set(capture.HeaderToken, e.writeToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("%s: %d, want the upstream's 202", m, resp.StatusCode)
		}
	}
}

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
	"github.com/llmaudittrail/llmaudittrail/event"
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
		// Generous: 20 MiB through the race detector on a loaded
		// machine; the first call also waits at the upstream until the
		// second has been answered.
		return (&http.Client{Timeout: 3 * time.Minute}).Do(req)
	}
	first := make(chan *http.Response, 1)
	go func() {
		resp, err := post()
		if err != nil {
			t.Error(err)
		}
		first <- resp
	}()
	select {
	case <-arrived:
	case r := <-first: // failed before it reached the upstream
		t.Fatalf("the first call did not reach the upstream: %v", r)
	case <-time.After(3 * time.Minute):
		t.Fatal("the first call did not reach the upstream in 3 minutes")
	}
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

// mcpDo sends method to the MCP proxy at path as the env's agent in
// session and returns the status and the whole answer.
func mcpDo(t *testing.T, e *env, method, path, session, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
	req.Header.Set(capture.HeaderToken, e.writeToken)
	req.Header.Set(capture.HeaderSession, session)
	req.Header.Set("Accept", "application/json, text/event-stream")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMCPProxySSE (review of #24, finding 3): an event stream's endpoint
// event that names another host (or that the capture cannot read) is not
// relayed: the stream ends with an error event and the refusal is recorded,
// however the event's lines are ordered or ended; one of ours is rewritten
// to the proxy. Lines ended by CR alone, LF or CRLF are all events, and
// the messages in them are recorded.
func TestMCPProxySSE(t *testing.T) {
	streams := map[string]string{
		"/evil":        "event: endpoint\ndata: http://evil.example/messages?sessionId=1\n\n",
		"/evil-after":  "data: https://evil.example/messages?sessionId=2\nevent: endpoint\n\n",
		"/evil-cr":     "event: endpoint\rdata: //evil.example/messages?sessionId=3\r\r",
		"/evil-scheme": "event: endpoint\r\ndata: https://UPSTREAM/messages?sessionId=4\r\n\r\n",
		"/ours":        "event: endpoint\r\ndata: /up/messages?sessionId=abc\r\n\r\n",
	}
	var upURL string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		if r.Method == http.MethodPost { // a tools/call: its result, lines ended by CR alone
			io.WriteString(w, "event: message\rdata: {\"jsonrpc\":\"2.0\",\"id\":7,\r")
			io.WriteString(w, "data: \"result\":{\"content\":[],\"isError\":false}}\r\r")
			return
		}
		io.WriteString(w, strings.ReplaceAll(streams[strings.TrimPrefix(r.URL.Path, "/up")], "UPSTREAM", strings.TrimPrefix(upURL, "http://")))
	}))
	t.Cleanup(up.Close)
	upURL = up.URL
	e := newEnv(t, "fail-closed", func(c *server.Config, _ *httptest.Server) {
		c.MCPUpstreams = map[string]string{"legacy": up.URL + "/up"}
	})
	for _, path := range []string{"/evil", "/evil-after", "/evil-cr", "/evil-scheme"} {
		session := "mcp-sse" + strings.ReplaceAll(path, "/", "-")
		code, b := mcpDo(t, e, "GET", "/mcp/legacy"+path, session, "")
		if code != 200 || strings.Contains(b, "event: endpoint") || !strings.HasPrefix(b, "event: error\ndata: ") || !strings.Contains(b, `"code":-32003`) {
			t.Errorf("GET %s: %d %q, want the stream ended with an error and no endpoint", path, code, b)
			continue
		}
		evs := e.events(session, 1)
		if len(evs) != 1 || evs[0].Leaf.Kind != event.KindMCPRefused || evs[0].str("error.type") != "foreign_endpoint" {
			t.Errorf("GET %s: events %v", path, evs)
		}
	}
	if code, b := mcpDo(t, e, "GET", "/mcp/legacy/ours", "mcp-sse-ours", ""); code != 200 ||
		b != "event: endpoint\ndata: /mcp/legacy/messages?sessionId=abc\n\n" {
		t.Errorf("GET /ours: %d %q, want the endpoint rewritten to the proxy", code, b)
	}
	code, b := mcpDo(t, e, "POST", "/mcp/legacy/", "mcp-sse-cr", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{}}}`)
	if code != 200 || !strings.Contains(b, `"isError":false`) {
		t.Fatalf("tools/call: %d %q", code, b)
	}
	evs := e.events("mcp-sse-cr", 2)
	if len(evs) != 2 || evs[0].Leaf.Kind != event.KindToolCall || evs[1].Leaf.Kind != event.KindToolResult {
		t.Fatalf("tools/call with CR line ends: %d events, want tool.call and tool.result", len(evs))
	}
}

// TestMCPProxyMalformedBatchAnswer (review of #24, finding 3): when the
// MCP server's answer to the forwarded part of a batch is not an array the
// capture can read, the capture's own answers still reach the client, with
// an error to id null in place of the server's answer, which is recorded
// as the tools/call's malformed response.
func TestMCPProxyMalformedBatchAnswer(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[{"jsonrpc":"2.0","id":1,"result":{}},`)
	}))
	t.Cleanup(up.Close)
	e := newEnv(t, "fail-closed", func(c *server.Config, _ *httptest.Server) {
		c.MCPUpstreams = map[string]string{"tools": up.URL}
	})
	code, b := mcpDo(t, e, "POST", "/mcp/tools/", "mcp-batch-bad", `[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}},`+
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","Name":"x","arguments":{}}}]`)
	var answers []struct {
		ID    json.RawMessage
		Error *struct{ Code int }
	}
	if err := json.Unmarshal([]byte(b), &answers); code != 200 || err != nil || len(answers) != 2 ||
		string(answers[0].ID) != "2" || answers[0].Error == nil || answers[0].Error.Code != -32600 ||
		string(answers[1].ID) != "null" || answers[1].Error == nil || answers[1].Error.Code != capture.RPCBadUpstream {
		t.Fatalf("answer %d %q, want the capture's error to 2 and one to null", code, b)
	}
	evs := e.events("mcp-batch-bad", 3)
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Leaf.Kind)
	}
	if got := strings.Join(kinds, " "); got != "tool.call mcp.refused tool.result" || evs[2].str("error.type") != "malformed_response" ||
		string(evs[2].Payload) != `[{"jsonrpc":"2.0","id":1,"result":{}},` {
		t.Fatalf("events %s, last %v %q", got, evs[len(evs)-1].Leaf.Attributes, evs[len(evs)-1].Payload)
	}
}

package capture_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestErrorStatusOrdersRetry: an SDK may retry on an error's status alone,
// leaving the body unread, while the proxy still copies that body. The
// error response's record must still come before the retry's request in
// the session (an upstream that sends a 500's header at once and its body
// 300 ms later makes the race certain).
func TestErrorStatusOrdersRetry(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			w.(http.Flusher).Flush()
			<-release
			io.WriteString(w, `{"error":{"message":"try again","type":"server_error","param":null,"code":null}}`)
			return
		}
		io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	defer up.Close()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	e := newEnv(t, "fail-closed", func(cfg *server.Config, _ *httptest.Server) { cfg.Upstreams["local"] = up.URL + "/" })

	call := func() *http.Response {
		req, _ := http.NewRequest("POST", e.ts.URL+"/proxy/local/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer sk-test")
		req.Header.Set(capture.HeaderToken, e.writeToken)
		req.Header.Set(capture.HeaderSession, "retry-on-status")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := call()
	if first.StatusCode != http.StatusInternalServerError {
		t.Fatalf("first attempt: %d", first.StatusCode)
	}
	// The status is enough: retry at once, the first body still unread
	// (an SDK's close may take a while to reach the proxy).
	defer first.Body.Close()
	time.AfterFunc(300*time.Millisecond, free)
	second := call()
	io.Copy(io.Discard, second.Body)
	second.Body.Close()
	if second.StatusCode != http.StatusOK {
		t.Fatalf("retry: %d", second.StatusCode)
	}
	wantKinds(t, e.events("retry-on-status", 4), "llm.request", "llm.response", "llm.request", "llm.response")
}

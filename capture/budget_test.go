package capture_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestProxyBodyBudget: while one call holds most of the body budget, a
// call whose body does not fit is answered 503 with Retry-After in the
// provider's error format, and nothing is sent upstream; once the first
// call is done, it fits again.
func TestProxyBodyBudget(t *testing.T) {
	arrived := make(chan int64, 4)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		arrived <- n
		<-release
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[]}`)
	}))
	t.Cleanup(up.Close)
	e := newEnv(t, "fail-closed", func(c *server.Config, _ *httptest.Server) {
		c.ProxyBodyBudget = capture.DefaultMaxRequestBytes
		c.Upstreams["slow"] = up.URL
	})
	body := func() []byte {
		return append(append([]byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"`), bytes.Repeat([]byte("x"), 20<<20)...), `"}]}`...)
	}
	post := func() (*http.Response, error) {
		req, _ := http.NewRequest("POST", e.ts.URL+"/proxy/slow/v1/chat/completions", bytes.NewReader(body()))
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
	<-arrived // the first call's body is upstream; it holds its share until the upstream answers
	resp, err := post()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var perr struct {
		Error struct{ Code string } `json:"error"`
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || json.Unmarshal(b, &perr) != nil || perr.Error.Code != "proxy_overloaded" {
		t.Fatalf("over the budget: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	close(release)
	r := <-first
	if r != nil {
		r.Body.Close()
	}
	if r == nil || r.StatusCode != 200 {
		t.Fatalf("the first call: %v", r)
	}
	if resp, err := post(); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the first call: %v %v", resp, err)
	}
	if len(arrived) != 1 {
		t.Fatalf("%d more bodies went upstream, want 1 (the last call)", len(arrived))
	}
}

// TestBodyBudgetDefault: the default budget is filled in by NewBodyBudget
// alone (the server passes its configuration's 0 through).
func TestBodyBudgetDefault(t *testing.T) {
	if got := capture.NewBodyBudget(0).Max(); got != capture.DefaultBodyBudget {
		t.Errorf("NewBodyBudget(0).Max() = %d, want DefaultBodyBudget (%d)", got, capture.DefaultBodyBudget)
	}
	if got := capture.NewBodyBudget(1 << 20).Max(); got != 1<<20 {
		t.Errorf("NewBodyBudget(1 MiB).Max() = %d", got)
	}
}

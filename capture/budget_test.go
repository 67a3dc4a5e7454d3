package capture_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestProxyBodyBudget: while one call holds most of the body budget, a
// call whose body does not fit is answered 503 with Retry-After in the
// provider's error format, and nothing is sent upstream; once the first
// call is done, it fits again.
func TestProxyBodyBudget(t *testing.T) {
	arrived := make(chan int64, 4)
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		arrived <- n
		<-release
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[]}`)
	}))
	t.Cleanup(up.Close)
	t.Cleanup(releaseAll) // runs first: a failed test leaves no handler waiting
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
		// 20 MiB checked under the race detector on a loaded machine takes
		// a while.
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
	select { // the first call's body is upstream; it holds its share until the upstream answers
	case <-arrived:
	case r := <-first:
		t.Fatalf("the first call ended before its body reached the upstream: %v", r)
	}
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
	releaseAll()
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

// slowUpload starts a chat completion declaring size bytes of body with
// token, sends sent bytes of it and stalls until the test ends.
func slowUpload(t *testing.T, base, token string, size, sent int) {
	t.Helper()
	u, _ := url.Parse(base)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	head := fmt.Sprintf("POST /proxy/openai/v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"Authorization: Bearer %s\r\n%s: %s\r\nContent-Length: %d\r\n\r\n", u.Host, openaiKey, capture.HeaderToken, token, size)
	go func() {
		io.WriteString(c, head)
		c.Write(append([]byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"`), bytes.Repeat([]byte("x"), sent)...))
	}()
}

// chat posts a chat completion of about n bytes with token; it returns
// the status and the error code of a proxy error.
func chat(t *testing.T, base, token, session string, n int) (int, string) {
	t.Helper()
	body := append(append([]byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"`), bytes.Repeat([]byte("y"), n)...), `"}]}`...)
	req, _ := http.NewRequest("POST", base+"/proxy/openai/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+openaiKey)
	req.Header.Set(capture.HeaderToken, token)
	req.Header.Set(capture.HeaderSession, session)
	resp, err := (&http.Client{Timeout: 3 * time.Minute}).Do(req) // 20 MiB under the race detector on a loaded machine
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var perr struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(b, &perr)
	return resp.StatusCode, perr.Error.Code
}

// TestProxyBodyBudgetSlowUploads: two uploads that declare the largest
// body (32 MiB each, the whole default budget together), send a few bytes
// and stall hold only what they sent and one step, so another agent's
// small call still goes through.
func TestProxyBodyBudgetSlowUploads(t *testing.T) {
	e := newEnv(t, "fail-closed")
	for range 2 {
		slowUpload(t, e.ts.URL, e.writeToken, capture.DefaultMaxRequestBytes, 100)
	}
	time.Sleep(500 * time.Millisecond) // both are in their body reads
	other := e.token("agent-2", auth.ScopeWrite)
	if status, code := chat(t, e.ts.URL, other, "slow-other", 100); status != 200 {
		t.Fatalf("a small call beside two stalled uploads: %d %s, want 200", status, code)
	}
	if status, code := chat(t, e.ts.URL, e.writeToken, "slow-same", 100); status != 200 {
		t.Fatalf("a small call of the stalled uploads' agent: %d %s, want 200", status, code)
	}
}

// TestProxyBodyBudgetShare: one agent holds at most its share of the
// budget (half, or the largest body if more): three stalled uploads of
// 20 MiB sent leave room for another agent's 20 MiB call.
func TestProxyBodyBudgetShare(t *testing.T) {
	e := newEnv(t, "fail-closed")
	for range 3 {
		slowUpload(t, e.ts.URL, e.writeToken, capture.DefaultMaxRequestBytes, 20<<20)
	}
	time.Sleep(time.Second) // their bytes are read, or refused
	other := e.token("agent-2", auth.ScopeWrite)
	if status, code := chat(t, e.ts.URL, other, "share-other", 20<<20); status != 200 {
		t.Fatalf("another agent's 20 MiB call beside one agent's stalled uploads: %d %s, want 200", status, code)
	}
}

// stalled records only once released.
type stalled struct {
	capture.Recorder
	release chan struct{}
	once    sync.Once
}

func (s *stalled) Record(ctx context.Context, evs []*event.Request) ([]event.Appended, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Recorder.Record(ctx, evs)
}

func (s *stalled) open() { s.once.Do(func() { close(s.release) }) }

// TestFailOpenKeepsBodyShare: in fail-open a request goes upstream before
// its record is done; the bytes queued for the record stay counted in the
// budget until the record took them, not only until the round trip.
func TestFailOpenKeepsBodyShare(t *testing.T) {
	e := newEnv(t, "fail-open")
	rec := &stalled{Recorder: e.srv.Recorder(server.DefaultTenant, "test-token"), release: make(chan struct{})}
	t.Cleanup(rec.open)
	a := func(ctx context.Context, token string) (*capture.Agent, error) {
		return &capture.Agent{Recorder: rec, Tenant: server.DefaultTenant, ID: "t1", Actor: event.Actor{Type: "agent", ID: "a"}}, nil
	}
	p, err := capture.NewProxy(map[string]string{"openai": e.up.URL}, a, capture.WithLogger(quiet), capture.WithMode(capture.FailOpen),
		capture.WithBodyBudget(capture.NewBodyBudget(capture.DefaultMaxRequestBytes)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(p)
	t.Cleanup(func() {
		ts.Close()
		rec.open()
		p.Close(context.Background())
	})
	if status, code := chat(t, ts.URL, "tok", "fo-1", 20<<20); status != 200 {
		t.Fatalf("first call: %d %s", status, code)
	}
	// Its record is queued, 20 MiB of it: no room for another 20 MiB.
	if status, code := chat(t, ts.URL, "tok", "fo-2", 20<<20); status != http.StatusServiceUnavailable || code != "proxy_overloaded" {
		t.Fatalf("a call while 20 MiB wait to be recorded: %d %s, want 503 proxy_overloaded", status, code)
	}
	rec.open()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, code := chat(t, ts.URL, "tok", "fo-3", 20<<20)
		if status == 200 {
			break
		}
		if time.Now().After(deadline) || !strings.Contains(code, "overloaded") {
			t.Fatalf("once recorded: %d %s", status, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

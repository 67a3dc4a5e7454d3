package capture_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	oaoption "github.com/openai/openai-go/v3/option"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// proxyOver serves a capture proxy whose recorder is f (wrapping the env's
// log) in front of the env's fake upstream.
func proxyOver(t testing.TB, e *env, f *flaky, opts ...capture.ProxyOption) string {
	t.Helper()
	auth := func(ctx context.Context, token string) (*capture.Agent, error) {
		if token != "agent-token" {
			return nil, capture.ErrUnauthenticated
		}
		return &capture.Agent{Recorder: f, Tenant: server.DefaultTenant, ID: "t1", Actor: event.Actor{Type: "agent", ID: "flaky-agent"}}, nil
	}
	opts = append([]capture.ProxyOption{capture.WithLogger(quiet)}, opts...)
	p, err := capture.NewProxy(map[string]string{"openai": e.up.URL, "anthropic": e.up.URL}, auth, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(p)
	t.Cleanup(func() {
		ts.Close()
		p.Close(context.Background())
	})
	return ts.URL
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func proxyOA(base, session string, retries int) openai.Client {
	return openai.NewClient(oaoption.WithAPIKey(openaiKey), oaoption.WithBaseURL(base+"/proxy/openai/v1/"), oaoption.WithMaxRetries(retries),
		oaoption.WithHeader(capture.HeaderToken, "agent-token"), oaoption.WithHeader(capture.HeaderSession, session))
}

func proxyAN(base, session string, retries int) anthropic.Client {
	return anthropic.NewClient(anoption.WithAPIKey(anthropicKey), anoption.WithBaseURL(base+"/proxy/anthropic"), anoption.WithMaxRetries(retries),
		anoption.WithHeader(capture.HeaderToken, "agent-token"), anoption.WithHeader(capture.HeaderSession, session))
}

func TestFailClosedProxy(t *testing.T) {
	e := newEnv(t, "fail-closed")
	f := newFlaky(e.srv.Recorder(server.DefaultTenant, "test-token"))
	base := proxyOver(t, e, f)
	oc, ac := proxyOA(base, "fc-proxy", 2), proxyAN(base, "fc-proxy", 0)

	f.set(true)
	_, err := oc.Chat.Completions.New(context.Background(), chatParams("gpt-test", "fc/proxy/openai"))
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != 503 || oe.Code != "audit_log_unavailable" || oe.Type != "server_error" ||
		!strings.Contains(oe.Message, "not sent") {
		t.Fatalf("OpenAI SDK got %v, want a 503 audit_log_unavailable error in OpenAI's format", err)
	}
	if oe.Response.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", oe.Response.Header.Get("Retry-After"))
	}
	s := ac.Messages.NewStreaming(context.Background(), anParams("claude-test", "fc/proxy/anthropic"))
	for s.Next() {
	}
	var ae *anthropic.Error
	if !errors.As(s.Err(), &ae) || ae.StatusCode != 503 || !strings.Contains(ae.RawJSON(), `"type":"api_error"`) {
		t.Fatalf("Anthropic SDK got %v, want a 503 api_error in Anthropic's format", s.Err())
	}
	// Three OpenAI attempts (the SDK retries 503) and one Anthropic call
	// were refused; none reached the upstream.
	if n := e.up.count("fc/proxy"); n != 0 {
		t.Fatalf("%d refused requests reached the upstream", n)
	}
	if n := f.refused(); n != 4 {
		t.Errorf("%d requests refused by the recorder, want 4", n)
	}

	f.set(false)
	if _, err := oc.Chat.Completions.New(context.Background(), chatParams("gpt-test", "fc/proxy/openai-2")); err != nil {
		t.Fatal(err)
	}
	wantKinds(t, e.events("fc-proxy", 2), "llm.request", "llm.response")
}

func TestFailClosedHook(t *testing.T) {
	e := newEnv(t, "fail-closed")
	f := newFlaky(capture.NewHTTPRecorder(mustClient(e.ts.URL, e.writeToken)))
	hook, err := capture.NewHook(f, capture.WithSession("fc-hook"), capture.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer hook.Close(context.Background())
	oc := openai.NewClient(oaoption.WithAPIKey(openaiKey), oaoption.WithBaseURL(e.up.URL+"/v1/"), oaoption.WithMaxRetries(1), oaoption.WithMiddleware(hook.Middleware))

	f.set(true)
	_, err = oc.Chat.Completions.New(context.Background(), chatParams("gpt-test", "fc/hook"))
	if !errors.Is(err, capture.ErrNotRecorded) || !errors.Is(err, errUnavailable) {
		t.Fatalf("got %v, want ErrNotRecorded wrapping the recorder's error", err)
	}
	// Any http.Client through the RoundTripper.
	hc := &http.Client{Transport: hook.RoundTripper(nil)}
	req, _ := http.NewRequest("POST", e.up.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-test","messages":[{"role":"user","content":"fc/hook/rt"}]}`))
	req.Header.Set("Authorization", "Bearer "+openaiKey)
	if _, err := hc.Do(req); !errors.Is(err, capture.ErrNotRecorded) {
		t.Fatalf("RoundTripper: %v, want ErrNotRecorded", err)
	}
	if n := e.up.count("fc/hook"); n != 0 {
		t.Fatalf("%d refused requests reached the upstream", n)
	}

	f.set(false)
	req, _ = http.NewRequest("POST", e.up.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-test","messages":[{"role":"user","content":"fc/hook/rt2"}]}`))
	req.Header.Set("Authorization", "Bearer "+openaiKey)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var cc openai.ChatCompletion
	json.NewDecoder(resp.Body).Decode(&cc)
	resp.Body.Close()
	if cc.ID != "chatcmpl-test1" {
		t.Fatalf("response %+v", cc)
	}
	hook.Flush(context.Background())
	evs := e.events("fc-hook", 2)
	wantKinds(t, evs, "llm.request", "llm.response")
	wantAttrs(t, evs[0], map[string]any{"capture.front": "middleware"})
	wantAttrs(t, evs[1], map[string]any{"capture.outcome": "complete", "gen_ai.response.id": "chatcmpl-test1"})
}

// checkGap checks a capture.gap event describing n missed calls of one
// request and one response each.
func checkGap(t testing.TB, ev logged, calls int, front string) {
	t.Helper()
	wantAttrs(t, ev, map[string]any{
		"capture.gap.count": 2 * calls, "capture.gap.count.llm.request": calls, "capture.gap.count.llm.response": calls,
		"capture.gap.kinds": []string{"llm.request", "llm.response"}, "capture.mode": "fail-open", "capture.front": front,
		"capture.gap.error": "log unavailable (test)",
	})
	if ev.Leaf.Actor != (event.Actor{Type: "system", ID: "capture"}) {
		t.Errorf("gap actor %+v", ev.Leaf.Actor)
	}
	if n := len(ev.strs("capture.gap.call_ids")); n != calls {
		t.Errorf("%d call ids, want %d", n, calls)
	}
	first, err1 := time.Parse(time.RFC3339Nano, ev.str("capture.gap.first_time"))
	last, err2 := time.Parse(time.RFC3339Nano, ev.str("capture.gap.last_time"))
	if err1 != nil || err2 != nil || last.Before(first) || time.Since(first) > time.Minute {
		t.Errorf("gap time range %s .. %s", ev.str("capture.gap.first_time"), ev.str("capture.gap.last_time"))
	}
	var p struct {
		Missed []struct {
			Kind   string `json:"kind"`
			CallID string `json:"call_id"`
		} `json:"missed"`
	}
	if err := json.Unmarshal(ev.Payload, &p); err != nil || len(p.Missed) != 2*calls {
		t.Errorf("gap payload %s: %v", ev.Payload, err)
	}
	for _, m := range p.Missed {
		if !slices.Contains(ev.strs("capture.gap.call_ids"), m.CallID) || (m.Kind != "llm.request" && m.Kind != "llm.response") {
			t.Errorf("gap payload lists %+v", m)
		}
	}
}

func TestFailOpenProxy(t *testing.T) {
	e := newEnv(t, "fail-open")
	f := newFlaky(e.srv.Recorder(server.DefaultTenant, "test-token"))
	base := proxyOver(t, e, f, capture.WithMode(capture.FailOpen), capture.WithGapRetryInterval(time.Hour))
	oc := proxyOA(base, "fo-proxy", 0)

	f.set(true)
	if _, err := oc.Chat.Completions.New(context.Background(), chatParams("gpt-test", "fo/proxy/1")); err != nil {
		t.Fatal(err)
	}
	s := oc.Chat.Completions.NewStreaming(context.Background(), streamParams("gpt-test", "fo/proxy/2"))
	for s.Next() {
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	if e.up.count("fo/proxy/1") != 1 || e.up.count("fo/proxy/2") != 1 {
		t.Fatal("fail-open calls did not reach the upstream")
	}
	waitFor(t, "both responses refused", func() bool {
		return f.refusedKind("llm.request") == 2 && f.refusedKind("llm.response") == 2
	})
	if n := len(e.events("fo-proxy", 0)); n != 0 {
		t.Fatalf("%d events recorded while the log was down", n)
	}

	f.set(false)
	if _, err := oc.Chat.Completions.New(context.Background(), chatParams("gpt-test", "fo/proxy/3")); err != nil {
		t.Fatal(err)
	}
	evs := e.events("fo-proxy", 3)
	wantKinds(t, evs, "capture.gap", "llm.request", "llm.response")
	checkGap(t, evs[0], 2, "proxy")
	if evs[1].str("capture.call.id") != evs[2].str("capture.call.id") {
		t.Error("the recovered call's events do not share its call id")
	}
}

func TestFailOpenHookGapWithoutTraffic(t *testing.T) {
	e := newEnv(t, "fail-open")
	f := newFlaky(capture.NewHTTPRecorder(mustClient(e.ts.URL, e.writeToken)))
	hook, err := capture.NewHook(f, capture.WithMode(capture.FailOpen), capture.WithSession("fo-hook"), capture.WithLogger(quiet),
		capture.WithGapRetryInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ac := anthropic.NewClient(anoption.WithAPIKey(anthropicKey), anoption.WithBaseURL(e.up.URL), anoption.WithMiddleware(hook.Middleware))

	f.set(true)
	if _, err := ac.Messages.New(context.Background(), anParams("claude-test", "fo/hook")); err != nil {
		t.Fatal(err)
	}
	hook.Flush(context.Background())
	if f.refusedKind("llm.request") != 1 || f.refusedKind("llm.response") != 1 {
		t.Fatalf("refused %d requests, %d responses", f.refusedKind("llm.request"), f.refusedKind("llm.response"))
	}
	f.set(false)
	// No further call: the Hook's retry loop records the gap by itself.
	evs := e.events("fo-hook", 1)
	wantKinds(t, evs, "capture.gap")
	checkGap(t, evs[0], 1, "middleware")
	if err := hook.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestProxyLimitsAndTimeouts(t *testing.T) {
	// The HTTP server in front of the proxy has short read and write
	// timeouts: a stream longer than both must still pass.
	e := newEnv(t, "fail-closed", func(_ *server.Config, ts *httptest.Server) {
		ts.Config.ReadTimeout = 300 * time.Millisecond
		ts.Config.WriteTimeout = 300 * time.Millisecond
	})
	c := e.clients(t, "proxy", "long-stream")
	start := time.Now()
	got := oaStream(t, c, "gpt-long", "long/proxy")
	if strings.Contains(got, "err=true") || time.Since(start) < time.Second {
		t.Fatalf("long stream: %s after %v", got, time.Since(start))
	}
	evs := e.events("long-stream", 2)
	wantAttrs(t, evs[1], map[string]any{"capture.outcome": "complete", "capture.stream.events": 30})

	f := newFlaky(e.srv.Recorder(server.DefaultTenant, "test-token"))
	base := proxyOver(t, e, f, capture.WithMaxRequestBytes(1024))
	big := strings.Repeat("x", 2000)
	oc, ac := proxyOA(base, "big", 0), proxyAN(base, "big", 0)
	_, err := oc.Chat.Completions.New(context.Background(), chatParams("gpt-test", "big/"+big))
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != 413 || oe.Code != "request_too_large" {
		t.Fatalf("OpenAI: %v, want 413 request_too_large", err)
	}
	_, err = ac.Messages.New(context.Background(), anParams("claude-test", "big/"+big))
	var ae *anthropic.Error
	if !errors.As(err, &ae) || ae.StatusCode != 413 || !strings.Contains(ae.RawJSON(), `"type":"request_too_large"`) {
		t.Fatalf("Anthropic: %v, want 413 request_too_large", err)
	}
	if e.up.count("big/") != 0 {
		t.Fatal("an oversized request reached the upstream")
	}
}

// slow delays every record.
type slow struct {
	capture.Recorder
	d time.Duration
}

func (s slow) Record(ctx context.Context, evs []*event.Request) ([]event.Appended, error) {
	time.Sleep(s.d)
	return s.Recorder.Record(ctx, evs)
}

// The SDK's own timeout still rules while a FailClosed request is being
// recorded; a request recorded after the agent gave up is closed by an
// aborted response, and nothing is sent upstream.
func TestFailClosedKeepsSDKTimeout(t *testing.T) {
	e := newEnv(t, "fail-closed")
	hook, err := capture.NewHook(slow{capture.NewHTTPRecorder(mustClient(e.ts.URL, e.writeToken)), 700 * time.Millisecond},
		capture.WithSession("fc-timeout"), capture.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer hook.Close(context.Background())
	oc := openai.NewClient(oaoption.WithAPIKey(openaiKey), oaoption.WithBaseURL(e.up.URL+"/v1/"), oaoption.WithMaxRetries(0),
		oaoption.WithRequestTimeout(150*time.Millisecond), oaoption.WithMiddleware(hook.Middleware))
	start := time.Now()
	_, err = oc.Chat.Completions.New(context.Background(), chatParams("gpt-test", "fc/timeout"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 600*time.Millisecond {
		t.Fatalf("after %v: %v, want the SDK's deadline", time.Since(start), err)
	}
	evs := e.events("fc-timeout", 2)
	wantKinds(t, evs, "llm.request", "llm.response")
	wantAttrs(t, evs[1], map[string]any{"capture.outcome": "aborted", "error.type": "timeout", "http.response.status_code": nil})
	if e.up.count("fc/timeout") != 0 {
		t.Fatal("the request reached the upstream")
	}
}

// chunkedCall sends one chat call through a hook to an upstream that
// answers body without a Content-Length and holds the closing chunk back
// until the agent, which reads the answer with read, has closed the body.
// It returns the call's llm.response event.
func chunkedCall(t *testing.T, session, body string, read func(io.Reader)) logged {
	e := newEnv(t, "fail-closed")
	closed := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
		http.NewResponseController(w).Flush() // no Content-Length: chunked
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
		}
	}))
	defer up.Close()
	hook, err := capture.NewHook(capture.NewHTTPRecorder(mustClient(e.ts.URL, e.writeToken)), capture.WithSession(session), capture.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer hook.Close(context.Background())
	hc := &http.Client{Transport: hook.RoundTripper(nil)}
	req, _ := http.NewRequest("POST", up.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-test","messages":[{"role":"user","content":"chunked"}]}`))
	req.Header.Set("Authorization", "Bearer "+openaiKey)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	read(resp.Body)
	resp.Body.Close()
	close(closed)
	hook.Flush(context.Background())
	evs := e.events(session, 2)
	wantKinds(t, evs, "llm.request", "llm.response")
	return evs[1]
}

// A chunked JSON response is complete once its object has reached the
// agent, even if the agent closes the body before the closing chunk arrives
// (a JSON decoder stops at the end of the object).
func TestChunkedJSONClosedBeforeEOFIsComplete(t *testing.T) {
	ev := chunkedCall(t, "chunked",
		`{"id":"chatcmpl-chunked","object":"chat.completion","model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`+"\n",
		func(r io.Reader) {
			var cc struct{ ID string }
			if err := json.NewDecoder(r).Decode(&cc); err != nil || cc.ID != "chatcmpl-chunked" {
				t.Errorf("decoded %+v, %v", cc, err)
			}
		})
	wantAttrs(t, ev, map[string]any{"capture.outcome": "complete", "gen_ai.response.id": "chatcmpl-chunked"})
}

// A chunked JSON body cut off inside the object is still an abort.
func TestChunkedJSONCutOffIsAborted(t *testing.T) {
	ev := chunkedCall(t, "cut", `{"id":"chatcmpl-cut","object":"chat.completion","choices":[`,
		func(r io.Reader) { io.ReadFull(r, make([]byte, 16)) })
	wantAttrs(t, ev, map[string]any{"capture.outcome": "aborted"})
}

package capture_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/llmapi"
	"github.com/llmaudittrail/llmaudittrail/replay"
	"github.com/llmaudittrail/llmaudittrail/server"
)

const acmeKey = "acme-test-KEY-7c6b5a4f3e2d1c0b"

// acmeUpstream answers like the made-up Acme API of acme_test.go: a tool
// call for a prompt that mentions a tool, an answer for a tool's output,
// and an event stream when asked for one.
func acmeUpstream(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Prompt string           `json:"prompt"`
			Stream bool             `json:"stream"`
			Turns  []map[string]any `json:"turns"`
		}
		if r.URL.Path != "/v1/acme/generate" || r.Header.Get("Acme-Key") != acmeKey || json.NewDecoder(r.Body).Decode(&req) != nil {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"acme_error":{"status":400,"code":"bad","message":"bad request"}}`))
			return
		}
		switch {
		case req.Stream:
			w.Header().Set("Content-Type", "text/event-stream")
			for _, d := range []string{`{"id":"acmresp_3","model":"acme-1-2026","delta":"Hello "}`, `{"delta":"from Acme"}`, `{"done":"stop","usage":{"in":9,"out":3}}`, `[DONE]`} {
				io.WriteString(w, "data: "+d+"\n\n")
				w.(http.Flusher).Flush()
			}
		case len(req.Turns) > 0:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"acmresp_2","model":"acme-1-2026","output":"The answer is 42.","usage":{"in":20,"out":5},"done":"stop"}`)
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"acmresp_1","model":"acme-1-2026","output":"","calls":[{"id":"acm_call_1234","name":"lookup","args":{"q":"answer"}}],"usage":{"in":12,"out":4},"done":"tool"}`)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// TestTestOnlyProvider (#26): a provider registered from a test file
// (acme_test.go: one file, one registration line) is known everywhere the
// registry reaches, and nothing else names it: the default upstreams and
// interception allowlist hold it; the proxy records its calls (provider
// name, API, model, usage, tool calls, its version header recorded and its
// key only fingerprinted) and answers its own errors in its format; the
// Hook names it by its request's format and by its host; replay's
// timeline and assembled text read its calls, and the replay server
// answers them, compares them on its decision fields and refuses in its
// error format.
func TestTestOnlyProvider(t *testing.T) {
	up := acmeUpstream(t)
	if capture.DefaultUpstreams()["acme"] != "https://api.acme.test" || !slices.Contains(capture.DefaultInterceptHosts(), "api.acme.test") {
		t.Fatalf("the registry does not reach the defaults: %v %v", capture.DefaultUpstreams(), capture.DefaultInterceptHosts())
	}
	e := newEnv(t, "fail-closed", func(c *server.Config, _ *httptest.Server) { c.Upstreams["acme"] = up.URL })
	post := func(body, session string, hdr map[string]string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("POST", e.ts.URL+"/proxy/acme/v1/acme/generate", strings.NewReader(body))
		req.Header.Set("Acme-Key", acmeKey)
		req.Header.Set(capture.HeaderSession, session)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	tok := map[string]string{capture.HeaderToken: e.writeToken, "Acme-Version": "2026-01"}

	// The proxy.
	bodies := []string{
		`{"model":"acme-1","prompt":"Use a tool to find the answer.","tools":[{"name":"lookup"}],"user":"u1"}`,
		`{"model":"acme-1","prompt":"Use a tool to find the answer.","tools":[{"name":"lookup"}],"user":"u1","turns":[{"kind":"tool_output","call":"acm_call_1234","output":"42"}]}`,
		`{"model":"acme-1","prompt":"Greet me.","stream":true,"temperature":0.5}`,
	}
	for _, b := range bodies {
		if code, out := post(b, "acme-1", tok); code != 200 {
			t.Fatalf("proxy: %d %s", code, out)
		}
	}
	if code, out := post(bodies[0], "acme-1", map[string]string{"Acme-Version": "2026-01"}); code != http.StatusUnauthorized || !bytes.Contains(out, []byte(`"acme_error"`)) {
		t.Fatalf("the proxy's own error without an audit token: %d %s, want it in Acme's format", code, out)
	}
	calls := splitCalls(t, e.events("acme-1", 7))
	if len(calls) != 3 {
		t.Fatalf("%d calls", len(calls))
	}
	wantAttrs(t, calls[0].req, map[string]any{"gen_ai.provider.name": "acme.ai", "capture.api": "acme.generate", "gen_ai.operation.name": "chat",
		"gen_ai.request.model": "acme-1", "http.request.header.acme-version": "2026-01", "capture.upstream": "acme"})
	if !calls[0].req.has("capture.credential.acme-key") {
		t.Errorf("the key is not fingerprinted: %v", calls[0].req.Leaf.Attributes)
	}
	wantAttrs(t, calls[0].resp, map[string]any{"gen_ai.response.model": "acme-1-2026", "gen_ai.response.id": "acmresp_1", "gen_ai.usage.input_tokens": 12})
	if len(calls[0].tools) != 1 || calls[0].tools[0].str("gen_ai.tool.name") != "lookup" || calls[0].tools[0].str("gen_ai.tool.call.id") != "acm_call_1234" {
		t.Errorf("tool calls %v", calls[0].tools)
	}
	wantAttrs(t, calls[2].req, map[string]any{"gen_ai.request.stream": true})
	if f, ok := calls[2].req.Leaf.Attributes.Float("gen_ai.request.temperature"); !ok || f != 0.5 {
		t.Errorf("temperature %v", calls[2].req.Leaf.Attributes["gen_ai.request.temperature"])
	}
	wantAttrs(t, calls[2].resp, map[string]any{"capture.stream": true, "capture.stream.terminated": true, "gen_ai.usage.output_tokens": 3})
	if got := calls[2].resp.strs("gen_ai.response.finish_reasons"); !slices.Equal(got, []string{"stop"}) {
		t.Errorf("finish reasons %v", got)
	}

	// The Hook: by the request's format, and by the provider's host.
	hook, err := capture.NewHook(capture.NewHTTPRecorder(mustClient(e.ts.URL, e.writeToken)), capture.WithSession("acme-hook"), capture.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	toFake := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r.URL.Scheme, r.URL.Host = "http", strings.TrimPrefix(up.URL, "http://")
		return http.DefaultTransport.RoundTrip(r)
	})
	hc := &http.Client{Transport: hook.RoundTripper(toFake)}
	for i, u := range []string{up.URL + "/v1/acme/generate", "https://api.acme.test/v1/acme/generate"} {
		req, _ := http.NewRequest("POST", u, strings.NewReader(bodies[0]))
		req.Header.Set("Acme-Key", acmeKey)
		if i == 0 {
			req.Header.Set("Acme-Version", "2026-01")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err := hook.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	hcalls := splitCalls(t, e.events("acme-hook", 6))
	for i, c := range hcalls {
		wantAttrs(t, c.req, map[string]any{"gen_ai.provider.name": "acme.ai", "capture.api": "acme.generate", "capture.front": "middleware"})
		if len(c.tools) != 1 {
			t.Errorf("hook call %d: tool calls %v", i, c.tools)
		}
	}
	grepDataDir(t, e.dir, acmeKey)

	// Replay: the timeline, the assembled text, the replay server.
	global, _, err := e.srv.Tokens().Create(e.ctx, auth.Spec{Name: "log-auditor", Tenant: server.DefaultTenant, Global: true, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	if err != nil {
		t.Fatal(err)
	}
	key, err := checkpoint.NewVerifier(e.srv.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	var s *replay.Session
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s, err = replay.Rebuild(e.ctx, replay.Source{Log: mustClient(e.ts.URL, global), Key: key}, replay.Query{Session: "acme-1", Payloads: true})
		if err == nil && s.Verified() && len(s.Events) == 7 || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !s.Verified() {
		t.Fatalf("rebuild: %v %v", err, s)
	}
	tl := replay.NewTimeline(s)
	var texts []string
	for _, ev := range s.Events {
		if ev.Leaf.Kind == event.KindLLMResponse {
			if txt, ok := replay.AssembledText(ev.Payload); ok {
				texts = append(texts, txt)
			}
		}
	}
	if c := tl.Steps[0].Call; c == nil || c.Provider != "acme.ai" || c.API != "acme.generate" || c.ResponseModel != "acme-1-2026" ||
		!slices.Equal(c.ToolCalls, []string{"lookup"}) || !slices.Equal(texts, []string{"The answer is 42.", "Hello from Acme"}) {
		t.Fatalf("timeline %+v, assembled texts %q", tl.Steps, texts)
	}

	serve := func(r *replay.Replayer, body string) (int, []byte) {
		t.Helper()
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("POST", "/proxy/acme/v1/acme/generate", strings.NewReader(body)))
		return w.Code, w.Body.Bytes()
	}
	r, err := replay.NewReplayer(s, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Upstreams(), []string{"acme"}) {
		t.Errorf("upstreams %v", r.Upstreams())
	}
	recorded := func(i int) []byte { return calls[i].resp.Payload }
	for i, b := range bodies {
		if i == 0 {
			b = strings.Replace(b, `"user":"u1"`, `"user":"u2"`, 1) // not a decision field: a benign difference
		}
		if code, out := serve(r, b); code != 200 || !bytes.Equal(out, recorded(i)) {
			t.Fatalf("replay of call %d: %d %s", i, code, out)
		}
	}
	if v := r.Verdict(); v.Verdict != replay.Reproduced || len(v.Differences) != 1 || v.Differences[0].Relevance != replay.Benign {
		t.Fatalf("verdict %+v", v)
	}
	r, _ = replay.NewReplayer(s, replay.Options{})
	code, out := serve(r, strings.Replace(bodies[0], "find the answer", "find nothing", 1))
	var refusal struct {
		Error struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
		} `json:"acme_error"`
	}
	if code != http.StatusUnprocessableEntity || json.Unmarshal(out, &refusal) != nil || refusal.Error.Status != 422 || !strings.Contains(refusal.Error.Message, replay.CodeRequestDiffers) {
		t.Fatalf("divergence: %d %s, want 422 in Acme's error format", code, out)
	}
	if v := r.Verdict(); v.Verdict != replay.Diverged || v.Differences[0].Path != "prompt" {
		t.Fatalf("verdict %+v", v)
	}
	if p, ok := llmapi.Lookup("acme"); !ok || p.System != "acme.ai" {
		t.Errorf("llmapi.Lookup(acme) = %+v", p)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

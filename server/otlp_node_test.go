package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// fakeOpenAI answers chat completions as OpenAI would: a tool call first, a
// text once the tool's result is in the messages, and a stream of chunks
// when asked to stream.
func fakeOpenAI(t *testing.T) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream   bool `json:"stream"`
			Messages []struct {
				Role string `json:"role"`
			} `json:"messages"`
		}
		if r.URL.Path != "/v1/chat/completions" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
			return
		}
		if req.Stream {
			w.Header().Set("Content-Type", "text/event-stream")
			for i, part := range []string{"Refill ", "approved."} {
				fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":%q},\"finish_reason\":null}]}\n\n", part)
				if i == 1 {
					fmt.Fprint(w, "data: {\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
				}
			}
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		msg := `{"role":"assistant","content":null,"tool_calls":[{"id":"call_7","type":"function","function":{"name":"dose_check","arguments":"{\"drug\":\"warfarin\"}"}}]}`
		finish := "tool_calls"
		if req.Messages[len(req.Messages)-1].Role == "tool" {
			msg, finish = `{"role":"assistant","content":"The refill is within the limit."}`, "stop"
		}
		fmt.Fprintf(w, `{"id":"chatcmpl-%d","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":%s,"finish_reason":%q}],"usage":{"prompt_tokens":21,"completion_tokens":9,"total_tokens":30}}`,
			len(req.Messages), msg, finish)
	}))
	t.Cleanup(up.Close)
	return up
}

// losingFirstAnswer serves h, but the first export to each OTLP path is
// answered 503 after the server has taken it: the exporter does not know
// its spans are in, and sends them again.
type losingFirstAnswer struct {
	h     http.Handler
	mu    sync.Mutex
	seen  map[string]int
	types map[string]string
}

func (l *losingFirstAnswer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || (r.URL.Path != OTLPTracesPath && r.URL.Path != OTLPLogsPath) {
		l.h.ServeHTTP(w, r)
		return
	}
	l.mu.Lock()
	l.seen[r.URL.Path]++
	first := l.seen[r.URL.Path] == 1
	l.types[r.URL.Path] = r.Header.Get("Content-Type")
	l.mu.Unlock()
	if !first {
		l.h.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	l.h.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return
	}
	w.Header().Set("Retry-After", "0")
	w.WriteHeader(http.StatusServiceUnavailable)
}

// The npm openai SDK, instrumented by @opentelemetry/instrumentation-openai
// with content capture on and exported by @opentelemetry/sdk-node (the OTLP
// proto and the JSON exporters, chosen by OTEL_EXPORTER_OTLP_PROTOCOL),
// against a fake OpenAI: every call is a complete llm.request/llm.response
// pair, its messages in llm.content events of its span (in the vault, not
// in the leaves), the agent's tool span a tool.call/tool.result; the first
// export of each signal, whose answer is lost, is sent again and appends
// nothing twice.
func TestOTLPNodeAgent(t *testing.T) {
	needNodeAgent(t)
	up := fakeOpenAI(t)
	for _, proto := range []string{"http/protobuf", "http/json"} {
		t.Run(proto, func(t *testing.T) {
			s := newTestServer(t, nil)
			tok, p := s.token(t, auth.Spec{Name: "refill", Tenant: "pharmacy", Scopes: []string{auth.ScopeWrite}})
			lose := &losingFirstAnswer{h: s.srv.Handler(), seen: map[string]int{}, types: map[string]string{}}
			front := httptest.NewServer(lose)
			defer front.Close()

			prompt := "Refill warfarin 5 mg for patient " + strings.ReplaceAll(proto, "/", "-")
			traceID := runNodeAgent(t, front.URL, tok, proto, "", up.URL, prompt)
			lose.mu.Lock()
			want := map[string]string{"http/protobuf": "application/x-protobuf", "http/json": "application/json"}[proto]
			for _, path := range []string{OTLPTracesPath, OTLPLogsPath} {
				if lose.seen[path] < 2 || lose.types[path] != want {
					t.Errorf("%s: %d exports of %s, want a retry after the lost answer", path, lose.seen[path], lose.types[path])
				}
			}
			lose.mu.Unlock()

			leaves, payloads := s.sessionLeavesOf(t, "pharmacy", traceID)
			count := map[string]int{}
			contentOf := map[string]string{} // span id -> its llm.content payloads
			for i, l := range leaves {
				count[l.Kind]++
				raw, _ := l.Marshal()
				if bytes.Contains(raw, []byte("warfarin")) || bytes.Contains(raw, []byte("within the limit")) {
					t.Errorf("content in the leaf: %s", raw)
				}
				if l.Writer.Via != event.ViaOTLP || l.Writer.Token != p.ID || l.Actor.ID != "refill-agent" {
					t.Errorf("%s: writer %+v actor %+v", l.Kind, l.Writer, l.Actor)
				}
				if l.Kind == "llm.content" {
					contentOf[l.Attributes.String("otel.span_id")] += payloads[i]
				}
			}
			if count["llm.request"] != 3 || count["llm.response"] != 3 || count["tool.call"] != 1 || count["tool.result"] != 1 || count["llm.content"] < 3 ||
				count["agent.invoke"] != 1 {
				t.Fatalf("events %v", count)
			}
			t.Logf("events %v; exports %v", count, lose.seen)
			calls := 0
			for i, l := range leaves {
				switch l.Kind {
				case "llm.request":
					a := l.Attributes
					if a.String("gen_ai.request.model") != "gpt-4o" || a.String("gen_ai.provider.name") != "openai" || a.String("gen_ai.operation.name") != "chat" {
						t.Errorf("llm.request attributes %v", a)
					}
					c := contentOf[a.String("otel.span_id")]
					wantIn := []string{prompt, "The refill is within the limit", "Summarise the refill."}[calls]
					if calls == 1 {
						wantIn = `max_daily_mg` // the tool's result, sent back
					}
					if !strings.Contains(c, wantIn) {
						t.Errorf("call %d: its messages (%s) are not in its llm.content: %.600s", calls, wantIn, c)
					}
					calls++
				case "llm.response":
					a := l.Attributes
					if a.String("gen_ai.response.model") != "gpt-4o-2024-08-06" || len(a.Strings("gen_ai.response.finish_reasons")) != 1 || a.Number("otel.duration_ms") <= 0 {
						t.Errorf("llm.response attributes %v", a)
					}
				case "tool.call":
					if l.Attributes.String("gen_ai.tool.name") != "dose_check" || l.Attributes.String("gen_ai.tool.call.id") != "call_7" || !strings.Contains(payloads[i], "warfarin") {
						t.Errorf("tool.call %v %s", l.Attributes, payloads[i])
					}
				case "tool.result":
					if !strings.Contains(payloads[i], "max_daily_mg") {
						t.Errorf("tool.result payload %s", payloads[i])
					}
				}
			}
			// The answers of the calls are in the content too.
			all := strings.Join(payloads, "\n")
			for _, w := range []string{"dose_check", "The refill is within the limit.", "Refill approved."} {
				if !strings.Contains(all, w) {
					t.Errorf("no payload holds %q", w)
				}
			}
		})
	}
}

// sessionLeavesOf is sessionLeaves for a session of tenant.
func (s *testServer) sessionLeavesOf(t *testing.T, tenant, session string) ([]*event.Leaf, []string) {
	t.Helper()
	code, body, _ := s.do(t, "GET", "/v1/sessions/"+session+"?tenant="+tenant, s.admin, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/sessions/%s = %d %s", session, code, body)
	}
	return s.leavesOfPage(t, body)
}

func needNodeAgent(t *testing.T) {
	if _, err := os.Stat("../testdata/otel/node_modules/@opentelemetry/sdk-node"); err != nil {
		if strings.Contains(os.Getenv("LLMAUDIT_TEST_REQUIRE"), "node") {
			t.Fatal("testdata/otel is not installed: npm ci --prefix testdata/otel")
		}
		t.Skip("npm ci --prefix testdata/otel (.ci/run does)")
	}
}

// runNodeAgent runs testdata/otel/agent.cjs against the log server at
// endpoint (OTLP protocol proto, instrumentation inst: "" or
// "openinference") and the OpenAI at upstream, and returns its trace id.
// env is more of the agent's environment (VAR=value), over the rest.
func runNodeAgent(t *testing.T, endpoint, token, proto, inst, upstream, prompt string, env ...string) string {
	t.Helper()
	cmd := exec.Command("node", "agent.cjs")
	cmd.Dir = "../testdata/otel"
	cmd.Env = append(os.Environ(),
		"OTEL_EXPORTER_OTLP_ENDPOINT="+endpoint,
		"OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20"+token,
		"OTEL_EXPORTER_OTLP_PROTOCOL="+proto,
		"OTEL_TRACES_EXPORTER=otlp", "OTEL_LOGS_EXPORTER=otlp", "OTEL_METRICS_EXPORTER=none",
		"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true",
		"OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental",
		"OPENAI_BASE_URL="+upstream+"/v1", "OPENAI_API_KEY=sk-test",
		"INSTRUMENTATION="+inst, "PROMPT="+prompt)
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.Output(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the agent did not finish: %s", stderr.String())
	}
	if err != nil {
		t.Fatalf("node agent: %v\n%s\n%s", err, out, stderr.String())
	}
	var res struct{ TraceID string }
	if err := json.Unmarshal(bytes.TrimSpace(out), &res); err != nil || res.TraceID == "" {
		t.Fatalf("agent printed %q: %v", out, err)
	}
	return res.TraceID
}

// The same agent traced by Arize's OpenInference instrumentation (a third
// convention: llm.input_messages, llm.output_messages, input.value and
// output.value as span attributes): every call an llm.request/llm.response
// pair with its messages in their payloads, none in the leaves.
func TestOTLPNodeOpenInference(t *testing.T) {
	needNodeAgent(t)
	up := fakeOpenAI(t)
	s := newTestServer(t, nil)
	tok, _ := s.token(t, auth.Spec{Name: "refill", Tenant: "pharmacy", Scopes: []string{auth.ScopeWrite}})
	prompt := "Refill warfarin 5 mg for patient openinference"
	traceID := runNodeAgent(t, s.ts.URL, tok, "http/protobuf", "openinference", up.URL, prompt)
	leaves, payloads := s.sessionLeavesOf(t, "pharmacy", traceID)
	count := map[string]int{}
	var req, resp []string
	for i, l := range leaves {
		count[l.Kind]++
		raw, _ := l.Marshal()
		if bytes.Contains(raw, []byte("warfarin")) || bytes.Contains(raw, []byte("within the limit")) {
			t.Errorf("content in the leaf: %s", raw)
		}
		switch l.Kind {
		case "llm.request":
			req = append(req, payloads[i])
			if l.Attributes.String("gen_ai.request.model") == "" || l.Attributes.String("gen_ai.operation.name") != "chat" {
				t.Errorf("llm.request attributes %v", l.Attributes)
			}
		case "llm.response":
			resp = append(resp, payloads[i])
			if len(resp) <= 2 && l.Attributes.Number("gen_ai.usage.input_tokens") != 21 { // the stream has no usage
				t.Errorf("llm.response attributes %v", l.Attributes)
			}
		}
	}
	t.Logf("events %v", count)
	if count["llm.request"] != 3 || count["llm.response"] != 3 || count["tool.call"] != 1 || count["tool.result"] != 1 {
		t.Fatalf("events %v", count)
	}
	if !strings.Contains(req[0], `"llm.input_messages":[`) || !strings.Contains(req[0], prompt) || !strings.Contains(req[1], "max_daily_mg") {
		t.Errorf("the calls' messages are not in their requests: %.600s", req)
	}
	if !strings.Contains(resp[0], `"llm.output_messages":[`) || !strings.Contains(resp[0], "dose_check") || !strings.Contains(resp[1], "The refill is within the limit.") {
		t.Errorf("the answers are not in their responses: %.600s", resp)
	}
}

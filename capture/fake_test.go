package capture_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test credentials. They must reach the fake upstream and appear nowhere in
// a data directory.
const (
	openaiKey    = "sk-test-OPENAI-key-9f8e7d6c5b4a3210"
	anthropicKey = "sk-ant-test-ANTHROPIC-key-0123456789abcdef"
)

// fakeExchange is one request the fake upstream served, and the exact
// bytes it managed to write back.
type fakeExchange struct {
	Path   string
	Header http.Header
	Body   []byte
	Status int
	Sent   []byte
	Done   bool // the handler returned normally
}

// fakeUpstream is a local OpenAI- and Anthropic-compatible server. Its
// behaviour is chosen by the request's model name:
//
//	*-tools      the model asks for tool calls
//	*-flaky500   the first attempt of a body fails with 500 (retry-after-ms: 5)
//	*-flaky429   the first attempt of a body fails with 429 (retry-after-ms: 5)
//	*-die        a stream that breaks off (connection dropped) after 2 events
//	*-slow       a stream that sends an event every 20 ms until the client leaves
//	*-long       a stream of 25 events 40 ms apart, then its terminator
type fakeUpstream struct {
	*httptest.Server
	mu        sync.Mutex
	exchanges []*fakeExchange
	seen      map[string]int
	slowGone  chan struct{} // receives when a slow stream's client left
}

func newFakeUpstream(t testing.TB) *fakeUpstream {
	f := &fakeUpstream{seen: map[string]int{}, slowGone: make(chan struct{}, 16)}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// find returns the exchanges whose request body is body, in order.
func (f *fakeUpstream) find(body []byte) []*fakeExchange {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fakeExchange
	for _, e := range f.exchanges {
		if string(e.Body) == string(body) {
			out = append(out, e)
		}
	}
	return out
}

// count returns how many requests carried a body containing s.
func (f *fakeUpstream) count(s string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, e := range f.exchanges {
		if strings.Contains(string(e.Body), s) {
			n++
		}
	}
	return n
}

func (f *fakeUpstream) all() []*fakeExchange {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*fakeExchange(nil), f.exchanges...)
}

type recWriter struct {
	w  http.ResponseWriter
	f  *fakeUpstream
	ex *fakeExchange
}

func (rw *recWriter) header() http.Header { return rw.w.Header() }

func (rw *recWriter) status(code int) {
	rw.f.mu.Lock()
	rw.ex.Status = code
	rw.f.mu.Unlock()
	rw.w.WriteHeader(code)
}

func (rw *recWriter) write(s string) error {
	n, err := io.WriteString(rw.w, s)
	rw.f.mu.Lock()
	rw.ex.Sent = append(rw.ex.Sent, s[:n]...)
	rw.f.mu.Unlock()
	if err != nil {
		return err
	}
	return http.NewResponseController(rw.w).Flush()
}

func (f *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ex := &fakeExchange{Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	f.mu.Lock()
	f.exchanges = append(f.exchanges, ex)
	n := f.seen[string(body)]
	f.seen[string(body)]++
	f.mu.Unlock()
	rw := &recWriter{w: w, f: f, ex: ex}
	defer func() {
		f.mu.Lock()
		ex.Done = true
		f.mu.Unlock()
	}()

	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	json.Unmarshal(body, &req)
	anth := strings.HasSuffix(r.URL.Path, "/v1/messages")
	key := r.Header.Get("X-Api-Key")
	if key == "" {
		key = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if anth && key != anthropicKey || !anth && key != openaiKey {
		rw.header().Set("Content-Type", "application/json")
		rw.status(http.StatusUnauthorized)
		rw.write(`{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}`)
		return
	}
	if n == 0 && (strings.Contains(req.Model, "flaky500") || strings.Contains(req.Model, "flaky429")) {
		code, typ := http.StatusInternalServerError, "server_error"
		if strings.Contains(req.Model, "flaky429") {
			code, typ = http.StatusTooManyRequests, "rate_limit_error"
		}
		rw.header().Set("Content-Type", "application/json")
		rw.header().Set("Retry-After-Ms", "5")
		rw.header().Set("X-Request-Id", fmt.Sprintf("req_err_%d", len(f.all())))
		rw.status(code)
		if anth {
			rw.write(`{"type":"error","error":{"type":"` + typ + `","message":"try again"}}`)
		} else {
			rw.write(`{"error":{"message":"try again","type":"` + typ + `","param":null,"code":null}}`)
		}
		return
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/chat/completions"):
		f.chat(rw, r, req.Model, req.Stream)
	case strings.HasSuffix(r.URL.Path, "/responses"):
		f.responses(rw, req.Model, req.Stream)
	case strings.HasSuffix(r.URL.Path, "/embeddings"):
		rw.header().Set("Content-Type", "application/json")
		rw.header().Set("X-Request-Id", "req_emb")
		rw.write(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25,-0.5,0.125]}],"model":"text-embedding-test-001","usage":{"prompt_tokens":4,"total_tokens":4}}`)
	case anth:
		f.messages(rw, r, req.Model, req.Stream)
	default:
		http.NotFound(w, r)
	}
}

const chatUsage = `{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}`

func (f *fakeUpstream) sse(rw *recWriter, r *http.Request, model string, events []string) {
	rw.header().Set("Content-Type", "text/event-stream")
	rw.header().Set("Cache-Control", "no-cache")
	switch {
	case strings.Contains(model, "die"):
		for _, e := range events[:2] {
			rw.write(e)
		}
		panic(http.ErrAbortHandler)
	case strings.Contains(model, "slow"):
		rw.write(events[0])
		for range 500 {
			select {
			case <-r.Context().Done():
				f.slowGone <- struct{}{}
				return
			case <-time.After(20 * time.Millisecond):
			}
			if rw.write(events[1]) != nil {
				f.slowGone <- struct{}{}
				return
			}
		}
		return
	case strings.Contains(model, "long"):
		rw.write(events[0])
		for range 25 {
			time.Sleep(40 * time.Millisecond)
			rw.write(events[1])
		}
		for _, e := range events[2:] {
			rw.write(e)
		}
		return
	}
	for _, e := range events {
		rw.write(e)
	}
}

func data(s string) string { return "data: " + s + "\n\n" }

func (f *fakeUpstream) chat(rw *recWriter, r *http.Request, model string, stream bool) {
	rw.header().Set("X-Request-Id", "req_chat_1")
	tools := strings.Contains(model, "tools")
	if !stream {
		rw.header().Set("Content-Type", "application/json")
		msg := `{"role":"assistant","content":"Hello from the fake.","refusal":null}`
		finish := "stop"
		if tools {
			msg = `{"role":"assistant","content":null,"refusal":null,"tool_calls":[` +
				`{"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},` +
				`{"id":"call_def","type":"function","function":{"name":"get_time","arguments":"{\"tz\":\"CET\"}"}}]}`
			finish = "tool_calls"
		}
		rw.write(`{"id":"chatcmpl-test1","object":"chat.completion","created":1700000000,"model":"gpt-test-2025-01-01",` +
			`"choices":[{"index":0,"message":` + msg + `,"finish_reason":"` + finish + `","logprobs":null}],"usage":` + chatUsage + `}`)
		return
	}
	chunk := func(delta, finish string) string {
		if finish == "" {
			finish = "null"
		} else {
			finish = `"` + finish + `"`
		}
		return data(`{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-test-2025-01-01","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + finish + `}]}`)
	}
	ev := []string{chunk(`{"role":"assistant","content":""}`, ""), chunk(`{"content":"Hel"}`, ""), chunk(`{"content":"lo"}`, "")}
	finish := "stop"
	if tools {
		ev = append(ev,
			chunk(`{"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":""}}]}`, ""),
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}`, ""),
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}`, ""),
			chunk(`{"tool_calls":[{"index":1,"id":"call_def","type":"function","function":{"name":"get_time","arguments":"{\"tz\":\"CET\"}"}}]}`, ""))
		finish = "tool_calls"
	}
	ev = append(ev, chunk(`{}`, finish),
		data(`{"id":"chatcmpl-s1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-test-2025-01-01","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":3}}}`),
		data(`[DONE]`))
	f.sse(rw, r, model, ev)
}

const responseFull = `{"id":"resp_1","object":"response","created_at":1700000000,"status":"completed","model":"gpt-test-2025-01-01",` +
	`"output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi","annotations":[]}]},` +
	`{"type":"function_call","id":"fc_1","call_id":"call_r1","name":"lookup","arguments":"{\"q\":\"x\"}","status":"completed"}],` +
	`"usage":{"input_tokens":30,"input_tokens_details":{"cached_tokens":6},"output_tokens":11,"output_tokens_details":{"reasoning_tokens":5},"total_tokens":41},` +
	`"parallel_tool_calls":true,"tool_choice":"auto","tools":[],"text":{"format":{"type":"text"}}}`

func (f *fakeUpstream) responses(rw *recWriter, model string, stream bool) {
	rw.header().Set("X-Request-Id", "req_resp_1")
	if !stream {
		rw.header().Set("Content-Type", "application/json")
		rw.write(responseFull)
		return
	}
	created := `{"id":"resp_1","object":"response","created_at":1700000000,"status":"in_progress","model":"gpt-test-2025-01-01","output":[]}`
	f.sse(rw, nil, model, []string{
		"event: response.created\n" + data(`{"type":"response.created","sequence_number":0,"response":`+created+`}`),
		"event: response.output_text.delta\n" + data(`{"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}`),
		"event: response.output_item.done\n" + data(`{"type":"response.output_item.done","sequence_number":2,"output_index":1,"item":{"type":"function_call","id":"fc_1","call_id":"call_r1","name":"lookup","arguments":"{\"q\":\"x\"}","status":"completed"}}`),
		"event: response.completed\n" + data(`{"type":"response.completed","sequence_number":3,"response":`+responseFull+`}`),
	})
}

func (f *fakeUpstream) messages(rw *recWriter, r *http.Request, model string, stream bool) {
	rw.header().Set("Request-Id", "req_ant_1")
	tools := strings.Contains(model, "tools")
	if !stream {
		rw.header().Set("Content-Type", "application/json")
		content := `[{"type":"text","text":"Hello from the fake."}]`
		stop := "end_turn"
		if tools {
			content = `[{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris"}}]`
			stop = "tool_use"
		}
		rw.write(`{"id":"msg_test1","type":"message","role":"assistant","model":"claude-test-2025","content":` + content +
			`,"stop_reason":"` + stop + `","stop_sequence":null,"usage":{"input_tokens":20,"output_tokens":6,"cache_creation_input_tokens":3,"cache_read_input_tokens":7}}`)
		return
	}
	ev := func(typ, d string) string { return "event: " + typ + "\n" + data(d) }
	events := []string{
		ev("message_start", `{"type":"message_start","message":{"id":"msg_s1","type":"message","role":"assistant","model":"claude-test-2025","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":5,"cache_read_input_tokens":10,"output_tokens":1}}}`),
		ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`),
	}
	rest := []string{
		ev("ping", `{"type":"ping"}`),
		ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`),
		ev("content_block_stop", `{"type":"content_block_stop","index":0}`),
	}
	stop := "end_turn"
	if tools {
		rest = append(rest,
			ev("content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_s1","name":"get_weather","input":{}}}`),
			ev("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}}`),
			ev("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}`),
			ev("content_block_stop", `{"type":"content_block_stop","index":1}`))
		stop = "tool_use"
	}
	rest = append(rest,
		// Two message_delta events: output_tokens is a running total, so the
		// right count is the last one (15), not the sum.
		ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"`+stop+`","stop_sequence":null},"usage":{"output_tokens":7}}`),
		ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"`+stop+`","stop_sequence":null},"usage":{"output_tokens":15,"output_tokens_details":{"thinking_tokens":4}}}`),
		ev("message_stop", `{"type":"message_stop"}`))
	if strings.Contains(model, "slow") || strings.Contains(model, "long") {
		// The event that slow and long streams repeat: a text delta.
		events[1] = rest[1]
	}
	events = append(events, rest...)
	f.sse(rw, r, model, events)
}

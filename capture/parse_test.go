package capture

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

func i64(n int64) *int64 { return &n }

func TestSSEScanner(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     []sseEvent
		dropped  int
	}{
		{"lf", "data: a\n\ndata: b\n\n", []sseEvent{{"", []byte("a")}, {"", []byte("b")}}, 0},
		{"crlf", "event: x\r\ndata: a\r\n\r\n", []sseEvent{{"x", []byte("a")}}, 0},
		{"cr", "data: a\r\rdata:b\r\r", []sseEvent{{"", []byte("a")}, {"", []byte("b")}}, 0},
		{"multi-line data", "data: a\ndata: b\n\n", []sseEvent{{"", []byte("a\nb")}}, 0},
		{"comments and unknown fields", ": ping\nid: 3\nretry: 5\ndata: a\n\n", []sseEvent{{"", []byte("a")}}, 0},
		{"no space after colon", "data:a\n\n", []sseEvent{{"", []byte("a")}}, 0},
		{"event without data is not dispatched", "event: x\n\ndata: a\n\n", []sseEvent{{"", []byte("a")}}, 0},
		{"unterminated last event is not dispatched", "data: a\n\ndata: b\n", []sseEvent{{"", []byte("a")}}, 0},
		{"oversized line skipped", "data: " + strings.Repeat("x", 100) + "\n\ndata: ok\n\n", []sseEvent{{"", []byte("ok")}}, 1},
		{"oversized event skipped", "data: " + strings.Repeat("x", 40) + "\ndata: " + strings.Repeat("y", 40) + "\n\ndata: ok\n\n", []sseEvent{{"", []byte("ok")}}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, then byte by byte: the same events.
			for _, chunk := range []int{len(tt.in), 1, 3} {
				var got []sseEvent
				s := newSSEScanner(64, func(e sseEvent) { got = append(got, sseEvent{e.Type, append([]byte(nil), e.Data...)}) })
				for in := tt.in; len(in) > 0; {
					n := min(chunk, len(in))
					s.Write([]byte(in[:n]))
					in = in[n:]
				}
				if !reflect.DeepEqual(got, tt.want) || s.dropped != tt.dropped {
					t.Errorf("chunk %d: got %q (dropped %d), want %q (dropped %d)", chunk, got, s.dropped, tt.want, tt.dropped)
				}
			}
		})
	}
}

func TestClassify(t *testing.T) {
	an := http.Header{"Anthropic-Version": {"2023-06-01"}}
	for _, tt := range []struct {
		method, path string
		h            http.Header
		hint         string
		want         endpoint
	}{
		{"POST", "/v1/chat/completions", nil, "openai", endpoint{apiOpenAIChat, flavorOpenAI, "chat"}},
		{"POST", "/openai/deployments/x/chat/completions", nil, "azure", endpoint{apiOpenAIChat, flavorOpenAI, "chat"}},
		{"POST", "/v1/responses", nil, "openai", endpoint{apiOpenAIResponses, flavorOpenAI, "chat"}},
		{"POST", "/v1/embeddings", nil, "openai", endpoint{apiOpenAIEmbeddings, flavorOpenAI, "embeddings"}},
		{"POST", "/v1/completions", nil, "openai", endpoint{apiOpenAICompletions, flavorOpenAI, "text_completion"}},
		{"POST", "/v1/messages", an, "anthropic", endpoint{apiAnthropicMessages, flavorAnthropic, "chat"}},
		{"POST", "/v1/messages/count_tokens", an, "anthropic", endpoint{apiOther, flavorAnthropic, ""}},
		{"GET", "/v1/models", nil, "anthropic", endpoint{apiOther, flavorAnthropic, ""}},
		{"GET", "/v1/responses", nil, "openai", endpoint{apiOther, flavorOpenAI, ""}},
	} {
		if got := classify(tt.method, tt.path, tt.h, tt.hint); got != tt.want {
			t.Errorf("classify(%s %s) = %+v, want %+v", tt.method, tt.path, got, tt.want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	got := mustParseRequest(t, apiOpenAIChat, []byte(`{"model":"gpt-4o","stream":true,"max_completion_tokens":100,"temperature":0.2,"top_p":1,"n":2,"seed":7,"messages":[]}`))
	want := requestInfo{Model: "gpt-4o", Stream: true, MaxTokens: i64(100), Temperature: ptr(0.2), TopP: ptr(1.0), ChoiceCount: i64(2), Seed: i64(7)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// Ill-typed fields are ignored, the rest is kept.
	got = mustParseRequest(t, apiAnthropicMessages, []byte(`{"model":"claude","stream":"yes","max_tokens":"x","temperature":1}`))
	if got.Model != "claude" || got.Stream || got.MaxTokens != nil || *got.Temperature != 1 {
		t.Errorf("got %+v", got)
	}
	// A body that is not strict JSON is refused (see TestRefusedRequest).
	if got, err := parseRequest(apiOpenAIChat, []byte(`not json`)); !reflect.DeepEqual(got, requestInfo{}) || !errors.Is(err, strictjson.ErrMalformed) {
		t.Errorf("got %+v, %v", got, err)
	}
}

func mustParseRequest(t *testing.T, api string, body []byte) requestInfo {
	t.Helper()
	info, err := parseRequest(api, body)
	if err != nil {
		t.Fatalf("parseRequest(%s): %v", body, err)
	}
	return info
}

// TestSystemPromptDigest: the same instructions give the same digest in
// every API shape; other instructions, another; none, none.
func TestSystemPromptDigest(t *testing.T) {
	const text = "You are a triage assistant."
	want := promptDigest([]string{text})
	for name, body := range map[string]string{
		"chat system":         `{"model":"m","messages":[{"role":"system","content":"You are a triage assistant."},{"role":"user","content":"hi"}]}`,
		"chat developer":      `{"model":"m","messages":[{"role":"developer","content":[{"type":"text","text":"You are a triage assistant."}]}]}`,
		"responses":           `{"model":"m","instructions":"You are a triage assistant.","input":"hi"}`,
		"responses input":     `{"model":"m","input":[{"role":"system","content":[{"type":"input_text","text":"You are a triage assistant."}]}]}`,
		"anthropic string":    `{"model":"m","system":"You are a triage assistant.","messages":[]}`,
		"anthropic text list": `{"model":"m","system":[{"type":"text","text":"You are a triage assistant."}],"messages":[]}`,
	} {
		api := apiOpenAIChat
		if strings.HasPrefix(name, "anthropic") {
			api = apiAnthropicMessages
		} else if strings.HasPrefix(name, "responses") {
			api = apiOpenAIResponses
		}
		if got := mustParseRequest(t, api, []byte(body)).SystemPrompt; got != want {
			t.Errorf("%s: digest %q, want %q", name, got, want)
		}
	}
	if got := mustParseRequest(t, apiOpenAIChat, []byte(`{"model":"m","messages":[{"role":"system","content":"Be terse."}]}`)).SystemPrompt; got == want || got == "" {
		t.Errorf("other instructions: %q", got)
	}
	if got := mustParseRequest(t, apiOpenAIChat, []byte(`{"model":"m","messages":[{"role":"user","content":"You are a triage assistant."}]}`)).SystemPrompt; got != "" {
		t.Errorf("a user message is not an instruction: %q", got)
	}
}

func ptr(f float64) *float64 { return &f }

func TestParseBody(t *testing.T) {
	for _, tt := range []struct {
		name   string
		api    string
		status int
		body   string
		want   summary
	}{{
		name: "openai chat", api: apiOpenAIChat, status: 200,
		body: `{"id":"c1","model":"m","choices":[{"index":1,"finish_reason":"length"},{"index":0,"message":{"tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}}`,
		want: summary{ResponseID: "c1", ResponseModel: "m", FinishReasons: []string{"tool_calls", "length"},
			Usage:     usage{Input: i64(10), Output: i64(3), CacheRead: i64(2), Reasoning: i64(1)},
			ToolCalls: []toolCall{{ID: "t1", Name: "f", Type: "function", Args: []byte("{}")}}},
	}, {
		name: "openai custom tool", api: apiOpenAIChat, status: 200,
		body: `{"choices":[{"index":0,"message":{"tool_calls":[{"id":"t2","type":"custom","custom":{"name":"sh","input":"ls"}}]}}]}`,
		want: summary{ToolCalls: []toolCall{{ID: "t2", Name: "sh", Type: "custom", Args: []byte("ls")}}},
	}, {
		name: "openai error", api: apiOpenAIChat, status: 429,
		body: `{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}`,
		want: summary{ErrorType: "requests"},
	}, {
		name: "openai error with code only", api: apiOpenAIEmbeddings, status: 400,
		body: `{"error":{"message":"x","type":null,"code":"bad"}}`,
		want: summary{ErrorType: "bad"},
	}, {
		name: "anthropic error", api: apiAnthropicMessages, status: 529,
		body: `{"type":"error","error":{"type":"overloaded_error","message":"busy"}}`,
		want: summary{ErrorType: "overloaded_error"},
	}, {
		name: "embeddings", api: apiOpenAIEmbeddings, status: 200,
		body: `{"model":"e","data":[],"usage":{"prompt_tokens":4,"total_tokens":4}}`,
		want: summary{ResponseModel: "e", Usage: usage{Input: i64(4)}},
	}, {
		name: "responses incomplete", api: apiOpenAIResponses, status: 200,
		body: `{"id":"r","model":"m","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[{"type":"custom_tool_call","call_id":"c","name":"n","input":"i"},{"type":"web_search_call","id":"w"}],"usage":{"input_tokens":5,"output_tokens":6,"input_tokens_details":{"cached_tokens":1},"output_tokens_details":{"reasoning_tokens":2}}}`,
		want: summary{ResponseID: "r", ResponseModel: "m", FinishReasons: []string{"max_output_tokens"},
			Usage:     usage{Input: i64(5), Output: i64(6), CacheRead: i64(1), Reasoning: i64(2)},
			ToolCalls: []toolCall{{ID: "c", Name: "n", Type: "custom", Args: []byte("i")}}},
	}, {
		name: "responses failed", api: apiOpenAIResponses, status: 200,
		body: `{"id":"r","status":"failed","error":{"code":"server_error","message":"x"},"output":[]}`,
		want: summary{ResponseID: "r", FinishReasons: []string{"failed"}, ErrorType: "server_error", ToolCalls: []toolCall{}},
	}, {
		name: "anthropic", api: apiAnthropicMessages, status: 200,
		body: `{"id":"m1","model":"c","stop_reason":"tool_use","content":[{"type":"text","text":"x"},{"type":"tool_use","id":"tu","name":"f","input":{"a":1}},{"type":"server_tool_use","id":"s","name":"web_search","input":{}}],"usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":5,"cache_creation_input_tokens":6,"output_tokens_details":{"thinking_tokens":2}}}`,
		want: summary{ResponseID: "m1", ResponseModel: "c", FinishReasons: []string{"tool_use"},
			Usage:     usage{Input: i64(14), Output: i64(4), CacheRead: i64(5), CacheCreation: i64(6), Reasoning: i64(2)},
			ToolCalls: []toolCall{{ID: "tu", Name: "f", Type: "function", Args: []byte(`{"a":1}`)}}},
	}, {
		name: "not json", api: apiOpenAIChat, status: 200, body: `<html>`, want: summary{},
	}, {
		name: "ill-typed fields are skipped", api: apiOpenAIChat, status: 200,
		body: `{"id":5,"model":"m","usage":{"prompt_tokens":"x","completion_tokens":2}}`,
		want: summary{ResponseModel: "m", Usage: usage{Output: i64(2)}},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			got := parseBody(tt.api, tt.status, []byte(tt.body))
			if fmt.Sprintf("%+v", deref(got)) != fmt.Sprintf("%+v", deref(tt.want)) {
				t.Errorf("\n got %+v\nwant %+v", deref(got), deref(tt.want))
			}
		})
	}
}

// deref makes a summary printable with its usage values.
func deref(s summary) any {
	v := func(p *int64) any {
		if p == nil {
			return nil
		}
		return *p
	}
	var tools []string
	for _, t := range s.ToolCalls {
		tools = append(tools, t.ID+"/"+t.Name+"/"+t.Type+"/"+string(t.Args))
	}
	return []any{s.ResponseID, s.ResponseModel, s.FinishReasons, v(s.Usage.Input), v(s.Usage.Output), v(s.Usage.CacheRead),
		v(s.Usage.CacheCreation), v(s.Usage.Reasoning), tools, s.Terminated, s.ErrorType}
}

func feed(api, stream string, chunk int) summary {
	p := newRespParser(api)
	for len(stream) > 0 {
		n := min(chunk, len(stream))
		p.Write([]byte(stream[:n]))
		stream = stream[n:]
	}
	return p.summary()
}

func TestStreamParsers(t *testing.T) {
	d := func(s string) string { return "data: " + s + "\n\n" }
	e := func(typ, s string) string { return "event: " + typ + "\n" + d(s) }
	for _, tt := range []struct {
		name, api, stream string
		want              summary
	}{{
		name: "openai chat with tool call deltas and usage", api: apiOpenAIChat,
		stream: d(`{"id":"c","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\""}}]}}]}`) +
			d(`{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}`) +
			d(`{"id":"c","choices":[{"index":1,"delta":{},"finish_reason":"stop"},{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`) +
			d(`{"id":"c","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}`) + d(`[DONE]`),
		want: summary{ResponseID: "c", ResponseModel: "m", FinishReasons: []string{"tool_calls", "stop"}, Usage: usage{Input: i64(7), Output: i64(2)},
			ToolCalls: []toolCall{{ID: "t1", Name: "f", Type: "function", Args: []byte(`{"a":1}`)}}, Terminated: true},
	}, {
		name: "openai chat error mid-stream", api: apiOpenAIChat,
		stream: d(`{"id":"c","choices":[{"index":0,"delta":{"content":"x"}}]}`) + d(`{"error":{"message":"boom","type":"server_error"}}`),
		want:   summary{ResponseID: "c", ErrorType: "server_error"},
	}, {
		name: "anthropic running totals", api: apiAnthropicMessages,
		stream: e("message_start", `{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":10,"cache_read_input_tokens":2,"output_tokens":1}}}`) +
			e("content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"tu","name":"f","input":{}}}`) +
			e("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}`) +
			e("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}`) +
			e("message_delta", `{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}`) +
			e("message_delta", `{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9,"input_tokens":11}}`) +
			e("message_stop", `{"type":"message_stop"}`),
		want: summary{ResponseID: "m", ResponseModel: "c", FinishReasons: []string{"tool_use"}, Usage: usage{Input: i64(13), Output: i64(9), CacheRead: i64(2)},
			ToolCalls: []toolCall{{ID: "tu", Name: "f", Type: "function", Args: []byte(`{"a":1}`)}}, Terminated: true},
	}, {
		name: "anthropic tool without deltas keeps its input", api: apiAnthropicMessages,
		stream: e("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"tu","name":"f","input":{}}}`) +
			e("error", `{"type":"error","error":{"type":"overloaded_error","message":"x"}}`),
		want: summary{ToolCalls: []toolCall{{ID: "tu", Name: "f", Type: "function", Args: []byte(`{}`)}}, ErrorType: "overloaded_error"},
	}, {
		name: "responses", api: apiOpenAIResponses,
		stream: e("response.created", `{"type":"response.created","response":{"id":"r","model":"m","status":"in_progress"}}`) +
			e("response.output_item.done", `{"type":"response.output_item.done","item":{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"}}`) +
			e("response.incomplete", `{"type":"response.incomplete","response":{"id":"r","model":"m","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":1,"output_tokens":2}}}`),
		want: summary{ResponseID: "r", ResponseModel: "m", FinishReasons: []string{"max_output_tokens"}, Usage: usage{Input: i64(1), Output: i64(2)},
			ToolCalls: []toolCall{{ID: "c1", Name: "f", Type: "function", Args: []byte(`{}`)}}, Terminated: true},
	}, {
		name: "responses error event", api: apiOpenAIResponses,
		stream: e("error", `{"type":"error","code":"rate_limit_exceeded","message":"x"}`),
		want:   summary{ErrorType: "rate_limit_exceeded"},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunk := range []int{1 << 20, 1, 7} {
				got := feed(tt.api, tt.stream, chunk)
				if fmt.Sprintf("%+v", deref(got)) != fmt.Sprintf("%+v", deref(tt.want)) {
					t.Errorf("chunk %d:\n got %+v\nwant %+v", chunk, deref(got), deref(tt.want))
				}
			}
		})
	}
}

func TestUpstreamHeader(t *testing.T) {
	in := http.Header{
		"Authorization":       {"Bearer sk-x"},
		"X-Api-Key":           {"k"},
		"X-Audit-Token":       {"lat_x"},
		"X-Audit-Session":     {"s"},
		"Accept-Encoding":     {"gzip, br"},
		"Connection":          {"keep-alive, X-Hop"},
		"X-Hop":               {"1"},
		"Keep-Alive":          {"timeout=5"},
		"Proxy-Authorization": {"Basic x"},
		"Te":                  {"trailers"},
		"Content-Type":        {"application/json"},
		"Anthropic-Version":   {"2023-06-01"},
	}
	got := upstreamHeader(in)
	want := http.Header{"Authorization": {"Bearer sk-x"}, "X-Api-Key": {"k"}, "Content-Type": {"application/json"}, "Anthropic-Version": {"2023-06-01"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if in.Get("X-Audit-Token") == "" {
		t.Error("upstreamHeader modified its input")
	}
}

func TestCredentialAttrs(t *testing.T) {
	key := []byte("k1")
	a := attrs{}
	credentialAttrs(a, key, http.Header{"Authorization": {"Bearer sk-secret"}, "X-Api-Key": {"sk-secret"}, "Cookie": {"a=b"}, "Api-Key": {"x", "y"}})
	if a["capture.credential.authorization"] != a["capture.credential.x-api-key"] {
		t.Error("one key sent two ways must have one fingerprint")
	}
	if a["capture.credential.authorization"] == fingerprint([]byte("k2"), "sk-secret") {
		t.Error("the fingerprint does not depend on the key")
	}
	if got := a["capture.credential.api-key"]; !reflect.DeepEqual(got, []string{fingerprint(key, "x"), fingerprint(key, "y")}) {
		t.Errorf("api-key %v", got)
	}
	for k, v := range a {
		if strings.Contains(fmt.Sprint(v), "secret") || strings.Contains(fmt.Sprint(v), "a=b") {
			t.Errorf("%s records the credential", k)
		}
	}
	if len(a) != 4 {
		t.Errorf("%d attributes: %v", len(a), a)
	}
}

// TestQueryAttr (issue #24, finding 7): url.query keeps the query's shape
// and plain parameter names, never a value, whatever the form of a part.
func TestQueryAttr(t *testing.T) {
	key := []byte("k")
	fp := func(v string) string { f := fingerprint(key, v); return f[:len("hmac-sha256:")+16] }
	for _, tt := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"one", "api-version=2024-06-01", "api-version=" + fp("2024-06-01")},
		{"two", "key=AIza123&alt=sse", "key=" + fp("AIza123") + "&alt=" + fp("sse")},
		{"escaped value", "patient_name=Jane%20Doe", "patient_name=" + fp("Jane Doe")},
		{"bare part", "api_key=X&SECRETVALUE", "api_key=" + fp("X") + "&" + fp("SECRETVALUE")},
		{"bare only", "SECRETVALUE", fp("SECRETVALUE")},
		{"empty value", "a=&b=SECRETVALUE", "a=&b=" + fp("SECRETVALUE")},
		{"no name", "=SECRETVALUE", fp("") + "=" + fp("SECRETVALUE")},
		{"empty parts", "a=1&&b=2&", "a=" + fp("1") + "&&b=" + fp("2") + "&"},
		{"semicolon", "a=1;SECRETVALUE", "a=" + fp("1") + ";" + fp("SECRETVALUE")},
		{"semicolon in a name", "SECRETVALUE;a=1", fp("SECRETVALUE") + ";a=" + fp("1")},
		{"escaped name", "%61pi_key=SECRETVALUE", "api_key=" + fp("SECRETVALUE")},
		{"name that is no name", "SECRET%20VALUE=1", fp("SECRET VALUE") + "=" + fp("1")},
		{"bad escape", "%zzSECRETVALUE&k=%zz", fp("%zzSECRETVALUE") + "&k=" + fp("%zz")},
		{"value with equals", "sig=SECRET=VALUE", "sig=" + fp("SECRET=VALUE")},
		{"name of 32", strings.Repeat("n", 32) + "=1", strings.Repeat("n", 32) + "=" + fp("1")},
		{"name of 33", strings.Repeat("n", 33) + "=1", fp(strings.Repeat("n", 33)) + "=" + fp("1")},
		{"key as a name", "sk-abcSECRETdef=", fp("sk-abcSECRETdef") + "="},
		{"Google key as a name", "AIzaSECRETx=", fp("AIzaSECRETx") + "="},
		{"AWS key id as a name", "AKIASECRET=", fp("AKIASECRET") + "="},
		{"digit run in a name", "SECRET12345678=1", fp("SECRET12345678") + "=" + fp("1")},
		{"token-like name", "a1SECRETb2c3d4e5=", fp("a1SECRETb2c3d4e5") + "="},
		{"plain names kept", "api-version=1&pageToken=2&user_id_1234567=3", "api-version=" + fp("1") + "&pageToken=" + fp("2") + "&user_id_1234567=" + fp("3")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := queryAttr(key, tt.in)
			if got != tt.want {
				t.Errorf("queryAttr(%q) = %q, want %q", tt.in, got, tt.want)
			}
			for _, secret := range []string{"AIza123", "Jane", "2024-06-01", "sse", "SECRET", "VALUE", "X&"} {
				if strings.Contains(got, secret) {
					t.Errorf("queryAttr(%q) = %q keeps %q", tt.in, got, secret)
				}
			}
		})
	}
}

func TestCallGrouping(t *testing.T) {
	tab := newCallTable()
	now := time.Now()
	ref := func(principal, session, explicit, idem string, retry int, body string) callRef {
		return callRef{principal: principal, session: session, explicit: explicit, idem: idem, retry: retry, method: "POST", path: "/v1/x", body: []byte(body)}
	}
	id0, a0, s0 := tab.assign(ref("p", "", "", "", 0, "b"), now)
	id1, a1, s1 := tab.assign(ref("p", "", "", "", 1, "b"), now)
	if id1 != id0 || a0 != 0 || a1 != 1 || s1 != s0 {
		t.Errorf("retry not grouped: %s/%d/%s then %s/%d/%s", id0, a0, s0, id1, a1, s1)
	}
	if id, _, _ := tab.assign(ref("q", "", "", "", 1, "b"), now); id == id0 {
		t.Error("another principal's retry joined the call")
	}
	if id, a, _ := tab.assign(ref("p", "", "", "", 0, "b"), now); id == id0 || a != 0 {
		t.Error("a new first attempt with the same body must start a new call")
	}
	if id, _, _ := tab.assign(ref("p", "", "", "", -1, "b"), now); id == id0 {
		t.Error("without a retry count, identical bodies are separate calls")
	}
	idA, _, _ := tab.assign(ref("p", "s", "", "idem-1", -1, "x"), now)
	idB, aB, sB := tab.assign(ref("p", "s", "", "idem-1", -1, "y"), now)
	if idA != idB || aB != 1 || sB != "s" {
		t.Errorf("Idempotency-Key grouping: %s %s %d", idA, idB, aB)
	}
	idC, _, _ := tab.assign(ref("p", "s", "my-call", "", -1, "x"), now)
	_, aD, _ := tab.assign(ref("p", "s", "my-call", "", 3, "z"), now)
	if idC != "my-call" || aD != 3 {
		t.Errorf("explicit call: %s %d", idC, aD)
	}
	if id, _, _ := tab.assign(ref("p", "", "", "", 1, "b"), now.Add(callTTL+time.Second)); id == id0 {
		t.Error("an expired call was joined")
	}
}

func TestMediaType(t *testing.T) {
	for in, want := range map[string]string{
		"application/json":                     "application/json",
		"Application/JSON; charset=UTF-8":      "application/json; charset=UTF-8",
		"text/event-stream; charset=utf-8":     "text/event-stream; charset=utf-8",
		"multipart/form-data; boundary=abc123": "multipart/form-data; boundary=abc123",
		"":                                     "application/octet-stream",
		"garbage":                              "application/octet-stream",
		"text/plain; name=\"\x01\"":            "text/plain; name*=utf-8''%01",
	} {
		if got := mediaType(in, "application/octet-stream"); got != want {
			t.Errorf("mediaType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCapBuf(t *testing.T) {
	b := capBuf{max: 4}
	b.write([]byte("ab"))
	b.write([]byte("cdef"))
	b.write([]byte("g"))
	if string(b.buf) != "abcd" || b.total != 7 || !b.truncated() {
		t.Fatalf("%q %d %v", b.buf, b.total, b.truncated())
	}
	// The digest covers the whole body.
	full := capBuf{max: 100}
	full.write([]byte("abcdefg"))
	if full.truncated() {
		t.Fatal("truncated")
	}
	if fmt.Sprintf("%x", b.h.Sum(nil)) != "7d1a54127b222502f5b79b5fb0803061152a44f92b37e23c6527baf665d4da9a" {
		t.Errorf("sha256 %x", b.h.Sum(nil))
	}
}

func TestTruncatedBodyRecorded(t *testing.T) {
	rec := &captured{}
	o := defaultOptions(64)
	o.recordLinger = 0
	c, err := newCore("middleware", o)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"model":"m","input":"` + strings.Repeat("a", 100) + `"}`)
	x, err := c.begin(context.Background(), &callSpec{
		rec: rec, scope: "s", principal: "p", actor: event.Actor{Type: "agent", ID: "a"},
		method: "POST", path: "/v1/embeddings", header: http.Header{"Content-Type": {"application/json"}}, body: body,
	})
	if err != nil {
		t.Fatal(err)
	}
	x.response(200, http.Header{"Content-Type": {"application/json"}}, -1)
	x.observe([]byte(strings.Repeat("b", 70)))
	x.finish(endEOF, nil)
	c.bg.wait(context.Background())
	if len(rec.evs) != 2 {
		t.Fatalf("%d events", len(rec.evs))
	}
	sum := sha256.Sum256(body)
	for i, want := range []struct {
		size int
		sha  string
		kept string
	}{{len(body), hex.EncodeToString(sum[:]), string(body[:64])}, {70, "", strings.Repeat("b", 64)}} {
		a := rec.evs[i].Attributes
		kept, _ := base64.StdEncoding.DecodeString(rec.evs[i].PayloadBase64)
		if string(a["capture.body.size"]) != strconv.Itoa(want.size) || string(a["capture.body.truncated"]) != "true" || string(kept) != want.kept {
			t.Errorf("event %d: %s %s, kept %q", i, a["capture.body.size"], a["capture.body.truncated"], kept)
		}
		if want.sha != "" && string(a["capture.body.sha256"]) != `"`+want.sha+`"` {
			t.Errorf("sha256 %s", a["capture.body.sha256"])
		}
	}
	// The response did not parse (it was cut): no usage, and the outcome is
	// still that of the transfer.
	if string(rec.evs[1].Attributes["capture.outcome"]) != `"complete"` {
		t.Errorf("outcome %s", rec.evs[1].Attributes["capture.outcome"])
	}
}

// TestAmbiguousResponse: a response (or stream event) that is ambiguous
// JSON is passed on but nothing is read from it (the client may read it
// otherwise), and it is marked as such.
func TestAmbiguousResponse(t *testing.T) {
	for _, tt := range []struct {
		name, api, body string
	}{
		{"openai case variant", apiOpenAIChat, `{"id":"c1","model":"gpt-4o","Model":"approved-model","choices":[]}`},
		{"openai duplicate", apiOpenAIChat, `{"id":"c1","model":"approved-model","model":"gpt-4o","choices":[]}`},
		{"anthropic nested", apiAnthropicMessages, `{"id":"m1","model":"claude","usage":{"input_tokens":1,"Input_Tokens":999}}`},
		{"gemini", apiGeminiGenerate, `{"modelVersion":"a","modelversion":"b"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := parseBody(tt.api, 200, []byte(tt.body))
			if !s.Ambiguous || s.ResponseModel != "" || s.ResponseID != "" {
				t.Errorf("parseBody = %+v, want ambiguous and nothing read", s)
			}
			p := newRespParser(tt.api)
			p.Write([]byte("data: " + tt.body + "\n\n"))
			if got := p.summary(); !got.Ambiguous || got.ResponseModel != "" || got.Dropped != 1 {
				t.Errorf("stream = %+v, want ambiguous, the event dropped", got)
			}
		})
	}
	if s := parseBody(apiOpenAIChat, 200, []byte(`{"id":"c1","model":"gpt-4o","choices":[]}`)); s.Ambiguous || s.ResponseModel != "gpt-4o" {
		t.Errorf("plain: %+v", s)
	}
}

package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/event"
)

var apis = []string{apiOpenAIChat, apiOpenAIResponses, apiOpenAIEmbeddings, apiOpenAICompletions, apiAnthropicMessages, apiOther}

// Seeds: real-shaped bodies and streams of every API.
var (
	seedBodies = []string{
		`{"id":"c","model":"m","choices":[{"index":0,"message":{"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":0}}}`,
		`{"id":"r","status":"completed","output":[{"type":"function_call","call_id":"c","name":"n","arguments":"{}"}],"usage":{"input_tokens":1,"output_tokens":2}}`,
		`{"id":"m","type":"message","content":[{"type":"tool_use","id":"t","name":"f","input":{"a":[1,2]}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2,"cache_read_input_tokens":3}}`,
		`{"error":{"type":"invalid_request_error","code":"x","message":"m"}}`,
		`{"type":"error","error":{"type":"overloaded_error"}}`,
		`{"model":"e","usage":{"prompt_tokens":"4"}}`,
		``, `null`, `[]`, `{"choices":null}`, "\xff\xfe",
	}
	seedStreams = []string{
		"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\ndata: [DONE]\n\n",
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":2}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":4}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
		"event: response.output_item.done\r\ndata: {\"type\":\"response.output_item.done\",\"item\":{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"n\",\"arguments\":\"{}\"}}\r\n\r\nevent: response.completed\r\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"status\":\"completed\"}}\r\n\r\n",
		"data: {\"error\":{\"type\":\"server_error\"}}\r\r: comment\rdata: x\r\r",
		"data: [DONE]",
	}
)

func FuzzSSEScanner(f *testing.F) {
	for _, s := range seedStreams {
		f.Add([]byte(s), uint16(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		run := func(chunks ...[]byte) ([]string, int) {
			var out []string
			s := newSSEScanner(256, func(e sseEvent) {
				if len(e.Data) > 256 {
					t.Fatalf("event of %d bytes exceeds the limit", len(e.Data))
				}
				out = append(out, e.Type+"\x00"+string(e.Data))
			})
			for _, c := range chunks {
				s.Write(c)
			}
			return out, s.dropped
		}
		i := int(split) % (len(data) + 1)
		a, da := run(data)
		b, db := run(data[:i], data[i:])
		if fmt.Sprint(a) != fmt.Sprint(b) || da != db {
			t.Fatalf("split at %d changes the events:\n%q %d\n%q %d", i, a, da, b, db)
		}
	})
}

func FuzzStreamParser(f *testing.F) {
	for _, s := range seedStreams {
		for i := range apis {
			f.Add([]byte(s), uint8(i), uint16(5))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, api uint8, split uint16) {
		a := apis[int(api)%len(apis)]
		i := int(split) % (len(data) + 1)
		p := newRespParser(a)
		p.Write(data)
		whole := p.summary()
		q := newRespParser(a)
		q.Write(data[:i])
		q.Write(data[i:])
		if fmt.Sprintf("%+v", deref(whole)) != fmt.Sprintf("%+v", deref(q.summary())) {
			t.Fatalf("split at %d changes the summary", i)
		}
		checkSummary(t, whole)
	})
}

func FuzzParseBody(f *testing.F) {
	for _, s := range seedBodies {
		for i := range apis {
			f.Add([]byte(s), uint8(i), uint16(200))
			f.Add([]byte(s), uint8(i), uint16(429))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, api uint8, status uint16) {
		checkSummary(t, parseBody(apis[int(api)%len(apis)], int(status), data))
	})
}

func checkSummary(t *testing.T, s summary) {
	t.Helper()
	if len(s.ToolCalls) > maxToolCalls || len(s.FinishReasons) > maxFinishReasons {
		t.Fatalf("%d tool calls, %d finish reasons", len(s.ToolCalls), len(s.FinishReasons))
	}
	n := 0
	for _, tc := range s.ToolCalls {
		n += len(tc.Args)
	}
	if n > maxToolArgBytes+maxSSEEvent {
		t.Fatalf("%d bytes of tool arguments held", n)
	}
}

// captured is a Recorder that keeps what it is given.
type captured struct{ evs []*event.Request }

func (c *captured) Record(_ context.Context, evs []*event.Request) ([]event.Appended, error) {
	c.evs = append(c.evs, evs...)
	out := make([]event.Appended, len(evs))
	for i := range out {
		out[i] = event.Appended{ID: fmt.Sprint(len(c.evs), i), Index: uint64(i)}
	}
	return out, nil
}

var (
	attrKeyRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.\-]*$`)
	kindRE    = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)
)

// checkEvent applies the log's documented limits on events: whatever an
// upstream or an agent sends, the events built from it must be accepted.
func checkEvent(t *testing.T, ev *event.Request) {
	t.Helper()
	if !event.ValidID(ev.Session) || !event.ValidID(ev.Actor.ID) || !kindRE.MatchString(ev.Kind) {
		t.Fatalf("invalid session, actor or kind: %+v", ev)
	}
	if len(ev.Attributes) > event.MaxAttributes {
		t.Fatalf("%d attributes", len(ev.Attributes))
	}
	total := 0
	for k, raw := range ev.Attributes {
		total += len(k) + len(raw)
		if len(k) > event.MaxAttrKeyLength || !attrKeyRE.MatchString(k) {
			t.Fatalf("attribute name %q", k)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		switch v := v.(type) {
		case string:
			if len(v) > event.MaxAttrValueLength {
				t.Fatalf("%s: %d bytes", k, len(v))
			}
		case []any:
			if len(v) > event.MaxAttrArrayLength {
				t.Fatalf("%s: %d items", k, len(v))
			}
			for _, it := range v {
				switch it.(type) {
				case string, float64, bool:
				default:
					t.Fatalf("%s: item %T", k, it)
				}
			}
		case float64, bool:
		default:
			t.Fatalf("%s: %T", k, v)
		}
	}
	if total > 12<<10 {
		t.Fatalf("attributes take %d bytes: the leaf would be too large", total)
	}
	if ev.PayloadBase64 != "" && !regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+\-]*/[a-z0-9][a-z0-9!#$&^_.+\-]*(;[ -~]*)?$`).MatchString(ev.MediaType) {
		t.Fatalf("media type %q", ev.MediaType)
	}
}

// FuzzExchange runs whole attempts with fuzzed request and response bodies
// and headers, and checks that every event they produce is one the log
// accepts.
func FuzzExchange(f *testing.F) {
	for _, s := range append(seedBodies, seedStreams...) {
		f.Add([]byte(`{"model":"m","stream":true,"max_tokens":5}`), []byte(s), "/v1/chat/completions", "text/event-stream", "application/json", uint8(0))
		f.Add([]byte(`{"model":"`+s+`"}`), []byte(s), "/v1/messages", "application/json; charset=utf-8", "x/y; a=\x01", uint8(1))
	}
	f.Fuzz(func(t *testing.T, reqBody, respBody []byte, path, respCT, reqCT string, how uint8) {
		rec := &captured{}
		o := defaultOptions(64)
		c, err := newCore("proxy", o)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{"Content-Type": {reqCT}, "Authorization": {"Bearer k"}, "User-Agent": {string(respBody)}, "Anthropic-Beta": {path}}
		x, err := c.begin(context.Background(), &callSpec{
			rec: rec, scope: "t", principal: "p", actor: event.Actor{Type: "agent", ID: "a"},
			upstream: "u", provider: "u", server: "h", method: "POST", path: path, rawQuery: string(reqBody),
			header: h, body: reqBody,
		})
		if errors.Is(err, ErrRefused) {
			// Not strict JSON: one llm.refused event, nothing else.
			c.bg.wait(context.Background())
			if len(rec.evs) != 1 || rec.evs[0].Kind != event.KindLLMRefused {
				t.Fatalf("refused: %d events", len(rec.evs))
			}
			checkEvent(t, rec.evs[0])
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		status := 200 + int(how%4)*100
		x.response(status, http.Header{"Content-Type": {respCT}, "X-Request-Id": {string(respBody)}}, -1)
		for len(respBody) > 0 {
			n := min(len(respBody), 1+int(how))
			x.observe(respBody[:n])
			respBody = respBody[n:]
		}
		x.finish(endKind(how%3), nil)
		c.bg.wait(context.Background())
		if len(rec.evs) < 2 {
			t.Fatalf("%d events", len(rec.evs))
		}
		for _, ev := range rec.evs {
			checkEvent(t, ev)
		}
	})
}

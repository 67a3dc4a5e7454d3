package otlp

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/llmaudittrail/llmaudittrail/event"
)

const secret = "the-patient-is-allergic-to-penicillin"

var (
	traceID = pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	t0      = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
)

// span adds a span with attrs (values: string, int, float64, []string).
func span(td ptrace.Traces, id byte, name string, attrs map[string]any) ptrace.Span {
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "triage-agent")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("test")
	sp := ss.Spans().AppendEmpty()
	sp.SetTraceID(traceID)
	sp.SetSpanID(pcommon.SpanID{0, 0, 0, 0, 0, 0, 0, id})
	sp.SetName(name)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(t0))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(1500 * time.Millisecond)))
	for k, v := range attrs {
		switch v := v.(type) {
		case string:
			sp.Attributes().PutStr(k, v)
		case int:
			sp.Attributes().PutInt(k, int64(v))
		case float64:
			sp.Attributes().PutDouble(k, v)
		case []string:
			s := sp.Attributes().PutEmptySlice(k)
			for _, x := range v {
				s.AppendEmpty().SetStr(x)
			}
		}
	}
	return sp
}

func attrsOf(t *testing.T, e Event) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, v := range e.Request.Attributes {
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			t.Fatal(err)
		}
		out[k] = x
	}
	return out
}

// Each convention's content reaches the payload and never the leaf; the
// leaf carries the GenAI attributes; non-GenAI spans are dropped.
func TestTracesMapping(t *testing.T) {
	for _, tc := range []struct {
		name   string
		attrs  map[string]any
		kinds  []string
		leaf   map[string]any
		inPay  []string // in the request's payload
		outPay []string // in the response's payload
	}{
		{name: "semconv latest", attrs: map[string]any{
			"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
			"gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.response.id": "chatcmpl-1", "gen_ai.response.finish_reasons": []string{"stop"},
			"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 7, "gen_ai.request.temperature": 0.2,
			"gen_ai.conversation.id": "case-4711", "gen_ai.agent.id": "triage-bot",
			"gen_ai.input.messages":      `[{"role":"user","parts":[{"type":"text","content":"` + secret + `"}]}]`,
			"gen_ai.system_instructions": `[{"type":"text","content":"be careful ` + secret + `"}]`,
			"gen_ai.output.messages":     `[{"role":"assistant","parts":[{"type":"text","content":"noted ` + secret + `"}]}]`,
			"user.email":                 secret + "@example.org",
		}, kinds: []string{"llm.request", "llm.response"},
			leaf: map[string]any{"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.provider.name": "openai",
				"gen_ai.usage.input_tokens": 12.0, "gen_ai.response.finish_reasons": []any{"stop"}, "otel.duration_ms": 1500.0,
				"gen_ai.conversation.id": "case-4711", "gen_ai.agent.id": "triage-bot", "otel.trace_id": traceID.String()},
			inPay: []string{`"gen_ai.input.messages":[{"role":"user"`, `"gen_ai.system_instructions"`, `"user.email"`}, outPay: []string{`"gen_ai.output.messages":[{"role":"assistant"`}},
		{name: "older prompt and completion attributes", attrs: map[string]any{
			"gen_ai.system": "openai", "gen_ai.request.model": "gpt-3.5-turbo", "llm.request.type": "chat",
			"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": secret, "gen_ai.prompt.1.role": "assistant", "gen_ai.prompt.1.content": "x",
			"gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "ok " + secret,
			"gen_ai.usage.prompt_tokens": 3, "gen_ai.usage.completion_tokens": 4,
		}, kinds: []string{"llm.request", "llm.response"},
			leaf:  map[string]any{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 3.0, "gen_ai.usage.output_tokens": 4.0},
			inPay: []string{`"gen_ai.prompt":[{"content":"` + secret + `","role":"user"},{"content":"x","role":"assistant"}]`}, outPay: []string{`"gen_ai.completion":[{"content":"ok ` + secret}},
		{name: "openinference", attrs: map[string]any{
			"openinference.span.kind": "LLM", "llm.model_name": "claude-sonnet-4", "llm.provider": "anthropic",
			"llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": secret,
			"llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "fine " + secret,
			"input.value": `{"q":"` + secret + `"}`, "output.value": "fine", "llm.token_count.prompt": 5, "llm.token_count.completion": 6, "session.id": "chat 42",
		}, kinds: []string{"llm.request", "llm.response"},
			leaf:  map[string]any{"gen_ai.request.model": "claude-sonnet-4", "gen_ai.provider.name": "anthropic", "gen_ai.usage.output_tokens": 6.0},
			inPay: []string{`"llm.input_messages":[{"content":"` + secret + `","role":"user"}]`, `"input.value":{"q":"`}, outPay: []string{`"llm.output_messages":[{"content":"fine`, `"output.value":"fine"`}},
		{name: "tool", attrs: map[string]any{
			"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "dose_check", "gen_ai.tool.call.id": "call_1",
			"gen_ai.tool.call.arguments": `{"patient":"` + secret + `"}`, "gen_ai.tool.call.result": `{"ok":"` + secret + `"}`,
		}, kinds: []string{"tool.call", "tool.result"},
			leaf:  map[string]any{"gen_ai.tool.name": "dose_check", "gen_ai.tool.call.id": "call_1", "gen_ai.operation.name": "execute_tool"},
			inPay: []string{`"gen_ai.tool.call.arguments":{"patient"`}, outPay: []string{`"gen_ai.tool.call.result":{"ok"`}},
		{name: "http server span", attrs: map[string]any{"http.request.method": "GET", "url.path": "/" + secret}},
		{name: "operation not known", attrs: map[string]any{"gen_ai.operation.name": "invoke_workflow", "gen_ai.agent.id": "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td := ptrace.NewTraces()
			span(td, 1, tc.name, tc.attrs)
			r := Traces("clinic-a", td)
			if len(tc.kinds) == 0 {
				if len(r.Events) != 0 || r.Dropped != 1 || r.Mapped != 0 {
					t.Fatalf("got %d events, dropped %d; want it dropped", len(r.Events), r.Dropped)
				}
				return
			}
			if r.Mapped != 1 || r.Rejected != 0 || len(r.Events) != 2 {
				t.Fatalf("mapped %d rejected %d (%v), %d events", r.Mapped, r.Rejected, r.Reasons, len(r.Events))
			}
			leaf := map[string]any{}
			for i, e := range r.Events {
				if _, err := event.Prepare(e.Request); err != nil {
					t.Errorf("%s: the engine refuses it: %v", e.Request.Kind, err)
				}
				if e.Request.Kind != tc.kinds[i] {
					t.Errorf("event %d is %s, want %s", i, e.Request.Kind, tc.kinds[i])
				}
				b, _ := json.Marshal(e.Request.Attributes)
				if bytes.Contains(b, []byte(secret)) || strings.Contains(e.Request.Session, secret) || strings.Contains(e.Request.Actor.ID, secret) {
					t.Errorf("%s: content in the leaf: %s", e.Request.Kind, b)
				}
				for k, v := range attrsOf(t, e) {
					leaf[k] = v
				}
			}
			for k, want := range tc.leaf {
				if got, _ := json.Marshal(leaf[k]); string(got) != string(must(json.Marshal(want))) {
					t.Errorf("leaf %s = %s, want %v", k, got, want)
				}
			}
			for i, wants := range [][]string{tc.inPay, tc.outPay} {
				for _, w := range wants {
					if !bytes.Contains(r.Events[i].Request.Payload, []byte(w)) {
						t.Errorf("%s payload lacks %s: %s", r.Events[i].Request.Kind, w, r.Events[i].Request.Payload)
					}
				}
			}
			// Ids: derived, stable, distinct per kind and tenant.
			again := Traces("clinic-a", td)
			other := Traces("clinic-b", td)
			if again.Events[0].ID != r.Events[0].ID || r.Events[0].ID == r.Events[1].ID || other.Events[0].ID == r.Events[0].ID {
				t.Errorf("ids %s %s, again %s, other tenant %s", r.Events[0].ID, r.Events[1].ID, again.Events[0].ID, other.Events[0].ID)
			}
			if !strings.HasPrefix(r.Events[0].ID, fmt.Sprintf("%012x", t0.UnixMilli())) {
				t.Errorf("id %s does not begin with the span's time", r.Events[0].ID)
			}
		})
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// Session and agent: from the span's own attributes, else the trace id and
// the service; a conversation id that is no valid id becomes its digest.
func TestSessionAndActor(t *testing.T) {
	td := ptrace.NewTraces()
	span(td, 1, "a", map[string]any{"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"})
	span(td, 2, "b", map[string]any{"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "Jane Doe's chat", "gen_ai.agent.id": "bot-1"})
	r := Traces("t", td)
	if len(r.Events) != 4 {
		t.Fatalf("%d events", len(r.Events))
	}
	if e := r.Events[0].Request; e.Session != traceID.String() || e.Actor.ID != "triage-agent" {
		t.Errorf("session %s actor %s", e.Session, e.Actor.ID)
	}
	if e := r.Events[2].Request; !strings.HasPrefix(e.Session, "conv-") || len(e.Session) != 37 || e.Actor.ID != "bot-1" || e.Attributes["gen_ai.conversation.id"] != nil {
		t.Errorf("session %s actor %s, conversation attribute %s", e.Session, e.Actor.ID, e.Attributes["gen_ai.conversation.id"])
	}
}

// A GenAI span that cannot be recorded is rejected alone.
func TestRejected(t *testing.T) {
	td := ptrace.NewTraces()
	span(td, 1, "ok", map[string]any{"gen_ai.operation.name": "chat"})
	span(td, 2, "reserved", map[string]any{"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "holds"})
	span(td, 0, "no span id", map[string]any{"gen_ai.operation.name": "chat"})
	r := Traces("t", td)
	if r.Mapped != 1 || r.Rejected != 2 || len(r.Events) != 2 || len(r.Reasons) != 2 {
		t.Fatalf("mapped %d rejected %d %q, %d events", r.Mapped, r.Rejected, r.Reasons, len(r.Events))
	}
}

// GenAI log records of one span become one llm.content event; others are
// dropped.
func TestLogsMapping(t *testing.T) {
	ld := plog.NewLogs()
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	add := func(name, body string, sp byte) {
		lr := sl.LogRecords().AppendEmpty()
		lr.Attributes().PutStr("event.name", name)
		lr.Attributes().PutStr("gen_ai.system", "openai")
		lr.Body().SetEmptyMap().PutStr("content", body)
		lr.SetTimestamp(pcommon.NewTimestampFromTime(t0))
		if sp != 0 {
			lr.SetTraceID(traceID)
			lr.SetSpanID(pcommon.SpanID{0, 0, 0, 0, 0, 0, 0, sp})
		}
	}
	add("gen_ai.user.message", secret, 1)
	add("gen_ai.choice", "noted", 1)
	add("app.log", "hello", 1)
	add("gen_ai.user.message", "other span", 2)
	add("gen_ai.user.message", "no span", 0)
	r := Logs("t", ld)
	if r.Mapped != 3 || r.Dropped != 1 || r.Rejected != 1 || len(r.Events) != 2 {
		t.Fatalf("mapped %d dropped %d rejected %d, %d events", r.Mapped, r.Dropped, r.Rejected, len(r.Events))
	}
	e := r.Events[0].Request
	b, _ := json.Marshal(e.Attributes)
	if e.Kind != event.KindLLMContent || e.Session != traceID.String() || bytes.Contains(b, []byte(secret)) || !bytes.Contains(e.Payload, []byte(secret)) ||
		!strings.Contains(string(b), `"otel.event_names":["gen_ai.user.message","gen_ai.choice"]`) {
		t.Fatalf("event %s in %s, attributes %s, payload %s", e.Kind, e.Session, b, e.Payload)
	}
	if again := Logs("t", ld); again.Events[0].ID != r.Events[0].ID {
		t.Fatal("the same records map to another id")
	}
}

// Bodies: the two encodings, gzip, and the limits.
func TestReadAndDecode(t *testing.T) {
	td := ptrace.NewTraces()
	span(td, 1, "chat", map[string]any{"gen_ai.operation.name": "chat"})
	req := ptraceotlp.NewExportRequestFromTraces(td)
	pb, _ := req.MarshalProto()
	js, _ := req.MarshalJSON()
	for _, c := range []struct {
		body []byte
		enc  Encoding
	}{{pb, Proto}, {js, JSON}} {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(c.body)
		zw.Close()
		b, err := ReadBody(&z, "gzip", 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeTraces(b, c.enc)
		if err != nil || got.SpanCount() != 1 {
			t.Fatalf("decode %v: %d spans, %v", c.enc, got.SpanCount(), err)
		}
		if _, err := DecodeTraces(c.body[:len(c.body)/2], c.enc); !errors.Is(err, ErrMalformed) {
			t.Errorf("half a body: %v", err)
		}
	}
	// A small gzip body that expands beyond the limit.
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	if _, err := ReadBody(bytes.NewReader(z.Bytes()), "gzip", 1<<16); !errors.Is(err, ErrTooLarge) {
		t.Errorf("gzip bomb: %v", err)
	}
	if _, err := ReadBody(strings.NewReader("not gzip"), "gzip", 1<<16); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad gzip: %v", err)
	}
	if _, err := ReadBody(strings.NewReader("x"), "br", 1<<16); !errors.Is(err, ErrContentEncoding) {
		t.Errorf("br: %v", err)
	}
	for ct, ok := range map[string]bool{"application/x-protobuf": true, "application/json; charset=utf-8": true, "text/plain": false, "": false} {
		if _, err := RequestEncoding(ct); (err == nil) != ok {
			t.Errorf("Content-Type %q: %v", ct, err)
		}
	}
}

func FuzzTraces(f *testing.F) {
	td := ptrace.NewTraces()
	span(td, 1, "chat", map[string]any{"gen_ai.operation.name": "chat", "gen_ai.prompt.0.content": "x", "llm.input_messages.x.y": "z"})
	pb, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	f.Add(pb)
	f.Fuzz(func(t *testing.T, b []byte) {
		td, err := DecodeTraces(b, Proto)
		if err != nil {
			return
		}
		r := Traces("t", td)
		for _, e := range r.Events {
			if len(e.ID) != 32 {
				t.Fatalf("id %q", e.ID)
			}
			if _, err := event.Prepare(e.Request); err != nil {
				t.Fatalf("a mapped event the engine refuses: %v", err)
			}
		}
	})
}

// The leaf's bounds hold for the largest values a span may send: every
// allowlisted attribute at its longest still makes an event the engine
// takes, with a leaf under the size limit.
func TestLeafBounds(t *testing.T) {
	long := strings.Repeat("x", 10000)
	attrs := map[string]any{"gen_ai.operation.name": "chat", "gen_ai.conversation.id": long, "gen_ai.agent.id": long}
	for _, list := range [][]leafAttr{commonAttrs, requestAttrs, responseAttrs, toolAttrs} {
		for _, la := range list {
			switch la.kind {
			case 's':
				attrs[la.key] = long
			case 'n':
				attrs[la.key] = 1e300
			case 'a':
				var l []string
				for range 100 {
					l = append(l, long)
				}
				attrs[la.key] = l
			}
		}
	}
	td := ptrace.NewTraces()
	span(td, 1, long, attrs)
	r := Traces(long[:128], td)
	if len(r.Events) != 2 {
		t.Fatalf("%d events, rejected %v", len(r.Events), r.Reasons)
	}
	for _, e := range r.Events {
		p, err := event.Prepare(e.Request)
		if err != nil {
			t.Fatal(err)
		}
		l := event.Leaf{V: event.LeafVersion, ID: e.ID, Kind: e.Request.Kind, Time: event.TimeFormat, Tenant: long[:128], Session: e.Request.Session,
			Seq: 1 << 62, Prev: strings.Repeat("0", 64), Actor: e.Request.Actor, Writer: &event.Writer{Token: long[:64], Via: event.ViaOTLP},
			Attributes: p.Attributes, Payload: &event.Commitment{Alg: event.CommitmentAlg, Digest: strings.Repeat("0", 64), Size: 1 << 30, MediaType: "application/json"}}
		b, err := l.Marshal()
		if err != nil || len(b) > event.MaxLeafSize/2 {
			t.Errorf("%s leaf of %d bytes (limit %d), %v", e.Request.Kind, len(b), event.MaxLeafSize, err)
		}
	}
}

func FuzzLogsJSON(f *testing.F) {
	ld := plog.NewLogs()
	lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetEventName("gen_ai.user.message")
	lr.SetTraceID(traceID)
	lr.Body().SetEmptyMap().PutStr("content", "x")
	js, _ := plogotlp.NewExportRequestFromLogs(ld).MarshalJSON()
	f.Add(js)
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"0102030405060708090a0b0c0d0e0f10","attributes":[{"key":"event.name","value":{"stringValue":"gen_ai.choice"}}],"body":{"stringValue":"[1,2]"}}]}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ld, err := DecodeLogs(b, JSON)
		if err != nil {
			return
		}
		for _, e := range Logs("t", ld).Events {
			if _, err := event.Prepare(e.Request); err != nil || len(e.ID) != 32 {
				t.Fatalf("a mapped event the engine refuses: %v (id %q)", err, e.ID)
			}
		}
	})
}

// Agent spans become one event each: agent.invoke (invoke_agent,
// OpenInference AGENT) or agent.create (create_agent), the agent's name
// and id and the span's outcome in the leaf, what it was asked and
// answered in the payload.
func TestAgentSpans(t *testing.T) {
	for _, tc := range []struct {
		name  string
		attrs map[string]any
		fail  bool
		kind  string
		leaf  map[string]any
	}{
		{name: "invoke_agent", attrs: map[string]any{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Refill checker",
			"gen_ai.agent.id": "refill-bot", "gen_ai.conversation.id": "case-9", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
			"gen_ai.input.messages":     `[{"role":"user","parts":[{"type":"text","content":"` + secret + `"}]}]`,
			"gen_ai.output.messages":    `[{"role":"assistant","parts":[{"type":"text","content":"ok ` + secret + `"}]}]`,
			"gen_ai.usage.input_tokens": 300},
			kind: "agent.invoke", leaf: map[string]any{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Refill checker",
				"gen_ai.agent.id": "refill-bot", "gen_ai.conversation.id": "case-9", "gen_ai.request.model": "gpt-4o", "otel.duration_ms": 1500.0}},
		{name: "create_agent", attrs: map[string]any{"gen_ai.operation.name": "create_agent", "gen_ai.agent.name": "Refill checker",
			"gen_ai.agent.description": "checks " + secret, "gen_ai.system_instructions": `[{"type":"text","content":"` + secret + `"}]`},
			kind: "agent.create", leaf: map[string]any{"gen_ai.operation.name": "create_agent", "gen_ai.agent.name": "Refill checker"}},
		{name: "openinference agent, failed", attrs: map[string]any{"openinference.span.kind": "AGENT", "input.value": secret}, fail: true,
			kind: "agent.invoke", leaf: map[string]any{"gen_ai.operation.name": "invoke_agent", "otel.status_code": "ERROR", "error.type": "_OTHER"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td := ptrace.NewTraces()
			sp := span(td, 1, tc.name, tc.attrs)
			if tc.fail {
				sp.Status().SetCode(ptrace.StatusCodeError)
			}
			r := Traces("clinic-a", td)
			if r.Mapped != 1 || len(r.Events) != 1 || len(r.Calls) != 0 {
				t.Fatalf("mapped %d, %d events, %d calls; want one event", r.Mapped, len(r.Events), len(r.Calls))
			}
			e := r.Events[0]
			if _, err := event.Prepare(e.Request); err != nil {
				t.Errorf("the engine refuses it: %v", err)
			}
			if e.Request.Kind != tc.kind {
				t.Errorf("kind %s, want %s", e.Request.Kind, tc.kind)
			}
			got := attrsOf(t, e)
			for k, want := range tc.leaf {
				if fmt.Sprint(got[k]) != fmt.Sprint(want) {
					t.Errorf("%s = %v, want %v", k, got[k], want)
				}
			}
			for _, k := range []string{"gen_ai.usage.input_tokens", "gen_ai.agent.description"} {
				if _, ok := got[k]; ok {
					t.Errorf("%s in the leaf", k)
				}
			}
			raw, _ := json.Marshal(e.Request.Attributes)
			if strings.Contains(string(raw), secret) {
				t.Errorf("content in the leaf: %s", raw)
			}
			if !strings.Contains(string(e.Request.Payload), secret) {
				t.Errorf("the payload lacks the content: %s", e.Request.Payload)
			}
			if e.ID != EventID("clinic-a", traceID, sp.SpanID(), tc.kind, nil, t0) {
				t.Errorf("id %s is not derived from the span", e.ID)
			}
		})
	}
}

// An inference span notes its children in the export (the HTTP client
// span under it); Link makes its pair one llm.span that names the
// capture's llm.request; other spans keep their events.
func TestLink(t *testing.T) {
	td := ptrace.NewTraces()
	chat := span(td, 1, "chat gpt-4o", map[string]any{"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
		"gen_ai.usage.output_tokens": 6, "gen_ai.input.messages": secret})
	httpSpan := span(td, 2, "POST", map[string]any{"http.request.method": "POST"})
	httpSpan.SetParentSpanID(chat.SpanID())
	span(td, 3, "execute_tool x", map[string]any{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "x"})
	r := Traces("clinic-a", td)
	if len(r.Calls) != 1 || r.Calls[0].SpanID != chat.SpanID().String() || fmt.Sprint(r.Calls[0].Children) != "["+httpSpan.SpanID().String()+"]" {
		t.Fatalf("calls %+v", r.Calls)
	}
	if len(r.Parents) != 1 || r.Parents[0] != (SpanParent{traceID.String(), httpSpan.SpanID().String(), chat.SpanID().String()}) {
		t.Fatalf("parents %+v", r.Parents)
	}
	if len(r.Events) != 4 {
		t.Fatalf("%d events before the link", len(r.Events))
	}
	if err := r.Link(0, CaptureRef{Index: 41, ID: "0123456789abcdef0123456789abcdef"}); err != nil {
		t.Fatal(err)
	}
	r.Compact()
	var kinds []string
	for _, e := range r.Events {
		kinds = append(kinds, e.Request.Kind)
	}
	if strings.Join(kinds, ",") != "llm.span,tool.call,tool.result" || r.Linked != 1 {
		t.Fatalf("kinds %v, linked %d", kinds, r.Linked)
	}
	e := r.Events[0]
	if _, err := event.Prepare(e.Request); err != nil {
		t.Errorf("the engine refuses it: %v", err)
	}
	a := attrsOf(t, e)
	if a["capture.index"] != 41.0 || a["capture.event.id"] != "0123456789abcdef0123456789abcdef" || a["gen_ai.request.model"] != "gpt-4o" ||
		a["gen_ai.usage.output_tokens"] != 6.0 || a["otel.span_id"] != chat.SpanID().String() {
		t.Errorf("llm.span attributes %v", a)
	}
	if !strings.Contains(string(e.Request.Payload), `"request":{`) || !strings.Contains(string(e.Request.Payload), secret) {
		t.Errorf("llm.span payload %s", e.Request.Payload)
	}
	if e.ID != EventID("clinic-a", traceID, chat.SpanID(), SpanKind, nil, t0) {
		t.Errorf("id %s is not derived from the span", e.ID)
	}
}

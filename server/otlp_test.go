package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
)

const otlpSecret = "warfarin-5mg-for-jane-doe"

// leavesOfPage returns the leaves and payloads of a session page
// (GET /v1/sessions/{id}), in order.
func (s *testServer) leavesOfPage(t *testing.T, body []byte) ([]*event.Leaf, []string) {
	t.Helper()
	s.size(t)
	var page api.SessionPage
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	var leaves []*event.Leaf
	var payloads []string
	for _, e := range page.Events {
		code, body, _ := s.do(t, "GET", fmt.Sprintf("/v1/events/%d/payload", e.Index), s.admin, nil)
		if code != http.StatusOK {
			t.Fatalf("payload of %d = %d %s", e.Index, code, body)
		}
		var p api.PayloadResponse
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		leaf, err := s.srv.Log().ReadLeaf(context.Background(), e.Index, s.size(t))
		if err != nil {
			t.Fatal(err)
		}
		l, err := event.ParseLeaf(leaf)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, l)
		payloads = append(payloads, string(p.Payload))
	}
	return leaves, payloads
}

// The Go OpenTelemetry SDK's OTLP/HTTP exporter (gzip, the token in
// OTEL_EXPORTER_OTLP_HEADERS) as the client: an agent's GenAI spans become
// llm.request/llm.response and tool.call/tool.result events written via
// otlp, the content only in the payloads; other spans are dropped; the
// same spans exported again append nothing; a span that cannot be
// recorded comes back as a partial success.
func TestOTLPGoSDK(t *testing.T) {
	s := newTestServer(t, nil)
	tok, p := s.token(t, auth.Spec{Name: "agent-otel", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}})
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20"+tok)
	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(s.ts.URL+OTLPTracesPath),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression), otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(ctx)
	var mu sync.Mutex
	var handled []error
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { mu.Lock(); handled = append(handled, err); mu.Unlock() }))
	defer otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))

	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(mem),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "triage-agent"))))
	tr := tp.Tracer("agent")
	actx, agent := tr.Start(ctx, "invoke_agent triage", trace.WithAttributes(attribute.String("gen_ai.operation.name", "invoke_agent")))
	_, chat := tr.Start(actx, "chat gpt-4o", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.provider.name", "openai"),
		attribute.String("gen_ai.request.model", "gpt-4o"), attribute.Float64("gen_ai.request.temperature", 0),
		attribute.String("gen_ai.input.messages", `[{"role":"user","parts":[{"type":"text","content":"Is `+otlpSecret+` right?"}]}]`)))
	chat.SetAttributes(attribute.String("gen_ai.response.model", "gpt-4o-2024-08-06"), attribute.String("gen_ai.response.id", "chatcmpl-9"),
		attribute.StringSlice("gen_ai.response.finish_reasons", []string{"tool_calls"}),
		attribute.Int("gen_ai.usage.input_tokens", 31), attribute.Int("gen_ai.usage.output_tokens", 12),
		attribute.String("gen_ai.output.messages", `[{"role":"assistant","parts":[{"type":"tool_call","id":"call_1","name":"dose_check","arguments":{"q":"`+otlpSecret+`"}}]}]`))
	chat.End()
	_, tool := tr.Start(actx, "execute_tool dose_check", trace.WithAttributes(attribute.String("gen_ai.operation.name", "execute_tool"),
		attribute.String("gen_ai.tool.name", "dose_check"), attribute.String("gen_ai.tool.call.id", "call_1"),
		attribute.String("gen_ai.tool.call.arguments", `{"q":"`+otlpSecret+`"}`)))
	tool.RecordError(errors.New("dose service down"))
	tool.SetStatus(codes.Error, "dose service down")
	tool.End()
	_, web := tr.Start(actx, "GET /health", trace.WithAttributes(attribute.String("http.request.method", "GET")))
	web.End()
	agent.End()
	spans := mem.GetSpans().Snapshots()
	if len(spans) != 4 {
		t.Fatalf("%d spans", len(spans))
	}
	before := s.size(t)
	if err := exp.ExportSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	after := s.size(t)
	if after-before != 5 {
		t.Fatalf("%d entries appended, want 5", after-before)
	}
	// The exporter retries (its answer was lost): nothing more.
	if err := exp.ExportSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	if n := s.size(t); n != after {
		t.Fatalf("a second export appended %d entries", n-after)
	}

	session := chat.SpanContext().TraceID().String()
	leaves, payloads := s.sessionLeavesOf(t, "clinic-a", session)
	var kinds []string
	for i, l := range leaves {
		kinds = append(kinds, l.Kind)
		raw, _ := l.Marshal()
		if strings.Contains(string(raw), otlpSecret) {
			t.Errorf("content in the leaf: %s", raw)
		}
		if l.Writer.Via != event.ViaOTLP || l.Writer.Token != p.ID || l.Tenant != "clinic-a" || l.Actor.ID != "triage-agent" {
			t.Errorf("leaf %d: writer %+v, tenant %s, actor %+v", i, l.Writer, l.Tenant, l.Actor)
		}
		if l.Attributes.String("otel.trace_id") != session || l.Attributes.String("otel.span_id") == "" {
			t.Errorf("leaf %d lacks the trace and span ids: %v", i, l.Attributes)
		}
	}
	if strings.Join(kinds, ",") != "llm.request,llm.response,tool.call,tool.result,agent.invoke" {
		t.Fatalf("kinds %v", kinds)
	}
	resp := leaves[1].Attributes
	if resp.String("gen_ai.response.model") != "gpt-4o-2024-08-06" || resp.Number("gen_ai.usage.input_tokens") != 31 ||
		resp.Strings("gen_ai.response.finish_reasons")[0] != "tool_calls" || resp.String("gen_ai.response.id") != "chatcmpl-9" {
		t.Errorf("llm.response attributes %v", resp)
	}
	if leaves[0].Attributes.String("gen_ai.request.model") != "gpt-4o" || leaves[0].Attributes.String("gen_ai.provider.name") != "openai" {
		t.Errorf("llm.request attributes %v", leaves[0].Attributes)
	}
	if r := leaves[3].Attributes; r.String("error.type") != "*errors.errorString" || r.String("otel.status_code") != "ERROR" {
		t.Errorf("tool.result attributes %v", r)
	}
	// The agent span: one agent.invoke, from its start to its end.
	if a := leaves[4].Attributes; a.String("gen_ai.operation.name") != "invoke_agent" || a.String("otel.span_id") != agent.SpanContext().SpanID().String() ||
		a.Number("otel.duration_ms") < 0 || a.String("otel.parent_span_id") != "" {
		t.Errorf("agent.invoke attributes %v", a)
	}
	for i, want := range []string{`"gen_ai.input.messages":[{"role":"user","parts"`, `"gen_ai.output.messages":[{"role":"assistant","parts"`, `"gen_ai.tool.call.arguments":{"q":"` + otlpSecret, `"exception.message":"dose service down"`} {
		if !strings.Contains(payloads[i], want) {
			t.Errorf("payload of %s lacks %s: %s", kinds[i], want, payloads[i])
		}
	}
	// Event ids are found by id (GET /v1/events/{id}).
	code, body, _ := s.do(t, "GET", "/v1/events/"+leaves[0].ID, tok, nil)
	if code != http.StatusForbidden { // a write token does not read
		t.Errorf("GET /v1/events/{id} with the write token = %d %s", code, body)
	}

	// A GenAI span in a session of the server's own: rejected alone,
	// answered as a partial success.
	mem.Reset()
	_, bad := tr.Start(ctx, "chat x", trace.WithAttributes(attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.conversation.id", "holds")))
	bad.End()
	_, good := tr.Start(ctx, "chat y", trace.WithAttributes(attribute.String("gen_ai.operation.name", "chat")))
	good.End()
	spans = append(spans[:0], mem.GetSpans().Snapshots()...)
	after = s.size(t)
	// The SDK reports a partial success as the export's error (and to
	// otel's error handler in other versions).
	err = exp.ExportSpans(ctx, spans)
	mu.Lock()
	defer mu.Unlock()
	if err == nil && len(handled) == 1 {
		err = handled[0]
	}
	if err == nil || !strings.Contains(err.Error(), "partial success: 1 of the spans not recorded") || !strings.Contains(err.Error(), "reserved session") {
		t.Errorf("partial success seen by the SDK: %v", err)
	}
	if n := s.size(t); n != after+2 {
		t.Errorf("%d entries after the partial export, want %d", n, after+2)
	}
}

// otlpBody is an export request of one chat span, in enc.
func otlpBody(t *testing.T, json bool, spanID byte) []byte {
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9})
	sp.SetSpanID(pcommon.SpanID{1, 1, 1, 1, 1, 1, 1, spanID})
	sp.SetName("chat m")
	sp.Attributes().PutStr("gen_ai.operation.name", "chat")
	sp.Attributes().PutStr("gen_ai.input.messages", otlpSecret)
	req := ptraceotlp.NewExportRequestFromTraces(td)
	var b []byte
	var err error
	if json {
		b, err = req.MarshalJSON()
	} else {
		b, err = req.MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (s *testServer) otlpPost(t *testing.T, path, token, contentType, encoding string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.ts.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes(), resp.Header
}

// Refusals have the OTLP form (a google.rpc.Status in the request's
// encoding) and append nothing: no token, a read-only token, a malformed or
// oversized body (also once decompressed), an unknown media type. A JSON
// export is answered in JSON.
func TestOTLPRefusals(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.MaxBodyBytes = 4096 })
	write, _ := s.token(t, auth.Spec{Name: "w", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}})
	read, _ := s.token(t, auth.Spec{Name: "r", Tenant: "clinic-a", Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	before := s.size(t)
	var bomb bytes.Buffer
	{
		zw := gzip.NewWriter(&bomb)
		zw.Write(bytes.Repeat([]byte{0}, 1<<20))
		zw.Close()
	}
	pb, js := otlpBody(t, false, 1), otlpBody(t, true, 1)
	for _, c := range []struct {
		name, path, token, ct, ce string
		body                      []byte
		status                    int
		code                      int32
	}{
		{"no token", OTLPTracesPath, "", "application/x-protobuf", "", pb, 401, 16},
		{"unknown token", OTLPTracesPath, "nope", "application/json", "", js, 401, 16},
		{"read-only token", OTLPTracesPath, read, "application/x-protobuf", "", pb, 403, 7},
		{"read-only token, logs", OTLPLogsPath, read, "application/json", "", []byte(`{}`), 403, 7},
		{"malformed protobuf", OTLPTracesPath, write, "application/x-protobuf", "", []byte{0x0a, 0xff, 0xff, 0x01}, 400, 3},
		{"malformed JSON", OTLPTracesPath, write, "application/json", "", []byte(`{"resourceSpans":[{`), 400, 3},
		{"malformed gzip", OTLPTracesPath, write, "application/x-protobuf", "gzip", pb, 400, 3},
		{"oversized", OTLPTracesPath, write, "application/x-protobuf", "", bytes.Repeat(pb, 4096/len(pb)+1), 413, 8},
		{"oversized once decompressed", OTLPTracesPath, write, "application/json", "gzip", bomb.Bytes(), 413, 8},
		{"unknown media type", OTLPTracesPath, write, "text/plain", "", pb, 415, 3},
		{"unknown encoding", OTLPTracesPath, write, "application/x-protobuf", "br", pb, 415, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body, h := s.otlpPost(t, c.path, c.token, c.ct, c.ce, c.body)
			if status != c.status {
				t.Fatalf("%d %q, want %d", status, body, c.status)
			}
			st := &statusT{}
			if h.Get("Content-Type") == "application/json" {
				if c.ct != "application/json" {
					t.Errorf("answered in JSON to %s", c.ct)
				}
				if err := protojson.Unmarshal(body, st); err != nil {
					t.Fatalf("JSON status %q: %v", body, err)
				}
			} else if err := proto.Unmarshal(body, st); err != nil {
				t.Fatalf("protobuf status %q: %v", body, err)
			}
			if st.Code != c.code || st.Message == "" {
				t.Errorf("status %d %q, want code %d", st.Code, st.Message, c.code)
			}
		})
	}
	if n := s.size(t); n != before {
		t.Fatalf("refused exports appended %d entries", n-before)
	}
	// The same span in JSON: answered in JSON, appended once however it
	// comes.
	for _, c := range []struct {
		ct   string
		body []byte
	}{{"application/json", js}, {"application/x-protobuf", pb}, {"application/json", js}} {
		status, body, h := s.otlpPost(t, OTLPTracesPath, write, c.ct, "", c.body)
		if status != 200 || h.Get("Content-Type") != c.ct {
			t.Fatalf("%s: %d %s %q", c.ct, status, h.Get("Content-Type"), body)
		}
		resp := ptraceotlp.NewExportResponse()
		if c.ct == "application/json" {
			if err := resp.UnmarshalJSON(body); err != nil || resp.PartialSuccess().RejectedSpans() != 0 {
				t.Fatalf("answer %q: %v", body, err)
			}
		} else if err := resp.UnmarshalProto(body); err != nil {
			t.Fatalf("answer %q: %v", body, err)
		}
	}
	if n := s.size(t); n != before+2 {
		t.Fatalf("%d entries appended, want 2", n-before)
	}
}

type statusT = status.Status

// GenAI log records (the messages the older conventions emit as events)
// become llm.content events in the span's session, once.
func TestOTLPLogs(t *testing.T) {
	s := newTestServer(t, nil)
	tok, _ := s.token(t, auth.Spec{Name: "w", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}})
	ld := plog.NewLogs()
	sl := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	trace := pcommon.TraceID{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}
	for _, name := range []string{"gen_ai.user.message", "gen_ai.choice", "http.access"} {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetEventName(name)
		lr.SetTraceID(trace)
		lr.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
		lr.Body().SetEmptyMap().PutStr("content", otlpSecret)
	}
	body, _ := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	before := s.size(t)
	for range 2 {
		status, resp, _ := s.otlpPost(t, OTLPLogsPath, tok, "application/x-protobuf", "", body)
		if status != 200 {
			t.Fatalf("%d %q", status, resp)
		}
	}
	if n := s.size(t); n != before+1 {
		t.Fatalf("%d entries, want 1", n-before)
	}
	leaves, payloads := s.sessionLeavesOf(t, "clinic-a", trace.String())
	if len(leaves) != 1 || leaves[0].Kind != "llm.content" || !strings.Contains(payloads[0], otlpSecret) ||
		strings.Join(leaves[0].Attributes.Strings("otel.event_names"), ",") != "gen_ai.user.message,gen_ai.choice" {
		t.Fatalf("leaves %+v payloads %v", leaves, payloads)
	}
}

// A token bound to actors writes as them: a span naming another agent is
// recorded as the token's first actor, its own gen_ai.agent.id kept.
func TestOTLPBoundActor(t *testing.T) {
	s := newTestServer(t, nil)
	tok, _ := s.token(t, auth.Spec{Name: "bound", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}, Actors: []string{"refill-bot"}})
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	trace := pcommon.TraceID{5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5}
	sp.SetTraceID(trace)
	sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	sp.Attributes().PutStr("gen_ai.operation.name", "chat")
	sp.Attributes().PutStr("gen_ai.agent.id", "other-bot")
	body, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if status, resp, _ := s.otlpPost(t, OTLPTracesPath, tok, "application/x-protobuf", "", body); status != 200 {
		t.Fatalf("%d %q", status, resp)
	}
	leaves, _ := s.sessionLeavesOf(t, "clinic-a", trace.String())
	if len(leaves) != 2 {
		t.Fatalf("%d leaves", len(leaves))
	}
	for _, l := range leaves {
		if l.Actor.ID != "refill-bot" || l.Attributes.String("gen_ai.agent.id") != "other-bot" {
			t.Errorf("%s: actor %s, gen_ai.agent.id %s", l.Kind, l.Actor.ID, l.Attributes.String("gen_ai.agent.id"))
		}
	}
}

package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/metrics"
	"github.com/llmaudittrail/llmaudittrail/otlp"
)

// An agent that goes through the capture proxy and exports its GenAI spans
// too: the Go OTel SDK, its chat span around an HTTP client instrumented
// by otelhttp (which sends the traceparent of its own client span), the
// spans exported to the receiver over OTLP/HTTP. Each call through the
// proxy is one llm.request and one llm.response (the capture's, with the
// trace context) and one llm.span (the agent's report, naming the
// capture's llm.request): counted once, linked. The spans are exported as
// they end (the HTTP span in an export before its chat span's) and in one
// batch, to a receiver that knows of the tenant's traced calls from the
// index alone. A call made past the proxy, straight to the provider, keeps its
// llm.request and llm.response: nothing links it.
func TestOTLPProxyLink(t *testing.T) {
	for _, batched := range []bool{false, true} {
		name := "span by span"
		if batched {
			name = "one export"
		}
		t.Run(name, func(t *testing.T) { testOTLPProxyLink(t, batched) })
	}
}

func testOTLPProxyLink(t *testing.T, batched bool) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"chatcmpl-7","object":"chat.completion","model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"10 mg a day at most"},"finish_reason":"stop"}],"usage":{"prompt_tokens":21,"completion_tokens":6}}`)
	}))
	defer up.Close()
	s := newTestServer(t, func(c *Config) { c.Upstreams = map[string]string{"openai": up.URL} })
	tok, _ := s.token(t, auth.Spec{Name: "refill-agent", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}})
	ctx := context.Background()

	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(s.ts.URL+OTLPTracesPath),
		otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + tok}), otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	mem := tracetest.NewInMemoryExporter()
	opts := []sdktrace.TracerProviderOption{sdktrace.WithSyncer(mem), sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "refill-agent")))}
	if batched {
		opts = append(opts, sdktrace.WithBatcher(exp))
	} else {
		opts = append(opts, sdktrace.WithSyncer(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	defer tp.Shutdown(ctx)
	httpc := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport,
		otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.TraceContext{}))}
	tr := tp.Tracer("refill-agent")

	// call makes one chat completion to url under a chat span, and returns
	// the span's context.
	call := func(url string, proxied bool) trace.SpanContext {
		cctx, chat := tr.Start(ctx, "chat gpt-4o", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.provider.name", "openai"),
			attribute.String("gen_ai.request.model", "gpt-4o"),
			attribute.String("gen_ai.input.messages", `[{"role":"user","parts":[{"type":"text","content":"Refill `+otlpSecret+`?"}]}]`)))
		req, _ := http.NewRequestWithContext(cctx, "POST", url, strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"Refill `+otlpSecret+`?"}]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer sk-test")
		if proxied {
			req.Header.Set("X-Audit-Token", tok)
			req.Header.Set("X-Audit-Session", "refill-1")
		}
		resp, err := httpc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("call = %d", resp.StatusCode)
		}
		chat.SetAttributes(attribute.String("gen_ai.response.model", "gpt-4o-2024-08-06"), attribute.Int("gen_ai.usage.input_tokens", 21),
			attribute.Int("gen_ai.usage.output_tokens", 6))
		chat.End()
		return chat.SpanContext()
	}
	proxied := call(s.ts.URL+"/proxy/openai/v1/chat/completions", true)
	direct := call(up.URL+"/v1/chat/completions", false)
	if batched {
		// As another instance would, which did not see the capture record
		// the call: the receiver learns from the index that the tenant has
		// calls to link (once the index has one).
		if err := s.srv.Log().WaitIndexed(ctx); err != nil {
			t.Fatal(err)
		}
		s.srv.traced.m.Clear()
	}
	if err := tp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	// The HTTP client span that sent the proxied request.
	var httpSpan string
	for _, sp := range mem.GetSpans() {
		if sp.Parent.SpanID() == proxied.SpanID() {
			httpSpan = sp.SpanContext.SpanID().String()
		}
	}
	if httpSpan == "" {
		t.Fatal("otelhttp made no client span under the chat span")
	}
	s.srv.proxy.Close(ctx) // flush the proxy's records

	trace := proxied.TraceID().String()
	// The capture's record of the call: its request and response carry the
	// trace context the agent sent.
	pl, _ := s.sessionLeavesOf(t, "clinic-a", "refill-1")
	var captured *event.Leaf
	for _, l := range pl {
		if l.Kind != "llm.request" && l.Kind != "llm.response" {
			continue
		}
		if l.Writer.Via != event.ViaProxy || l.Attributes.String("otel.trace_id") != trace || l.Attributes.String("otel.parent_span_id") != httpSpan {
			t.Errorf("the capture's %s: via %s, attributes %v; want the trace %s and the client span %s", l.Kind, l.Writer.Via, l.Attributes, trace, httpSpan)
		}
		if l.Kind == "llm.request" {
			captured = l
		}
	}
	if captured == nil {
		t.Fatalf("the capture recorded no llm.request: %d leaves", len(pl))
	}
	capturedIdx := s.indexOf(t, captured)

	// The agent's report of the same call: one llm.span naming it.
	ol, payloads := s.sessionLeavesOf(t, "clinic-a", trace)
	if len(ol) != 1 || ol[0].Kind != "llm.span" {
		var kinds []string
		for _, l := range ol {
			kinds = append(kinds, l.Kind)
		}
		t.Fatalf("the proxied call's span became %v, want one llm.span", kinds)
	}
	a := ol[0].Attributes
	if ol[0].Writer.Via != event.ViaOTLP || a.Number("capture.index") != float64(capturedIdx) || a.String("capture.event.id") != captured.ID ||
		a.String("otel.span_id") != proxied.SpanID().String() || a.Number("gen_ai.usage.input_tokens") != 21 || a.String("gen_ai.request.model") != "gpt-4o" {
		t.Errorf("llm.span: via %s, attributes %v; want capture.index %d, capture.event.id %s", ol[0].Writer.Via, a, capturedIdx, captured.ID)
	}
	if !strings.Contains(payloads[0], `"gen_ai.input.messages":[{"role":"user"`) || !strings.Contains(payloads[0], otlpSecret) {
		t.Errorf("llm.span payload lacks the span's content: %s", payloads[0])
	}
	raw, _ := ol[0].Marshal()
	if strings.Contains(string(raw), otlpSecret) {
		t.Errorf("content in the leaf: %s", raw)
	}

	// The call past the proxy: its own pair, nothing linked.
	dl, _ := s.sessionLeavesOf(t, "clinic-a", direct.TraceID().String())
	var kinds []string
	for _, l := range dl {
		kinds = append(kinds, l.Kind)
		if l.Attributes.String("capture.index") != "" || l.Attributes.Number("capture.index") != 0 {
			t.Errorf("%s of the direct call names a capture: %v", l.Kind, l.Attributes)
		}
	}
	if strings.Join(kinds, ",") != "llm.request,llm.response" {
		t.Errorf("the direct call's span became %v", kinds)
	}

	// Counted once: over the tenant, two calls, two requests and two
	// responses.
	counts := map[string]int{}
	for _, ls := range [][]*event.Leaf{pl, ol, dl} {
		for _, l := range ls {
			counts[l.Kind]++
		}
	}
	if counts["llm.request"] != 2 || counts["llm.response"] != 2 || counts["llm.span"] != 1 {
		t.Errorf("kinds over the tenant: %v", counts)
	}

	// The exporter sends the spans again: nothing more. And the chat spans
	// alone, to an instance that has not seen the HTTP spans: nothing more
	// either (the llm.span is in the log).
	before := s.size(t)
	all := mem.GetSpans().Snapshots()
	if err := exp.ExportSpans(ctx, all); err != nil {
		t.Fatal(err)
	}
	s.srv.spanParents = spanParents{}
	var chats []sdktrace.ReadOnlySpan
	for _, sp := range all {
		if strings.HasPrefix(sp.Name(), "chat ") {
			chats = append(chats, sp)
		}
	}
	if err := exp.ExportSpans(ctx, chats); err != nil {
		t.Fatal(err)
	}
	if n := s.size(t); n != before {
		t.Errorf("exporting again appended %d entries", n-before)
	}
}

// indexOf is the index of leaf l in the log.
func (s *testServer) indexOf(t *testing.T, l *event.Leaf) uint64 {
	t.Helper()
	st, err := s.srv.Log().Lookup(context.Background(), l.Tenant, l.ID)
	if err != nil || !st.Indexed {
		t.Fatalf("Lookup(%s) = %+v, %v", l.ID, st, err)
	}
	return st.Index
}

// The Node agent (npm openai traced by @opentelemetry/instrumentation-openai,
// its fetch traced by @opentelemetry/instrumentation-undici, which sends the
// traceparent) through the capture proxy, exporting its spans, log records
// and metrics to the receiver: three calls, each one llm.request and one
// llm.response (the capture's, with the trace id) and one llm.span naming
// the capture's request; the tool and agent spans as without the proxy
// (the tool call is also the capture's, derived from the model's answer
// and the result the agent sends back, with the same gen_ai.tool.call.id);
// the GenAI metrics counted.
func TestOTLPNodeProxyLink(t *testing.T) {
	needNodeAgent(t)
	up := fakeOpenAI(t)
	s := newTestServer(t, func(c *Config) { c.Upstreams = map[string]string{"openai": up.URL} })
	tok, _ := s.token(t, auth.Spec{Name: "refill", Tenant: "pharmacy", Scopes: []string{auth.ScopeWrite}})
	usage0 := testutil.ToFloat64(metrics.OTLPMetricPoints.WithLabelValues(otlp.TokenUsageMetric))
	traceID := runNodeAgent(t, s.ts.URL, tok, "http/protobuf", "", s.ts.URL+"/proxy/openai", "Refill warfarin 5 mg through the proxy",
		"HTTP_INSTRUMENTATION=undici", "AUDIT_TOKEN="+tok, "AUDIT_SESSION=refill-node", "OTEL_METRICS_EXPORTER=otlp")
	s.srv.proxy.Close(context.Background()) // flush the proxy's records

	captured := map[float64]string{} // index of the capture's llm.request -> its id
	pl, _ := s.sessionLeavesOf(t, "pharmacy", "refill-node")
	count := map[string]int{}
	for _, l := range pl {
		count[l.Kind]++
		if strings.HasPrefix(l.Kind, "tool.") {
			count[l.Kind+" via proxy"]++
		}
		if l.Kind != "llm.request" && l.Kind != "llm.response" {
			continue
		}
		if l.Writer.Via != event.ViaProxy || l.Attributes.String("otel.trace_id") != traceID || len(l.Attributes.String("otel.parent_span_id")) != 16 {
			t.Errorf("the capture's %s: via %s, attributes %v; want the trace %s", l.Kind, l.Writer.Via, l.Attributes, traceID)
		}
		if l.Kind == "llm.request" {
			captured[float64(s.indexOf(t, l))] = l.ID
		}
	}
	ol, payloads := s.sessionLeavesOf(t, "pharmacy", traceID)
	for i, l := range ol {
		count[l.Kind]++
		raw, _ := l.Marshal()
		if strings.Contains(string(raw), "warfarin") {
			t.Errorf("content in the leaf: %s", raw)
		}
		if l.Kind != "llm.span" {
			continue
		}
		idx := l.Attributes.Number("capture.index")
		if id, ok := captured[idx]; !ok || l.Attributes.String("capture.event.id") != id {
			t.Errorf("llm.span names %v / %s, not one of the capture's requests %v", idx, l.Attributes.String("capture.event.id"), captured)
		}
		delete(captured, idx)
		if !strings.Contains(payloads[i], `"request":{`) || l.Attributes.String("gen_ai.response.model") != "gpt-4o-2024-08-06" {
			t.Errorf("llm.span %v: %.300s", l.Attributes, payloads[i])
		}
	}
	t.Logf("events %v", count)
	if count["llm.request"] != 3 || count["llm.response"] != 3 || count["llm.span"] != 3 || count["agent.invoke"] != 1 ||
		count["tool.call"] != 2 || count["tool.call via proxy"] != 1 || count["tool.result"] != 2 || count["tool.result via proxy"] != 1 {
		t.Errorf("events %v: want three calls counted once, three llm.span, the tool and agent spans", count)
	}
	if len(captured) != 0 {
		t.Errorf("capture requests no span names: %v", captured)
	}
	if n := testutil.ToFloat64(metrics.OTLPMetricPoints.WithLabelValues(otlp.TokenUsageMetric)); n <= usage0 {
		t.Errorf("no gen_ai.client.token.usage points counted from the Node agent")
	}
}

package server

import (
	"context"
	"net"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// The Go SDK's OTLP/gRPC exporter (gzip, the token in the authorization
// metadata): the same events as over HTTP, once however often sent; a
// read-only token and no token are refused with their gRPC codes and
// append nothing; a message over the body limit is refused.
func TestOTLPGRPC(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	write, _ := s.token(t, auth.Spec{Name: "agent", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}})
	read, _ := s.token(t, auth.Spec{Name: "reader", Tenant: "clinic-a", Scopes: []string{auth.ScopeRead}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := s.srv.OTLPGRPC(nil)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	ctx := context.Background()
	exporter := func(token string) *otlptrace.Exporter {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(ln.Addr().String()), otlptracegrpc.WithInsecure(),
			otlptracegrpc.WithCompressor("gzip"), otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false})}
		if token != "" {
			opts = append(opts, otlptracegrpc.WithHeaders(map[string]string{"authorization": "Bearer " + token}))
		}
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { exp.Shutdown(ctx) })
		return exp
	}

	mem := tracetest.NewInMemoryExporter()
	tr := sdktrace.NewTracerProvider(sdktrace.WithSyncer(mem)).Tracer("agent")
	_, chat := tr.Start(ctx, "chat gpt-4o", trace.WithAttributes(attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.request.model", "gpt-4o"), attribute.String("gen_ai.input.messages", `[{"role":"user","content":"`+otlpSecret+`"}]`)))
	chat.End()
	spans := mem.GetSpans().Snapshots()
	before := s.size(t)
	for _, c := range []struct {
		token, code string
	}{{"", "Unauthenticated"}, {"not-a-token", "Unauthenticated"}, {read, "PermissionDenied"}} {
		if err := exporter(c.token).ExportSpans(ctx, spans); err == nil || !strings.Contains(err.Error(), c.code) {
			t.Errorf("token %q: %v, want %s", c.token, err, c.code)
		}
	}
	if n := s.size(t); n != before {
		t.Fatalf("refused exports appended %d entries", n-before)
	}
	exp := exporter(write)
	for range 2 {
		if err := exp.ExportSpans(ctx, spans); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.size(t); n != before+2 {
		t.Fatalf("%d entries appended, want 2", n-before)
	}
	leaves, payloads := s.sessionLeavesOf(t, "clinic-a", chat.SpanContext().TraceID().String())
	if len(leaves) != 2 || leaves[0].Kind != "llm.request" || leaves[0].Writer.Via != event.ViaOTLP || !strings.Contains(payloads[0], otlpSecret) {
		t.Fatalf("leaves %+v", leaves)
	}

	// Over the limit, decompressed.
	mem.Reset()
	_, big := tr.Start(ctx, "chat big", trace.WithAttributes(attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.input.messages", strings.Repeat("a", 200<<10))))
	big.End()
	if err := exp.ExportSpans(ctx, mem.GetSpans().Snapshots()); err == nil || !strings.Contains(err.Error(), "ResourceExhausted") {
		t.Errorf("a message over the limit: %v", err)
	}
}

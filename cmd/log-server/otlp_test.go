package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestOTLPGRPCListen: --otlp-grpc-listen serves OTLP/gRPC; the Go SDK's
// gRPC exporter's spans become the session of their trace.
func TestOTLPGRPCListen(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	gaddr := freeAddr(t)
	p := startWith(t, bin, dir, nil, "--otlp-grpc-listen", gaddr)
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(gaddr), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithHeaders(map[string]string{"authorization": "Bearer " + readToken(t, dir)}))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(ctx)
	mem := tracetest.NewInMemoryExporter()
	tr := sdktrace.NewTracerProvider(sdktrace.WithSyncer(mem)).Tracer("agent")
	_, sp := tr.Start(ctx, "execute_tool lookup", trace.WithAttributes(attribute.String("gen_ai.operation.name", "execute_tool"),
		attribute.String("gen_ai.tool.name", "lookup")))
	sp.End()
	// The listener may take a moment after the API's.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = exp.ExportSpans(ctx, mem.GetSpans().Snapshots())
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", p.url+"/v1/sessions/"+sp.SpanContext().TraceID().String(), nil)
	req.Header.Set("Authorization", "Bearer "+readToken(t, dir))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var page struct {
		Events []struct{ Kind string } `json:"events"`
	}
	if err := json.Unmarshal(b, &page); err != nil || len(page.Events) != 2 || page.Events[0].Kind != "tool.call" || page.Events[1].Kind != "tool.result" {
		t.Fatalf("GET /v1/sessions/{trace} = %d %s", resp.StatusCode, b)
	}
}

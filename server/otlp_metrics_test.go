package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/internal/metrics"
	"github.com/llmaudittrail/llmaudittrail/otlp"
)

// genAIMetrics records what an instrumented agent's meter records for two
// calls: the GenAI client metrics (gen_ai.client.token.usage per token
// type, gen_ai.client.operation.duration) and an HTTP metric.
func genAIMetrics(t *testing.T, mp *sdkmetric.MeterProvider) {
	t.Helper()
	m := mp.Meter("refill-agent")
	usage, err := m.Int64Histogram(otlp.TokenUsageMetric, metric.WithUnit("{token}"))
	if err != nil {
		t.Fatal(err)
	}
	dur, _ := m.Float64Histogram(otlp.OperationDurationMetric, metric.WithUnit("s"))
	reqs, _ := m.Int64Counter("http.client.request.count")
	ctx := context.Background()
	common := []attribute.KeyValue{attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.provider.name", "openai"), attribute.String("gen_ai.request.model", "gpt-4o")}
	for range 2 {
		usage.Record(ctx, 21, metric.WithAttributes(append(common, attribute.String("gen_ai.token.type", "input"))...))
		usage.Record(ctx, 6, metric.WithAttributes(append(common, attribute.String("gen_ai.token.type", "output"))...))
		dur.Record(ctx, 0.4, metric.WithAttributes(common...))
		reqs.Add(ctx, 1)
	}
}

// OTLP metrics (POST /v1/metrics, and the gRPC metrics service): the Go
// SDK's OTLP/HTTP (gzip) and OTLP/gRPC metric exporters are answered with
// success, append nothing, and their data points are counted by metric;
// a read-only token, no token, a malformed and an oversized body are
// refused as on the other signals; a JSON export is answered in JSON.
func TestOTLPMetrics(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.MaxBodyBytes = 64 << 10 })
	write, _ := s.token(t, auth.Spec{Name: "agent", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}})
	read, _ := s.token(t, auth.Spec{Name: "reader", Tenant: "clinic-a", Scopes: []string{auth.ScopeRead}})
	ctx := context.Background()
	points := func() (usage, dur, other float64) {
		return testutil.ToFloat64(metrics.OTLPMetricPoints.WithLabelValues(otlp.TokenUsageMetric)),
			testutil.ToFloat64(metrics.OTLPMetricPoints.WithLabelValues(otlp.OperationDurationMetric)),
			testutil.ToFloat64(metrics.OTLPMetricPoints.WithLabelValues(otlp.OtherMetric))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := s.srv.OTLPGRPC(nil)
	go g.Serve(ln)
	t.Cleanup(g.Stop)

	exporters := map[string]func(token string) sdkmetric.Exporter{
		"http": func(token string) sdkmetric.Exporter {
			opts := []otlpmetrichttp.Option{otlpmetrichttp.WithEndpointURL(s.ts.URL + OTLPMetricsPath), otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression),
				otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false})}
			if token != "" {
				opts = append(opts, otlpmetrichttp.WithHeaders(map[string]string{"Authorization": "Bearer " + token}))
			}
			e, err := otlpmetrichttp.New(ctx, opts...)
			if err != nil {
				t.Fatal(err)
			}
			return e
		},
		"grpc": func(token string) sdkmetric.Exporter {
			opts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(ln.Addr().String()), otlpmetricgrpc.WithInsecure(), otlpmetricgrpc.WithCompressor("gzip"),
				otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false})}
			if token != "" {
				opts = append(opts, otlpmetricgrpc.WithHeaders(map[string]string{"authorization": "Bearer " + token}))
			}
			e, err := otlpmetricgrpc.New(ctx, opts...)
			if err != nil {
				t.Fatal(err)
			}
			return e
		},
	}
	for _, name := range []string{"http", "grpc"} {
		t.Run(name, func(t *testing.T) {
			export := func(token string) error {
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exporters[name](token))))
				genAIMetrics(t, mp)
				return mp.Shutdown(ctx) // collects and exports once
			}
			before := s.size(t)
			u0, d0, o0 := points()
			if err := export(write); err != nil {
				t.Fatalf("export: %v", err)
			}
			u1, d1, o1 := points()
			// Two token usage series (input, output), one duration, one
			// HTTP counter: a data point each.
			if u1-u0 != 2 || d1-d0 != 1 || o1-o0 != 1 {
				t.Errorf("points counted: usage %v, duration %v, other %v; want 2, 1, 1", u1-u0, d1-d0, o1-o0)
			}
			for _, tok := range []string{read, ""} {
				err := export(tok)
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), map[string]string{read: "permission", "": "unauthenticated"}[tok]) &&
					!strings.Contains(err.Error(), map[string]string{read: "403", "": "401"}[tok]) {
					t.Errorf("export with token %q: %v", tok, err)
				}
			}
			if u2, _, _ := points(); u2 != u1 {
				t.Errorf("a refused export was counted")
			}
			if n := s.size(t); n != before {
				t.Errorf("metrics appended %d entries", n-before)
			}
		})
	}

	// Bodies built with pdata: JSON answered in JSON; malformed, oversized
	// and compressed-oversized bodies refused in the OTLP form.
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(otlp.TokenUsageMetric)
	m.SetEmptyHistogram().DataPoints().AppendEmpty().SetSum(27)
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	code, resp, h := s.otlpPost(t, OTLPMetricsPath, write, "application/json", "", body)
	if code != http.StatusOK || h.Get("Content-Type") != "application/json" || !strings.HasPrefix(string(resp), "{") {
		t.Errorf("JSON export = %d %s %s", code, h.Get("Content-Type"), resp)
	}
	for _, tc := range []struct {
		name     string
		body     []byte
		encoding string
		want     int
	}{
		{"malformed", []byte("not protobuf"), "", http.StatusBadRequest},
		{"oversized", make([]byte, 65<<10), "", http.StatusRequestEntityTooLarge},
		{"oversized once decompressed", gzipped(t, make([]byte, 1<<20)), "gzip", http.StatusRequestEntityTooLarge},
	} {
		code, resp, _ := s.otlpPost(t, OTLPMetricsPath, write, "application/x-protobuf", tc.encoding, tc.body)
		if code != tc.want || len(resp) == 0 {
			t.Errorf("%s: %d %q, want %d with a status", tc.name, code, resp, tc.want)
		}
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

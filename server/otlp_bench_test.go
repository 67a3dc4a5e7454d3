package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/llmaudittrail/llmaudittrail/auth"
)

// spansPerExport is the spans of one benchmark export request (an SDK's
// batch processor sends up to 512; an agent making a call a second, a few).
const spansPerExport = 10

// BenchmarkOTLP compares, in one run, the ingestion of GenAI inference
// spans over OTLP/HTTP (protobuf and JSON) with the event API carrying the
// same two events per span (POST /v1/events:batch?wait=durable, the same
// acknowledgement: durable), 10 spans (20 events) a request, each span with
// about 1 KiB of messages. The clients run in the same process; cpu-us/span
// is the process's CPU time per span. otlp-proto-traced is otlp-proto for
// a tenant with calls the capture observed with a trace context: each
// export waits for the session index and looks its spans up
// (otlp_link.go). Run with a fixed count:
//
//	go test ./server -run '^$' -bench OTLP -benchtime 400x
func BenchmarkOTLP(b *testing.B) {
	for _, clients := range []int{8, 64} {
		b.Run(fmt.Sprintf("api/clients=%d", clients), func(b *testing.B) { benchOTLP(b, clients, "api") })
		b.Run(fmt.Sprintf("otlp-proto/clients=%d", clients), func(b *testing.B) { benchOTLP(b, clients, "proto") })
		b.Run(fmt.Sprintf("otlp-json/clients=%d", clients), func(b *testing.B) { benchOTLP(b, clients, "json") })
		b.Run(fmt.Sprintf("otlp-proto-traced/clients=%d", clients), func(b *testing.B) { benchOTLP(b, clients, "proto-traced") })
	}
}

func benchOTLP(b *testing.B, clients int, how string) {
	s := newTestServer(b, nil)
	tok, _, err := s.srv.Tokens().Create(b.Context(), auth.Spec{Name: "bench", Tenant: DefaultTenant, Scopes: []string{auth.ScopeWrite}})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.srv.gov.RecordTokens(b.Context()); err != nil {
		b.Fatal(err)
	}
	if how == "proto-traced" {
		s.srv.traced.mark(DefaultTenant)
		how = "proto"
	}
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = benchExport(b, i, clients, how)
	}
	path, ct := "/v1/traces", "application/x-protobuf"
	switch how {
	case "api":
		path, ct = "/v1/events:batch?wait=durable", "application/json"
	case "json":
		ct = "application/json"
	}
	want := map[string]int{"api": http.StatusCreated}[how]
	if want == 0 {
		want = http.StatusOK
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	m := run(b, clients, func(i int) error {
		req, _ := http.NewRequest("POST", s.ts.URL+path, bytes.NewReader(bodies[i]))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", ct)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			return fmt.Errorf("HTTP %d: %q", resp.StatusCode, rb)
		}
		return nil
	})
	if n := s.size(b); n < uint64(2*spansPerExport*b.N) {
		b.Fatalf("%d entries for %d spans", n, spansPerExport*b.N)
	}
	lat := m.lat
	slices.Sort(lat)
	spans := float64(spansPerExport * len(lat))
	b.ReportMetric(spans/m.elapsed.Seconds(), "spans/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(m.cpu.Microseconds())/spans, "cpu-us/span")
	b.ReportMetric(0, "ns/op")
}

// benchExport is request i: spansPerExport chat spans of the trace of
// client i%clients, as an OTLP export (proto or json) or as the event
// API's batch of their llm.request and llm.response events.
func benchExport(b *testing.B, i, clients int, how string) []byte {
	var trace pcommon.TraceID
	binary.BigEndian.PutUint64(trace[8:], uint64(i%clients+1))
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	input := fmt.Sprintf(`[{"role":"user","parts":[{"type":"text","content":%q}]}]`, benchPad[:700])
	output := fmt.Sprintf(`[{"role":"assistant","parts":[{"type":"text","content":%q}]}]`, benchPad[:300])
	if how == "api" {
		var buf bytes.Buffer
		buf.WriteString(`{"events":[`)
		for k := range spansPerExport {
			if k > 0 {
				buf.WriteByte(',')
			}
			fmt.Fprintf(&buf, `{"session":"%s","kind":"llm.request","actor":{"type":"agent","id":"bench"},"attributes":{"gen_ai.operation.name":"chat","gen_ai.provider.name":"openai","gen_ai.request.model":"gpt-4o","otel.span_id":"%016x"},"payload":{"gen_ai.input.messages":%s}},`, trace, i*spansPerExport+k, input)
			fmt.Fprintf(&buf, `{"session":"%s","kind":"llm.response","actor":{"type":"agent","id":"bench"},"attributes":{"gen_ai.response.model":"gpt-4o","gen_ai.usage.input_tokens":120,"gen_ai.usage.output_tokens":40,"gen_ai.response.finish_reasons":["stop"]},"payload":{"gen_ai.output.messages":%s}}`, trace, output)
		}
		buf.WriteString(`]}`)
		return buf.Bytes()
	}
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "bench")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for k := range spansPerExport {
		sp := spans.AppendEmpty()
		sp.SetTraceID(trace)
		var id pcommon.SpanID
		binary.BigEndian.PutUint64(id[:], uint64(i*spansPerExport+k+1))
		sp.SetSpanID(id)
		sp.SetName("chat gpt-4o")
		sp.SetKind(ptrace.SpanKindClient)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(t0))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(800 * time.Millisecond)))
		a := sp.Attributes()
		a.PutStr("gen_ai.operation.name", "chat")
		a.PutStr("gen_ai.provider.name", "openai")
		a.PutStr("gen_ai.request.model", "gpt-4o")
		a.PutStr("gen_ai.response.model", "gpt-4o")
		a.PutInt("gen_ai.usage.input_tokens", 120)
		a.PutInt("gen_ai.usage.output_tokens", 40)
		a.PutEmptySlice("gen_ai.response.finish_reasons").AppendEmpty().SetStr("stop")
		a.PutStr("gen_ai.input.messages", input)
		a.PutStr("gen_ai.output.messages", output)
	}
	req := ptraceotlp.NewExportRequestFromTraces(td)
	var out []byte
	var err error
	if how == "json" {
		out, err = req.MarshalJSON()
	} else {
		out, err = req.MarshalProto()
	}
	if err != nil {
		b.Fatal(err)
	}
	return out
}

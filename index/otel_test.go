package index

import (
	"testing"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Only the llm.request events the capture observed (writer.via proxy) with
// a whole trace context are kept: not those posted through the event API
// or reported over OTLP, not responses, not partial ids.
func TestAddOTel(t *testing.T) {
	const trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	ctx := event.Attributes{"otel.trace_id": trace, "otel.parent_span_id": span}
	for _, tc := range []struct {
		name  string
		kind  string
		via   string
		attrs event.Attributes
		kept  bool
	}{
		{"observed request", "llm.request", event.ViaProxy, ctx, true},
		{"observed response", "llm.response", event.ViaProxy, ctx, false},
		{"posted request", "llm.request", event.ViaAPI, ctx, false},
		{"reported request", "llm.request", event.ViaOTLP, event.Attributes{"otel.trace_id": trace, "otel.parent_span_id": span, "otel.span_id": span}, false},
		{"no parent", "llm.request", event.ViaProxy, event.Attributes{"otel.trace_id": trace}, false},
		{"short trace", "llm.request", event.ViaProxy, event.Attributes{"otel.trace_id": trace[:31], "otel.parent_span_id": span}, false},
		{"not a string", "llm.request", event.ViaProxy, event.Attributes{"otel.trace_id": 4, "otel.parent_span_id": span}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newSearchBatch()
			b.addOTel(7, &event.Leaf{Kind: tc.kind, Tenant: "clinic-a", Writer: &event.Writer{Token: "t", Via: tc.via}, Attributes: tc.attrs})
			if tc.kept != (len(b.otel) == 1) {
				t.Fatalf("kept %v, want %v", b.otel, tc.kept)
			}
			if tc.kept && b.otel[0] != (otelCall{"clinic-a", trace, span, 7}) {
				t.Fatalf("row %+v", b.otel[0])
			}
		})
	}
	b := newSearchBatch()
	b.addOTel(1, &event.Leaf{V: 1, Kind: "llm.request", Attributes: ctx}) // a version-1 leaf has no writer
	if len(b.otel) != 0 {
		t.Fatal("a leaf without a writer was kept")
	}
}

package replay_test

import (
	"encoding/json"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/replay"
)

// TestSignatureStep: a human.signature step names the signer by the
// printed name the server records (signer.printed_name), the signer id,
// the signed entry and the meaning.
func TestSignatureStep(t *testing.T) {
	l := &event.Leaf{Kind: "human.signature", Time: "2026-01-02T03:04:05.000000000Z", Actor: event.Actor{Type: "human", ID: "dr-ada"},
		Attributes: map[string]any{"signer.printed_name": "Dr. Ada Lovelace", "signature.index": json.Number("7"), "signature.meaning": "approved"}}
	tl := replay.NewTimeline(&replay.Session{ID: "s", Events: []*replay.Event{{Index: 9, Leaf: l}}})
	if len(tl.Steps) != 1 || tl.Steps[0].Kind != replay.StepSignature {
		t.Fatalf("steps %+v", tl.Steps)
	}
	if got, want := tl.Steps[0].Summary, "Dr. Ada Lovelace (dr-ada) signed entry 7 as approved"; got != want {
		t.Fatalf("summary %q, want %q", got, want)
	}
}

// Events reported over OTLP (no capture call id) pair by their span: one
// call step holds the llm.request, the llm.response and the llm.content of
// one span.
func TestTimelineOTLPCalls(t *testing.T) {
	leaf := func(kind, span string, attrs map[string]any) *event.Leaf {
		a := map[string]any{"otel.trace_id": "0af7651916cd43dd8448eb211c80319c", "otel.span_id": span}
		for k, v := range attrs {
			a[k] = v
		}
		return &event.Leaf{Kind: kind, Actor: event.Actor{Type: "agent", ID: "a"}, Writer: &event.Writer{Token: "t", Via: event.ViaOTLP}, Attributes: a}
	}
	s := &replay.Session{ID: "s"}
	for i, l := range []*event.Leaf{
		leaf("llm.request", "b7ad6b7169203331", map[string]any{"gen_ai.request.model": "gpt-4o", "gen_ai.provider.name": "openai"}),
		leaf("llm.content", "b7ad6b7169203331", nil),
		leaf("llm.response", "b7ad6b7169203331", map[string]any{"otel.duration_ms": 812.5, "gen_ai.usage.output_tokens": int64(9)}),
		leaf("llm.request", "c7ad6b7169203332", map[string]any{"gen_ai.request.model": "gpt-4o"}),
		leaf("llm.response", "c7ad6b7169203332", nil),
	} {
		s.Events = append(s.Events, &replay.Event{Index: uint64(i), Leaf: l})
	}
	tl := replay.NewTimeline(s)
	if len(tl.Steps) != 2 || tl.Steps[0].Call == nil || len(tl.Steps[0].Events) != 3 || len(tl.Steps[1].Events) != 2 {
		t.Fatalf("steps %+v", tl.Steps)
	}
	if a := tl.Steps[0].Call.Attempts; len(a) != 1 || a[0].DurationMS != 812.5 || a[0].OutputTokens != 9 || a[0].Response == nil {
		t.Fatalf("attempts %+v", a)
	}
}

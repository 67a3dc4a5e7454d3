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

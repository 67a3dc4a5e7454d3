package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/replay"
)

// TestRebuildChecksTheFieldCommitment: a payload whose leaf's sd does not
// match it (the log wrote another payload's field commitment, which the
// HMAC does not catch) is refused by both bulk readers, the export stream
// and the payload pages: the event has a payload problem and no payload.
// A leaf of field commitment version 1 (no sd_v, the leaves written before
// decoys) and one of version 2 read fine.
func TestRebuildChecksTheFieldCommitment(t *testing.T) {
	w := newWorld(t)
	other, _ := disclosure.Build(bytes.Repeat([]byte{1}, 32), []byte(`{"note":"another payload"}`))
	w.srv.Log().SetFieldCommitmentForTest(func(c *event.Commitment, salt, payload []byte) {
		switch {
		case bytes.Contains(payload, []byte("tampered")):
			c.SD = other.Hash()
		case bytes.Contains(payload, []byte("old")):
			t1, _ := disclosure.BuildVersion(disclosure.V1, salt, payload)
			c.SD, c.SDV = t1.Hash(), 0
		}
	})
	c, _ := client.New(w.ts.URL, client.WithToken(w.write))
	var batch []*event.Request
	for _, p := range []string{`{"n":"new"}`, `{"n":"tampered"}`, `{"n":"old"}`} {
		batch = append(batch, &event.Request{Session: "sd", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "bot"}, Payload: json.RawMessage(p)})
	}
	if _, err := c.Append(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	for _, noExport := range []bool{false, true} {
		src := w.source(w.ts.URL)
		src.NoExport = noExport
		s, err := replay.Rebuild(context.Background(), src, replay.Query{Session: "sd", Payloads: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Events) != 3 {
			t.Fatalf("via %s: %d events", s.Via, len(s.Events))
		}
		for i, want := range []bool{true, false, true} {
			e := s.Events[i]
			if e.Leaf == nil || e.Leaf.Payload.SDVersion() != map[bool]int{true: 1, false: 2}[i == 2] {
				t.Fatalf("via %s: event %d: leaf %+v", s.Via, i, e.Leaf)
			}
			if got := e.Verified() && e.PayloadStatus == api.PayloadOK && e.Payload != nil; got != want {
				t.Errorf("via %s: event %d: verified %v, status %s, payload %q, problems %v", s.Via, i, e.Verified(), e.PayloadStatus, e.Payload, e.Problems)
			}
			if !want && (e.PayloadStatus != replay.PayloadRejected || len(e.Problems) != 1 || e.Problems[0].Check != replay.CheckPayload ||
				!strings.Contains(e.Problems[0].Message, client.ErrCommitment.Error())) {
				t.Errorf("via %s: event %d: status %s, problems %v", s.Via, i, e.PayloadStatus, e.Problems)
			}
		}
	}
}

package console_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// TestConsoleRefusesPayloadNotMatchingSD: the log wrote a leaf whose field
// commitment (sd) is another payload's; the payload itself opens the HMAC.
// The timeline with payloads (the export, or the payload pages) shows the
// event's payload problem and not the payload, and Open payload refuses
// it; the other event of the session, of version 1 (no sd_v), shows.
func TestConsoleRefusesPayloadNotMatchingSD(t *testing.T) {
	w := newWorld(t, worldOptions{})
	other, _ := disclosure.Build(bytes.Repeat([]byte{1}, 32), []byte(`{"note":"another payload"}`))
	w.srv.Log().SetFieldCommitmentForTest(func(c *event.Commitment, salt, payload []byte) {
		if bytes.Contains(payload, []byte("TAMPERED")) {
			c.SD = other.Hash()
		} else {
			t1, _ := disclosure.BuildVersion(disclosure.V1, salt, payload)
			c.SD, c.SDV = t1.Hash(), 0
		}
	})
	evs := w.append(w.writer,
		&event.Request{Session: "sd-1", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "bot"}, Payload: json.RawMessage(`{"n":"TAMPERED-TEXT"}`)},
		&event.Request{Session: "sd-1", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "bot"}, Payload: json.RawMessage(`{"n":"OLD-FORM-TEXT"}`)})
	w.waitPublished()
	a := newAgent(t, w.url, nil)
	csrf := a.signIn(w.auditor)
	r := a.do("POST", "sessions/sd-1/payloads", url.Values{"csrf": {csrf}, "tenant": {tenant}}, nil)
	if r.code != 200 {
		t.Fatalf("timeline with payloads = %d %s", r.code, r.body)
	}
	if strings.Contains(r.body, "TAMPERED-TEXT") || !strings.Contains(r.body, "OLD-FORM-TEXT") || !strings.Contains(r.body, "does not match its commitment") {
		t.Errorf("timeline with payloads shows the tampered payload, hides the good one, or names no problem:\n%s", r.body)
	}
	r = a.do("POST", fmt.Sprintf("entries/%d/payload", evs[0].Index), url.Values{"csrf": {csrf}}, nil)
	if strings.Contains(r.body, "TAMPERED-TEXT") || !strings.Contains(r.body, "does NOT open the leaf") {
		t.Errorf("Open payload = %d, shows the tampered payload or names no problem:\n%s", r.code, r.body)
	}
	r = a.do("POST", fmt.Sprintf("entries/%d/payload", evs[1].Index), url.Values{"csrf": {csrf}}, nil)
	if r.code != 200 || !strings.Contains(r.body, "OLD-FORM-TEXT") {
		t.Errorf("Open payload of a version 1 leaf = %d:\n%s", r.code, r.body)
	}
}

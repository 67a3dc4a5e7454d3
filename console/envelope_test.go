package console_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// TestConsoleEnvelopeLog: on a log of leaf version 3, and one of version
// 4, the console's session
// timeline and entry pages verify every event (receipts through the
// envelopes, the session rebuilt from its bodies), for the tenant's
// auditor and a global one.
func TestConsoleEnvelopeLog(t *testing.T) {
	for _, v := range []int{event.LeafVersionEnvelope, event.LeafVersionFields} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) { testConsoleEnvelopeLog(t, v) })
	}
}

func testConsoleEnvelopeLog(t *testing.T, v int) {
	w := newWorld(t, worldOptions{leafVersion: v})
	w.traffic()
	for name, tok := range map[string]string{"tenant auditor": w.auditor, "global auditor": w.global} {
		a := newAgent(t, w.url, nil)
		a.signIn(tok)
		r := a.do("GET", "sessions/triage-7?tenant="+tenant, nil, nil)
		ok, bad := strings.Count(r.body, `data-verified="true"`), strings.Count(r.body, `data-verified="false"`)
		if r.code != 200 || ok != len(w.triage) || bad != 0 {
			t.Errorf("%s: timeline %d with %d verified and %d failed events, want %d verified", name, r.code, ok, bad, len(w.triage))
		}
		e := a.do("GET", fmt.Sprintf("entries/%d", w.triage[1].Index), nil, nil)
		if e.code != 200 || !strings.Contains(e.body, "included under") {
			t.Errorf("%s: entry page %d:\n%s", name, e.code, e.body)
		}
	}
}

package monitor

import (
	"fmt"
	"slices"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestFollowEnvelopeLog: on a log of leaf version 3, and one of version
// 4, the monitor reads each
// envelope's body with its global token and runs the rules over the
// events: exactly the forbidden tool calls alert, and the log audits clean.
// Without the bodies (a token of one tenant, which reads none of the
// server's token records) the entries it cannot open are malformed.
func TestFollowEnvelopeLog(t *testing.T) {
	for _, v := range []int{event.LeafVersionEnvelope, event.LeafVersionFields} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) { testFollowEnvelopeLog(t, v) })
	}
}

func testFollowEnvelopeLog(t *testing.T, v int) {
	l := newTestLog(t, server.Config{LeafVersion: v})
	l.appendEvents(events(30, 10, "a")...) // forbidden at 9, 19, 29
	cp := l.waitSize(30)
	cfg := testConfig(l, t.TempDir())
	cfg.Start = 0
	cfg.Rules = pack(t, hoursLine, allHours)
	r := startMonitor(t, cfg)
	r.waitPos(cp.Size)
	var got []uint64
	for _, a := range r.out.alerts(t) {
		if a.Rule != "tool.forbidden" || a.Index == nil {
			t.Fatalf("unexpected alert %+v", a)
		}
		got = append(got, *a.Index)
	}
	slices.Sort(got)
	want := []uint64{l.base + 9, l.base + 19, l.base + 29}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alerts at %v, want %v", got, want)
	}
	if rep := auditOf(t, l, nil); !rep.OK() || rep.Entries < 30 {
		t.Fatalf("audit of a version %d log: %+v\n%s", v, rep, dumpFindings(rep.Findings))
	}
}

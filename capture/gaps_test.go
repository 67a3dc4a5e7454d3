package capture

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// strictRecorder refuses a batch as the log does (all or nothing): an
// event in a reserved session with event.ErrReservedSession, an invalid
// one with event.ErrInvalidEvent, and while down is set, everything.
type strictRecorder struct {
	down     error
	recorded []*event.Request
}

func (r *strictRecorder) Record(_ context.Context, evs []*event.Request) ([]event.Appended, error) {
	if r.down != nil {
		return nil, r.down
	}
	for i, ev := range evs {
		if err := event.PermitSession(ev.Session, ev.Actor); err != nil {
			return nil, fmt.Errorf("events[%d]: %w", i, err)
		}
		if !event.ValidID(ev.Session) {
			return nil, fmt.Errorf("events[%d]: %w: session", i, event.ErrInvalidEvent)
		}
	}
	out := make([]event.Appended, len(evs))
	for i := range evs {
		out[i].Index = uint64(len(r.recorded) + i)
	}
	r.recorded = append(r.recorded, evs...)
	return out, nil
}

// TestGapInReservedSession (review of #24, finding 1): a gap pending in a
// session the log refuses (a server session) is dropped, not retried ahead
// of every later batch of the tenant for ever; the scope's other gaps and
// the calls are recorded; and noteGap never files a gap under such a
// session (it goes to the overflow session, which the log accepts).
func TestGapInReservedSession(t *testing.T) {
	ctx := context.Background()
	c, err := newCore("proxy", defaultOptions(DefaultMaxRecordedBytes))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close(ctx)
	rec := &strictRecorder{}
	agent := event.Actor{Type: "agent", ID: "victim"}
	call := func(session string) []*event.Request {
		return []*event.Request{{Session: session, Kind: event.KindToolCall, Actor: agent}}
	}
	now := time.Now().UTC()
	// As an older capture left them: a gap in holds (its events were
	// refused as reserved), one in a bad session, one in an ordinary one.
	c.gaps.note("t", rec, "holds", event.ErrReservedSession, gapItem{Kind: event.KindMCPRefused, Time: now})
	c.gaps.note("t", rec, "bad session!", event.ErrInvalidEvent, gapItem{Kind: event.KindMCPRefused, Time: now})
	c.gaps.note("t", rec, "s-other", errors.New("log down"), gapItem{Kind: event.KindToolCall, Time: now})
	for i := range 2 {
		if _, err := c.record(ctx, rec, "t", call("victim")); err != nil {
			t.Fatalf("the victim's call %d: %v", i, err)
		}
	}
	if n := c.gaps.count(); n != 0 {
		t.Fatalf("%d missed events still pending", n)
	}
	var got []string
	for _, ev := range rec.recorded {
		got = append(got, ev.Session+" "+ev.Kind)
	}
	if want := fmt.Sprint([]string{"s-other capture.gap", "victim tool.call", "victim tool.call"}); fmt.Sprint(got) != want {
		t.Fatalf("recorded %v, want %v", got, want)
	}

	// A failure in a reserved session is noted in the overflow session.
	rec.recorded = nil
	c.noteGap("t", rec, "signer.x", event.ErrReservedSession, gapItem{Kind: event.KindCaptureTunnel, Time: now})
	if _, err := c.record(ctx, rec, "t", call("victim")); err != nil {
		t.Fatal(err)
	}
	if len(rec.recorded) != 2 || rec.recorded[0].Session != overflowSession || rec.recorded[0].Kind != event.KindCaptureGap {
		t.Fatalf("recorded %v", rec.recorded)
	}

	// While the log is down, the gaps stay pending and are recorded after.
	rec.recorded, rec.down = nil, errors.New("unavailable")
	c.gaps.note("t", rec, "s-other", rec.down, gapItem{Kind: event.KindToolCall, Time: now})
	c.gaps.note("t", rec, "holds", rec.down, gapItem{Kind: event.KindToolCall, Time: now})
	if _, err := c.record(ctx, rec, "t", call("victim")); err == nil {
		t.Fatal("recorded while the log is down")
	}
	if n := c.gaps.count(); n != 2 {
		t.Fatalf("%d missed events pending, want 2", n)
	}
	rec.down = nil
	if _, err := c.record(ctx, rec, "t", call("victim")); err != nil {
		t.Fatal(err)
	}
	if len(rec.recorded) != 2 || rec.recorded[0].Session != "s-other" {
		t.Fatalf("recorded %v", rec.recorded)
	}
}

package log

import (
	"context"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// TestSequenceLinger: events acknowledged at durability wait for more of
// the journal (one chunk), and whoever waits for an index ends that wait
// at once: an append with WaitIndex, a read that waits for the journal.
func TestSequenceLinger(t *testing.T) {
	l := newTestLog(t, func(c *Config) { c.SequenceLinger = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	indexed := func(id string) bool {
		st, err := l.Lookup(ctx, "", id)
		if err != nil {
			t.Fatal(err)
		}
		return st.Indexed
	}
	durable := func() string {
		t.Helper()
		a, err := l.AppendWait(ctx, "t", testWriter, []*event.Request{req("s")}, WaitDurable)
		if err != nil {
			t.Fatal(err)
		}
		return a[0].ID
	}

	// Nobody waits: the durable event stays in the journal.
	first := durable()
	time.Sleep(300 * time.Millisecond)
	if !unsequenced(l, first) {
		t.Fatal("an event acknowledged at durability was sequenced while the sequencer should linger (an hour)")
	}
	// An append that waits for its index is sequenced at once, and the
	// lingering event with it (before it: the session's order).
	a, err := l.AppendWait(ctx, "t", testWriter, []*event.Request{req("s")}, WaitIndex)
	if err != nil {
		t.Fatalf("an append with WaitIndex behind a lingering sequencer: %v", err)
	}
	if !indexed(first) || !a[0].Indexed || a[0].Seq != 1 {
		t.Fatalf("after a WaitIndex append: first indexed %v, second %+v", indexed(first), a[0])
	}

	// A read that waits for the journal (WaitIndexed) ends the wait too.
	second := durable()
	time.Sleep(300 * time.Millisecond)
	if !unsequenced(l, second) {
		t.Fatal("the second durable event was sequenced while the sequencer should linger")
	}
	if err := l.WaitIndexed(ctx); err != nil {
		t.Fatalf("WaitIndexed behind a lingering sequencer: %v", err)
	}
	if !indexed(second) {
		t.Fatal("WaitIndexed returned before the lingering event was sequenced")
	}
}

// unsequenced reads whether the event id is acknowledged and not yet
// sequenced, without asking the sequencer (Lookup, asked about a waiting
// event, ends the linger).
func unsequenced(l *Log, id string) bool {
	v, ok := l.seq.waiting.Load(id)
	if !ok {
		return false
	}
	select {
	case <-v.(*waiter).done:
		return false
	default:
		return true
	}
}

// waitUntil polls ok every 10 ms until it holds, or fails with what when
// ctx ends first.
func waitUntil(t *testing.T, ctx context.Context, ok func() bool, what string) {
	t.Helper()
	for !ok() {
		if ctx.Err() != nil {
			t.Fatal(what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSequenceLingerLookup: asking where a lingering event stands (GET
// /v1/events/{id}, which clients poll after a durable write) ends the
// wait.
func TestSequenceLingerLookup(t *testing.T) {
	l := newTestLog(t, func(c *Config) { c.SequenceLinger = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := l.AppendWait(ctx, "t", testWriter, []*event.Request{req("s")}, WaitDurable)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	waitUntil(t, ctx, func() bool {
		st, err := l.Lookup(ctx, "", a[0].ID)
		return err == nil && st.Indexed
	}, "a durable event that is looked up was not sequenced in 30 s behind a lingering sequencer")
}

// TestSequenceLingerOff: with a negative SequenceLinger, an event
// acknowledged at durability is sequenced without anyone waiting for it
// or asking about it.
func TestSequenceLingerOff(t *testing.T) {
	l := newTestLog(t, func(c *Config) { c.SequenceLinger = -1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := l.AppendWait(ctx, "t", testWriter, []*event.Request{req("s")}, WaitDurable)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, func() bool { return !unsequenced(l, a[0].ID) }, "a durable event was not sequenced in 30 s with SequenceLinger off")
}

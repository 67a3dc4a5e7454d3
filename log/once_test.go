package log

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// onceReqs returns n events of session with ids derived from key, as a
// caller of AppendOnce derives them.
func onceReqs(session, key string, n int) ([]*event.Request, []string) {
	var reqs []*event.Request
	var ids []string
	for i := range n {
		r := req(session)
		r.Payload = json.RawMessage(fmt.Sprintf(`{"span":%d}`, i))
		reqs = append(reqs, r)
		ids = append(ids, fmt.Sprintf("%016x%016x", len(key)*1000+i, i))
	}
	return reqs, ids
}

func logSize(t *testing.T, l *Log) uint64 {
	t.Helper()
	if err := l.WaitIndexed(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, err := l.reader.IntegratedSize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// An event delivered again is appended once, whether the first delivery
// is still waiting to be sequenced, sequenced, or in the session index;
// new events beside known ones are appended.
func TestAppendOnce(t *testing.T) {
	ctx := context.Background()
	for _, wait := range []Wait{WaitDurable, WaitIndex} {
		t.Run(fmt.Sprint(wait), func(t *testing.T) {
			l := newTestLog(t, nil)
			reqs, ids := onceReqs("s1", "x", 3)
			out, known, err := l.AppendOnce(ctx, "t", testWriter, reqs[:2], ids[:2], wait)
			if err != nil || len(out) != 2 || len(known) != 0 || out[0].ID != ids[0] || out[1].ID != ids[1] {
				t.Fatalf("first AppendOnce = %+v, %v, %v", out, known, err)
			}
			// At once (the first may still wait to be sequenced): all
			// three, one of them new.
			out, known, err = l.AppendOnce(ctx, "t", testWriter, reqs, ids, wait)
			if err != nil || len(out) != 1 || out[0].ID != ids[2] || out[0].Seq != 2 || !slices.Equal(known, ids[:2]) {
				t.Fatalf("second AppendOnce = %+v, known %v, %v", out, known, err)
			}
			// Later, from the session index.
			if n := logSize(t, l); n != 3 {
				t.Fatalf("log size %d, want 3", n)
			}
			out, known, err = l.AppendOnce(ctx, "t", testWriter, reqs, ids, wait)
			if err != nil || len(out) != 0 || len(known) != 3 {
				t.Fatalf("third AppendOnce = %+v, known %v, %v", out, known, err)
			}
			// One id twice in one call: once.
			r2, id2 := onceReqs("s1", "yy", 1)
			out, known, err = l.AppendOnce(ctx, "t", testWriter, []*event.Request{r2[0], r2[0]}, []string{id2[0], id2[0]}, wait)
			if err != nil || len(out) != 1 || len(known) != 1 {
				t.Fatalf("one id twice = %+v, known %v, %v", out, known, err)
			}
			// An id is one event in the whole log: another tenant's
			// event of the same id is not appended (callers derive ids
			// from the tenant).
			if _, known, err := l.AppendOnce(ctx, "u", testWriter, reqs[:1], ids[:1], wait); err != nil || len(known) != 1 {
				t.Fatalf("another tenant: known %v, %v", known, err)
			}
			if n := logSize(t, l); n != 4 {
				t.Fatalf("log size %d, want 4", n)
			}
		})
	}
}

// Malformed ids are refused before anything is written.
func TestAppendOnceIDs(t *testing.T) {
	l := newTestLog(t, nil)
	reqs, _ := onceReqs("s1", "x", 1)
	for _, ids := range [][]string{{"ABCDEF0123456789abcdef0123456789"}, {"abc"}, {}, {"0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdee"}} {
		if _, _, err := l.AppendOnce(context.Background(), "t", testWriter, reqs, ids, WaitDurable); err == nil {
			t.Errorf("ids %q accepted", ids)
		}
	}
	if n := logSize(t, l); n != 0 {
		t.Fatalf("log size %d, want 0", n)
	}
}

// Deliveries of the same events at once, from many goroutines, append each
// event once, in one chain.
func TestAppendOnceConcurrent(t *testing.T) {
	l := newTestLog(t, nil)
	reqs, ids := onceReqs("s1", "x", 5)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []event.Appended
	for range 8 {
		wg.Go(func() {
			out, _, err := l.AppendOnce(context.Background(), "t", testWriter, reqs, ids, WaitDurable)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			all = append(all, out...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(all) != 5 {
		t.Fatalf("%d events appended, want 5", len(all))
	}
	checkExactlyOnce(t, l, all)
}

// A delivery acknowledged before a crash, before it was sequenced, and
// delivered again after the restart: once.
func TestAppendOnceAfterCrash(t *testing.T) {
	dir := t.TempDir()
	l, closeAll := openTestLog(t, dir, func(c *Config) { c.holdSequencer = make(chan struct{}) })
	reqs, ids := onceReqs("s1", "x", 3)
	acked, _, err := l.AppendOnce(context.Background(), "t", testWriter, reqs, ids, WaitDurable)
	if err != nil || len(acked) != 3 {
		t.Fatalf("AppendOnce = %d, %v", len(acked), err)
	}
	l.crash(closeAll)

	l2, closeAll2 := openTestLog(t, dir, nil)
	defer closeAll2()
	out, known, err := l2.AppendOnce(context.Background(), "t", testWriter, reqs, ids, WaitDurable)
	if err != nil || len(out) != 0 || len(known) != 3 {
		t.Fatalf("after the restart: AppendOnce = %+v, known %v, %v", out, known, err)
	}
	checkExactlyOnce(t, l2, acked)
}

// Two instances on one shared journal taking the same deliveries at once
// append each event once.
func TestAppendOnceSharedInstances(t *testing.T) {
	sl := newS3Log(t)
	a, b := sl.instance(t, nil), sl.instance(t, nil)
	reqs, ids := onceReqs("shared", "x", 4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []event.Appended
	for _, l := range []*Log{a, b, a, b} {
		wg.Go(func() {
			out, _, err := l.AppendOnce(context.Background(), "t", testWriter, reqs, ids, WaitIndex)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			all = append(all, out...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(all) != 4 {
		t.Fatalf("%d events appended, want 4", len(all))
	}
	if err := checkChain(a, all); err != nil {
		t.Fatal(err)
	}
}

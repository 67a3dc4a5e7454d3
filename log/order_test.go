package log

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// With a tiny batch age the sequencer hands real Tessera each chunk in many
// parts (see addInOrder; TestAddInOrderAgainstStallingQueue shows the
// reordering it prevents), with goroutines burning every core meanwhile:
// every acknowledged event is in the log once, every session one chain in
// log order.
func TestSequencerKeepsSessionOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	for round := range 1 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			hold := make(chan struct{})
			l := newTestLog(t, func(c *Config) {
				c.holdSequencer = hold
				c.BatchMaxAge = 2 * time.Millisecond
			})
			// A backlog of 400 events in 8 sessions, in batches of one
			// session each, so that a chunk holds runs of every session.
			var acked []event.Appended
			for i := range 20 {
				reqs := make([]*event.Request, 20)
				for j := range reqs {
					reqs[j] = req(fmt.Sprintf("s%d", i%8))
					reqs[j].Payload = json.RawMessage(fmt.Sprintf(`{"call":%d}`, 20*i+j))
				}
				out, err := l.AppendWait(context.Background(), "t", testWriter, reqs, WaitDurable)
				if err != nil {
					t.Fatal(err)
				}
				acked = append(acked, out...)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 2 * runtime.GOMAXPROCS(0) {
				wg.Go(func() {
					x := 0
					for {
						select {
						case <-stop:
							return
						default:
						}
						for i := range 10000 {
							x += i * i
						}
						_ = x
					}
				})
			}
			close(hold)
			err := l.WaitIndexed(context.Background())
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			checkExactlyOnce(t, l, acked)
		})
	}
}

// stallingQueue is Tessera's queue (storage/internal/queue.go, v1.0.4:
// flush when full or when the age timer fires, send the batch to the
// sequencer after unlocking) under the schedule a busy machine can impose:
// every other flush of the age timer stalls between its unlock and its
// send.
type stallingQueue struct {
	maxAge, stall time.Duration
	addCost       time.Duration // how long each Add takes before it queues

	mu      sync.Mutex
	items   []*queued
	flushes int
	work    chan []*queued
	next    uint64 // the sequencer's next index
}

type queued struct {
	done  chan struct{}
	index uint64
}

func newStallingQueue(maxAge, stall time.Duration) *stallingQueue {
	q := &stallingQueue{maxAge: maxAge, stall: stall, work: make(chan []*queued, 1)}
	go func() {
		for b := range q.work {
			for _, it := range b {
				it.index = q.next
				q.next++
				close(it.done)
			}
		}
	}()
	return q
}

func (q *stallingQueue) Add(_ context.Context, _ *tessera.Entry) tessera.IndexFuture {
	if q.addCost > 0 {
		time.Sleep(q.addCost)
	}
	it := &queued{done: make(chan struct{})}
	q.mu.Lock()
	q.items = append(q.items, it)
	if len(q.items) == 1 {
		time.AfterFunc(q.maxAge, q.flush)
	}
	q.mu.Unlock()
	return func() (tessera.Index, error) {
		<-it.done
		return tessera.Index{Index: it.index}, nil
	}
}

func (q *stallingQueue) flush() {
	q.mu.Lock()
	b := q.items
	q.items = nil
	q.flushes++
	stall := q.flushes%2 == 1
	q.mu.Unlock()
	if stall {
		time.Sleep(q.stall)
	}
	if len(b) > 0 {
		q.work <- b
	}
}

// The sequencer hands Tessera a chunk in parts that its queue cannot
// reorder within a session: with every other age-timer flush stalled past
// the next batch's age, a chunk that the timer split between two events of
// a session would reach the sequencer out of order. Quick adds (the timer
// fires after the whole chunk is in) and slow ones (it fires part way).
func TestAddInOrderAgainstStallingQueue(t *testing.T) {
	for _, cost := range []time.Duration{0, 20 * time.Microsecond} {
		t.Run(fmt.Sprint("add=", cost), func(t *testing.T) { testAddInOrder(t, cost) })
	}
}

func testAddInOrder(t *testing.T, addCost time.Duration) {
	const age = 50 * time.Millisecond
	q := newStallingQueue(age, 2*age)
	q.addCost = addCost
	// The longest stretch of the sequencer between two Adds, the second
	// included: the design holds a session's order unless that goroutine
	// stalls over BatchMaxAge/2 inside one Add (addInOrder's comment), which
	// a loaded machine (the race detector, other builds) can do; then the
	// order is not the test's to judge.
	var stallMu sync.Mutex
	var lastAdd time.Time
	var longest time.Duration
	add := func(ctx context.Context, e *tessera.Entry) tessera.IndexFuture {
		stallMu.Lock()
		start := lastAdd
		stallMu.Unlock()
		f := q.Add(ctx, e)
		now := time.Now()
		stallMu.Lock()
		if !start.IsZero() && now.Sub(start) > longest {
			longest = now.Sub(start)
		}
		lastAdd = now
		stallMu.Unlock()
		return f
	}
	l := &Log{cfg: Config{BatchMaxAge: age}, appender: &tessera.Appender{Add: add},
		logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	// 1,500 events of 8 sessions in runs of 10, with large leaves: hashing
	// them takes longer than the batch age, as a full chunk of Tessera's
	// largest batch can under load.
	items := make([]*item, 1500)
	session := make(map[*item]int)
	for i := range items {
		items[i] = &item{data: record{leaf: bytes.Repeat([]byte{byte(i)}, 32<<10)}, key: sessionKey{"t", fmt.Sprint(i / 10 % 8)}}
		session[items[i]] = i / 10 % 8
	}
	if err := l.sequence(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	last := map[int]uint64{}
	for i, it := range items {
		if !it.indexed {
			t.Fatalf("item %d has no index", i)
		}
		s := session[it]
		if prev, ok := last[s]; ok && it.index <= prev {
			if longest >= age/2 {
				t.Skipf("item %d of session %d is at index %d, before %d: the sequencer stalled %v between two Adds, over BatchMaxAge/2 (%v), where the design does not hold the order", i, s, it.index, prev, longest, age/2)
			}
			t.Fatalf("item %d of session %d is at index %d, before the session's previous item at %d (longest stretch between two Adds %v)", i, s, it.index, prev, longest)
		}
		last[s] = it.index
	}
}

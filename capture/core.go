package capture

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// core is what the proxy and the Hook share: options, call grouping, gap
// tracking and the recording of one attempt (exchange).
type core struct {
	o      options
	front  string // "proxy" or "middleware"
	calls  *callTable
	gaps   *gaps
	tools  *toolMemory
	logger *slog.Logger

	bg       tracker // queued records
	qmu      sync.Mutex
	queues   map[queueKey]*queue // pending records by session; present while its runner runs
	loopOnce sync.Once
	loopDone chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
}

// tracker counts background work; unlike a sync.WaitGroup it may be waited
// on while work is still being added.
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{}
}

func (t *tracker) add() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
}

// wait waits until no work is in progress.
func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return nil
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newCore(front string, o options) (*core, error) {
	if _, err := ParseMode(string(o.mode)); err != nil {
		return nil, err
	}
	if o.maxRequestBytes <= 0 || o.maxRecordedBytes <= 0 || o.recordTimeout <= 0 || o.retryInterval <= 0 || o.recordLinger < 0 {
		return nil, errors.New("capture: limits and timeouts must be positive")
	}
	if len(o.fingerprintKey) == 0 {
		o.fingerprintKey = make([]byte, 32)
		rand.Read(o.fingerprintKey)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return &core{o: o, front: front, calls: newCallTable(), gaps: newGaps(), tools: newToolMemory(o.toolHistory), logger: o.logger,
		queues: map[queueKey]*queue{}, stop: make(chan struct{}), loopDone: make(chan struct{})}, nil
}

var systemActor = event.Actor{Type: "system", ID: "capture"}

// record appends evs through rec, carrying the scope's pending gap events
// in the same all-or-nothing batch, ahead of them. When the log refuses the
// batch for good (permanentError), each gap event is tried on its own and
// those refused are dropped: a gap the log will never take must not hold
// back every later record of the scope.
func (c *core) record(ctx context.Context, rec Recorder, scope string, evs []*event.Request) ([]event.Appended, error) {
	pend := c.gaps.take(scope, maxGapsPerBatch)
	batch := make([]*event.Request, 0, len(pend)+len(evs))
	if len(pend) > 0 {
		common := attrs{}
		common.set(event.AttrCaptureFront, c.front)
		common.set(event.AttrCaptureMode, string(c.o.mode))
		for _, g := range pend {
			batch = append(batch, g.event(systemActor, common))
		}
	}
	batch = append(batch, evs...)
	if len(batch) == 0 {
		return nil, nil
	}
	res, err := rec.Record(ctx, batch)
	if err != nil && len(pend) > 0 && permanentError(err) {
		if err := c.recordGapsAlone(ctx, rec, scope, pend, batch[:len(pend)]); err != nil {
			return nil, err
		}
		pend = nil
		if len(evs) == 0 {
			return nil, nil
		}
		res, err = rec.Record(ctx, evs)
	}
	if err != nil {
		c.gaps.restore(scope, rec, pend)
		return nil, err
	}
	if len(res) != len(pend)+len(evs) {
		return nil, fmt.Errorf("capture: recorder returned %d results for %d events", len(res), len(pend)+len(evs))
	}
	if len(pend) > 0 {
		n := 0
		for _, g := range pend {
			n += g.count
		}
		c.logger.Info("capture: recorded gaps", "gaps", len(pend), "missed_events", n)
	}
	return res[len(pend):], nil
}

// recordGapsAlone records the gap events gevs (of pend) one at a time,
// after a batch carrying them was refused for good: a gap event the log
// refuses for good is dropped (logged; its missed events stay unaccounted
// for in the log), one it cannot take now is put back with those after it
// and the error returned.
func (c *core) recordGapsAlone(ctx context.Context, rec Recorder, scope string, pend []*gap, gevs []*event.Request) error {
	for i, g := range pend {
		_, err := rec.Record(ctx, gevs[i:i+1])
		switch {
		case err == nil:
			c.logger.Info("capture: recorded gaps", "gaps", 1, "missed_events", g.count)
		case permanentError(err):
			c.logger.Error("capture: gap event refused by the log, dropping it", "session", g.session, "missed_events", g.count, "error", err)
		default:
			c.gaps.restore(scope, rec, pend[i:])
			return err
		}
	}
	return nil
}

// permanentError reports whether the log refused events for what they are
// (invalid, or in a session or of a kind the writer may not use): sending
// them again cannot succeed.
func permanentError(err error) bool {
	return errors.Is(err, event.ErrInvalidEvent) || errors.Is(err, event.ErrReservedSession) || errors.Is(err, event.ErrReservedKind)
}

// noteGap remembers events that could not be recorded and makes sure they
// are retried even if no call comes to carry them.
// A session the log would refuse a gap event in (a server session, an
// invalid id) is never used: such missed events are noted in the overflow
// session.
func (c *core) noteGap(scope string, rec Recorder, session string, err error, items ...gapItem) {
	if !event.ValidID(session) || event.PermitSession(session, systemActor) != nil {
		c.logger.Error("capture: events missed in a session the log refuses; noted in "+overflowSession, "session", event.Clip(session, 128), "error", err)
		session = overflowSession
	}
	c.gaps.note(scope, rec, session, err, items...)
	c.loopOnce.Do(func() { go c.retryLoop() })
}

func (c *core) retryLoop() {
	defer close(c.loopDone)
	t := time.NewTicker(c.o.retryInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.flushGaps(context.Background())
		}
	}
}

// flushGaps tries to record every pending gap.
func (c *core) flushGaps(ctx context.Context) {
	for scope, rec := range c.gaps.pending() {
		for c.gaps.has(scope) {
			rctx, cancel := context.WithTimeout(ctx, c.o.recordTimeout)
			_, err := c.record(rctx, rec, scope, nil)
			cancel()
			if err != nil {
				break
			}
		}
	}
}

// close waits for background records, tries once more to record pending
// gaps, and reports what stays unrecorded.
func (c *core) close(ctx context.Context) error {
	c.stopOnce.Do(func() { close(c.stop) })
	c.loopOnce.Do(func() { close(c.loopDone) }) // never started
	select {
	case <-c.loopDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := c.bg.wait(ctx); err != nil {
		return fmt.Errorf("capture: waiting for background records: %w", err)
	}
	c.flushGaps(ctx)
	if n := c.gaps.count(); n > 0 {
		c.logger.Error("capture: events missed and no gap event recorded", "missed_events", n)
		return fmt.Errorf("capture: %d missed events are not covered by a recorded capture.gap event", n)
	}
	return nil
}

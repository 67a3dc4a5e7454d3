package log

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/journal"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// item is one event on its way from the journal into the log.
type item struct {
	rec   journal.Record
	data  record
	id    string
	key   sessionKey // the event's tenant and session
	maybe bool       // may be in the log already
	local *waiter    // the append of this process that wrote it, if any

	index   uint64
	indexed bool
}

// waiter is an append of this process waiting for its event's index.
type waiter struct {
	id              string
	tenant, session string
	sess            *session // nil when heads are not kept by this process
	// slot: the waiter holds a place in Log.inflight, given back once,
	// by whoever takes it first (answer, or its append dropping it).
	slot atomic.Bool
	at   time.Time

	done     chan struct{} // closed once sequenced
	index    uint64
	resolved atomic.Bool
}

// sequencer tracks how far the journal has been sequenced.
type sequencer struct {
	sequenced atomic.Uint64 // position of the last record sequenced
	stored    atomic.Int64  // records taken whose payloads are stored, not yet released
	waiting   sync.Map      // event id -> *waiter, until sequenced

	wmu   sync.Mutex
	moved chan struct{} // closed and replaced when sequencing advances

	halted atomic.Pointer[error] // why the sequencer stopped for good, if it did

	// urgent counts those waiting for sequencing now (urge); kick wakes a
	// sequencer that lingers when one starts to.
	urgent atomic.Int64
	kick   chan struct{}
}

func newSequencer() *sequencer {
	return &sequencer{moved: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// urge says that its caller waits for sequencing until it calls the
// function returned: while anyone does, the sequencer does not linger.
func (s *sequencer) urge() (done func()) {
	s.urgent.Add(1)
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return func() { s.urgent.Add(-1) }
}

func (s *sequencer) advance() {
	s.wmu.Lock()
	close(s.moved)
	s.moved = make(chan struct{})
	s.wmu.Unlock()
}

// halt records that the sequencer stopped for good and wakes every waiter.
func (s *sequencer) halt(err error) {
	s.halted.CompareAndSwap(nil, &err)
	s.advance()
}

// err is why the sequencer stopped for good, or nil.
func (s *sequencer) err() error {
	if p := s.halted.Load(); p != nil {
		return *p
	}
	return nil
}

// wait waits until ok holds, checking it each time sequencing advances. It
// fails if the sequencer stopped for good first.
func (s *sequencer) wait(ctx context.Context, ok func() bool) error {
	for {
		s.wmu.Lock()
		ch := s.moved
		s.wmu.Unlock()
		if ok() {
			return nil
		}
		if err := s.err(); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Healthy is nil while the log sequences, and says why not once the
// sequencer stopped for good (ErrSequencerStopped).
func (l *Log) Healthy() error { return l.seq.err() }

// waitJournal waits until every record durable in the journal now is
// sequenced (by this instance or, on a shared journal, another).
func (l *Log) waitJournal(ctx context.Context) error {
	defer l.seq.urge()()
	mark, err := l.journal.Mark(ctx)
	if err != nil {
		return err
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		l.seq.wmu.Lock()
		moved := l.seq.moved
		l.seq.wmu.Unlock()
		ok, err := l.journal.Passed(ctx, mark)
		if err != nil || ok {
			return err
		}
		if err := l.seq.err(); err != nil {
			return err
		}
		select {
		case <-moved:
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitPosition waits until the journal is sequenced up to pos.
func (l *Log) waitPosition(ctx context.Context, pos uint64) error {
	defer l.seq.urge()()
	return l.seq.wait(ctx, func() bool { return l.seq.sequenced.Load() >= pos })
}

// runSequencer moves durable records into the vault and the log until ctx
// ends, one chunk at a time: everything the journal has ready when the
// previous chunk is done (up to BatchMaxSize), its payloads stored, then
// its leaves sequenced, then its records released. One chunk at a time keeps
// the log in journal order even when a chunk fails part way and is tried
// again.
func (l *Log) runSequencer(ctx context.Context) {
	l.wg.Go(func() {
		if h := l.cfg.holdSequencer; h != nil {
			select {
			case <-h:
			case <-ctx.Done():
				return
			}
		}
		for {
			recs, err := l.journal.Next(ctx, int(l.cfg.BatchMaxSize))
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, journal.ErrClosed) {
					return
				}
				l.logger.Warn("sequencer: reading the journal", "error", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				continue
			}
			if len(recs) < int(l.cfg.BatchMaxSize) {
				recs = append(recs, l.linger(ctx, int(l.cfg.BatchMaxSize)-len(recs))...)
			}
			chunk, err := l.items(recs)
			if err != nil {
				// A record the engine wrote and cannot read: stop here
				// rather than skip it; it stays in the journal.
				l.logger.Error("sequencer: stopped at a journal record it cannot read", "error", err)
				l.seq.halt(fmt.Errorf("%w: %w", ErrSequencerStopped, err))
				return
			}
			if err := l.storePayloads(ctx, chunk); err != nil {
				return // ctx ended
			}
			l.seq.stored.Add(int64(len(chunk)))
			if err := l.sequence(ctx, chunk); errors.Is(err, errLeaseLost) {
				// Another instance sequences the journal now: leave the
				// chunk to it (it looks for what this one appended).
				l.seq.stored.Add(-int64(len(chunk)))
				if r, ok := l.journal.(interface{ Return([]journal.Record) }); ok {
					r.Return(recs)
				}
				continue
			} else if err != nil {
				return // ctx ended
			}
			if f := l.cfg.afterSequence; f != nil {
				if f(ctx); ctx.Err() != nil {
					return
				}
			}
			recs = make([]journal.Record, len(chunk))
			for i, it := range chunk {
				recs[i] = it.rec
			}
			if err := retry(ctx, l, "releasing journal records", func() error { return l.journal.Release(ctx, recs) }); err != nil {
				return
			}
			l.finish(chunk)
		}
	})
}

// linger waits, while no one waits for sequencing, up to SequenceLinger
// for more of the journal, and returns what is ready then (at most room
// records): a chunk that fills for a few milliseconds costs one Tessera
// batch and one commit of the vault and of the index where several small
// ones cost each of these, and no one waits for it. A waiter ends the wait
// at once (urge).
func (l *Log) linger(ctx context.Context, room int) []journal.Record {
	j, ok := l.journal.(interface {
		TryNext(max int) []journal.Record
	})
	if !ok || l.cfg.SequenceLinger <= 0 {
		return nil
	}
	select { // a kick from before this wait is spent
	case <-l.seq.kick:
	default:
	}
	if l.seq.urgent.Load() > 0 {
		return nil
	}
	t := time.NewTimer(l.cfg.SequenceLinger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.seq.kick:
	case <-ctx.Done():
		return nil
	}
	return j.TryNext(room)
}

// items decodes journal records.
func (l *Log) items(recs []journal.Record) ([]*item, error) {
	out := make([]*item, len(recs))
	for i, r := range recs {
		rec, err := decodeRecord(r.Data)
		if err != nil {
			return nil, fmt.Errorf("journal record %d: %w", r.Pos, err)
		}
		it := &item{rec: r, data: rec, maybe: r.Maybe}
		if w, ok := r.Tag.(*waiter); ok {
			it.local, it.id, it.key = w, w.id, sessionKey{w.tenant, w.session}
		} else {
			h, err := event.ParseHead(rec.leaf)
			if err == nil && h.ID == "" {
				err = errors.New("leaf has no id")
			}
			if err != nil {
				return nil, fmt.Errorf("journal record %d: %w", r.Pos, err)
			}
			it.id, it.key = h.ID, sessionKey{h.Tenant, h.Session}
			if w, ok := l.seq.waiting.Load(it.id); ok {
				it.local = w.(*waiter)
			}
		}
		out[i] = it
	}
	return out, nil
}

// storePayloads stores the payloads of chunk in the vault, retrying until
// it succeeds or ctx ends: a leaf is never sequenced before its payload is
// stored.
func (l *Log) storePayloads(ctx context.Context, chunk []*item) error {
	var sealed []vault.Sealed
	var bodies [][]byte
	for _, it := range chunk {
		if it.data.sealed != nil {
			sealed = append(sealed, *it.data.sealed)
		}
		if l.sealer != nil {
			bodies = append(bodies, it.data.leaf)
		}
	}
	// On a log of leaf version 3, an envelope is never sequenced before
	// its body is stored.
	if len(bodies) > 0 {
		if err := retry(ctx, l, "storing bodies", func() error { return l.vault.PutBodies(ctx, bodies...) }); err != nil {
			return err
		}
	}
	if len(sealed) == 0 {
		return nil
	}
	return retry(ctx, l, "storing payloads", func() error { return l.vault.PutSealed(ctx, sealed...) })
}

// retry calls f until it succeeds, backing off, or ctx ends, or f fails
// with errLeaseLost.
func retry(ctx context.Context, l *Log, what string, f func() error) error {
	wait := 50 * time.Millisecond
	for {
		err := f()
		if err == nil || errors.Is(err, errLeaseLost) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.logger.Warn("sequencer: retrying", "step", what, "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// sequence appends the leaves of items to the log, in order, each exactly
// once: an item that may be there already (Maybe, or an earlier try that
// failed part way) is looked for by its event id among the log's last
// entries, and not appended again if found.
func (l *Log) sequence(ctx context.Context, items []*item) error {
	look := slices.ContainsFunc(items, func(it *item) bool { return it.maybe })
	return retry(ctx, l, "appending to the log", func() error {
		if look {
			window := uint64(max(0, l.journal.Depth())) + uint64(len(items)) + uint64(l.cfg.BatchMaxSize)
			if err := l.findInLog(ctx, items, window); err != nil {
				return err
			}
		}
		look = true // a later try looks for what an earlier one appended
		todo := make([]*item, 0, len(items))
		for _, it := range items {
			if !it.indexed {
				todo = append(todo, it)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		// On a shared journal, only the holder of the sequencer lease
		// appends: one that lost it waits, and looks again once it has it
		// back (the new holder may have appended these records).
		if h, ok := l.journal.(interface{ Holds() bool }); ok && !h.Holds() {
			return errLeaseLost
		}
		return l.addInOrder(ctx, todo)
	})
}

// addInOrder hands items to Tessera in parts, each part's indices awaited
// before the next part is added, so that a session's events reach the log
// in order.
//
// Tessera's queue (storage/internal/queue.go, v1.0.4) flushes a batch when
// it is full, or when its age timer fires BatchMaxAge after the first entry
// went in, and sends the batch to its sequencer after unlocking. Two batches
// in flight at once can therefore reach the sequencer in either order: if
// the timer split a chunk between two events of a session, the later one
// could get the lower index. A part begins with Tessera's queue empty (the
// previous part's indices are in); its first Add starts the timer at t0 or
// later, so every entry added before t0 + BatchMaxAge is in the batch the
// timer flushes. Once BatchMaxAge/2 has passed, the part takes only events
// of sessions it does not hold yet, and ends before the first event of a
// session it holds: a split there separates different sessions, whose
// relative order does not matter. Only an Add that itself takes over
// BatchMaxAge/2 could be split from an earlier event of its session; the
// indices are checked and such a reordering logged. The entries' hashes are
// computed before the first Add, so a part normally takes the whole chunk.
func (l *Log) addInOrder(ctx context.Context, items []*item) error {
	entries := make([]*tessera.Entry, len(items))
	for i, it := range items {
		entries[i] = tessera.NewEntry(l.sealedEntry(it.key.tenant, it.data.leaf, nil, false)) // the envelope on leaf versions 3 and 4
	}
	age := l.cfg.BatchMaxAge
	// A part stays below Tessera's batch size: no size flush, sent by the
	// adding goroutine, can overtake the timer flush of the part's start.
	most := len(items)
	if l.cfg.BatchMaxSize > 1 {
		most = min(most, int(l.cfg.BatchMaxSize)-1)
	}
	futs := make([]tessera.IndexFuture, 0, most)
	in := make(map[sessionKey]bool)
	for start := 0; start < len(items); {
		futs = futs[:0]
		clear(in)
		t0 := time.Now()
		for i := start; i < len(items); i++ {
			k := items[i].key
			if len(futs) == most || in[k] && time.Since(t0) >= age/2 {
				break
			}
			in[k] = true
			futs = append(futs, l.appender.Add(ctx, entries[i]))
		}
		part := items[start : start+len(futs)]
		l.observeBatch(len(part))
		var firstErr error
		for i, f := range futs {
			idx, err := f()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			part[i].index, part[i].indexed = idx.Index, true
		}
		if firstErr != nil {
			return storageErr(firstErr)
		}
		last := make(map[sessionKey]uint64, len(in))
		for _, it := range part {
			if prev, ok := last[it.key]; ok && it.index <= prev {
				// Only a stall of this goroutine over BatchMaxAge/2 inside
				// one Add, with Tessera's timer goroutine stalled between its
				// unlock and its send, can do this.
				l.logger.Error("sequencer: Tessera sequenced a session's events out of order", "tenant", it.key.tenant, "session", it.key.session, "index", it.index, "after", prev)
			}
			last[it.key] = it.index
		}
		start += len(part)
	}
	return nil
}

// findInLog marks the items whose event id is among the last window
// entries of the log as sequenced at the index found.
func (l *Log) findInLog(ctx context.Context, items []*item, window uint64) error {
	want := make(map[string]*item, len(items))
	for _, it := range items {
		if !it.indexed {
			want[it.id] = it
		}
	}
	if len(want) == 0 {
		return nil
	}
	// Entries sequenced but not yet integrated cannot be read yet: wait
	// for them (the AWS driver integrates about once a second).
	next, err := l.reader.NextIndex(ctx)
	if err != nil {
		return err
	}
	size := next
	if next > 0 {
		if size, _, err = l.sizeCovering(ctx, next-1); err != nil {
			return err
		}
	}
	from := size - min(size, window)
	for bi := from / layout.EntryBundleWidth; bi*layout.EntryBundleWidth < size; bi++ {
		b, err := l.readBundle(ctx, bi, size)
		if err != nil {
			return err
		}
		for i, leaf := range b.Entries {
			idx := bi*layout.EntryBundleWidth + uint64(i)
			if idx < from {
				continue
			}
			id, _, err := event.LeafPayload(leaf)
			if err != nil {
				continue
			}
			if it, ok := want[id]; ok {
				it.index, it.indexed = idx, true
			}
		}
	}
	return nil
}

// finish answers the waiters of a sequenced chunk.
func (l *Log) finish(chunk []*item) {
	now := time.Now()
	l.seq.stored.Add(-int64(len(chunk)))
	var oldest time.Time
	for _, it := range chunk {
		w := it.local
		if w == nil {
			continue
		}
		if oldest.IsZero() || w.at.Before(oldest) {
			oldest = w.at
		}
		l.answer(w, it.index, now)
	}
	if p := chunk[len(chunk)-1].rec.Pos; p > l.seq.sequenced.Load() {
		l.seq.sequenced.Store(p)
	}
	l.seq.advance()
	l.observeJournal(oldest)
}

// answer answers w with its event's index, once (the sequencer of this
// process, or on a shared journal the resolver, may find it first).
func (l *Log) answer(w *waiter, index uint64, now time.Time) {
	if !w.resolved.CompareAndSwap(false, true) {
		return
	}
	l.seq.waiting.Delete(w.id)
	if s := w.sess; s != nil {
		// lastIndex first: a session with no pending event is evicted once
		// the index covers lastIndex.
		for {
			old := s.lastIndex.Load()
			if index <= old || s.lastIndex.CompareAndSwap(old, index) {
				break
			}
		}
		s.pending.Add(-1)
	}
	l.releaseSlot(w)
	l.observeIndexed(now.Sub(w.at))
	w.index = index
	close(w.done)
}

// resolveShared answers, every poll, the waiters of this process whose
// events another instance sequenced (a shared journal: the instance that
// holds the lease sequences every instance's records), from the session
// index.
func (l *Log) resolveShared(ctx context.Context, poll time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var ws []*waiter
		l.seq.waiting.Range(func(_, v any) bool {
			ws = append(ws, v.(*waiter))
			return len(ws) < 1000
		})
		if len(ws) == 0 {
			continue
		}
		ids := make([]string, len(ws))
		for i, w := range ws {
			ids[i] = w.id
		}
		found, err := l.index.ByIDs(ctx, ids)
		if err != nil {
			continue
		}
		now := time.Now()
		for _, w := range ws {
			if idx, ok := found[w.id]; ok {
				l.answer(w, idx, now)
			}
		}
	}
}

var errLeaseLost = errors.New("this instance no longer holds the sequencer lease")

// ErrClosed: the log is closed, or closing.
var ErrClosed = errors.New("log closed")

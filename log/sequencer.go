package log

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/journal"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// item is one acknowledged event on its way into the log.
type item struct {
	pos  uint64
	rec  record
	id   string
	sess *session // nil for a record recovered from the journal
	slot bool     // holds a place in Log.inflight
	at   time.Time

	done    chan struct{} // closed once sequenced
	index   uint64
	indexed bool
}

// sequencer carries durable records into the vault and the log, in journal
// order: one goroutine stores a chunk's payloads while another has the
// previous chunk sequenced.
type sequencer struct {
	mu    sync.Mutex
	queue []*item
	kick  chan struct{}

	durable   atomic.Uint64 // last position durable
	sequenced atomic.Uint64 // last position sequenced

	wmu   sync.Mutex
	moved chan struct{} // closed and replaced when sequenced advances
}

func newSequencer() *sequencer {
	return &sequencer{kick: make(chan struct{}, 1), moved: make(chan struct{})}
}

// durableGroup is the journal's callback: entries are durable, in order.
func (l *Log) durableGroup(entries []*journal.Entry) {
	s := l.seq
	s.mu.Lock()
	for _, e := range entries {
		it := e.Tag.(*item)
		it.pos = e.Pos
		s.queue = append(s.queue, it)
	}
	s.mu.Unlock()
	s.durable.Store(entries[len(entries)-1].Pos)
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// take removes up to n queued items.
func (s *sequencer) take(n int) []*item {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := min(n, len(s.queue))
	out := s.queue[:k:k]
	s.queue = s.queue[k:]
	if len(s.queue) == 0 {
		s.queue = nil
	}
	return out
}

func (s *sequencer) advance(pos uint64) {
	s.sequenced.Store(pos)
	s.wmu.Lock()
	close(s.moved)
	s.moved = make(chan struct{})
	s.wmu.Unlock()
}

// waitSequenced waits until every record up to pos is sequenced.
func (s *sequencer) waitSequenced(ctx context.Context, pos uint64) error {
	for {
		s.wmu.Lock()
		ch := s.moved
		s.wmu.Unlock()
		if s.sequenced.Load() >= pos {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// runSequencer moves durable records into the vault and the log until ctx
// ends.
func (l *Log) runSequencer(ctx context.Context) {
	chunks := make(chan []*item, 1)
	l.wg.Go(func() {
		defer close(chunks)
		for {
			select {
			case <-ctx.Done():
				return
			case <-l.seq.kick:
			}
			for {
				chunk := l.seq.take(int(l.cfg.BatchMaxSize))
				if len(chunk) == 0 {
					break
				}
				if err := l.storePayloads(ctx, chunk); err != nil {
					return // ctx ended
				}
				select {
				case chunks <- chunk:
				case <-ctx.Done():
					return
				}
			}
		}
	})
	l.wg.Go(func() {
		for chunk := range chunks {
			if err := l.sequence(ctx, chunk, 0); err != nil {
				return // ctx ended
			}
			l.finish(chunk)
		}
	})
}

// storePayloads stores the payloads of chunk in the vault, retrying until
// it succeeds or ctx ends: a leaf is never sequenced before its payload is
// stored.
func (l *Log) storePayloads(ctx context.Context, chunk []*item) error {
	var sealed []vault.Sealed
	for _, it := range chunk {
		if it.rec.sealed != nil {
			sealed = append(sealed, *it.rec.sealed)
		}
	}
	if len(sealed) == 0 {
		return nil
	}
	return retry(ctx, l, "storing payloads", func() error { return l.vault.PutSealed(ctx, sealed...) })
}

// retry calls f until it succeeds, backing off, or ctx ends.
func retry(ctx context.Context, l *Log, what string, f func() error) error {
	wait := 50 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
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
// once: an item already in the log (an earlier try, or a run before a
// crash, put it there) is found by its event id among the last window
// entries and not appended again. window 0 means len(items).
func (l *Log) sequence(ctx context.Context, items []*item, window uint64) error {
	if window == 0 {
		window = uint64(len(items))
	}
	first := true
	return retry(ctx, l, "appending to the log", func() error {
		if !first {
			if err := l.findInLog(ctx, items, window); err != nil {
				return err
			}
		}
		first = false
		todo := make([]*item, 0, len(items))
		for _, it := range items {
			if !it.indexed {
				todo = append(todo, it)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		futs := make([]tessera.IndexFuture, len(todo))
		for i, it := range todo {
			futs[i] = l.appender.Add(ctx, tessera.NewEntry(it.rec.leaf))
		}
		var firstErr error
		for i, f := range futs {
			idx, err := f()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			todo[i].index, todo[i].indexed = idx.Index, true
		}
		if firstErr != nil {
			return storageErr(firstErr)
		}
		return nil
	})
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
	size, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return err
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

// finish answers the waiters of a sequenced chunk and releases its records.
func (l *Log) finish(chunk []*item) {
	now := time.Now()
	for _, it := range chunk {
		if it.sess != nil {
			it.sess.pending.Add(-1)
			for {
				old := it.sess.lastIndex.Load()
				if it.index <= old || it.sess.lastIndex.CompareAndSwap(old, it.index) {
					break
				}
			}
		}
		if it.slot {
			<-l.inflight
		}
		l.observeIndexed(now.Sub(it.at))
		close(it.done)
	}
	last := chunk[len(chunk)-1].pos
	l.journal.Release(last)
	l.seq.advance(last)
}

// recoverJournal puts the records a journal held at start into the vault
// and the log, each exactly once, in journal order.
func (l *Log) recoverJournal(ctx context.Context, recs []journal.Record) error {
	if len(recs) == 0 {
		return nil
	}
	items := make([]*item, len(recs))
	for i, r := range recs {
		rec, err := decodeRecord(r.Data)
		if err != nil {
			return fmt.Errorf("journal record %d: %w", r.Pos, err)
		}
		id, _, err := event.LeafPayload(rec.leaf)
		if err != nil {
			return fmt.Errorf("journal record %d: %w", r.Pos, err)
		}
		items[i] = &item{pos: r.Pos, rec: rec, id: id, done: make(chan struct{})}
	}
	window := uint64(len(items))
	if err := l.findInLog(ctx, items, window); err != nil {
		return err
	}
	had := 0
	for _, it := range items {
		if it.indexed {
			had++
		}
	}
	for start := 0; start < len(items); start += int(l.cfg.BatchMaxSize) {
		chunk := items[start:min(len(items), start+int(l.cfg.BatchMaxSize))]
		if err := l.storePayloads(ctx, chunk); err != nil {
			return err
		}
		if err := l.sequence(ctx, chunk, window); err != nil {
			return err
		}
	}
	last := items[len(items)-1].pos
	l.journal.Release(last)
	l.seq.durable.Store(last)
	l.seq.advance(last)
	l.logger.Info("journal recovered", "records", len(items), "already_in_log", had, "appended", len(items)-had)
	return nil
}

// ErrClosed: the log is closed, or closing.
var ErrClosed = errors.New("log closed")

package log

import (
	"context"
	"errors"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Status is where an acknowledged event stands.
type Status struct {
	ID, Tenant, Session string
	// Indexed: the log has sequenced the event at Index. Until then the
	// event is durable in the journal.
	Indexed bool
	Index   uint64
}

// Lookup says where the event with id stands, if tenant may see it ("" for
// any tenant): durable in the journal, or sequenced at an index. It fails
// with ErrNotFound when no acknowledged event has that id (or it is of
// another tenant).
func (l *Log) Lookup(ctx context.Context, tenant, id string) (*Status, error) {
	if !event.ValidID(id) {
		return nil, ErrNotFound
	}
	if v, ok := l.seq.waiting.Load(id); ok {
		w := v.(*waiter)
		if tenant == "" || w.tenant == tenant {
			st := &Status{ID: id, Tenant: w.tenant, Session: w.session}
			select {
			case <-w.done:
				st.Indexed, st.Index = true, w.index
			default:
				// Someone asks for its index: a lingering sequencer
				// takes it now.
				l.seq.urge()()
			}
			return st, nil
		}
		return nil, ErrNotFound
	}
	for try := 0; ; try++ {
		idx, ok, err := l.index.ByID(ctx, tenant, id)
		if err != nil {
			return nil, l.unavailable(ctx, err)
		}
		if ok {
			size, err := l.reader.IntegratedSize(ctx)
			if err != nil {
				return nil, l.unavailable(ctx, err)
			}
			leaf, err := l.ReadLeaf(ctx, idx, size)
			if err != nil {
				return nil, l.unavailable(ctx, err)
			}
			h, err := event.ParseHead(leaf)
			if err != nil || h.ID != id {
				return nil, errors.New("the session index and the log disagree")
			}
			return &Status{ID: id, Tenant: h.Tenant, Session: h.Session, Indexed: true, Index: idx}, nil
		}
		if try == 1 {
			return nil, ErrNotFound
		}
		// Sequenced but not yet in the session index, or never written:
		// let the index catch up with the log once, then look again.
		if err := l.WaitIndexed(ctx); err != nil {
			return nil, l.unavailable(ctx, err)
		}
	}
}

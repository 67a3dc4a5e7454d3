package log

import (
	"context"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/journal"
)

// AppendOnce is AppendWait for events whose ids the caller derives from
// what identifies them outside the log, so that an event delivered again
// (an OpenTelemetry exporter retries an export whose answer it did not get)
// is appended once: ids[i] is the id of reqs[i], 32 lower-case hex digits,
// and an event whose id the log already holds, durable or sequenced, is
// left out and named in known (appended lists the others, in order). An id
// is one event in the whole log (the vault keys payloads by it), so the
// caller derives each id from the tenant and the outside identity (for a
// span: tenant, trace id, span id, kind), and maps a redelivery to the same
// session: the check runs under that session's chain lock.
//
// How it knows: an event of this process not yet sequenced is in the
// sequencer's waiting set, one sequenced but not yet in the session index
// in its session's set of recent ids, and everything older in the session
// index. On a journal shared by several instances, the index must also
// cover the session's head, which AppendOnce waits for (as Lookup does)
// when the session has events the index does not have yet, and an append
// that another instance's append to the same session overtook is checked
// again after it reloads the session's head, so two instances that take
// one redelivered event at once append it once.
func (l *Log) AppendOnce(ctx context.Context, tenant string, w event.Writer, reqs []*event.Request, ids []string, wait Wait) (appended []event.Appended, known []string, err error) {
	defer func() { l.observeAppend(len(appended), err) }()
	if ids == nil {
		ids = []string{}
	}
	return l.appendWait(ctx, tenant, w, reqs, ids, wait, l.cfg.IndexWait)
}

// validEventID: 32 lower-case hex digits, as event.NewID makes them.
func validEventID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// leaveOutKnown returns ps without the events whose ids the log holds (and
// without a second event of one id), adding their ids to known; drop is how
// many it left out. The sessions of ps are locked.
func (l *Log) leaveOutKnown(ctx context.Context, locked *chains, ps []*pending, known *[]string) (_ []*pending, drop int, _ error) {
	have, err := l.holds(ctx, locked, ps)
	if err != nil {
		return nil, 0, err
	}
	seen := make(map[string]bool, len(ps))
	out := ps[:0:0]
	for _, pe := range ps {
		if have[pe.id] || seen[pe.id] {
			*known = append(*known, pe.id)
			continue
		}
		seen[pe.id] = true
		out = append(out, pe)
	}
	return out, len(ps) - len(out), nil
}

// leaveOutKnownAgain is leaveOutKnown after the heads moved, keeping the
// waiters of ps in step.
func (l *Log) leaveOutKnownAgain(ctx context.Context, locked *chains, ps []*pending, ws []*waiter, known *[]string) (_ []*pending, _ []*waiter, drop int, _ error) {
	kept, drop, err := l.leaveOutKnown(ctx, locked, ps, known)
	if err != nil || drop == 0 {
		return ps, ws, 0, err
	}
	byID := make(map[string]*waiter, len(ws))
	for _, w := range ws {
		byID[w.id] = w
	}
	kw := make([]*waiter, len(kept))
	for i, pe := range kept {
		kw[i] = byID[pe.id]
	}
	return kept, kw, drop, nil
}

// holds says which ids of ps the log holds (in any tenant): waiting to be
// sequenced by this process, appended by AppendOnce in this process and
// not yet in the session index, or in the session index. On a journal of
// this process alone, that is all: every event of a session the index does
// not have yet was appended here since the session was loaded (a start
// puts the journal's records into the log and the index first). On a
// journal shared by several instances, the index must first cover each
// locked session's head, which may hold other instances' appends.
func (l *Log) holds(ctx context.Context, locked *chains, ps []*pending) (map[string]bool, error) {
	have := make(map[string]bool)
	var ask []string
	for _, pe := range ps {
		if _, ok := l.seq.waiting.Load(pe.id); ok {
			have[pe.id] = true
			continue
		}
		if _, ok := locked.sess[pe.key].once[pe.id]; ok {
			have[pe.id] = true
			continue
		}
		ask = append(ask, pe.id)
	}
	if len(ask) == 0 {
		return have, nil
	}
	if _, shared := l.journal.(journal.HeadStore); shared {
		behind := false
		for _, k := range locked.keys {
			at, err := l.indexAtHead(ctx, k, locked.head(k))
			if err != nil {
				return nil, fmt.Errorf("reading the session index: %w", err)
			}
			if !at {
				behind = true
				break
			}
		}
		if behind {
			if err := l.WaitIndexed(ctx); err != nil {
				return nil, err
			}
		}
	}
	found, err := l.index.ByIDs(ctx, ask)
	if err != nil {
		return nil, fmt.Errorf("reading the session index: %w", err)
	}
	for id := range found {
		have[id] = true
	}
	return have, nil
}

// maxOnce is how many ids a session keeps in once before it drops those
// the index has.
const maxOnce = 256

// remember keeps the ids of ps in their sessions' once sets, dropping the
// ids the index has once a set grows beyond maxOnce. The sessions are
// locked, and ps durable.
func (c *chains) remember(ps []*pending) {
	for _, pe := range ps {
		s := c.sess[pe.key]
		if s.once == nil {
			s.once = make(map[string]uint64)
		}
		s.once[pe.id] = pe.leaf.Seq
		if len(s.once) > maxOnce {
			seq, _, ok, err := c.l.index.Head(context.Background(), pe.key.tenant, pe.key.session)
			if err != nil || !ok {
				continue
			}
			for id, q := range s.once {
				if q <= seq {
					delete(s.once, id)
				}
			}
		}
	}
}

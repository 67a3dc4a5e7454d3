package index

import (
	"context"
	"database/sql"
	"errors"
)

// Span is the part of a session that one export carries: its events from a
// seq on whose entries are below a tree size, at most a limit of them.
type Span struct {
	// Count is the number of events in the span, LastSeq the seq of its
	// last (when Count > 0).
	Count   uint64
	LastSeq uint64
	// Next, when the session has events after the span (beyond the tree
	// size, or beyond the limit), is the seq of the first of them.
	Next *uint64
}

// SessionSpan returns the span of a session's events with seq >= fromSeq
// and index < below, at most limit of them (in seq order, which is log
// order within a session). It covers the indexed prefix of the log only.
func (x *Index) SessionSpan(ctx context.Context, tenant, session string, fromSeq, below uint64, limit int) (Span, error) {
	var sp Span
	var n int64
	var last sql.NullInt64
	err := x.db.QueryRowContext(ctx, `SELECT count(*), max(seq) FROM (SELECT seq FROM entries WHERE tenant = ? AND session = ? AND seq >= ? AND idx < ? ORDER BY seq LIMIT ?) span`,
		tenant, session, int64(fromSeq), int64(min(below, 1<<63-1)), limit).Scan(&n, &last)
	if err != nil {
		return sp, err
	}
	after := int64(fromSeq) - 1
	if n > 0 && last.Valid {
		sp.Count, sp.LastSeq, after = uint64(n), uint64(last.Int64), last.Int64
	}
	var next sql.NullInt64
	if err := x.db.QueryRowContext(ctx, `SELECT min(seq) FROM entries WHERE tenant = ? AND session = ? AND seq > ?`, tenant, session, after).Scan(&next); err != nil {
		return sp, err
	}
	if next.Valid {
		s := uint64(next.Int64)
		sp.Next = &s
	}
	return sp, nil
}

// SessionLast returns the index and seq of a session's last indexed event,
// or ok=false.
func (x *Index) SessionLast(ctx context.Context, tenant, session string) (idx, seq uint64, ok bool, err error) {
	var i, s int64
	err = x.db.QueryRowContext(ctx, `SELECT idx, seq FROM entries WHERE tenant = ? AND session = ? ORDER BY seq DESC LIMIT 1`, tenant, session).Scan(&i, &s)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	return uint64(i), uint64(s), true, nil
}

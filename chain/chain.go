// Package chain keeps where each session's hash chain stands (the seq and
// leaf hash of its last event) in a database that several log-server
// instances share, and locks a session while one instance appends to it, so
// that two instances never give two events the same seq.
//
// An append marks the sessions it locked as dirty, durably, before its
// entries go to the log, and stores their new heads when the log has
// sequenced them. A head still dirty when the next append locks the session
// belongs to an append that did not finish (its instance died, or lost the
// database): the entries it sequenced, if any, are below the log's next
// index, so the engine recovers the head from the log once the session
// index has caught up with that index.
package chain

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
)

// Key names one session.
type Key struct{ Tenant, Session string }

func (k Key) compare(o Key) int {
	if c := strings.Compare(k.Tenant, o.Tenant); c != 0 {
		return c
	}
	return strings.Compare(k.Session, o.Session)
}

// Head is where a session's chain stands.
type Head struct {
	Next uint64 // seq of the next event
	Prev []byte // leaf hash of the last event; nil before the first
	// Dirty: an append to the session began at DirtySince and did not
	// finish. The head may be behind the log.
	Dirty      bool
	DirtySince time.Time
}

// Schema is the chain heads' table (sqldb's portable DDL); SchemaVersion is
// pinned in the database.
var Schema = []string{`CREATE TABLE IF NOT EXISTS session_heads (
  tenant {id} NOT NULL, session {id} NOT NULL,
  next_seq {int} NOT NULL, prev {hash},
  dirty_since {int}, -- unix milliseconds; NULL when clean
  PRIMARY KEY (tenant, session)){table}`}

// SchemaVersion is the version of Schema.
const SchemaVersion = 1

// DefaultLockWait bounds the wait for a session another append holds.
const DefaultLockWait = 10 * time.Second

// Store keeps chain heads in a database.
type Store struct {
	db   *sqldb.DB
	wait time.Duration
	w    *writer // on a shared database: head writes grouped into commits
}

// WriterConns is the pool of the head writer on a shared database.
const WriterConns = 2

// Open creates the table in db if needed.
func Open(db *sqldb.DB) (*Store, error) {
	if _, err := db.Schema(context.Background(), "chain", SchemaVersion, Schema...); err != nil {
		return nil, err
	}
	s := &Store{db: db, wait: DefaultLockWait}
	if db.Shared() {
		s.w = newWriter(db.Pool(WriterConns))
	}
	return s, nil
}

// Close stops the writer of a shared database after its queued writes.
func (s *Store) Close() error {
	if s.w == nil {
		return nil
	}
	return s.w.close()
}

// Locked is a set of sessions locked for one append.
type Locked struct {
	s     *Store
	lk    *sqldb.Lock
	keys  []Key
	heads map[Key]Head
}

// Lock locks the sessions of keys (in every instance that shares the
// database) and reads their heads. It fails with sqldb.ErrLockTimeout when
// another append holds one of them for longer than DefaultLockWait.
func (s *Store) Lock(ctx context.Context, keys []Key) (*Locked, error) {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, Key.compare)
	keys = slices.Compact(keys)
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = "chain\x00" + k.Tenant + "\x00" + k.Session
	}
	lk, err := s.db.Lock(ctx, s.wait, names...)
	if err != nil {
		return nil, err
	}
	l := &Locked{s: s, lk: lk, keys: keys, heads: make(map[Key]Head, len(keys))}
	for _, k := range keys {
		h, err := l.read(ctx, k)
		if err != nil {
			lk.Unlock()
			return nil, err
		}
		l.heads[k] = h
	}
	return l, nil
}

// Unlocked reads the heads of keys without locking them. It exists only
// for the test that shows what Lock prevents: two instances appending to
// one session at once give two events the same seq.
func (s *Store) Unlocked(ctx context.Context, keys []Key) (*Locked, error) {
	l := &Locked{s: s, lk: &sqldb.Lock{}, keys: keys, heads: make(map[Key]Head, len(keys))}
	for _, k := range keys {
		h, err := l.read(ctx, k)
		if err != nil {
			return nil, err
		}
		l.heads[k] = h
	}
	return l, nil
}

// conn runs statements on the connection holding the locks.
type conn interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

func (l *Locked) conn() conn {
	if c := l.lk.Conn(); c != nil {
		return c
	}
	return l.s.db
}

func (l *Locked) read(ctx context.Context, k Key) (Head, error) {
	var h Head
	var next int64
	var dirty sql.NullInt64
	err := l.conn().QueryRowContext(ctx, `SELECT next_seq, prev, dirty_since FROM session_heads WHERE tenant = ? AND session = ?`, k.Tenant, k.Session).
		Scan(&next, &h.Prev, &dirty)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Head{}, nil
	case err != nil:
		return Head{}, fmt.Errorf("reading the head of session %s: %w", k.Session, err)
	}
	h.Next = uint64(next)
	if h.Dirty = dirty.Valid; h.Dirty {
		h.DirtySince = time.UnixMilli(dirty.Int64)
	}
	return h, nil
}

// Head returns the head of a locked session.
func (l *Locked) Head(k Key) Head { return l.heads[k] }

// Recovered replaces the head of a dirty locked session by the one
// recovered from the log; it stays dirty until Commit.
func (l *Locked) Recovered(k Key, h Head) {
	h.Dirty, h.DirtySince = l.heads[k].Dirty, l.heads[k].DirtySince
	l.heads[k] = h
}

// Begin marks every locked session dirty, durably, before entries are
// appended to them.
func (l *Locked) Begin(ctx context.Context) error {
	now := time.Now()
	return l.write(ctx, func(k Key, h Head) Head {
		h.Dirty, h.DirtySince = true, now
		return h
	})
}

// ErrLockLost: the connection holding the sessions' locks failed before
// Commit, so another instance may have appended to them meanwhile; their
// heads stay marked, and the next append reads them from the log.
var ErrLockLost = errors.New("the sessions' lock was lost before their heads were stored")

// Commit stores new heads (clean) for the locked sessions named in heads;
// the others are stored clean as they were read. It stores nothing if the
// lock is known to be lost (ErrLockLost): heads read under it could
// overwrite the ones another instance stored since.
func (l *Locked) Commit(ctx context.Context, heads map[Key]Head) error {
	if l.lk.Lost() {
		return ErrLockLost
	}
	return l.write(ctx, func(k Key, h Head) Head {
		if n, ok := heads[k]; ok {
			h = n
		}
		h.Dirty, h.DirtySince = false, time.Time{}
		return h
	})
}

func (l *Locked) write(ctx context.Context, f func(Key, Head) Head) error {
	heads := make(map[Key]Head, len(l.keys))
	rows := make([]row, len(l.keys))
	for i, k := range l.keys {
		h := f(k, l.heads[k])
		heads[k], rows[i] = h, row{k, h}
	}
	var err error
	if l.s.w != nil {
		err = l.s.w.write(rows)
	} else {
		err = l.s.store(ctx, rows)
	}
	if err != nil {
		return err
	}
	l.heads = heads
	return nil
}

// row is one head to store.
type row struct {
	k Key
	h Head
}

func (r row) args() []any {
	var dirty any
	if r.h.Dirty {
		dirty = r.h.DirtySince.UnixMilli()
	}
	return []any{r.k.Tenant, r.k.Session, int64(r.h.Next), r.h.Prev, dirty}
}

// store writes rows in one transaction (one instance: no writer).
func (s *Store) store(ctx context.Context, rows []row) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	q := s.db.Upsert("session_heads", []string{"tenant", "session", "next_seq", "prev", "dirty_since"},
		[]string{"tenant", "session"}, []string{"next_seq", "prev", "dirty_since"})
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx, q, r.args()...); err != nil {
			return fmt.Errorf("storing the head of session %s: %w", r.k.Session, err)
		}
	}
	return tx.Commit()
}

// writer groups the head writes of concurrent appends into one commit,
// as the vault groups payloads: an append waits for two durable writes
// (its sessions marked dirty, then their new heads), and a commit of the
// database costs most of each. It writes on a pool of its own, so that it
// never waits for a connection held by an append that waits for it.
type writer struct {
	db   *sql.DB
	reqs chan *writeReq
	done chan struct{}
}

type writeReq struct {
	rows []row
	err  chan error
}

// maxWriteRows bounds one commit of the writer.
const maxWriteRows = 512

func newWriter(db *sql.DB) *writer {
	w := &writer{db: db, reqs: make(chan *writeReq, 1024), done: make(chan struct{})}
	go w.run()
	return w
}

// write stores rows durably. Once queued, a write happens whatever the
// caller does next, so write waits for it: a head stored after its append
// gave up could overwrite the next append's.
func (w *writer) write(rows []row) error {
	r := &writeReq{rows: rows, err: make(chan error, 1)}
	w.reqs <- r
	return <-r.err
}

func (w *writer) run() {
	defer close(w.done)
	for r := range w.reqs {
		batch, n := []*writeReq{r}, len(r.rows)
	more:
		for n < maxWriteRows {
			select {
			case r, ok := <-w.reqs:
				if !ok {
					break more
				}
				batch, n = append(batch, r), n+len(r.rows)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := sqldb.Retry(ctx, func() error { return w.commit(ctx, batch, n) })
		cancel()
		for _, r := range batch {
			r.err <- err
		}
	}
}

// commit stores every row of batch in one multi-row statement (MySQL).
func (w *writer) commit(ctx context.Context, batch []*writeReq, n int) error {
	args := make([]any, 0, 5*n)
	for _, r := range batch {
		for _, row := range r.rows {
			args = append(args, row.args()...)
		}
	}
	q := `INSERT INTO session_heads (tenant, session, next_seq, prev, dirty_since) VALUES (?, ?, ?, ?, ?)` +
		strings.Repeat(`, (?, ?, ?, ?, ?)`, n-1) +
		` ON DUPLICATE KEY UPDATE next_seq = VALUES(next_seq), prev = VALUES(prev), dirty_since = VALUES(dirty_since)`
	if _, err := w.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("storing session heads: %w", err)
	}
	return nil
}

func (w *writer) close() error {
	close(w.reqs)
	<-w.done
	return w.db.Close()
}

// Unlock releases the sessions.
func (l *Locked) Unlock() { l.lk.Unlock() }

package sqldb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrLockTimeout: a named lock was not free within the wait.
var ErrLockTimeout = errors.New("timed out waiting for a lock")

// Locker takes named locks; a DB does.
type Locker interface {
	Lock(ctx context.Context, wait time.Duration, names ...string) (*Lock, error)
}

// NewLocker returns a Locker whose locks hold in this process only.
func NewLocker() Locker { return &DB{Dialect: SQLite, locks: newLocalLocks()} }

// Lock is a set of named locks, held until Unlock. In one process the locks
// are mutexes; on a shared database they are also MySQL user locks
// (GET_LOCK), so that instances exclude each other, and the database
// releases them if the process or its connection dies.
//
// A MySQL connection holds any number of user locks, and a lock that no
// other instance holds is taken at once; such locks are taken on one of a
// few connections that every Lock of the process shares (a holder), so
// that a lock costs a statement, not a connection for as long as it is
// held. A lock another instance holds is waited for on a connection of its
// own.
type Lock struct {
	db     *DB
	conn   *sql.Conn // a connection of its own, or nil
	holder *holder   // or a shared holder, with its generation
	gen    uint64
	names  []string
	local  []*localLock
}

// Lock takes the named locks in the order given (callers keep one order,
// e.g. sorted, so that two lockers never wait for each other), waiting at
// most wait for each one.
func (db *DB) Lock(ctx context.Context, wait time.Duration, names ...string) (*Lock, error) {
	l := &Lock{db: db}
	for _, n := range names {
		ll, err := db.locks.lock(ctx, n, wait)
		if err != nil {
			l.Unlock()
			return nil, err
		}
		l.local = append(l.local, ll)
	}
	if !db.Shared() {
		return l, nil
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = lockKey(n)
	}
	if h := db.holders.pick(); h != nil {
		// Taken at once, or (held elsewhere, or the holder failed) on a
		// connection of its own below.
		if gen, ok, err := h.tryLock(ctx, keys); err == nil && ok {
			l.holder, l.gen, l.names = h, gen, keys
			return l, nil
		}
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		l.Unlock()
		return nil, err
	}
	l.conn = conn
	secs := int(math.Ceil(wait.Seconds()))
	for i, n := range names {
		key := keys[i]
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(?, ?)`, key, secs).Scan(&got); err != nil {
			l.Unlock()
			return nil, fmt.Errorf("taking lock %s: %w", n, err)
		}
		if !got.Valid || got.Int64 != 1 {
			l.Unlock()
			return nil, fmt.Errorf("%w: %s", ErrLockTimeout, n)
		}
		l.names = append(l.names, key)
	}
	return l, nil
}

// lockKey maps a lock name to a MySQL user-lock name (at most 64
// characters).
func lockKey(name string) string {
	h := sha256.Sum256([]byte(name))
	return "llmaudit:" + hex.EncodeToString(h[:20])
}

// Conn is the connection of its own that holds the locks on a shared
// database (nil otherwise, and when a shared holder holds them).
// Statements that must only happen while the locks are held may run on it:
// if the connection is lost, so are the locks, and they fail.
func (l *Lock) Conn() *sql.Conn { return l.conn }

// Lost reports whether the locks are known to be gone before Unlock: the
// shared connection holding them failed (and MariaDB released them), so
// another instance may hold them now. A Lost lock must not be relied on:
// what was read under it may be stale, and writing it back could undo
// another instance's work.
func (l *Lock) Lost() bool { return l.holder != nil && l.holder.gen.Load() != l.gen }

// Unlock releases the locks. It is safe to call more than once.
func (l *Lock) Unlock() {
	if l.holder != nil {
		l.holder.unlock(l.gen, l.names)
		l.holder, l.names = nil, nil
	}
	if l.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ok := true
		for _, k := range l.names {
			if _, err := l.conn.ExecContext(ctx, `DO RELEASE_LOCK(?)`, k); err != nil {
				ok = false
				break
			}
		}
		cancel()
		if !ok {
			// A connection whose state is unknown is not given back to the
			// pool with locks on it.
			l.conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		l.conn.Close()
		l.conn, l.names = nil, nil
	}
	for i := len(l.local) - 1; i >= 0; i-- {
		l.db.locks.unlock(l.local[i])
	}
	l.local = nil
}

// localLocks are the in-process named mutexes.
type localLocks struct {
	mu    sync.Mutex
	locks map[string]*localLock
}

type localLock struct {
	name string
	ch   chan struct{} // holds a token while locked
	refs int           // guarded by localLocks.mu
}

func newLocalLocks() *localLocks { return &localLocks{locks: map[string]*localLock{}} }

func (ls *localLocks) lock(ctx context.Context, name string, wait time.Duration) (*localLock, error) {
	ls.mu.Lock()
	l, ok := ls.locks[name]
	if !ok {
		l = &localLock{name: name, ch: make(chan struct{}, 1)}
		ls.locks[name] = l
	}
	l.refs++
	ls.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case l.ch <- struct{}{}:
		return l, nil
	case <-ctx.Done():
		ls.drop(l)
		return nil, ctx.Err()
	case <-t.C:
		ls.drop(l)
		return nil, fmt.Errorf("%w: %s", ErrLockTimeout, name)
	}
}

func (ls *localLocks) unlock(l *localLock) {
	<-l.ch
	ls.drop(l)
}

func (ls *localLocks) drop(l *localLock) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l.refs--; l.refs == 0 {
		delete(ls.locks, l.name)
	}
}

// holders are the connections that hold the user locks of the process
// which were free when asked for (Lock).
type holders struct {
	db   *sql.DB // a pool of its own, of len(all) connections
	all  []*holder
	next atomic.Uint64
	quit chan struct{}
	wg   sync.WaitGroup
}

// LockHolders is how many connections of a shared database hold the
// process's locks.
const LockHolders = 8

// maxLockBatch bounds the locks one statement of a holder takes or
// releases.
const maxLockBatch = 128

func newHolders(db *DB) *holders {
	hs := &holders{db: db.Pool(LockHolders), quit: make(chan struct{})}
	for range LockHolders {
		h := &holder{pool: hs.db, ops: make(chan *lockOp), quit: hs.quit}
		hs.all = append(hs.all, h)
		hs.wg.Go(h.run)
	}
	return hs
}

func (hs *holders) pick() *holder {
	if hs == nil {
		return nil
	}
	return hs.all[hs.next.Add(1)%uint64(len(hs.all))]
}

func (hs *holders) close() error {
	close(hs.quit)
	hs.wg.Wait()
	return hs.db.Close()
}

// holder is one connection holding user locks. Its goroutine runs the
// requests to take or release locks that arrive together as one
// statement each (GET_LOCK(a, 0), GET_LOCK(b, 0), ...), so that a burst of
// appends costs a few round trips. When the connection fails, its locks
// are gone with it: it is replaced by a new one of the next generation,
// and the Locks of the old one release nothing.
type holder struct {
	pool *sql.DB
	ops  chan *lockOp
	quit chan struct{}
	// Owned by run.
	conn *sql.Conn // nil until needed, and after a failure
	// gen counts the failures: the Locks taken before one hold nothing
	// (Lost). Written by run only.
	gen atomic.Uint64
}

// lockOp asks a holder to take keys (each free now, or none of them) or to
// release keys taken in generation gen.
type lockOp struct {
	keys    []string
	release bool
	gen     uint64
	done    chan lockResult
}

type lockResult struct {
	gen uint64
	ok  bool
	err error
}

var errHolderClosed = errors.New("the database is closed")

func (h *holder) do(ctx context.Context, op *lockOp) lockResult {
	op.done = make(chan lockResult, 1)
	select {
	case h.ops <- op:
	case <-h.quit:
		return lockResult{err: errHolderClosed}
	case <-ctx.Done():
		return lockResult{err: ctx.Err()}
	}
	// The holder answers every op it took, even when it stops.
	return <-op.done
}

// tryLock takes every one of keys if each is free now, and none otherwise.
func (h *holder) tryLock(ctx context.Context, keys []string) (gen uint64, ok bool, err error) {
	r := h.do(ctx, &lockOp{keys: keys})
	return r.gen, r.ok, r.err
}

// unlock releases keys taken in generation gen.
func (h *holder) unlock(gen uint64, keys []string) {
	h.do(context.Background(), &lockOp{keys: keys, release: true, gen: gen})
}

func (h *holder) run() {
	defer func() {
		if h.conn != nil {
			h.conn.Close()
		}
	}()
	for {
		var op *lockOp
		select {
		case op = <-h.ops:
		case <-h.quit:
			return
		}
		batch, n := []*lockOp{op}, len(op.keys)
	more:
		for n < maxLockBatch {
			select {
			case op := <-h.ops:
				batch = append(batch, op)
				n += len(op.keys)
			default:
				break more
			}
		}
		h.serve(batch)
	}
}

// serve runs a batch: its releases first, then its takings.
func (h *holder) serve(batch []*lockOp) {
	// A statement cut short drops the connection and every lock on it, so
	// the bound is the driver's I/O timeout, not a shorter one.
	ctx, cancel := context.WithTimeout(context.Background(), DefaultIOTimeout)
	defer cancel()
	var release []string
	var takes []*lockOp
	for _, op := range batch {
		if op.release {
			if op.gen == h.gen.Load() && h.conn != nil {
				release = append(release, op.keys...)
			}
			op.done <- lockResult{}
		} else {
			takes = append(takes, op)
		}
	}
	if len(release) > 0 {
		h.exec(ctx, "DO", "RELEASE_LOCK(?)", release)
	}
	if len(takes) == 0 {
		return
	}
	answer := func(err error) {
		for _, op := range takes {
			op.done <- lockResult{err: err}
		}
	}
	if h.conn == nil {
		c, err := h.pool.Conn(ctx)
		if err != nil {
			answer(err)
			return
		}
		h.conn = c
	}
	var keys []string
	for _, op := range takes {
		keys = append(keys, op.keys...)
	}
	got := make([]sql.NullInt64, len(keys))
	dest := make([]any, len(keys))
	for i := range got {
		dest[i] = &got[i]
	}
	if err := h.conn.QueryRowContext(ctx, "SELECT "+repeatJoin("GET_LOCK(?, 0)", len(keys)), strArgs(keys)...).Scan(dest...); err != nil {
		h.fail()
		answer(err)
		return
	}
	// A Lock gets all of its keys or none: the ones it got of a Lock that
	// did not get all are released before any Lock is answered.
	var undo []string
	all := make([]bool, len(takes))
	i := 0
	for n, op := range takes {
		all[n] = true
		for j := range op.keys {
			if g := got[i+j]; !g.Valid || g.Int64 != 1 {
				all[n] = false
			}
		}
		if !all[n] {
			for j, k := range op.keys {
				if g := got[i+j]; g.Valid && g.Int64 == 1 {
					undo = append(undo, k)
				}
			}
		}
		i += len(op.keys)
	}
	if len(undo) > 0 {
		h.exec(ctx, "DO", "RELEASE_LOCK(?)", undo)
		if h.conn == nil {
			answer(errors.New("releasing locks failed; the connection holding them was dropped"))
			return
		}
	}
	for n, op := range takes {
		op.done <- lockResult{gen: h.gen.Load(), ok: all[n]}
	}
}

// exec runs "verb f(?), f(?), ..." over keys; on an error the connection,
// and with it every lock it holds, is dropped.
func (h *holder) exec(ctx context.Context, verb, f string, keys []string) {
	if _, err := h.conn.ExecContext(ctx, verb+" "+repeatJoin(f, len(keys)), strArgs(keys)...); err != nil {
		h.fail()
	}
}

// fail drops a connection whose state is unknown, locks and all.
func (h *holder) fail() {
	h.conn.Raw(func(any) error { return driver.ErrBadConn })
	h.conn.Close()
	h.conn = nil
	h.gen.Add(1)
}

func repeatJoin(s string, n int) string {
	return strings.TrimSuffix(strings.Repeat(s+", ", n), ", ")
}

func strArgs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

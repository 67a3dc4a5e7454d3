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
	"sync"
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
// (GET_LOCK) held by one connection, so that instances exclude each other,
// and the database releases them if the process or its connection dies.
type Lock struct {
	db    *DB
	conn  *sql.Conn
	names []string
	local []*localLock
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
	conn, err := db.Conn(ctx)
	if err != nil {
		l.Unlock()
		return nil, err
	}
	l.conn = conn
	secs := int(math.Ceil(wait.Seconds()))
	for _, n := range names {
		key := lockKey(n)
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

// Conn is the connection that holds the locks on a shared database (nil
// otherwise). Statements that must only happen while the locks are held run
// on it: if the connection is lost, so are the locks, and they fail.
func (l *Lock) Conn() *sql.Conn { return l.conn }

// Unlock releases the locks. It is safe to call more than once.
func (l *Lock) Unlock() {
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

package log

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/llmaudittrail/llmaudittrail/chain"
)

// chainHead is where a session's chain stands: the seq of its next event
// and the leaf hash of its last one (nil before the first).
type chainHead struct {
	next uint64
	prev []byte
}

// chainLock is the sessions one append has locked, and their heads. With
// one instance (localChains) heads live in memory and are loaded from the
// session index; with several instances on one database (sharedChains)
// they live in the database (package chain).
type chainLock interface {
	head(k sessionKey) chainHead
	// session is the in-memory state of k (nil if heads are not kept in
	// memory).
	session(k sessionKey) *session
	// commit stores the new heads once every entry is durable.
	commit(ctx context.Context, heads map[sessionKey]chainHead) error
	unlock()
}

// lockChains locks the sessions of keys, in a fixed order.
func (l *Log) lockChains(ctx context.Context, keys []sessionKey) (chainLock, error) {
	slices.SortFunc(keys, func(a, b sessionKey) int {
		if c := strings.Compare(a.tenant, b.tenant); c != 0 {
			return c
		}
		return strings.Compare(a.session, b.session)
	})
	if l.cfg.Chains != nil {
		return l.lockShared(ctx, keys)
	}
	lc := &localChains{l: l, keys: keys, sess: make(map[sessionKey]*session, len(keys))}
	for _, k := range keys {
		s := l.acquire(k)
		s.mu.Lock()
		lc.sess[k] = s
	}
	for _, k := range keys {
		if err := l.load(ctx, k, lc.sess[k]); err != nil {
			lc.unlock()
			return nil, err
		}
	}
	return lc, nil
}

// localChains are the in-memory heads of one instance.
type localChains struct {
	l    *Log
	keys []sessionKey
	sess map[sessionKey]*session
}

func (c *localChains) head(k sessionKey) chainHead {
	s := c.sess[k]
	return chainHead{s.next, s.prev}
}

func (c *localChains) session(k sessionKey) *session { return c.sess[k] }

func (c *localChains) commit(_ context.Context, heads map[sessionKey]chainHead) error {
	for k, h := range heads {
		s := c.sess[k]
		s.next, s.prev = h.next, h.prev
		s.appended = true
	}
	return nil
}

func (c *localChains) unlock() {
	for _, k := range c.keys {
		c.sess[k].mu.Unlock()
		c.l.releaseSession(k)
	}
}

// DefaultRecoveryWait bounds how long an append waits for the session index
// to cover every sequenced entry when it recovers a session head that an
// unfinished append left dirty.
const DefaultRecoveryWait = 30 * time.Second

// sharedChains are heads in the database that several instances share.
type sharedChains struct {
	l      *Log
	locked *chain.Locked
}

func (l *Log) lockShared(ctx context.Context, keys []sessionKey) (chainLock, error) {
	ck := make([]chain.Key, len(keys))
	for i, k := range keys {
		ck[i] = chain.Key{Tenant: k.tenant, Session: k.session}
	}
	if !l.unlockedForTest {
		locked, err := l.cfg.Chains.Lock(ctx, ck)
		if err != nil {
			return nil, fmt.Errorf("locking sessions: %w", err)
		}
		c := &sharedChains{l: l, locked: locked}
		for _, k := range ck {
			if locked.Head(k).Dirty {
				if err := c.recover(ctx, k); err != nil {
					locked.Unlock()
					return nil, err
				}
			}
		}
		return c, nil
	}
	// Without the lock (a test shows that it is needed): read the heads
	// as they are.
	locked, err := l.cfg.Chains.Unlocked(ctx, ck)
	if err != nil {
		return nil, err
	}
	return &sharedChains{l: l, locked: locked}, nil
}

// recover reads the head of a session that an unfinished append left dirty
// from the log: every entry that append sequenced is below the log's next
// index now (it no longer holds the lock), so once the session index
// covers that index, the session's last indexed event is its head.
func (c *sharedChains) recover(ctx context.Context, k chain.Key) error {
	next, err := c.l.reader.NextIndex(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, DefaultRecoveryWait)
	defer cancel()
	if err := c.l.index.WaitFor(wctx, next); err != nil {
		return fmt.Errorf("recovering the head of session %s: waiting for the index to reach %d: %w", k.Session, next, err)
	}
	seq, h, ok, err := c.l.index.Head(ctx, k.Tenant, k.Session)
	if err != nil {
		return err
	}
	head := chain.Head{}
	if ok {
		head = chain.Head{Next: seq + 1, Prev: h}
	}
	c.l.logger.Info("recovered a session head left by an unfinished append", "tenant", k.Tenant, "session", k.Session,
		"next", head.Next, "dirty_since", c.locked.Head(k).DirtySince)
	c.locked.Recovered(k, head)
	return nil
}

func (c *sharedChains) head(k sessionKey) chainHead {
	h := c.locked.Head(chain.Key{Tenant: k.tenant, Session: k.session})
	return chainHead{h.Next, h.Prev}
}

func (c *sharedChains) session(sessionKey) *session { return nil }

func (c *sharedChains) commit(ctx context.Context, heads map[sessionKey]chainHead) error {
	ch := make(map[chain.Key]chain.Head, len(heads))
	for k, h := range heads {
		ch[chain.Key{Tenant: k.tenant, Session: k.session}] = chain.Head{Next: h.next, Prev: h.prev}
	}
	return c.locked.Commit(ctx, ch)
}

func (c *sharedChains) unlock() { c.locked.Unlock() }

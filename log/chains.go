package log

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/journal"
)

// chainHead is where a session's chain stands: the seq of its next event
// and the leaf hash of its last one (nil before the first).
type chainHead struct {
	next uint64
	prev []byte
}

// chains are the sessions one append has locked, in this process. Their
// heads are kept in memory and loaded, when missing, from the journal if it
// keeps heads for several instances (journal.HeadStore), else from the
// session index.
type chains struct {
	l    *Log
	keys []sessionKey
	sess map[sessionKey]*session
}

// lockChains locks the sessions of keys, in a fixed order.
func (l *Log) lockChains(ctx context.Context, keys []sessionKey) (*chains, error) {
	slices.SortFunc(keys, func(a, b sessionKey) int {
		if c := strings.Compare(a.tenant, b.tenant); c != 0 {
			return c
		}
		return strings.Compare(a.session, b.session)
	})
	c := &chains{l: l, keys: keys, sess: make(map[sessionKey]*session, len(keys))}
	for _, k := range keys {
		s := l.acquire(k)
		s.mu.Lock()
		c.sess[k] = s
	}
	for _, k := range keys {
		if err := l.load(ctx, k, c.sess[k]); err != nil {
			c.unlock()
			return nil, err
		}
	}
	return c, nil
}

func (c *chains) head(k sessionKey) chainHead {
	s := c.sess[k]
	return chainHead{s.next, s.prev}
}

// commit keeps the new heads once the entries are durable.
func (c *chains) commit(heads map[sessionKey]chainHead) {
	for k, h := range heads {
		s := c.sess[k]
		s.next, s.prev = h.next, h.prev
		s.appended = true
	}
}

// reload reads the heads of the sessions moved by another instance again.
func (c *chains) reload(ctx context.Context, moved [][2]string) error {
	for _, m := range moved {
		k := sessionKey{m[0], m[1]}
		s, ok := c.sess[k]
		if !ok {
			return fmt.Errorf("the journal names session %s, which this append did not lock", m[1])
		}
		s.loaded = false
		if err := c.l.load(ctx, k, s); err != nil {
			return err
		}
	}
	return nil
}

func (c *chains) unlock() {
	for _, k := range c.keys {
		c.sess[k].mu.Unlock()
		c.l.releaseSession(k)
	}
}

// load fills in the head of s if it is not in memory.
func (l *Log) load(ctx context.Context, k sessionKey, s *session) error {
	if s.loaded {
		return nil
	}
	if hs, ok := l.journal.(journal.HeadStore); ok {
		next, prev, err := hs.Head(ctx, k.tenant, k.session)
		if err != nil {
			return fmt.Errorf("reading session head: %w", err)
		}
		s.next, s.prev, s.loaded = next, prev, true
		return nil
	}
	seq, h, ok, err := l.index.Head(ctx, k.tenant, k.session)
	if err != nil {
		return fmt.Errorf("reading session head: %w", err)
	}
	if ok {
		s.next, s.prev = seq+1, h
	} else {
		s.next, s.prev = 0, nil
	}
	s.loaded = true
	return nil
}

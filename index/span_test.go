package index_test

import (
	"context"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/index"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/storetest"
)

// TestSessionSpan: the part of a session an export carries, by a tree size
// and a limit, and where the session goes on after it.
func TestSessionSpan(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, open func(t *testing.T) *sqldb.DB) {
		m := &storetest.MemLog{}
		s := map[string]uint64{}
		var idx []uint64 // of t1/a's events, seq 0..5
		for range 6 {
			idx = append(idx, appendEv(t, m, s, ev{"t1", "a", "tool.call", "bot", "", nil}))
			appendEv(t, m, s, ev{"t1", "b", "tool.call", "bot", "", nil})
		}
		x, err := index.Open(open(t), m, quiet())
		if err != nil {
			t.Fatal(err)
		}
		if err := x.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		u := func(n uint64) *uint64 { return &n }
		for _, c := range []struct {
			name        string
			from, below uint64
			limit       int
			count, last uint64
			next        *uint64
		}{
			{"all", 0, 1 << 40, 100, 6, 5, nil},
			{"from seq 2", 2, 1 << 40, 100, 4, 5, nil},
			{"below the 4th", 0, idx[3], 100, 3, 2, u(3)},
			{"below the 4th, inclusive", 0, idx[3] + 1, 100, 4, 3, u(4)},
			{"at most 2", 1, 1 << 40, 2, 2, 2, u(3)},
			{"beyond the end", 9, 1 << 40, 100, 0, 0, nil},
			{"nothing covered", 0, 0, 100, 0, 0, u(0)},
		} {
			sp, err := x.SessionSpan(ctx, "t1", "a", c.from, c.below, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			if sp.Count != c.count || (c.count > 0 && sp.LastSeq != c.last) || (sp.Next == nil) != (c.next == nil) || (c.next != nil && *sp.Next != *c.next) {
				t.Errorf("%s: %+v (next %v), want count %d last %d next %v", c.name, sp, sp.Next, c.count, c.last, c.next)
			}
		}
		if i, seq, ok, err := x.SessionLast(ctx, "t1", "a"); err != nil || !ok || i != idx[5] || seq != 5 {
			t.Errorf("SessionLast = %d %d %v %v, want %d 5", i, seq, ok, err, idx[5])
		}
		if _, _, ok, err := x.SessionLast(ctx, "t1", "none"); err != nil || ok {
			t.Errorf("SessionLast of no session = %v %v", ok, err)
		}
	})
}

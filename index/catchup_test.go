package index_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/index"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/storetest"
)

// TestCatchUpBatches: CatchUp indexes logs that grow by part of a bundle,
// by several bundles at once (more than one transaction holds) and from
// the middle of a bundle; every event is listed in its session at its
// index, and each session's search row counts its events and spans its
// first and last index.
func TestCatchUpBatches(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, open func(t *testing.T) *sqldb.DB) {
		m := &storetest.MemLog{}
		x, err := index.Open(open(t), m, quiet())
		if err != nil {
			t.Fatal(err)
		}
		const sessions = 37
		seqs := map[string]uint64{}
		at := map[string][]uint64{} // session -> the index of each seq
		for _, grow := range []int{100, 2900, 1, 255, 700} {
			for range grow {
				s := fmt.Sprint("s", len(m.Leaves())*7%sessions)
				at[s] = append(at[s], appendEv(t, m, seqs, ev{tenant: "t1", session: s, kind: "llm.request", agent: "bot"}))
			}
			if err := x.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			if got, want := x.Size(), uint64(len(m.Leaves())); got != want {
				t.Fatalf("indexed size %d, want %d", got, want)
			}
		}
		l, err := x.Search(ctx, api.SessionSearch{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Sessions) != sessions {
			t.Fatalf("%d sessions found, want %d", len(l.Sessions), sessions)
		}
		for _, s := range l.Sessions {
			want := at[s.Session]
			if s.Events != uint64(len(want)) || s.FirstIndex != want[0] || s.LastIndex != want[len(want)-1] {
				t.Errorf("%s: events %d, indexes %d to %d; want %d, %d to %d", s.Session, s.Events, s.FirstIndex, s.LastIndex, len(want), want[0], want[len(want)-1])
			}
			got, err := x.Session(ctx, "t1", s.Session, 0, 10000)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %d entries listed, want %d", s.Session, len(got), len(want))
			}
			for i, e := range got {
				if e.Seq != uint64(i) || e.Index != want[i] {
					t.Fatalf("%s: entry %d is seq %d at %d, want seq %d at %d", s.Session, i, e.Seq, e.Index, i, want[i])
				}
			}
		}
	})
}

package index_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/index"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
	"github.com/llmaudittrail/llmaudittrail/internal/storetest"
)

// BenchmarkCatchUp indexes (entries and search) a log of 2,560 events of
// 512 sessions, one event per session in turn as loadgen writes them, on
// SQLite as the server opens it; ns/op is per event.
func BenchmarkCatchUp(b *testing.B) {
	const sessions, events = 512, 2560
	m := &storetest.MemLog{}
	for i := range events {
		l := &event.Leaf{V: event.LeafVersion, ID: event.NewID(), Kind: "llm.request", Tenant: "t1", Session: fmt.Sprint("s", i%sessions), Seq: uint64(i / sessions),
			Actor: event.Actor{Type: "agent", ID: "loadgen"}, Attributes: map[string]any{"gen_ai.request.model": "gpt-4o"},
			Writer: &event.Writer{Token: "tok", Via: event.ViaAPI}, Time: t0.Format(event.TimeFormat)}
		data, err := l.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		m.Add(data)
	}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		db, err := sqldb.OpenSQLite(filepath.Join(b.TempDir(), "index.db"), sqlitedb.Rebuildable, sqlitedb.TempInMemory)
		if err != nil {
			b.Fatal(err)
		}
		x, err := index.Open(db, m, quiet())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := x.CatchUp(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}

package verify

import (
	"context"
	"net/http/httptest"
	"testing"

	tclient "github.com/transparency-dev/tessera/client"

	"github.com/llmaudittrail/llmaudittrail/internal/benchlog"
	"github.com/llmaudittrail/llmaudittrail/tiles"
)

// BenchmarkAudit measures a full audit of the 65,536-entry bench log read
// from its files: every entry re-hashed and its chain fields parsed, every
// tile compared, sessions' chains followed, root checked.
//
//	go test ./verify -run '^$' -bench . -benchtime 5x -count 2
func BenchmarkAudit(b *testing.B) {
	bl := benchlog.Get(b)
	b.ResetTimer()
	for b.Loop() {
		rep, err := Audit(context.Background(), Config{LogKey: bl.Key, Source: benchlog.Fetcher{L: bl}, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() || rep.Entries != bl.Size || rep.Size != bl.Size {
			b.Fatalf("audited %d of %d, %d findings", rep.Entries, bl.Size, len(rep.Findings))
		}
	}
	b.ReportMetric(float64(bl.Size)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkAuditHTTP is BenchmarkAudit over loopback HTTP, the log's
// files served by the project's tlog-tiles handler.
func BenchmarkAuditHTTP(b *testing.B) {
	bl := benchlog.Get(b)
	hs := httptest.NewServer(tiles.Handler(tclient.FileFetcher{Root: bl.Dir}, tiles.Options{}))
	defer hs.Close()
	b.ResetTimer()
	for b.Loop() {
		rep, err := Audit(context.Background(), Config{Log: testClient(hs.URL, ""), LogKey: bl.Key, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() || rep.Entries != bl.Size {
			b.Fatalf("audited %d of %d, %d findings", rep.Entries, bl.Size, len(rep.Findings))
		}
	}
	b.ReportMetric(float64(bl.Size)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

package compliance

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// benchLog is a crafted log of n entries of agent traffic (requests,
// responses, tool calls in 200 sessions), built once per size.
var benchLogs sync.Map

func benchLog(b *testing.B, n int) *crafttest.Log {
	if l, ok := benchLogs.Load(n); ok {
		return l.(*crafttest.Log)
	}
	c := crafttest.New(b)
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	batch := make([]crafttest.Craft, 0, 1024)
	for i := range n {
		kind, attrs := "llm.request", crafttest.Attrs("gen_ai.request.model", "gpt-4o", "gen_ai.operation.name", "chat")
		switch i % 3 {
		case 1:
			kind, attrs = "llm.response", crafttest.Attrs("gen_ai.response.model", "gpt-4o", "gen_ai.usage.input_tokens", 900, "gen_ai.usage.output_tokens", 200)
		case 2:
			kind, attrs = "tool.call", crafttest.Attrs("gen_ai.tool.name", "search")
		}
		batch = append(batch, crafttest.Craft{Kind: kind, Session: fmt.Sprintf("s%d", i%200), Attrs: attrs, At: start.Add(time.Duration(i) * time.Second)})
		if len(batch) == cap(batch) || i == n-1 {
			c.Add(batch...)
			batch = batch[:0]
		}
	}
	c.WaitPublished()
	benchLogs.Store(n, c)
	return c
}

// peakHeap samples the heap while f runs.
func peakHeap(f func()) uint64 {
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	f()
	close(done)
	return peak.Load()
}

// BenchmarkReport computes a part11 report over every entry of a log of
// 100k and 1M entries read over loopback HTTP, against the baseline of
// verify.Audit alone (the verification every report includes).
//
//	go test ./compliance -run '^$' -bench Report -benchtime 3x
func BenchmarkReport(b *testing.B) {
	for _, n := range benchSizes {
		c := benchLog(b, n)
		lc, _ := client.New(c.HS.URL)
		src := Source{Log: lc, Key: c.Key, Logger: slog.New(slog.DiscardHandler)}
		q := Query{Profile: "part11", Tenant: "acme", From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
		b.Run(fmt.Sprintf("audit-baseline/%dk", n/1000), func(b *testing.B) {
			var peak uint64
			for b.Loop() {
				runtime.GC()
				peak = max(peak, peakHeap(func() {
					rep, err := verify.Audit(context.Background(), verify.Config{Log: lc, LogKey: c.Key, Logger: src.Logger})
					if err != nil || !rep.OK() {
						b.Fatalf("%v %+v", err, rep)
					}
				}))
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		})
		b.Run(fmt.Sprintf("report/%dk", n/1000), func(b *testing.B) {
			var peak uint64
			for b.Loop() {
				runtime.GC()
				peak = max(peak, peakHeap(func() {
					r, err := Compute(context.Background(), src, q, DefaultParams())
					if err != nil || r.Entries.InPeriod != n {
						b.Fatalf("%v (%d in period)", err, r.Entries.InPeriod)
					}
				}))
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		})
	}
}

var benchSizes = []int{100_000, 1_000_000}

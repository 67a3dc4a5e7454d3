package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
)

// BenchmarkAppend compares, in one run, the bare Tessera POSIX appender
// (entries of the same size as the server's payload) with the full server:
// HTTP + JSON + vault + session chain + Tessera. Run with a fixed count:
//
//	go test ./server -run '^$' -bench Append -benchtime 20000x
func BenchmarkAppend(b *testing.B) {
	for _, clients := range []int{64, 512} {
		b.Run(fmt.Sprintf("bare/clients=%d", clients), func(b *testing.B) { benchBare(b, clients) })
		b.Run(fmt.Sprintf("http/clients=%d", clients), func(b *testing.B) { benchHTTP(b, clients) })
	}
}

func report(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "events/s")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.ReportMetric(0, "ns/op")
}

func run(b *testing.B, clients int, op func(i int) error) ([]time.Duration, time.Duration) {
	var next atomic.Int64
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	return lat, elapsed
}

func benchBare(b *testing.B, clients int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // stops Tessera's background work after shutdown
	skey, _, _ := checkpoint.GenerateKey("bench/bare")
	s, _ := checkpoint.NewSigner(skey)
	drv, err := posix.New(ctx, posix.Config{Path: filepath.Join(b.TempDir(), "log")})
	if err != nil {
		b.Fatal(err)
	}
	app, shutdown, _, err := tessera.NewAppender(ctx, drv, tessera.NewAppendOptions().
		WithCheckpointSigner(s).WithBatching(1024, DefaultBatchMaxAge).WithCheckpointInterval(time.Second))
	if err != nil {
		b.Fatal(err)
	}
	defer shutdown(ctx)
	lat, elapsed := run(b, clients, func(int) error {
		e := make([]byte, 1024)
		rand.Read(e)
		_, err := app.Add(ctx, tessera.NewEntry(e))()
		return err
	})
	report(b, lat, elapsed)
}

func benchHTTP(b *testing.B, clients int) {
	s := newTestServer(b, nil)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	pad := strings.Repeat("a", 1024-40)
	lat, elapsed := run(b, clients, func(i int) error {
		body := fmt.Sprintf(`{"session":"bench-%d","kind":"llm.request","actor":{"type":"agent","id":"bench"},"attributes":{"gen_ai.request.model":"m","gen_ai.usage.input_tokens":%d},"payload":{"prompt":%q}}`, i%clients, i, pad)
		req, _ := http.NewRequest("POST", s.ts.URL+"/v1/events", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.admin)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(rb))
		}
		return nil
	})
	report(b, lat, elapsed)
}

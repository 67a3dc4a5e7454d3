package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	auditlog "github.com/llmaudittrail/llmaudittrail/log"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
)

// BenchmarkAppend compares, in one run:
//   - bare: the Tessera POSIX appender's Add with 1 KiB entries;
//   - floor: the same appender behind a Go HTTP handler that does nothing
//     else (read the body, Add it, answer the index): the least any HTTP API
//     over Tessera can cost on this machine;
//   - http: the full server: HTTP + JSON + vault + session chain + Tessera +
//     session index, 1 KiB payloads.
//
// The load clients run in the same process, on the same cores. Besides the
// rate and latencies it reports cpu-us/event, the process's CPU time (user +
// system) per event, which is far less noisy than the rate. Run with a fixed
// count:
//
//	go test ./server -run '^$' -bench Append -benchtime 20000x
func BenchmarkAppend(b *testing.B) {
	for _, clients := range []int{64, 512} {
		b.Run(fmt.Sprintf("bare/clients=%d", clients), func(b *testing.B) { benchBare(b, clients) })
		b.Run(fmt.Sprintf("floor/clients=%d", clients), func(b *testing.B) { benchFloor(b, clients) })
		b.Run(fmt.Sprintf("http/clients=%d", clients), func(b *testing.B) { benchHTTP(b, clients) })
	}
}

type measurement struct {
	lat     []time.Duration
	elapsed time.Duration
	cpu     time.Duration
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func report(b *testing.B, m measurement) {
	lat := m.lat
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/m.elapsed.Seconds(), "events/s")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(m.cpu.Microseconds())/float64(len(lat)), "cpu-us/event")
	}
	b.ReportMetric(0, "ns/op")
}

func run(b *testing.B, clients int, op func(i int) error) measurement {
	var next atomic.Int64
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
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
	m := measurement{lat: lat, elapsed: time.Since(start), cpu: cpuTime() - cpu0}
	b.StopTimer()
	return m
}

// bareAppender starts a Tessera POSIX appender with the server's default
// batching and checkpoint interval.
func bareAppender(b *testing.B) (context.Context, *tessera.Appender) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel) // stops Tessera's background work after shutdown
	skey, _, _ := checkpoint.GenerateKey("bench/bare")
	s, _ := checkpoint.NewSigner(skey)
	drv, err := posix.New(ctx, posix.Config{Path: filepath.Join(b.TempDir(), "log")})
	if err != nil {
		b.Fatal(err)
	}
	app, shutdown, _, err := tessera.NewAppender(ctx, drv, tessera.NewAppendOptions().
		WithCheckpointSigner(s).WithBatching(1024, auditlog.DefaultBatchMaxAge).WithCheckpointInterval(time.Second))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { shutdown(ctx) })
	return ctx, app
}

func benchBare(b *testing.B, clients int) {
	ctx, app := bareAppender(b)
	report(b, run(b, clients, func(int) error {
		e := make([]byte, 1024)
		rand.Read(e)
		_, err := app.Add(ctx, tessera.NewEntry(e))()
		return err
	}))
}

func benchFloor(b *testing.B, clients int) {
	_, app := bareAppender(b)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		idx, err := app.Add(r.Context(), tessera.NewEntry(body))()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"index":%d}`+"\n", idx.Index)
	}))
	defer ts.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	report(b, run(b, clients, func(i int) error {
		return post(hc, ts.URL, "", eventBody(i, clients))
	}))
}

// eventBody is a 1 KiB event of session i%clients.
func eventBody(i, clients int) []byte {
	return fmt.Appendf(nil, `{"session":"bench-%d","kind":"llm.request","actor":{"type":"agent","id":"bench"},"attributes":{"gen_ai.request.model":"m","gen_ai.usage.input_tokens":%d},"payload":{"prompt":"%s"}}`, i%clients, i, benchPad)
}

var benchPad = strings.Repeat("a", 1024-40)

func post(hc *http.Client, url, token string, body []byte) error {
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
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
}

func benchHTTP(b *testing.B, clients int) {
	s := newTestServer(b, nil)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	report(b, run(b, clients, func(i int) error {
		return post(hc, s.ts.URL+"/v1/events", s.admin, eventBody(i, clients))
	}))
}

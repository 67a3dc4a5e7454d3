// Command loadgen measures the log server: events/s through the HTTP API,
// time to index and time to checkpoint, server RSS, and, as a baseline in
// the same run, the bare Tessera POSIX appender's Add rate with the same
// entry size.
//
//	loadgen --url http://127.0.0.1:8080 --token-file data/keys/admin.token --clients 64 --events 100000 --pid $(pidof log-server)
//	loadgen --bare --clients 64 --events 100000
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"k8s.io/klog/v2"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
	fmtlog "github.com/transparency-dev/formats/log"
)

func main() {
	flag := cli.NewFlagSet("loadgen", `loadgen --url URL --token-file FILE [--clients N] [--events N] [flags]
loadgen --bare [--clients N] [--events N]`)
	url := flag.String("url", "http://127.0.0.1:8080", "log server URL")
	tokenFile := flag.String("token-file", "data/keys/admin.token", "file holding a write token")
	clients := flag.Int("clients", 64, "concurrent clients")
	events := flag.Int("events", 20000, "events to write (stop earlier at --duration)")
	duration := flag.Duration("duration", 5*time.Minute, "longest run")
	payload := flag.Int("payload", 1024, "payload bytes per event")
	pid := flag.Int("pid", 0, "server pid: report its RSS at the end")
	cpSample := flag.Int("checkpoint-sample", 200, "measure time-to-checkpoint for every Nth event (0: off)")
	bare := flag.Bool("bare", false, "measure the bare Tessera POSIX appender instead of the server")
	batchAge := flag.Duration("batch-max-age", 10*time.Millisecond, "bare mode: batch max age (match the server)")
	progress := flag.Duration("progress", 5*time.Second, "progress report interval (stderr)")
	caFile := flag.String("ca-file", "", "PEM file of certificate authorities to trust for an https --url, besides the system's")
	if code, ok := cli.Parse(flag, os.Args[1:]); !ok {
		os.Exit(code)
	}
	klog.SetSlogLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

	var err error
	if *bare {
		err = runBare(*clients, *events, *payload, *duration, *batchAge, *progress)
	} else {
		err = runHTTP(*url, *tokenFile, *caFile, *clients, *events, *payload, *duration, *pid, *cpSample, *progress)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type stats struct {
	mu      sync.Mutex
	index   []time.Duration
	cp      []time.Duration
	errors  map[string]int
	started time.Time
	done    atomic.Int64
}

func (s *stats) addErr(e string) {
	s.mu.Lock()
	s.errors[e]++
	s.mu.Unlock()
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func runHTTP(url, tokenFile, caFile string, clients, events, payload int, duration time.Duration, pid, cpSample int, progress time.Duration) error {
	tb, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	pool, err := cli.CAPool(caFile)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients, ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, Timeout: time.Minute}
	lc, err := client.New(url, client.WithToken(string(tb)), client.WithHTTPClient(hc))
	if err != nil {
		return err
	}
	pad := strings.Repeat("a", max(0, payload-40))
	st := &stats{errors: map[string]int{}, started: time.Now()}
	var next atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	cpWaits := &sync.WaitGroup{}
	stopProgress := reportProgress(st, progress)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			session := fmt.Sprintf("load-%d-%d", time.Now().UnixNano(), c)
			for ctx.Err() == nil {
				n := next.Add(1)
				if n > int64(events) {
					return
				}
				ev := &event.Request{Session: session, Kind: "llm.request", Actor: event.Actor{Type: "agent", ID: "loadgen"},
					Attributes: map[string]json.RawMessage{"gen_ai.request.model": json.RawMessage(`"bench-model"`), "gen_ai.usage.input_tokens": json.RawMessage(fmt.Sprint(n))},
					Payload:    json.RawMessage(fmt.Sprintf(`{"prompt":%q}`, pad))}
				t0 := time.Now()
				ws, err := lc.Append(ctx, []*event.Request{ev})
				if err != nil {
					if ctx.Err() == nil {
						st.addErr(err.Error())
					}
					continue
				}
				d := time.Since(t0)
				st.done.Add(1)
				st.mu.Lock()
				st.index = append(st.index, d)
				st.mu.Unlock()
				if cpSample > 0 && n%int64(cpSample) == 0 {
					idx := ws[0].Index
					cpWaits.Go(func() {
						if d, ok := waitCheckpoint(ctx, lc, idx, t0); ok {
							st.mu.Lock()
							st.cp = append(st.cp, d)
							st.mu.Unlock()
						}
					})
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(st.started)
	stopProgress()
	cpWaits.Wait()
	fmt.Printf("mode=http clients=%d payload=%dB events=%d elapsed=%s rate=%.0f events/s\n", clients, payload, st.done.Load(), elapsed.Round(time.Millisecond), float64(st.done.Load())/elapsed.Seconds())
	fmt.Printf("time-to-index p50=%s p99=%s  time-to-checkpoint p50=%s p99=%s (n=%d)\n",
		pct(st.index, .5).Round(10*time.Microsecond), pct(st.index, .99).Round(10*time.Microsecond),
		pct(st.cp, .5).Round(time.Millisecond), pct(st.cp, .99).Round(time.Millisecond), len(st.cp))
	if len(st.errors) > 0 {
		fmt.Printf("errors: %v\n", st.errors)
	}
	if pid > 0 {
		fmt.Printf("server RSS: %s\n", rss(pid))
	}
	return nil
}

func waitCheckpoint(ctx context.Context, lc *client.Client, index uint64, t0 time.Time) (time.Duration, bool) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		b, err := lc.Tiles().ReadCheckpoint(context.WithoutCancel(ctx))
		if err == nil {
			// Size only: the benchmark measures latency, verification is
			// covered by the tests.
			var c fmtlog.Checkpoint
			if _, err := c.Unmarshal(b); err == nil && c.Size > index {
				return time.Since(t0), true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, false
}

func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "?"
}

func reportProgress(st *stats, every time.Duration) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		last, lastT := int64(0), time.Now()
		for {
			select {
			case <-stop:
				return
			case <-time.After(every):
			}
			n := st.done.Load()
			fmt.Fprintf(os.Stderr, "  %d events, %.0f/s\n", n, float64(n-last)/time.Since(lastT).Seconds())
			last, lastT = n, time.Now()
		}
	}()
	return func() { close(stop); <-done }
}

// runBare measures Tessera's POSIX appender on its own, with a leaf of the
// size the server writes for the same payload (the server's leaf is ~600
// bytes; the bare appender gets entries of payload size, an upper bound).
func runBare(clients, events, payload int, duration, batchAge time.Duration, progress time.Duration) error {
	dir, err := os.MkdirTemp("", "bare-tessera-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	skey, _, err := checkpoint.GenerateKey("bench/bare")
	if err != nil {
		return err
	}
	s, _ := checkpoint.NewSigner(skey)
	ctx := context.Background()
	drv, err := posix.New(ctx, posix.Config{Path: filepath.Join(dir, "log")})
	if err != nil {
		return err
	}
	app, shutdown, _, err := tessera.NewAppender(ctx, drv, tessera.NewAppendOptions().
		WithCheckpointSigner(s).WithBatching(1024, batchAge).WithCheckpointInterval(time.Second))
	if err != nil {
		return err
	}
	st := &stats{errors: map[string]int{}, started: time.Now()}
	stopProgress := reportProgress(st, progress)
	var next atomic.Int64
	dctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			buf := make([]byte, payload)
			for dctx.Err() == nil && next.Add(1) <= int64(events) {
				rand.Read(buf)
				t0 := time.Now()
				if _, err := app.Add(ctx, tessera.NewEntry(bytes.Clone(buf)))(); err != nil {
					st.addErr(err.Error())
					continue
				}
				st.done.Add(1)
				st.mu.Lock()
				st.index = append(st.index, time.Since(t0))
				st.mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(st.started)
	stopProgress()
	fmt.Printf("mode=bare-tessera-posix clients=%d entry=%dB events=%d elapsed=%s rate=%.0f adds/s\n", clients, payload, st.done.Load(), elapsed.Round(time.Millisecond), float64(st.done.Load())/elapsed.Seconds())
	fmt.Printf("time-to-index p50=%s p99=%s\n", pct(st.index, .5).Round(10*time.Microsecond), pct(st.index, .99).Round(10*time.Microsecond))
	if len(st.errors) > 0 {
		fmt.Printf("errors: %v\n", st.errors)
	}
	return shutdown(ctx)
}

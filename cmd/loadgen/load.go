package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fmtlog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
)

type config struct {
	urls                      urlFlags
	tokenFile, caFile         string
	clients, events, sessions int
	payload, cpSample         int
	duration, progress        time.Duration
	rate                      float64
	verify, tesseraAdd        bool
	logKey, policyFile        string
	wait                      string
	pids                      []int
}

// acked is one acknowledged event, as the server answered it.
type acked struct {
	id       string
	indexed  bool // index known (not with --wait durable until resolved)
	session  string
	index    uint64
	seq      uint64
	leafHash []byte
}

// stats gathers what the clients measured.
type stats struct {
	mu      sync.Mutex
	lat     []time.Duration // acknowledgement latency
	window  []time.Duration // latencies since the last progress line
	cp      []time.Duration // time to a covering checkpoint, sampled
	errors  map[string]int
	first   map[string]string // the first message of each kind of error
	acked   []acked
	missed  atomic.Int64 // events a --rate run could not start on time
	done    atomic.Int64
	failed  atomic.Int64
	started time.Time
}

func (s *stats) ok(a acked, d time.Duration) {
	s.mu.Lock()
	s.lat = append(s.lat, d)
	s.window = append(s.window, d)
	s.acked = append(s.acked, a)
	s.mu.Unlock()
	s.done.Add(1)
}

func (s *stats) fail(err error) {
	key := err.Error()
	var ce *client.Error
	if errors.As(err, &ce) {
		key = fmt.Sprintf("%d %s", ce.StatusCode, ce.Code)
	} else if len(key) > 80 {
		key = key[:80]
	}
	s.mu.Lock()
	if s.errors[key]++; s.errors[key] == 1 {
		if s.first == nil {
			s.first = map[string]string{}
		}
		s.first[key] = event.Clip(err.Error(), 200)
	}
	s.mu.Unlock()
	s.failed.Add(1)
}

// errorSummary lists each kind of error, how often it came and its first
// message ("" when there was none).
func (s *stats) errorSummary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.errors))
	for k := range s.errors {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %s ×%d, first: %s", k, s.errors[k], s.first[k])
	}
	return b.String()
}

// pct returns the p-quantile of d (sorted in place).
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func clients(cfg config) ([]*client.Client, error) {
	tb, err := cli.ReadFile(cfg.tokenFile, 4096)
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	pool, err := cli.CAPool(cfg.caFile)
	if err != nil {
		return nil, err
	}
	var out []*client.Client
	for _, u := range cfg.urls {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.clients, MaxConnsPerHost: cfg.clients, ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, Timeout: time.Minute}
		lc, err := client.New(u, client.WithToken(string(tb)), client.WithHTTPClient(hc))
		if err != nil {
			return nil, fmt.Errorf("--url %s: %w", u, err)
		}
		out = append(out, lc)
	}
	return out, nil
}

// run writes the load and reports; failed is set when an event was not
// acknowledged or the verification failed.
func run(cfg config, out io.Writer) (failed bool, err error) {
	lcs, err := clients(cfg)
	if err != nil {
		return false, err
	}
	var key note.Verifier
	var policy *checkpoint.Policy
	if cfg.verify {
		if key, policy, err = cli.ReadTrust(cfg.logKey, cfg.policyFile); err != nil {
			return false, err
		}
	}
	pad := strings.Repeat("a", max(0, cfg.payload-40))
	// Every event's payload is the same (read, never written): quoting
	// the pad for each was a tenth of loadgen's CPU at 512 clients.
	payload := json.RawMessage(`{"prompt":` + strconv.Quote(pad) + `}`)
	st := &stats{errors: map[string]int{}, started: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	nsessions := cfg.sessions
	if nsessions == 0 {
		nsessions = cfg.clients
	}
	// Open loop: a scheduler hands out start times at the target rate;
	// a client that takes one late still measures from the scheduled time.
	var ticks chan time.Time
	if cfg.rate > 0 {
		ticks = make(chan time.Time, cfg.clients)
		go schedule(ctx, cfg.rate, ticks, &st.missed)
	}
	var next atomic.Int64
	cpWaits := &sync.WaitGroup{}
	stopProgress := progress(st, cfg.progress, cfg.rate > 0)
	var wg sync.WaitGroup
	for c := range cfg.clients {
		lc := lcs[c%len(lcs)]
		wg.Go(func() {
			for ctx.Err() == nil {
				n := next.Add(1)
				if cfg.events > 0 && n > int64(cfg.events) {
					return
				}
				t0 := time.Now()
				if ticks != nil {
					select {
					case t0 = <-ticks:
					case <-ctx.Done():
						return
					}
				}
				session := fmt.Sprintf("load-%s-%d", run, (int(n)+c)%nsessions)
				if cfg.sessions == 0 {
					session = fmt.Sprintf("load-%s-%d", run, c)
				}
				ev := &event.Request{Session: session, Kind: event.KindLLMRequest, Actor: event.Actor{Type: "agent", ID: "loadgen"},
					Attributes: map[string]json.RawMessage{event.AttrGenAIRequestModel: json.RawMessage(`"bench-model"`), event.AttrGenAIUsageInputTokens: json.RawMessage(fmt.Sprint(n))},
					Payload:    payload}
				var a event.Appended
				var err error
				if cfg.tesseraAdd {
					// Unique entries: the conformance servers answer a
					// repeated entry from their deduplication cache.
					a.Index, err = tesseraAdd(lc, fmt.Appendf(nil, "%d %s %s", n, run, pad))
				} else {
					var ws []client.Written
					var opts []client.AppendOption
					if cfg.wait == api.WaitDurable {
						opts = append(opts, client.WaitForDurability())
					}
					if ws, err = lc.Append(context.WithoutCancel(ctx), []*event.Request{ev}, opts...); err == nil {
						a = ws[0].Appended
					}
				}
				if err != nil {
					st.fail(err)
					continue
				}
				d := time.Since(t0)
				st.ok(acked{id: a.ID, indexed: a.Indexed || cfg.tesseraAdd, session: session, index: a.Index, seq: a.Seq, leafHash: a.LeafHash}, d)
				if cfg.cpSample > 0 && n%int64(cfg.cpSample) == 0 {
					cpWaits.Go(func() {
						idx := a.Index
						if !a.Indexed && !cfg.tesseraAdd {
							wctx, cancel := context.WithTimeout(context.Background(), time.Minute)
							defer cancel()
							if idx, err = lc.WaitIndexed(wctx, a.ID, 20*time.Millisecond); err != nil {
								return
							}
						}
						if d, ok := waitCheckpoint(lc, idx, t0); ok {
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
	mode := "closed-loop"
	if cfg.rate > 0 {
		mode = fmt.Sprintf("rate=%.0f/s", cfg.rate)
	}
	fmt.Fprintf(out, "mode=%s urls=%d clients=%d sessions=%d payload=%dB acked=%d failed=%d elapsed=%s throughput=%.0f events/s\n",
		mode, len(cfg.urls), cfg.clients, nsessions, cfg.payload, st.done.Load(), st.failed.Load(), elapsed.Round(time.Millisecond), float64(st.done.Load())/elapsed.Seconds())
	fmt.Fprintf(out, "ack latency p50=%s p90=%s p99=%s max=%s  time-to-checkpoint p50=%s p99=%s (n=%d)\n",
		rnd(pct(st.lat, .5)), rnd(pct(st.lat, .9)), rnd(pct(st.lat, .99)), rnd(pct(st.lat, 1)),
		pct(st.cp, .5).Round(time.Millisecond), pct(st.cp, .99).Round(time.Millisecond), len(st.cp))
	if m := st.missed.Load(); m > 0 {
		fmt.Fprintf(out, "the target rate was not met: %d scheduled events found no free client\n", m)
	}
	if e := st.errorSummary(); e != "" {
		fmt.Fprintf(out, "errors:%s\n", e)
	}
	for _, pid := range cfg.pids {
		fmt.Fprintf(out, "server %d RSS: %s\n", pid, rss(pid))
	}
	failed = st.failed.Load() > 0
	if cfg.verify {
		if err := verify(lcs[0], key, policy, st.acked, out); err != nil {
			fmt.Fprintf(out, "verify: FAILED: %v\n", err)
			failed = true
		}
	}
	return failed, nil
}

// tesseraAdd adds entry through a Tessera conformance server's POST /add,
// which answers the index in decimal.
func tesseraAdd(lc *client.Client, entry []byte) (uint64, error) {
	resp, err := lc.HTTPClient().Post(strings.TrimSuffix(lc.URL(), "/")+"/add", "application/octet-stream", bytes.NewReader(entry))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return 0, &client.Error{StatusCode: resp.StatusCode, Code: "add", Message: strings.TrimSpace(string(b))}
	}
	var idx uint64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &idx); err != nil {
		return 0, fmt.Errorf("/add answered %q", b)
	}
	return idx, nil
}

func rnd(d time.Duration) time.Duration {
	if d > 10*time.Millisecond {
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(10 * time.Microsecond)
}

// schedule sends start times at rate per second until ctx ends; a start
// time that finds the queue full is counted in missed.
func schedule(ctx context.Context, rate float64, ticks chan<- time.Time, missed *atomic.Int64) {
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := int64(0); ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		select {
		case ticks <- at:
		default:
			missed.Add(1)
		}
	}
}

func waitCheckpoint(lc *client.Client, index uint64, t0 time.Time) (time.Duration, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		b, err := lc.Tiles().ReadCheckpoint(ctx)
		if err == nil {
			// Size only: the latency is measured here; --verify checks
			// signatures.
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

// progress prints a line every interval: elapsed, acked, the rate and
// latencies since the last line, failures.
func progress(st *stats, every time.Duration, rated bool) func() {
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
			st.mu.Lock()
			w := st.window
			st.window = nil
			st.mu.Unlock()
			line := fmt.Sprintf("  %s: %d acked, %.0f/s, p50=%s p99=%s, %d failed", time.Since(st.started).Round(time.Second), n,
				float64(n-last)/time.Since(lastT).Seconds(), rnd(pct(w, .5)), rnd(pct(w, .99)), st.failed.Load())
			if rated {
				line += fmt.Sprintf(", %d late", st.missed.Load())
			}
			fmt.Fprintln(os.Stderr, line)
			last, lastT = n, time.Now()
		}
	}()
	return func() { close(stop); <-done }
}

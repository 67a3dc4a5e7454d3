package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
)

// runBare measures Tessera's POSIX appender on its own, with a leaf of the
// size the server writes for the same payload (the server's leaf is ~600
// bytes; the bare appender gets entries of payload size, an upper bound).
func runBare(clients, events, payload int, duration, batchAge time.Duration, every time.Duration) error {
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
	stopProgress := progress(st, every, false)
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
					st.fail(err)
					continue
				}
				st.ok(acked{}, time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(st.started)
	stopProgress()
	fmt.Printf("mode=bare-tessera-posix clients=%d entry=%dB events=%d elapsed=%s rate=%.0f adds/s\n", clients, payload, st.done.Load(), elapsed.Round(time.Millisecond), float64(st.done.Load())/elapsed.Seconds())
	fmt.Printf("time-to-index p50=%s p99=%s\n", rnd(pct(st.lat, .5)), rnd(pct(st.lat, .99)))
	if e := st.errorSummary(); e != "" {
		fmt.Printf("errors:%s\n", e)
	}
	return shutdown(ctx)
}

package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

// TestOTLPExportKillAndRestart SIGKILLs the monitor binary, exporting with
// --otlp-export to a receiver built on the collector's pdata, several times
// while the log grows: every entry reaches the receiver, with its index and
// leaf hash, at least once.
func TestOTLPExportKillAndRestart(t *testing.T) {
	l := startLog(t)
	var mu sync.Mutex
	got := map[int64]int{}
	auth := ""
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := plogotlp.NewExportRequest()
		if err := req.UnmarshalProto(b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		auth = r.Header.Get("Authorization")
		rls := req.Logs().ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			lrs := rls.At(i).ScopeLogs().At(0).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				a := lrs.At(k).Attributes()
				idx, _ := a.Get("llmaudit.index")
				if h, ok := a.Get("llmaudit.leaf_hash"); !ok || len(h.Str()) != 64 {
					t.Errorf("record %d without a leaf hash", idx.Int())
				}
				got[idx.Int()]++
			}
		}
		resp, _ := plogotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(resp)
	}))
	defer rc.Close()
	headers := filepath.Join(t.TempDir(), "otlp-headers")
	if err := os.WriteFile(headers, []byte("Authorization=Bearer%20collector-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	args := []string{"--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF, "--rules", l.rules, "--state", state, "--start", "0",
		"--poll", "50ms", "--log-level", "warn", "--otlp-export", rc.URL + "/v1/logs", "--otlp-headers-file", headers}

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := range 20 {
			l.appendBatch(fmt.Sprintf("s%d", i%3), 25)
			time.Sleep(40 * time.Millisecond)
		}
	}()
	kills := 0
	for {
		r := startBinary(t, args...)
		select {
		case <-writerDone:
		default:
			time.Sleep(time.Duration(200+rand.IntN(300)) * time.Millisecond)
			r.cmd.Process.Signal(syscall.SIGKILL)
			<-r.done
			kills++
			continue
		}
		started := time.Now()
		deadline := time.Now().Add(30 * time.Second)
		for l.size() < 20*25 && time.Now().Before(deadline) { // the checkpoint covers every batch
			time.Sleep(50 * time.Millisecond)
		}
		size := l.size()
		for time.Now().Before(deadline) {
			mu.Lock()
			n := 0
			for i := range int64(size) {
				if got[i] > 0 {
					n++
				}
			}
			mu.Unlock()
			if uint64(n) == size && time.Since(started) > time.Second { // and its signal handler is set
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		r.cmd.Process.Signal(syscall.SIGTERM)
		<-r.done
		if code := r.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("monitor exited %d after SIGTERM: %s", code, r.errOut.String())
		}
		mu.Lock()
		defer mu.Unlock()
		again := 0
		for i := range int64(size) {
			switch {
			case got[i] == 0:
				t.Errorf("entry %d never exported", i)
			case got[i] > 1:
				again++
			}
		}
		if auth != "Bearer collector-secret" {
			t.Errorf("Authorization %q", auth)
		}
		t.Logf("%d kills, %d entries, %d exported more than once", kills, size, again)
		return
	}
}

package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/testproc"
)

// TestTesseraHammerReads runs Tessera's own hammer load tool (read workers
// only: full-log readers and random-leaf readers) against the server while
// events are written through the event API. The hammer verifies every
// checkpoint, checks consistency between them and reads entry bundles; it
// exits non-zero on an inconsistent or unverifiable log.
func TestTesseraHammerReads(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the hammer")
	}
	hammer := testproc.Tool(t, "hammer")
	s := newTestServer(t, nil)
	var tileReqs, entryReqs, bad atomic.Int64
	var mu sync.Mutex
	var badPaths []string
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &statusWriter{ResponseWriter: w, status: 200}
		s.srv.Handler().ServeHTTP(rw, r)
		switch {
		case strings.HasPrefix(r.URL.Path, "/tile/entries/"):
			entryReqs.Add(1)
		case strings.HasPrefix(r.URL.Path, "/tile/"):
			tileReqs.Add(1)
		}
		if rw.status >= 400 {
			bad.Add(1)
			mu.Lock()
			badPaths = append(badPaths, fmt.Sprintf("%d %s", rw.status, r.URL.Path))
			mu.Unlock()
		}
	}))
	defer counting.Close()
	s.post(t, "hammer", "llm.request", nil) // the hammer needs a first checkpoint
	time.Sleep(300 * time.Millisecond)

	const goal = 600
	cmd := exec.Command(hammer, "--log_url", counting.URL+"/", "--log_public_key", s.srv.VerifierKey(),
		"--num_writers", "0", "--num_readers_full", "2", "--num_readers_random", "4", "--max_read_ops", "500",
		"--leaf_write_goal", fmt.Sprint(goal), "--max_runtime", "90s", "--show_ui=false", "--bearer_token", s.admin)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The hammer exits once the tree has grown by goal from the size it
	// first saw, which depends on when it starts; keep writing until then.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s.post(t, fmt.Sprintf("hammer-%d", w), "tool.call", map[string]int{"i": i})
			}
		})
	}
	err := <-exited
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("hammer failed: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "failed to get") || strings.Contains(out.String(), "E1") {
		t.Fatalf("hammer reported errors:\n%s", out.String())
	}
	if tileReqs.Load() == 0 || entryReqs.Load() == 0 {
		t.Fatalf("hammer read %d tiles and %d entry bundles; want both > 0", tileReqs.Load(), entryReqs.Load())
	}
	if bad.Load() > 0 {
		t.Fatalf("%d hammer requests failed: %v", bad.Load(), badPaths[:min(len(badPaths), 10)])
	}
	t.Logf("hammer: %d tile and %d entry-bundle reads, all 2xx", tileReqs.Load(), entryReqs.Load())
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/testproc"
)

// floodConns is the size of the flood from one address.
const floodConns = 4000

// serverFiles is the open-file limit the flooded server runs with: below
// the flood, as a server's limit is below a large enough flood.
const serverFiles = 3000

// TestConnFlood (issue #24, finding 4): 4,000 connections from one
// address (127.0.0.2) that send GET /healthz, or nothing, and then stay
// silent, to the API listener or to the interception listener, leave the
// log serving others: /checkpoint answers a client at 127.0.0.1 within a
// second. The server runs with an open-file limit of 3,000, below the
// flood.
func TestConnFlood(t *testing.T) {
	raiseFileLimit(t, floodConns+1000)
	bin := buildBinary(t)
	limited := filepath.Join(t.TempDir(), "log-server-limited")
	script := fmt.Sprintf("#!/bin/sh\nulimit -n %d || exit 1\nexec %q \"$@\"\n", serverFiles, bin)
	if err := os.WriteFile(limited, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"api", "intercept"} {
		t.Run(target, func(t *testing.T) {
			icAddr := testproc.FreeAddr(t)
			p := startWith(t, limited, t.TempDir(), nil, "--intercept-listen", icAddr)
			addr := strings.TrimPrefix(p.url, "http://")
			if target == "intercept" {
				addr = icAddr
			}
			conns := flood(t, addr, floodConns)
			t.Logf("%d of %d flood dials to the %s listener completed (the rest were reset or timed out)", conns, floodConns, target)
			for i := range 3 {
				start := time.Now()
				err := getCheckpoint(p.url)
				took := time.Since(start)
				if err != nil || took >= time.Second {
					t.Fatalf("GET /checkpoint #%d from 127.0.0.1 while %s is flooded: %v after %v", i, target, err, took.Round(time.Millisecond))
				}
			}
		})
	}
}

// raiseFileLimit raises the test's own open-file limit to at least n, or
// skips the test.
func raiseFileLimit(t *testing.T, n uint64) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if r.Cur < n {
		r.Cur = min(r.Max, n)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
	if r.Cur < n {
		t.Skipf("open-file limit %d: the flood needs %d", r.Cur, n)
	}
}

// flood opens n connections to addr from 127.0.0.2 (for 20 s at most);
// every other one sends GET /healthz, and all then stay silent until the
// test ends. It returns how many connections the dials completed.
func flood(t *testing.T, addr string, n int) int {
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: time.Second}
			for i := next.Add(1); i <= int64(n) && time.Now().Before(deadline); i = next.Add(1) {
				c, err := d.Dial("tcp", addr)
				if err != nil {
					continue
				}
				if i%2 == 0 {
					c.SetWriteDeadline(time.Now().Add(time.Second))
					io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: flood\r\n\r\n")
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return len(conns)
}

// getCheckpoint fetches /checkpoint on a new connection from 127.0.0.1.
func getCheckpoint(base string) error {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}).DialContext}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := hc.Get(base + "/checkpoint")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	return nil
}

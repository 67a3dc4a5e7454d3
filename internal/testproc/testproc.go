// Package testproc runs the programs tests talk to: Go tool dependencies
// pinned in go.mod (Tessera's hammer, litewitness, omniwitness) and other
// processes, with their output kept for a failing test and a clean stop at
// cleanup. Only tests import it.
package testproc

import (
	"bytes"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tool returns the path of the Go tool dependency name (see the tool block
// in go.mod), building it into the Go build cache if needed.
func Tool(t testing.TB, name string) string {
	t.Helper()
	out, err := exec.Command("go", "tool", "-n", name).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go tool -n %s: %v\n%s", name, err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitHTTP waits (30 s at most) until url answers any HTTP response.
func WaitHTTP(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not come up: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Start starts bin and returns a function that stops it (see StartOutput).
func Start(t testing.TB, label, bin string, args ...string) func() {
	return StartOutput(t, label, new(Buffer), bin, args...)
}

// StartOutput starts bin with its stdout and stderr in out, and returns a
// function that stops it: SIGINT, then SIGKILL after 5 s. It also runs at
// cleanup, and then prints the output if the test failed.
func StartOutput(t testing.TB, label string, out *Buffer, bin string, args ...string) func() {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", label, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	stop := sync.OnceFunc(func() {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", label, out.String())
		}
	})
	return stop
}

// Buffer is a bytes.Buffer that a process's output copier and a test may use
// at the same time.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

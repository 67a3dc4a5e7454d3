package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/testproc"
)

// Sizes of TestProxyMemory: the figures in docs/security-conns.md are for
// these.
const (
	bigBodies    = 8
	bigBodyBytes = 30 << 20
	sseClients   = 20
	sseBytes     = 300 << 20
)

// TestProxyMemory (issue #24, finding 6) measures the log server's
// resident memory (VmRSS, and VmHWM for the peak) while the capture proxy
// takes 8 concurrent 30 MiB request bodies, and while 20 clients that do
// not read hold a 300 MB SSE stream each, and after they close:
//
//	go test -count=1 -run TestProxyMemory -v ./cmd/log-server/
//
// The peak of the bodies must stay within the in-flight body budget plus a
// bounded overhead, and memory must come back after the streams close.
func TestProxyMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 240 MiB of bodies")
	}
	var streamed atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > 1<<20 {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := []byte(`data: {"id":"chatcmpl-2","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"` + strings.Repeat("x", 4000) + `"}}]}` + "\n\n")
		for n := 0; n < sseBytes; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			streamed.Add(int64(len(chunk)))
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(up.Close)

	bin := buildBinary(t)
	var p *proc
	var tok, url string
	var pid int
	var debug string
	// Each measure on a server of its own.
	fresh := func() {
		if p != nil {
			p.cmd.Process.Kill()
			<-p.errc
		}
		dir := t.TempDir()
		debug = testproc.FreeAddr(t)
		p = startWith(t, bin, dir, nil, "--upstream", "fake="+up.URL, "--debug-listen", debug)
		tok, pid, url = readToken(t, dir), p.cmd.Process.Pid, p.url+"/proxy/fake/v1/chat/completions"
	}
	fresh()

	call := func(body io.Reader, size int64) (int, error) {
		req, _ := http.NewRequest("POST", url, body)
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Audit-Token", tok)
		resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	warmUp := func() {
		if code, err := call(strings.NewReader(`{"model":"gpt-4o","messages":[]}`+strings.Repeat(" ", 2<<20)), 2<<20+32); err != nil || code != 200 {
			t.Fatalf("warm-up call: %d %v", code, err)
		}
	}
	warmUp()
	base := memStatus(t, pid, "VmRSS")

	// 8 concurrent 30 MiB bodies.
	resetPeak(t, pid)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range bigBodies {
		wg.Go(func() {
			code, err := call(bigBody(bigBodyBytes), bigBodyBytes)
			if err != nil {
				t.Errorf("big body: %v", err)
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	bodyPeak := memStatus(t, pid, "VmHWM")
	time.Sleep(3 * time.Second)
	bodyAfter := memStatus(t, pid, "VmRSS")
	t.Logf("%d concurrent %d MiB bodies: RSS %d MB before, %d MB peak, %d MB 3 s after; statuses %v",
		bigBodies, bigBodyBytes>>20, base>>20, bodyPeak>>20, bodyAfter>>20, codes)

	// 20 clients of a 300 MB stream that do not read.
	fresh()
	warmUp()
	resetPeak(t, pid)
	sseBase := memStatus(t, pid, "VmRSS")
	var conns []net.Conn
	for range sseClients {
		c, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`
		fmt.Fprintf(c, "POST /proxy/fake/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Audit-Token: %s\r\nContent-Length: %d\r\n\r\n%s", tok, len(body), body)
	}
	// Wait until the streams stall (nobody reads): nothing more leaves the
	// upstream for a second.
	for last, deadline := int64(-1), time.Now().Add(30*time.Second); time.Now().Before(deadline); {
		time.Sleep(time.Second)
		if n := streamed.Load(); n == last {
			break
		} else {
			last = n
		}
	}
	ssePeak := memStatus(t, pid, "VmHWM")
	for _, c := range conns {
		c.Close()
	}
	time.Sleep(5 * time.Second)
	sseAfter := memStatus(t, pid, "VmRSS")
	ssePeakAll := memStatus(t, pid, "VmHWM")
	// What is still live once collected: nothing of the streams may be
	// kept (GC here is the measure's, not the server's).
	live := liveHeap(t, debug)
	time.Sleep(5 * time.Second)
	sseAfterGC := memStatus(t, pid, "VmRSS")
	t.Logf("%d non-reading clients of a %d MB stream (%d MB left the upstream): RSS %d MB before, %d MB while held, %d MB peak, %d MB 5 s after they closed; live heap %d MB after a GC, RSS %d MB 5 s later",
		sseClients, sseBytes>>20, streamed.Load()>>20, sseBase>>20, ssePeak>>20, ssePeakAll>>20, sseAfter>>20, live>>20, sseAfterGC>>20)

	// What the budget promises (see docs/security-conns.md): the bodies'
	// peak within 400 MB over the base, and the streams' memory back within
	// 100 MB of where it started.
	if grew := bodyPeak - base; grew > 400<<20 {
		t.Errorf("8 concurrent 30 MiB bodies grew RSS by %d MB at peak (budget: 400 MB)", grew>>20)
	}
	if ssePeakAll-sseBase > 400<<20 {
		t.Errorf("20 streams grew RSS by %d MB at peak (budget: 400 MB)", (ssePeakAll-sseBase)>>20)
	}
	if live > 100<<20 {
		t.Errorf("after the streams closed, %d MB of heap stayed live", live>>20)
	}
}

// bigBody is a chat completion of size bytes whose one message is padding,
// made as it is read.
func bigBody(size int) io.Reader {
	head := `{"model":"gpt-4o","messages":[{"role":"user","content":"`
	tail := `"}]}`
	return io.MultiReader(strings.NewReader(head), io.LimitReader(repeatByte('x'), int64(size-len(head)-len(tail))), strings.NewReader(tail))
}

type repeatByte byte

func (b repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// liveHeap is the server's live heap after a collection (pprof's heap
// profile with gc=1 prints runtime.MemStats).
func liveHeap(t *testing.T, debug string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + debug + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	t.Fatal("no HeapAlloc in the heap profile")
	return 0
}

// memStatus reads a field of /proc/PID/status in bytes.
func memStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// resetPeak resets VmHWM to the current RSS.
func resetPeak(t *testing.T, pid int) {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak (%v): it covers the whole run", err)
	}
}

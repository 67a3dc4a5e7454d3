package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// slowResults is a proxy in front of the log server that holds back every
// relay request carrying marker (the tool's answer to it) for delay, and
// counts them.
type slowResults struct {
	marker string
	delay  time.Duration
	// loseFirst: the first such request reaches the log server, and the
	// wrapper gets a 502 instead of its answer.
	loseFirst bool
	mu        sync.Mutex
	held      int
}

func (s *slowResults) start(t *testing.T, target string) *httptest.Server {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if r.URL.Path == "/v1/mcp/relay" && bytes.Contains(body, []byte(s.marker)) && bytes.Contains(body, []byte(`"result"`)) {
			s.mu.Lock()
			s.held++
			lose := s.loseFirst && s.held == 1
			s.mu.Unlock()
			time.Sleep(s.delay)
			if lose {
				rp.ServeHTTP(httptest.NewRecorder(), r)
				http.Error(w, "lost", http.StatusBadGateway)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ps.Close)
	return ps
}

// checkToolChain checks that evs are kinds, in that order, one chain
// (seq following on, prev the hash of the leaf before), and that each
// tool.result names the tool.call before it.
func checkToolChain(t *testing.T, evs []*event.Leaf, kinds ...string) {
	t.Helper()
	var got []string
	for _, e := range evs {
		got = append(got, e.Kind)
	}
	if strings.Join(got, " ") != strings.Join(kinds, " ") {
		t.Fatalf("events %v, want %v", got, kinds)
	}
	for i, e := range evs {
		if i == 0 {
			continue
		}
		prev, _ := evs[i-1].Marshal()
		if e.Seq != evs[i-1].Seq+1 || e.Prev != hex.EncodeToString(event.LeafHash(prev)) {
			t.Fatalf("event %d (%s): seq %d prev %s after seq %d: the chain is broken", i, e.Kind, e.Seq, e.Prev, evs[i-1].Seq)
		}
		if e.Kind == event.KindToolResult && (evs[i-1].Kind != event.KindToolCall || e.Attributes["capture.tool_call.id"] != evs[i-1].ID) {
			t.Fatalf("tool.result %d names call %v, the event before is %s %s", i, e.Attributes["capture.tool_call.id"], evs[i-1].Kind, evs[i-1].ID)
		}
	}
}

// TestMCPWrapResultOffCriticalPath: a tool's answer reaches the agent
// without waiting for the log (here a log server that takes 3 s to take
// the result's record), fail-closed, and its record still arrives,
// once, after its call, the chain intact.
func TestMCPWrapResultOffCriticalPath(t *testing.T) {
	everything := referenceServer(t, "mcp-server-everything")
	bin := wrapBinary(t)
	w := newMCPWorld(t, server.Config{CaptureMode: "fail-closed"})
	slow := &slowResults{marker: "slow result marker", delay: 3 * time.Second}
	ps := slow.start(t, w.ts.URL)
	cs := connect(t, &mcp.CommandTransport{Command: exec.Command(bin, "mcp", "wrap", "--url", ps.URL, "--token-file", w.tokenFile,
		"--session", "mcp-async-1", "--name", "everything", "--", "node", everything, "stdio")})
	start := time.Now()
	got, err := callJSON(t, cs, "echo", map[string]any{"message": "slow result marker"})
	took := time.Since(start)
	if err != nil || !strings.Contains(got, "slow result marker") {
		t.Fatalf("echo: %s %v", got, err)
	}
	if took > 1500*time.Millisecond {
		t.Fatalf("the answer took %v: it waited for the log to take the result (held %v)", took, slow.delay)
	}
	// A second call goes after the first one's result (held, then taken).
	if _, err := callJSON(t, cs, "get-sum", map[string]any{"a": 2, "b": 40}); err != nil {
		t.Fatal(err)
	}
	evs := w.events("mcp-async-1", 5)
	checkToolChain(t, evs, "mcp.initialize", "tool.call", "tool.result", "tool.call", "tool.result")
	if evs[1].Attributes["gen_ai.tool.name"] != "echo" || evs[3].Attributes["gen_ai.tool.name"] != "get-sum" {
		t.Fatalf("calls %v, %v", evs[1].Attributes, evs[3].Attributes)
	}
	if !strings.Contains(got, "slow result marker") {
		t.Fatal(got)
	}
}

// TestMCPWrapFlushesOnExit: the agent closes the wrapper's stdin right
// after its answer, while the result's record is still held by the log
// server: the wrapper exits only once the log has taken it.
func TestMCPWrapFlushesOnExit(t *testing.T) {
	everything := referenceServer(t, "mcp-server-everything")
	bin := wrapBinary(t)
	w := newMCPWorld(t, server.Config{CaptureMode: "fail-closed"})
	slow := &slowResults{marker: "exit result marker", delay: 500 * time.Millisecond}
	ps := slow.start(t, w.ts.URL)
	c := mcp.NewClient(&mcp.Implementation{Name: "audit-test", Version: "1.0"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.CommandTransport{Command: exec.Command(bin, "mcp", "wrap", "--url", ps.URL, "--token-file", w.tokenFile,
		"--session", "mcp-async-exit", "--name", "everything", "--", "node", everything, "stdio")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := callJSON(t, cs, "echo", map[string]any{"message": "exit result marker"}); err != nil {
		t.Fatal(err)
	}
	cs.Close() // stdin ends; returns when the wrapper has exited
	ps.Close() // nothing more reaches the log
	checkToolChain(t, w.events("mcp-async-exit", 3), "mcp.initialize", "tool.call", "tool.result")
	slow.mu.Lock()
	defer slow.mu.Unlock()
	if slow.held != 1 {
		t.Fatalf("the result went to the log %d times", slow.held)
	}
}

// TestMCPWrapResultRetried: the log server takes a result's record but
// its answer is lost (502): the wrapper tries again, and the result is in
// the log once, after its call, before the next call.
func TestMCPWrapResultRetried(t *testing.T) {
	everything := referenceServer(t, "mcp-server-everything")
	bin := wrapBinary(t)
	w := newMCPWorld(t, server.Config{CaptureMode: "fail-closed"})
	slow := &slowResults{marker: "retried result marker", loseFirst: true}
	ps := slow.start(t, w.ts.URL)
	cs := connect(t, &mcp.CommandTransport{Command: exec.Command(bin, "mcp", "wrap", "--url", ps.URL, "--token-file", w.tokenFile,
		"--session", "mcp-async-retry", "--name", "everything", "--", "node", everything, "stdio")})
	if _, err := callJSON(t, cs, "echo", map[string]any{"message": "retried result marker"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the linger, the lost answer, the retry
	if _, err := callJSON(t, cs, "get-sum", map[string]any{"a": 2, "b": 40}); err != nil {
		t.Fatal(err)
	}
	checkToolChain(t, w.events("mcp-async-retry", 5), "mcp.initialize", "tool.call", "tool.result", "tool.call", "tool.result")
	slow.mu.Lock()
	defer slow.mu.Unlock()
	if slow.held != 2 {
		t.Fatalf("the result went to the log %d times, want 2 (lost, then tried again)", slow.held)
	}
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
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

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// echoServer is an MCP server (node) that answers initialize, and each
// tools/call with "ran <name> <arguments.m>".
const echoServer = `const rl = require('readline').createInterface({input: process.stdin});
rl.on('line', l => {
  const m = JSON.parse(l);
  if (m.id === undefined) return;
  const result = m.method === 'tools/call' ? {content: [{type: 'text', text: 'ran ' + m.params.name + ' ' + (m.params.arguments.m || '')}]}
    : {protocolVersion: '2025-06-18', capabilities: {tools: {}}, serverInfo: {name: 'echo', version: '1'}};
  console.log(JSON.stringify({jsonrpc: '2.0', id: m.id, result}));
});`

// TestMCPWrapRefusedResultGap: the log server refuses (400) the relay
// request carrying a tool's result; the wrapper gives the result up and
// goes on. The next call is recorded, and a capture.gap naming the
// result given up sits in the session's chain between the call and the
// next call.
func TestMCPWrapRefusedResultGap(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	bin := wrapBinary(t)
	w := newMCPWorld(t, server.Config{CaptureMode: "fail-closed"})
	const marker = "refused result marker"
	var mu sync.Mutex
	refused := 0
	u, _ := url.Parse(w.ts.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	ps := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if r.URL.Path == "/v1/mcp/relay" && bytes.Contains(body, []byte(marker)) && bytes.Contains(body, []byte(`"result"`)) {
			mu.Lock()
			refused++
			mu.Unlock()
			http.Error(rw, `{"error":"refused by the test"}`, http.StatusBadRequest)
			return
		}
		rp.ServeHTTP(rw, r)
	}))
	defer ps.Close()
	cmd := exec.Command(bin, "mcp", "wrap", "--url", ps.URL, "--token-file", w.tokenFile,
		"--session", "mcp-refused-gap", "--name", "echo", "--", "node", "-e", echoServer)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	rd := bufio.NewReader(stdout)
	answer := func(msg string) string {
		t.Helper()
		if _, err := io.WriteString(stdin, msg+"\n"); err != nil {
			t.Fatal(err)
		}
		line, err := rd.ReadString('\n')
		if err != nil || !json.Valid([]byte(line)) {
			t.Fatalf("reading the answer to %s: %q %v (stderr: %s)", msg, line, err, stderr.String())
		}
		return line
	}
	answer(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if _, err := io.WriteString(stdin, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	if got := answer(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"m":"` + marker + `"}}}`); !strings.Contains(got, "ran echo "+marker) {
		t.Fatalf("call 1: %s (stderr: %s)", got, stderr.String())
	}
	// The result goes on its own after the linger, and is refused.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := refused
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the result's relay request did not come (stderr: %s)", stderr.String())
		}
	}
	if got := answer(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"sum","arguments":{}}}`); !strings.Contains(got, "ran sum") {
		t.Fatalf("call 2 after the refused result: %s (stderr: %s)", got, stderr.String())
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Logf("wrap: %v", err)
	}
	evs := w.events("mcp-refused-gap", 5)
	checkToolChain(t, evs, "mcp.initialize", "tool.call", event.KindCaptureGap, "tool.call", "tool.result")
	g := evs[2]
	if n, _ := g.Attributes[event.AttrCaptureGapCount].(json.Number); n != "1" {
		t.Fatalf("gap count %v: %v", g.Attributes[event.AttrCaptureGapCount], g.Attributes)
	}
	if s, _ := g.Attributes[event.AttrCaptureGapError].(string); !strings.Contains(s, "wrapper gave up 1 message(s)") {
		t.Fatalf("gap error %q", s)
	}
	if !strings.Contains(stderr.String(), "not recorded") {
		t.Errorf("the wrapper does not report the result given up: %s", stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if refused != 1 {
		t.Fatalf("the refused result was sent %d times, want 1", refused)
	}
}

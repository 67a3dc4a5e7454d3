package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/server"
)

// strayServer is an MCP server (node) that writes a line that is not
// JSON before each tool's answer, as a server's debug output may.
const strayServer = `const rl = require('readline').createInterface({input: process.stdin});
rl.on('line', l => {
  const m = JSON.parse(l);
  if (m.id === undefined) return;
  if (m.method === 'tools/call') console.log('debug: calling ' + m.params.name);
  const text = 'ran ' + m.params.name + (m.params.name === 'big' ? ' ' + 'x'.repeat(3500000) : '');
  const result = m.method === 'tools/call' ? {content: [{type: 'text', text}]}
    : {protocolVersion: '2025-06-18', capabilities: {tools: {}}, serverInfo: {name: 'stray', version: '1'}};
  console.log(JSON.stringify({jsonrpc: '2.0', id: m.id, result}));
});`

// TestMCPWrapStrayServerLine: a line of the server's that is not a JSON
// message is passed on and counted as a gap; it does not hold up the
// records of the messages around it, nor the client's next call
// (fail-closed). And a large result (3.5 MB) followed at once by a large
// call (0.6 MB), together over the log server's body limit, are both
// recorded.
func TestMCPWrapStrayServerLine(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	bin := wrapBinary(t)
	w := newMCPWorld(t, server.Config{CaptureMode: "fail-closed"})
	cmd := exec.Command(bin, "mcp", "wrap", "--url", w.ts.URL, "--token-file", w.tokenFile,
		"--session", "mcp-stray", "--name", "stray", "--", "node", "-e", strayServer)
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
	var stray int
	answer := func(msg string) string {
		t.Helper()
		if _, err := io.WriteString(stdin, msg+"\n"); err != nil {
			t.Fatal(err)
		}
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the answer to %s: %v (stderr: %s)", msg, err, stderr.String())
			}
			if json.Valid([]byte(line)) {
				return line
			}
			stray++
		}
	}
	answer(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if _, err := io.WriteString(stdin, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	for i, tool := range []string{"echo", "sum", "echo"} {
		if got := answer(`{"jsonrpc":"2.0","id":` + string(rune('2'+i)) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`); !strings.Contains(got, "ran "+tool) {
			t.Fatalf("call %d (%s): %s (stderr: %s)", i+1, tool, got, stderr.String())
		}
	}
	if got := answer(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"big","arguments":{}}}`); !strings.Contains(got, "ran big") {
		t.Fatalf("big: %.200s (stderr: %s)", got, stderr.String())
	}
	arg := strings.Repeat("y", 600000)
	if got := answer(`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"a":"` + arg + `"}}}`); !strings.Contains(got, "ran echo") {
		t.Fatalf("the call after a large result: %.300s (stderr: %s)", got, stderr.String())
	}
	if stray != 5 {
		t.Errorf("%d stray lines passed on, want 5", stray)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Logf("wrap: %v", err)
	}
	evs := w.events("mcp-stray", 11)
	checkToolChain(t, evs, "mcp.initialize", "tool.call", "tool.result", "tool.call", "tool.result", "tool.call", "tool.result",
		"tool.call", "tool.result", "tool.call", "tool.result")
	if !strings.Contains(stderr.String(), "not a JSON message") {
		t.Errorf("the gap is not reported: %s", stderr.String())
	}
}

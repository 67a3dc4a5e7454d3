package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/server"
)

// fakeMCP is an MCP server over HTTP that keeps every body it receives and
// answers each request it can read with a result naming the tool it ran.
type fakeMCP struct {
	*httptest.Server
	mu       sync.Mutex
	received [][]byte
}

func newFakeMCP(t *testing.T) *fakeMCP {
	f := &fakeMCP{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.received = append(f.received, b)
		f.mu.Unlock()
		type request struct {
			ID     json.RawMessage `json:"id"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		answer := func(m request) any {
			return map[string]any{"jsonrpc": "2.0", "id": m.ID,
				"result": map[string]any{"content": []any{map[string]any{"type": "text", "text": "ran " + m.Params.Name}}, "isError": false}}
		}
		var out any
		var m request
		var batch []request
		switch {
		case json.Unmarshal(b, &m) == nil && len(m.ID) > 0:
			out = answer(m)
		case json.Unmarshal(b, &batch) == nil && len(batch) > 0:
			var all []any
			for _, m := range batch {
				all = append(all, answer(m))
			}
			out = all
		default:
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeMCP) all() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.received...)
}

// The attacks of issue #24 finding 2: each a tools/call of shell.exec (which
// the policy denies) that the old observer read as something else, or
// could not read and forwarded unrecorded. The notifications (review of
// #24, finding 2: a method the capture follows, without an id) got past
// the tool policy unrecorded; they get no answer over stdio, and 400 with
// the error (id null) over HTTP.
var wireAttacks = []struct {
	name, msg    string
	code         int    // the JSON-RPC error answered
	id           string // ... to this id
	errType      string // error.type of the mcp.refused event
	notification bool
}{
	{"name case variant", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"shell.exec","Name":"echo","arguments":{"cmd":"id"}}}`,
		-32600, "1", "ambiguous_message", false},
	{"method case variant", `{"jsonrpc":"2.0","id":2,"method":"tools/call","Method":"ping","params":{"name":"shell.exec","arguments":{"cmd":"id"}}}`,
		-32600, "2", "ambiguous_message", false},
	{"error member of the wrong type", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"shell.exec","arguments":{"cmd":"id"}},"error":7}`,
		-32600, "3", "malformed_message", false},
	{"arguments case variant", `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"},"Arguments":{"cmd":"shell.exec id"}}}`,
		-32600, "4", "ambiguous_message", false},
	{"duplicate name", `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","name":"shell.exec","arguments":{}}}`,
		-32600, "5", "ambiguous_message", false},
	{"escaped duplicate name", `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","n\u0061me":"shell.exec","arguments":{}}}`,
		-32600, "6", "ambiguous_message", false},
	{"method not a string", `{"jsonrpc":"2.0","id":7,"method":["tools/call"],"params":{"name":"shell.exec","arguments":{}}}`,
		-32600, "7", "malformed_message", false},
	{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":\"shell.exec\",\"arguments\":{\"x\":\"\xff\"}}}",
		-32700, "8", "malformed_message", false},
	{"a request and a response at once", `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"shell.exec","arguments":{}},"result":{}}`,
		-32600, "9", "malformed_message", false},
	{"tools/call notification", `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"shell.exec","arguments":{"cmd":"id"}}}`,
		-32600, "null", "malformed_message", true},
	{"tools/call notification of an allowed tool", `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"text":"unrecorded"}}}`,
		-32600, "null", "malformed_message", true},
	{"resources/read notification", `{"jsonrpc":"2.0","method":"resources/read","params":{"uri":"file:///etc/shadow"}}`,
		-32600, "null", "malformed_message", true},
	{"prompts/get notification", `{"jsonrpc":"2.0","method":"prompts/get","params":{"name":"p"}}`,
		-32600, "null", "malformed_message", true},
}

type rpcReply struct {
	ID    json.RawMessage `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// TestMCPProxyRefusesAmbiguous (issue #24, finding 2): through /mcp/NAME,
// with a policy that denies shell.exec, none of the attacks reaches the
// MCP server: each is answered with a JSON-RPC error to its id and
// recorded as mcp.refused; shell.exec spelled plainly (its name escaped
// or not) is denied, and echo runs.
func TestMCPProxyRefusesAmbiguous(t *testing.T) {
	up := newFakeMCP(t)
	w := newMCPWorld(t, server.Config{MCPUpstreams: map[string]string{"tools": up.URL + "/mcp"},
		MCPToolPolicy: &server.MCPToolPolicy{Default: server.ToolRule{Deny: []string{"shell.exec"}}}})
	tok, _ := os.ReadFile(w.tokenFile)
	var postStatus func(t *testing.T, session, msg string, want int) []byte
	post := func(t *testing.T, session, msg string) []byte {
		t.Helper()
		return postStatus(t, session, msg, http.StatusOK)
	}
	postStatus = func(t *testing.T, session, msg string, want int) []byte {
		t.Helper()
		req, _ := http.NewRequest("POST", w.ts.URL+"/mcp/tools/", strings.NewReader(msg))
		req.Header.Set("X-Audit-Token", string(tok))
		req.Header.Set("X-Audit-Session", session)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("status %d, want %d: %s", resp.StatusCode, want, b)
		}
		return b
	}
	for i, tc := range wireAttacks {
		t.Run(tc.name, func(t *testing.T) {
			session := "mcp-wire-" + string(rune('a'+i))
			var r rpcReply
			status := http.StatusOK
			if tc.notification {
				status = http.StatusBadRequest
			}
			b := postStatus(t, session, tc.msg, status)
			if err := json.Unmarshal(b, &r); err != nil || r.Error == nil || r.Error.Code != tc.code || string(r.ID) != tc.id ||
				!strings.Contains(r.Error.Message, "refused and not forwarded") {
				t.Fatalf("answer %s, want error %d to id %s", b, tc.code, tc.id)
			}
			evs := w.events(session, 1)
			if got := strings.Join(kinds(evs), " "); got != "mcp.refused" {
				t.Fatalf("events %s", got)
			}
			if evs[0].Attributes["error.type"] != tc.errType || evs[0].Attributes["jsonrpc.request.id"] != requestID(tc.id) ||
				evs[0].Attributes["gen_ai.tool.name"] != nil {
				t.Fatalf("attributes %v", evs[0].Attributes)
			}
		})
	}
	t.Run("plain", func(t *testing.T) {
		var r rpcReply
		b := post(t, "mcp-wire-plain", `{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"n\u0061me":"shell.exec","arguments":{}}}`)
		if json.Unmarshal(b, &r) != nil || r.Error == nil || r.Error.Code != -32002 || string(r.ID) != "20" {
			t.Fatalf("shell.exec with an escaped key: %s, want denied", b)
		}
		b = post(t, "mcp-wire-plain", `{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`)
		if !strings.Contains(string(b), "ran echo") {
			t.Fatalf("echo: %s", b)
		}
		evs := w.events("mcp-wire-plain", 3)
		if got := strings.Join(kinds(evs), " "); got != "tool.denied tool.call tool.result" {
			t.Fatalf("events %s", got)
		}
		if evs[0].Attributes["gen_ai.tool.name"] != "shell.exec" || evs[1].Attributes["gen_ai.tool.name"] != "echo" {
			t.Fatalf("tool names %v %v", evs[0].Attributes, evs[1].Attributes)
		}
	})
	t.Run("batch", func(t *testing.T) {
		b := post(t, "mcp-wire-batch", `[{"jsonrpc":"2.0","id":30,"method":"tools/call","params":{"name":"echo","arguments":{}}},`+
			`{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{"name":"shell.exec","Name":"echo","arguments":{}}},`+
			`{"jsonrpc":"2.0","method":"tools/call","params":{"name":"shell.exec","arguments":{}}}]`)
		// One answer per request: the server's to 30, the capture's to 31;
		// and the capture's (id null) to the tools/call notification.
		var answers []rpcReply
		if err := json.Unmarshal(b, &answers); err != nil || len(answers) != 3 ||
			string(answers[0].ID) != "30" || answers[0].Error != nil ||
			string(answers[1].ID) != "31" || answers[1].Error == nil || answers[1].Error.Code != -32600 ||
			string(answers[2].ID) != "null" || answers[2].Error == nil || answers[2].Error.Code != -32600 {
			t.Fatalf("batch answer %s, want the server's answer to 30, a -32600 error to 31 and one to null", b)
		}
		evs := w.events("mcp-wire-batch", 4)
		if got := strings.Join(kinds(evs), " "); got != "tool.call mcp.refused mcp.refused tool.result" {
			t.Fatalf("events %s", got)
		}
	})
	// The MCP server received echo (and the batch without its bad
	// element), never shell.exec.
	got := up.all()
	if len(got) != 2 || !bytes.Contains(got[0], []byte(`"id":21`)) || string(got[1]) != `[{"jsonrpc":"2.0","id":30,"method":"tools/call","params":{"name":"echo","arguments":{}}}]` {
		t.Errorf("the MCP server received %q", got)
	}
	for _, b := range got {
		if bytes.Contains(b, []byte("shell.exec")) || bytes.Contains(b, []byte("Name")) || bytes.Contains(b, []byte("unrecorded")) ||
			bytes.Contains(b, []byte("shadow")) {
			t.Fatalf("the MCP server received %s", b)
		}
	}
}

// TestMCPWrapRefusesAmbiguous (issue #24, finding 2): the same attacks
// through log-server mcp wrap against a stdio server (here a child that
// keeps what it receives): none reaches it, each is answered with a
// JSON-RPC error to its id and recorded as mcp.refused; a line that is not
// JSON is refused by the wrapper itself.
func TestMCPWrapRefusesAmbiguous(t *testing.T) {
	bin := wrapBinary(t)
	w := newMCPWorld(t, server.Config{MCPToolPolicy: &server.MCPToolPolicy{Default: server.ToolRule{Deny: []string{"shell.exec"}}}})
	got := filepath.Join(t.TempDir(), "received")
	var in bytes.Buffer
	for _, tc := range wireAttacks {
		in.WriteString(tc.msg + "\n")
	}
	plain := []string{
		`{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"name":"shell.exec","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":22,"method":"tools/call",`,
	}
	in.WriteString(strings.Join(plain, "\n") + "\n")
	cmd := exec.Command(bin, "mcp", "wrap", "--url", w.ts.URL, "--token-file", w.tokenFile, "--session", "mcp-wire-stdio",
		"--name", "tools", "--", "sh", "-c", "cat > "+got)
	cmd.Stdin = &in
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("wrap: %v", err)
	}
	received, _ := os.ReadFile(got)
	if want := plain[1] + "\n" + plain[2] + "\n"; string(received) != want {
		t.Fatalf("the server received\n%s\nwant\n%s", received, want)
	}
	// One answer to each request refused; none to a notification.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	answered := 0
	for _, tc := range wireAttacks {
		if !tc.notification {
			answered++
		}
	}
	if len(lines) != answered+2 {
		t.Fatalf("%d answers, want %d:\n%s", len(lines), answered+2, out.String())
	}
	i := 0
	for _, tc := range wireAttacks {
		if tc.notification {
			continue
		}
		var r rpcReply
		if json.Unmarshal([]byte(lines[i]), &r) != nil || r.Error == nil || r.Error.Code != tc.code || string(r.ID) != tc.id {
			t.Errorf("%s: answer %s, want error %d to id %s", tc.name, lines[i], tc.code, tc.id)
		}
		i++
	}
	for i, want := range []struct {
		code int
		id   string
	}{{-32002, "20"}, {-32700, "null"}} {
		var r rpcReply
		if l := lines[answered+i]; json.Unmarshal([]byte(l), &r) != nil || r.Error == nil || r.Error.Code != want.code || string(r.ID) != want.id {
			t.Errorf("answer %s, want error %d to id %s", l, want.code, want.id)
		}
	}
	evs := w.events("mcp-wire-stdio", len(wireAttacks)+2)
	want := strings.TrimSpace(strings.Repeat("mcp.refused ", len(wireAttacks))) + " tool.denied tool.call"
	if got := strings.Join(kinds(evs), " "); got != want {
		t.Fatalf("events %s\nwant %s", got, want)
	}
	for i, tc := range wireAttacks {
		if evs[i].Attributes["error.type"] != tc.errType || evs[i].Attributes["capture.front"] != "mcp-stdio" ||
			evs[i].Attributes["jsonrpc.request.id"] != requestID(tc.id) {
			t.Errorf("%s: %v", tc.name, evs[i].Attributes)
		}
	}
}

// requestID is the jsonrpc.request.id attribute of a refused message
// answered to id: none for null.
func requestID(id string) any {
	if id == "null" {
		return nil
	}
	return id
}

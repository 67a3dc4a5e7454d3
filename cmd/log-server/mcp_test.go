package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/llmaudittrail/llmaudittrail/auth"
	auditclient "github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// referenceServer is the path of an npm MCP reference server
// (testdata/mcp, installed by .ci/run with npm ci).
func referenceServer(t *testing.T, name string) string {
	t.Helper()
	p, _ := filepath.Abs(filepath.Join("../../testdata/mcp/node_modules/.bin", name))
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s is not installed (npm ci --prefix testdata/mcp; .ci/run does)", name)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	return p
}

var wrapBin struct {
	once sync.Once
	path string
}

func wrapBinary(t *testing.T) string {
	wrapBin.once.Do(func() { wrapBin.path = buildBinary(t) })
	return wrapBin.path
}

type mcpWorld struct {
	t         *testing.T
	srv       *server.Server
	ts        *httptest.Server
	tokenFile string
	auditor   *auditclient.Client
}

func newMCPWorld(t *testing.T, cfg server.Config) *mcpWorld {
	dir := t.TempDir()
	cfg.DataDir, cfg.CheckpointInterval, cfg.BatchMaxAge = dir, 100*time.Millisecond, 2*time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := server.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	w := &mcpWorld{t: t, srv: srv, ts: ts}
	t.Cleanup(func() { ts.Close(); srv.Close(context.Background()) })
	tok, _, err := srv.Tokens().Create(context.Background(), auth.Spec{Name: "clinic-agent", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeWrite}})
	if err != nil {
		t.Fatal(err)
	}
	w.tokenFile = filepath.Join(t.TempDir(), "token")
	os.WriteFile(w.tokenFile, []byte(tok), 0o600)
	aud, _, _ := srv.Tokens().Create(context.Background(), auth.Spec{Name: "auditor", Tenant: server.DefaultTenant, Global: true, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	w.auditor, _ = auditclient.New(ts.URL, auditclient.WithToken(aud))
	return w
}

// events reads a session until it has n events, each payload checked
// against its commitment.
func (w *mcpWorld) events(session string, n int) []*event.Leaf {
	w.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		d, err := w.auditor.SessionPayloads(context.Background(), session, auditclient.SessionQuery{})
		if err != nil || len(d.Events) < n {
			continue
		}
		var out []*event.Leaf
		for _, e := range d.Events {
			if e.Err != nil || (e.Commit != nil && e.Status != auditclient.PayloadOK) {
				w.t.Fatalf("entry %d: payload %s %v", e.Index, e.Status, e.Err)
			}
			l, err := event.ParseLeaf(e.Leaf)
			if err != nil {
				w.t.Fatal(err)
			}
			out = append(out, l)
		}
		return out
	}
	w.t.Fatalf("session %s did not reach %d events", session, n)
	return nil
}

func connect(t *testing.T, tr mcp.Transport) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "audit-test", Version: "1.0"}, nil)
	cs, err := c.Connect(context.Background(), tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func callJSON(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) (string, error) {
	t.Helper()
	r, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return "", err
	}
	b, _ := json.Marshal(r.Content)
	return string(b), nil
}

func kinds(evs []*event.Leaf) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

// TestMCPStdioWrap: the official Go MCP SDK's client drives the npm
// reference server through log-server mcp wrap: it sees what it sees
// without the wrapper, and the log holds initialize, tools/list and every
// call and result, observed (via proxy), with payloads that open their
// commitments; a denied tool and, fail-closed, a call the log cannot
// record never reach the server.
func TestMCPStdioWrap(t *testing.T) {
	everything := referenceServer(t, "mcp-server-everything")
	filesystem := referenceServer(t, "mcp-server-filesystem")
	bin := wrapBinary(t)
	w := newMCPWorld(t, server.Config{MCPToolPolicy: &server.MCPToolPolicy{Default: server.ToolRule{Deny: []string{"write_file", "get-env"}}}})

	direct := connect(t, &mcp.CommandTransport{Command: exec.Command("node", everything, "stdio")})
	wantEcho, err := callJSON(t, direct, "echo", map[string]any{"message": "hello from the audit test"})
	if err != nil {
		t.Fatal(err)
	}
	wantSum, _ := callJSON(t, direct, "get-sum", map[string]any{"a": 2, "b": 40})

	wrapped := connect(t, &mcp.CommandTransport{Command: exec.Command(bin, "mcp", "wrap", "--url", w.ts.URL, "--token-file", w.tokenFile,
		"--session", "mcp-stdio-1", "--name", "everything", "--", "node", everything, "stdio")})
	tools, err := wrapped.ListTools(context.Background(), nil)
	if err != nil || len(tools.Tools) == 0 {
		t.Fatal(err)
	}
	gotEcho, err := callJSON(t, wrapped, "echo", map[string]any{"message": "hello from the audit test"})
	if err != nil || gotEcho != wantEcho {
		t.Fatalf("echo through the wrapper %s (%v), direct %s", gotEcho, err, wantEcho)
	}
	gotSum, _ := callJSON(t, wrapped, "get-sum", map[string]any{"a": 2, "b": 40})
	if gotSum != wantSum || !strings.Contains(gotSum, "42") {
		t.Fatalf("get-sum through the wrapper %s, direct %s", gotSum, wantSum)
	}
	if _, err := callJSON(t, wrapped, "get-env", nil); err == nil || !strings.Contains(err.Error(), "denied by the audit policy") {
		t.Fatalf("a denied tool: %v", err)
	}
	evs := w.events("mcp-stdio-1", 7)
	want := []string{"mcp.initialize", "mcp.tools_list", "tool.call", "tool.result", "tool.call", "tool.result", "tool.denied"}
	if got := kinds(evs); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v", got, want)
	}
	for _, e := range evs {
		if e.Writer == nil || e.Writer.Via != event.ViaProxy || e.Attributes["mcp.server"] != "everything" || e.Attributes["capture.front"] != "mcp-stdio" {
			t.Fatalf("%s: writer %+v attributes %v", e.Kind, e.Writer, e.Attributes)
		}
	}
	if evs[0].Attributes["mcp.server.name"] == nil || evs[1].Attributes["mcp.tool_hashes"] == nil ||
		evs[2].Attributes["gen_ai.tool.name"] != "echo" || evs[3].Attributes["mcp.is_error"] != false || evs[6].Attributes["gen_ai.tool.name"] != "get-env" {
		t.Fatalf("attributes: %v\n%v\n%v", evs[0].Attributes, evs[1].Attributes, evs[3].Attributes)
	}

	// The filesystem server: a denied write_file never runs (no file),
	// and with the log stopped a tools/call is refused, fail-closed.
	root := t.TempDir()
	fsWrapped := connect(t, &mcp.CommandTransport{Command: exec.Command(bin, "mcp", "wrap", "--url", w.ts.URL, "--token-file", w.tokenFile,
		"--session", "mcp-stdio-2", "--name", "filesystem", "--", "node", filesystem, root)})
	if _, err := callJSON(t, fsWrapped, "write_file", map[string]any{"path": filepath.Join(root, "denied.txt"), "content": "x"}); err == nil {
		t.Fatal("write_file was not denied")
	}
	if _, err := os.Stat(filepath.Join(root, "denied.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the denied write_file ran: %v", err)
	}
	os.WriteFile(filepath.Join(root, "note.txt"), []byte("retention: 7 years"), 0o644)
	if got, err := callJSON(t, fsWrapped, "read_text_file", map[string]any{"path": filepath.Join(root, "note.txt")}); err != nil || !strings.Contains(got, "7 years") {
		t.Fatalf("read_text_file: %s %v", got, err)
	}
	w.ts.Close() // the log is gone
	if _, err := callJSON(t, fsWrapped, "create_directory", map[string]any{"path": filepath.Join(root, "made")}); err == nil ||
		!strings.Contains(err.Error(), "could not record this tool call") {
		t.Fatalf("fail-closed with the log stopped: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "made")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the unrecorded create_directory ran: %v", err)
	}
}

package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestRelayMCP relays a stdio MCP conversation through a real server: what
// the server forwards and answers, the events it records, and the
// requests it refuses.
func TestRelayMCP(t *testing.T) {
	l := newTestLogWith(t, server.Config{MCPToolPolicy: &server.MCPToolPolicy{Default: server.ToolRule{Deny: []string{"delete_file"}}}})
	ctx := context.Background()
	tok, _, err := l.srv.Tokens().Create(ctx, auth.Spec{Name: "clinic-agent", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeWrite}})
	if err != nil {
		t.Fatal(err)
	}
	agent := l.client(t, tok)
	const session = "mcp-relay-1"
	relay := func(from, msg string) *api.MCPRelayResponse {
		t.Helper()
		r, err := agent.RelayMCP(ctx, api.MCPRelayRequest{Conn: "c1", Server: "files", Session: session, From: from, Message: json.RawMessage(msg)})
		if err != nil {
			t.Fatalf("relaying %s: %v", msg, err)
		}
		return r
	}
	same := func(got json.RawMessage, want string) bool {
		var a, b any
		return json.Unmarshal(got, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && jsonEqual(a, b)
	}
	for _, m := range []struct{ from, msg string }{
		{"client", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}`},
		{"server", `{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"files","version":"1"}}}`},
		{"client", `{"jsonrpc":"2.0","method":"notifications/initialized"}`},
		{"client", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/notes.txt"}}}`},
		{"server", `{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"retention: 7 years"}]}}`},
	} {
		r := relay(m.from, m.msg)
		if !same(r.Forward, m.msg) || r.Reply != nil {
			t.Fatalf("%s %s: forward %s, reply %s; want it forwarded as it is", m.from, m.msg, r.Forward, r.Reply)
		}
	}
	// A tool the policy denies is answered, not forwarded.
	r := relay("client", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_file","arguments":{"path":"/notes.txt"}}}`)
	var reply struct {
		ID    int `json:"id"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if r.Forward != nil || json.Unmarshal(r.Reply, &reply) != nil || reply.ID != 3 || reply.Error == nil || !strings.Contains(reply.Error.Message, "denied by the audit policy") {
		t.Fatalf("denied tool: forward %s, reply %s", r.Forward, r.Reply)
	}

	// The log holds the calls, the result and the denial, observed by the
	// server (via proxy) for the agent.
	want := []string{"tool.call", "tool.result", "tool.denied"}
	var kinds []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		p, err := l.admin.Session(ctx, session, client.SessionQuery{})
		if err != nil {
			t.Fatal(err)
		}
		kinds = kinds[:0]
		for _, e := range p.Events {
			if e.Kind == "tool.call" || e.Kind == "tool.result" || e.Kind == "tool.denied" {
				kinds = append(kinds, e.Kind)
			}
		}
		if len(kinds) >= len(want) || time.Now().After(deadline) {
			break
		}
	}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Fatalf("tool events %v, want %v", kinds, want)
	}
	at := firstOfKind(t, l, session, "tool.call")
	call, err := l.admin.Entry(ctx, at, 0)
	for deadline := time.Now().Add(10 * time.Second); errors.Is(err, client.ErrNotPublished) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		call, err = l.admin.Entry(ctx, at, 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	vr, err := api.NewReceiptVerifier(l.key, nil).Verify(call)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := vr.Event()
	if err != nil || leaf.Writer == nil || leaf.Writer.Via != event.ViaProxy || leaf.Actor.ID != "clinic-agent" || leaf.Attributes["gen_ai.tool.name"] != "read_file" {
		t.Fatalf("tool.call leaf %+v (%v)", leaf, err)
	}

	// Refused: a message that is not JSON (never sent), a server session,
	// a token without the write scope, a malformed request.
	if _, err := agent.RelayMCP(ctx, api.MCPRelayRequest{Conn: "c1", Server: "files", Session: session, From: "client", Message: json.RawMessage(`{"jsonrpc":`)}); !errors.Is(err, client.ErrNotJSON) {
		t.Fatalf("not JSON: %v", err)
	}
	if _, err := agent.RelayMCP(ctx, api.MCPRelayRequest{Conn: "c1", Server: "files", Session: event.SessionHolds, From: "client", Message: json.RawMessage(`{"jsonrpc":"2.0","method":"ping","id":9}`)}); !errors.Is(err, event.ErrReservedSession) || !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("server session: %v", err)
	}
	reader, _, err := l.srv.Tokens().Create(ctx, auth.Spec{Name: "reader", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeRead}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.client(t, reader).RelayMCP(ctx, api.MCPRelayRequest{Conn: "c1", Server: "files", Session: session, From: "client", Message: json.RawMessage(`{"jsonrpc":"2.0","method":"ping","id":9}`)}); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("read token: %v", err)
	}
	var ae *client.Error
	if _, err := agent.RelayMCP(ctx, api.MCPRelayRequest{Conn: "c1", Server: "files", Session: session, From: "nobody", Message: json.RawMessage(`{}`)}); !errors.As(err, &ae) || ae.StatusCode != 400 {
		t.Fatalf("from nobody: %v", err)
	}
}

// firstOfKind is the index of the session's first event of kind.
func firstOfKind(t *testing.T, l *testLog, session, kind string) uint64 {
	t.Helper()
	p, err := l.admin.Session(context.Background(), session, client.SessionQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range p.Events {
		if e.Kind == kind {
			return e.Index
		}
	}
	t.Fatalf("no %s event in session %s", kind, session)
	return 0
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

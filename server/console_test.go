package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// TestConsoleMount: /console/ serves what Config.Console builds, nothing
// without it, and 503 when it cannot be built.
func TestConsoleMount(t *testing.T) {
	echo := func(s *Server) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "console %s %s", r.Method, r.URL.Path) }), nil
	}
	broken := func(s *Server) (http.Handler, error) { return nil, errors.New("no key") }
	for _, c := range []struct {
		name     string
		factory  ConsoleFactory
		method   string
		path     string
		wantCode int
		wantBody string
	}{
		{"off", nil, "GET", "/console/", http.StatusNotFound, ""},
		{"off, below", nil, "GET", "/console/health", http.StatusNotFound, ""},
		{"root", echo, "GET", "/console/", http.StatusOK, "console GET /console/"},
		{"without the slash", echo, "GET", "/console", http.StatusOK, "console GET /console"},
		{"a page", echo, "POST", "/console/entries/3/sign", http.StatusOK, "console POST /console/entries/3/sign"},
		{"not below it", echo, "GET", "/consoles", http.StatusNotFound, ""},
		{"cannot be built", broken, "GET", "/console/", http.StatusServiceUnavailable, "could not start"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t, func(cfg *Config) { cfg.Console = c.factory })
			code, body, _ := s.do(t, c.method, c.path, "", nil)
			if code != c.wantCode || !strings.Contains(string(body), c.wantBody) {
				t.Fatalf("%s %s = %d %q, want %d %q", c.method, c.path, code, body, c.wantCode, c.wantBody)
			}
		})
	}
}

// TestConsoleUserClient: the console's in-process client has exactly its
// token's rights (no LocalClient privilege), the log records its reads as
// that token's, and it works from inside a request the server routes (a
// POST to the console, whose routing state must not leak into the call).
func TestConsoleUserClient(t *testing.T) {
	var srv *Server
	s := newTestServer(t, func(cfg *Config) {
		cfg.Console = func(x *Server) (http.Handler, error) {
			srv = x
			return http.HandlerFunc(consoleProbe(x)), nil
		}
	})
	ctx := context.Background()
	first := s.post(t, "case-1", "llm.request", map[string]string{"q": "hi"})
	waitPublished(t, s, first.Index+1)
	other, _, err := s.srv.Tokens().Create(ctx, auth.Spec{Name: "other", Tenant: "other", Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	if err != nil {
		t.Fatal(err)
	}
	auditor, ap, err := s.srv.Tokens().Create(ctx, auth.Spec{Name: "auditor", Tenant: DefaultTenant, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	if err != nil {
		t.Fatal(err)
	}
	idx := strconv.FormatUint(first.Index, 10)
	width := strconv.FormatUint(s.size(t), 10) // the partial bundle's width
	for _, c := range []struct {
		name, token, op, index string
		want                   string
	}{
		{"the admin reads an entry", s.admin, "entry", idx, "ok"},
		{"an unknown token", "not-a-token", "entry", idx, "401"},
		{"no token", "", "entry", idx, "401"},
		{"another tenant's entry", other, "entry", idx, "404"},
		{"a tenant's token reads no bundle", auditor, "bundle", width, "403"},
		{"a global token reads bundles", s.admin, "bundle", width, "ok"},
		{"the auditor reads its tenant's entry", auditor, "entry", idx, "ok"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body, _ := s.do(t, "POST", "/console/probe", "", []byte(url.Values{"token": {c.token}, "op": {c.op}, "index": {c.index}}.Encode()))
			if code != http.StatusOK || string(body) != c.want {
				t.Fatalf("%s through the console's client = %d %q, want %q", c.op, code, body, c.want)
			}
		})
	}
	// LocalClient, for contrast, reads bundles as the server.
	if _, err := s.srv.LocalClient().Tiles().ReadEntryBundle(ctx, 0, uint8(s.size(t))); err != nil {
		t.Fatalf("LocalClient: %v", err)
	}

	// A disclosure through the user's client is recorded as the user's.
	d, err := srv.UserClient(auditor).Payload(ctx, first.Index)
	if err != nil {
		t.Fatal(err)
	}
	l, err := event.ParseLeaf(d.Access.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind != "access.read" || l.Writer == nil || l.Writer.Token != ap.ID || l.Session != "access."+ap.ID {
		t.Fatalf("the disclosure was recorded as %s by %+v in %s, want access.read by token %s", l.Kind, l.Writer, l.Session, ap.ID)
	}
}

// consoleProbe is a console that reads the log through UserClient with
// the token posted to it, and answers "ok" or the log's status.
func consoleProbe(s *Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<10)
		b, _ := io.ReadAll(r.Body)
		v, _ := url.ParseQuery(string(b))
		c := s.UserClient(v.Get("token"))
		n, _ := strconv.ParseUint(v.Get("index"), 10, 64)
		var err error
		switch v.Get("op") {
		case "entry":
			_, err = c.Entry(r.Context(), n, 0)
		case "bundle":
			_, err = c.Tiles().ReadEntryBundle(r.Context(), 0, uint8(n))
		}
		var ce *client.Error
		switch {
		case err == nil:
			io.WriteString(w, "ok")
		case errors.As(err, &ce):
			io.WriteString(w, strconv.Itoa(ce.StatusCode))
		default:
			io.WriteString(w, err.Error())
		}
	}
}

// waitPublished waits for a published checkpoint of at least size.
func waitPublished(t *testing.T, s *testServer, size uint64) {
	t.Helper()
	for range 200 {
		code, body, _ := s.do(t, "GET", "/checkpoint", "", nil)
		if code == http.StatusOK {
			lines := strings.SplitN(string(body), "\n", 3)
			if n, err := strconv.ParseUint(lines[1], 10, 64); err == nil && n >= size {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no checkpoint of size %d", size)
}

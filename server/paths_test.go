package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/internal/canonpath"
)

// rawDo sends one request to addr with target exactly as given on the
// request line (Go's client would rewrite some of the paths the tests
// send), and returns the status and body.
func rawDo(t *testing.T, addr, method, target string, header http.Header, body []byte) (int, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n", method, target, addr, len(body))
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	b.Write(body)
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestEveryRouteOneDecision (issue #24, finding 1): every route of the
// API listener, read from its router, and the capture and MCP proxies
// mounted beside it, is sent in every non-canonical spelling by every kind
// of principal. Each answer is 400 non_canonical_path, nothing reaches an
// upstream, and no answer, canonical or not, carries another tenant's
// data. Before the path check, /tile/%65ntries/000 and
// /tile/entries%2F000 served every tenant's entries to anyone.
func TestEveryRouteOneDecision(t *testing.T) {
	up, upHits := countingUpstream(t)
	// The router is taken from a request it routed: chi hands its routing
	// context, with the top router, to every handler (the console here).
	var router chi.Routes
	console := func(*Server) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rc := chi.RouteContext(r.Context()); rc != nil && router == nil {
				router = rc.Routes
			}
			io.WriteString(w, "console "+r.URL.Path)
		}), nil
	}
	s := newTestServer(t, func(c *Config) {
		c.Console = console
		c.Upstreams = map[string]string{"gw": up.URL}
		c.MCPUpstreams = map[string]string{"tools": up.URL + "/mcp"}
	})
	addr := strings.TrimPrefix(s.ts.URL, "http://")

	type principal struct {
		name, token string
		sees        []string // tenants whose markers it may see; nil: every one
	}
	tok := func(spec auth.Spec) string { k, _ := s.token(t, spec); return k }
	principals := []principal{
		{"anonymous", "", []string{}},
		{"global read", tok(auth.Spec{Name: "global-reader", Tenant: DefaultTenant, Global: true, Scopes: []string{auth.ScopeRead}}), nil},
		{"tenant read", tok(auth.Spec{Name: "reader-a", Tenant: "clinic-a", Scopes: []string{auth.ScopeRead}}), []string{"clinic-a"}},
		{"write-only", tok(auth.Spec{Name: "agent-a", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}}), []string{"clinic-a"}},
		{"audit", tok(auth.Spec{Name: "auditor-a", Tenant: "clinic-a", Scopes: []string{auth.ScopeAudit}}), []string{"clinic-a"}},
		{"admin", tok(auth.Spec{Name: "admin-a", Tenant: "clinic-a", Scopes: []string{auth.ScopeAdmin}}), []string{"clinic-a"}},
		// Metrics count every tenant's calls; the token reads no tenant's data.
		{"global metrics", tok(auth.Spec{Name: "scraper", Tenant: DefaultTenant, Global: true, Scopes: []string{auth.ScopeMetrics}}), []string{}},
	}

	// Three tenants, each with an event whose attribute and payload carry
	// a marker that no principal of another tenant may see.
	markers := map[string]string{"clinic-a": "mkr-alpha-7c1e9b", "clinic-b": "mkr-bravo-3f9a04", "clinic-c": "mkr-charlie-5d2b66"}
	index := map[string]uint64{}
	for _, tenant := range []string{"clinic-a", "clinic-b", "clinic-c"} {
		w, _ := s.token(t, auth.Spec{Name: "writer-" + tenant, Tenant: tenant, Scopes: []string{auth.ScopeWrite}})
		m := markers[tenant]
		code, body, _ := s.do(t, "POST", "/v1/events", w, fmt.Appendf(nil,
			`{"session":"s-%s","kind":"tool.call","actor":{"type":"agent","id":"bot"},"attributes":{"note":%q},"payload":{"secret":%q}}`, tenant, m, m))
		if code != http.StatusCreated {
			t.Fatalf("writing %s's event = %d %s", tenant, code, body)
		}
		var r api.EventResponse
		json.Unmarshal(body, &r)
		index[tenant] = r.Index
		s.waitCovered(t, r.Index)
	}
	cp, _, err := s.srv.Log().Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bundle := fmt.Sprintf("000.p/%d", cp.Size)

	if code, body, _ := s.do(t, "GET", "/console/", "", nil); code != http.StatusOK || router == nil {
		t.Fatalf("GET /console/ = %d %s; the router was not seen", code, body)
	}
	// Concrete paths of every route: parameters name clinic-b's entry and
	// session, so that a tenant-a principal reading them would be a leak.
	params := map[string]string{"index": fmt.Sprint(index["clinic-b"]), "id": "s-clinic-b", "pseudonym": "ps-0", "action": "revoke", "profile": "part11"}
	stars := map[string][]string{
		"/tile/entries/*": {"000", bundle, "x000/010"},
		"/tile/*":         {"0/000", "0/" + bundle, "entries/000", "entries/" + bundle, "entries/x000/010"},
		ConsolePath + "*": {"health", "sessions/s-clinic-b"},
	}
	type target struct{ method, pattern, path string }
	var targets []target
	err = chi.Walk(router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		route = strings.ReplaceAll(route, "/*/", "/") // chi's names of groups
		suffixes, ok := stars[route]
		if strings.HasSuffix(route, "*") && !ok {
			return fmt.Errorf("route %s %s: add a concrete path for its wildcard to the test", method, route)
		}
		if !ok {
			suffixes = []string{""}
		}
		for _, sfx := range suffixes {
			p := strings.TrimSuffix(route, "*") + sfx
			for k, v := range params {
				p = strings.ReplaceAll(p, "{"+k+"}", v)
			}
			if strings.ContainsAny(p, "{}*") {
				return fmt.Errorf("route %s %s: add its parameter to the test", method, route)
			}
			targets = append(targets, target{method, route, p})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The proxies are mounted beside the router, at a prefix.
	targets = append(targets,
		target{"POST", capture.PathPrefix + "NAME/...", capture.PathPrefix + "gw/v1/chat/completions"},
		target{"POST", capture.MCPPathPrefix + "NAME/...", capture.MCPPathPrefix + "tools/rpc"})
	for _, want := range []string{"/tile/entries/*", "/v1/events", "/v1/sessions/{id}", MetricsPath, ConsolePath + "*"} {
		if !slices.ContainsFunc(targets, func(x target) bool { return x.pattern == want }) {
			t.Fatalf("the walk missed %s (found %d targets)", want, len(targets))
		}
	}

	// The markers are in the entry bundle, for those who may read it: the
	// leak check below can fail.
	if code, body, _ := s.do(t, "GET", "/tile/entries/"+bundle, principals[1].token, nil); code != http.StatusOK ||
		!bytes.Contains(body, []byte(markers["clinic-b"])) || !bytes.Contains(body, []byte(markers["clinic-c"])) {
		t.Fatalf("GET /tile/entries/%s as a global reader = %d %.200q, want the markers", bundle, code, body)
	}

	send := func(t *testing.T, pr principal, method, path string) (int, []byte) {
		h := http.Header{"Content-Type": {"application/json"}}
		if pr.token != "" {
			h.Set("Authorization", "Bearer "+pr.token)
			h.Set(capture.HeaderToken, pr.token)
		}
		var body []byte
		if method == "POST" || method == "PUT" || method == "DELETE" {
			body = []byte(`{}`)
		}
		return rawDo(t, addr, method, path, h, body)
	}
	noLeak := func(t *testing.T, pr principal, method, path string, code int, body []byte) {
		if pr.sees == nil {
			return
		}
		for tenant, m := range markers {
			if !slices.Contains(pr.sees, tenant) && bytes.Contains(body, []byte(m)) {
				t.Errorf("%s: %s %s = %d with %s's marker %s: %.300q", pr.name, method, path, code, tenant, m, body)
			}
		}
	}
	for _, tg := range targets {
		t.Run(tg.method+" "+tg.pattern+" "+tg.path, func(t *testing.T) {
			for _, pr := range principals {
				code, body := send(t, pr, tg.method, tg.path)
				noLeak(t, pr, tg.method, tg.path, code, body)
			}
			hits := upHits.Load()
			for _, v := range canonpath.Variants(tg.path) {
				for _, pr := range principals {
					code, body := send(t, pr, tg.method, v.Path)
					noLeak(t, pr, tg.method, v.Path, code, body)
					var e api.ErrorBody
					json.Unmarshal(body, &e)
					if code != http.StatusBadRequest || tg.method != http.MethodHead && e.Error.Code != "non_canonical_path" {
						t.Errorf("%s, %s: %s %s = %d %.200q, want 400 non_canonical_path", v.Name, pr.name, tg.method, v.Path, code, body)
					}
				}
			}
			if n := upHits.Load() - hits; n != 0 {
				t.Errorf("non-canonical paths reached an upstream %d times", n)
			}
		})
	}
}

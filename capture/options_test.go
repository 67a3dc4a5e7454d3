package capture_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/tlstest"
)

// TestOptionTypes: each option is accepted, at compile time, by exactly the
// constructors that honour it (P NewProxy, M NewMCP, I NewInterceptor,
// H NewHook); what the others would ignore does not compile. Among them:
// WithTransport is no InterceptOption (the Interceptor dials the CONNECT
// target itself), WithUpstreamRoots is honoured by all three proxies, and
// WithToolCallBinder by the MCP capture too. Every With function of the
// package is in the table.
func TestOptionTypes(t *testing.T) {
	kinds := []struct {
		c string
		t reflect.Type
	}{
		{"P", reflect.TypeFor[capture.ProxyOption]()},
		{"M", reflect.TypeFor[capture.MCPOption]()},
		{"I", reflect.TypeFor[capture.InterceptOption]()},
		{"H", reflect.TypeFor[capture.HookOption]()},
	}
	table := map[string]struct {
		fn   any
		want string
	}{
		"WithMode":              {capture.WithMode, "PMIH"},
		"WithFingerprintKey":    {capture.WithFingerprintKey, "PMIH"},
		"WithMaxRecordedBytes":  {capture.WithMaxRecordedBytes, "PMIH"},
		"WithRecordTimeout":     {capture.WithRecordTimeout, "PMIH"},
		"WithRecordLinger":      {capture.WithRecordLinger, "PMIH"},
		"WithGapRetryInterval":  {capture.WithGapRetryInterval, "PMIH"},
		"WithLogger":            {capture.WithLogger, "PMIH"},
		"WithMetrics":           {capture.WithMetrics, "PMIH"},
		"WithToolCallBinder":    {capture.WithToolCallBinder, "PMIH"},
		"WithToolResultHistory": {capture.WithToolResultHistory, "PIH"},
		"WithMaxRequestBytes":   {capture.WithMaxRequestBytes, "PMI"},
		"WithBodyBudget":        {capture.WithBodyBudget, "PMI"},
		"WithUpstreamRoots":     {capture.WithUpstreamRoots, "PMI"},
		"WithTransport":         {capture.WithTransport, "PM"},
		"WithToolPolicy":        {capture.WithToolPolicy, "M"},
		"WithSession":           {capture.WithSession, "H"},
		"WithActor":             {capture.WithActor, "H"},
		"WithAgentID":           {capture.WithAgentID, "H"},
	}
	for name, c := range table {
		// The declared result type, which is what the compiler checks.
		out := reflect.TypeOf(c.fn).Out(0)
		got := ""
		for _, k := range kinds {
			if out.Implements(k.t) {
				got += k.c
			}
		}
		if got != c.want {
			t.Errorf("%s returns %v, accepted by %q, want %q", name, out, got, c.want)
		}
	}
	// Every option function of the package is classified above.
	fset := token.NewFileSet()
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "With") && fd.Name.IsExported() {
				if _, ok := table[fd.Name.Name]; !ok {
					t.Errorf("%s (%s) is not in the table", fd.Name.Name, f)
				}
			}
		}
	}
}

// memRecorder keeps the events it is given, with ids ev1, ev2, ...
type memRecorder struct {
	mu  sync.Mutex
	evs []*event.Request
}

func (r *memRecorder) Record(_ context.Context, evs []*event.Request) ([]event.Appended, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]event.Appended, len(evs))
	for i, ev := range evs {
		r.evs = append(r.evs, ev)
		n := len(r.evs)
		out[i] = event.Appended{ID: fmt.Sprintf("ev%d", n), Index: uint64(n), Indexed: true, Session: ev.Session}
	}
	return out, nil
}

// recorded are the events of session (with their ids) that match kind,
// once there are want of them.
func (r *memRecorder) recorded(t *testing.T, session, kind string, want int) (ids []string, evs []*event.Request) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d %s events in %s", want, kind, session), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		ids, evs = nil, nil
		for i, ev := range r.evs {
			if ev.Session == session && ev.Kind == kind {
				ids, evs = append(ids, fmt.Sprintf("ev%d", i+1)), append(evs, ev)
			}
		}
		return len(evs) >= want
	})
	return ids, evs
}

func attr(ev *event.Request, k string) string {
	var s string
	json.Unmarshal(ev.Attributes[k], &s)
	return s
}

func memAuth(rec capture.Recorder) capture.Authenticator {
	return func(context.Context, string) (*capture.Agent, error) {
		return &capture.Agent{Recorder: rec, Tenant: "default", ID: "t1", Name: "agent", Actor: event.Actor{Type: "agent", ID: "agent"}}, nil
	}
}

func serve(t *testing.T, h http.Handler, closer interface{ Close(context.Context) error }) *httptest.Server {
	ts := httptest.NewServer(h)
	t.Cleanup(func() {
		ts.Close()
		closer.Close(context.Background())
	})
	return ts
}

// mcpCall posts a tools/call to the MCP capture at base, in session.
func mcpCall(t *testing.T, base, session, tool, args string) (int, string) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":` + args + `}}`
	req, _ := http.NewRequest("POST", base, strings.NewReader(body))
	req.Header.Set(capture.HeaderToken, "agent-token")
	req.Header.Set(capture.HeaderSession, session)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// chatCall posts a chat completion to url (through c) in session.
func chatCall(t *testing.T, c *http.Client, url, session, model string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"weather?"}]}`))
	req.Header.Set(capture.HeaderToken, "agent-token")
	req.Header.Set(capture.HeaderSession, session)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+openaiKey)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const mcpAnswer = `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"sunny"}],"isError":false}}`

// TestMCPToolCallBinder: NewMCP honours WithToolCallBinder (it used to
// ignore it and take only a WithBinder of its own): with the binder the
// Proxy shares, a tools/call answering the model's tool call (get.weather
// for the model's get_weather, same arguments) names the llm.response and
// the model's tool.call event; without it, it names none.
func TestMCPToolCallBinder(t *testing.T) {
	llm := newFakeUpstream(t)
	tools := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, mcpAnswer)
	}))
	t.Cleanup(tools.Close)
	for _, bind := range []bool{true, false} {
		t.Run(fmt.Sprint("bind=", bind), func(t *testing.T) {
			rec := &memRecorder{}
			b := capture.NewToolCallBinder()
			popts := []capture.ProxyOption{capture.WithLogger(quiet), capture.WithToolCallBinder(b)}
			mopts := []capture.MCPOption{capture.WithLogger(quiet)}
			if bind {
				mopts = append(mopts, capture.WithToolCallBinder(b))
			}
			p, err := capture.NewProxy(map[string]string{"openai": llm.URL}, memAuth(rec), popts...)
			if err != nil {
				t.Fatal(err)
			}
			m, err := capture.NewMCP(map[string]string{"tools": tools.URL}, memAuth(rec), mopts...)
			if err != nil {
				t.Fatal(err)
			}
			pts, mts := serve(t, p, p), serve(t, m, m)
			session := fmt.Sprint("bind-", bind)
			if code, body := chatCall(t, http.DefaultClient, pts.URL+"/proxy/openai/v1/chat/completions", session, "gpt-tools"); code != 200 {
				t.Fatalf("chat: %d %s", code, body)
			}
			if code, body := mcpCall(t, mts.URL+"/mcp/tools/", session, "get.weather", `{"city":"Paris"}`); code != 200 || body != mcpAnswer {
				t.Fatalf("tools/call: %d %s", code, body)
			}
			respIDs, _ := rec.recorded(t, session, event.KindLLMResponse, 1)
			callIDs, calls := rec.recorded(t, session, event.KindToolCall, 3) // the model's two, then the MCP one
			var viaMCP *event.Request
			var modelCall string
			for i, ev := range calls {
				switch {
				case attr(ev, "gen_ai.tool.type") == "mcp":
					viaMCP = ev
				case attr(ev, "gen_ai.tool.name") == "get_weather":
					modelCall = callIDs[i]
				}
			}
			if viaMCP == nil || modelCall == "" {
				t.Fatalf("tool.call events %v: want the model's get_weather and the MCP call", calls)
			}
			gotResp, gotCall := attr(viaMCP, "capture.llm_response.id"), attr(viaMCP, "capture.llm_tool_call.id")
			if bind && (gotResp != respIDs[0] || gotCall != modelCall) {
				t.Errorf("bound to response %q, tool call %q; want %q, %q", gotResp, gotCall, respIDs[0], modelCall)
			}
			if !bind && (gotResp != "" || gotCall != "") {
				t.Errorf("without the binder: bound to response %q, tool call %q", gotResp, gotCall)
			}
		})
	}
}

// TestUpstreamRoots: the Proxy, the MCP capture and the Interceptor (which
// used to take its roots from InterceptConfig and the MCP capture none)
// verify a TLS upstream whose certificate a test CA issued only when given
// WithUpstreamRoots with that CA; without, the call is refused with 502 and
// nothing reaches the upstream. All three reach the upstream over HTTP/2.
func TestUpstreamRoots(t *testing.T) {
	upCA := tlstest.NewCA(t)
	fake := newFakeUpstream(t)
	var mu sync.Mutex
	var protos []string
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos = append(protos, r.Proto)
		mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/mcp") {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, mcpAnswer)
			return
		}
		fake.serve(w, r)
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{upCA.TLSCert(t, 7, "api.openai.com")}}
	up.EnableHTTP2 = true
	up.StartTLS()
	t.Cleanup(up.Close)
	upAddr := strings.TrimPrefix(up.URL, "https://")

	type capt struct {
		call func(t *testing.T, roots *x509.CertPool) (int, string)
	}
	fronts := map[string]capt{
		"proxy": {func(t *testing.T, roots *x509.CertPool) (int, string) {
			opts := []capture.ProxyOption{capture.WithLogger(quiet)}
			if roots != nil {
				opts = append(opts, capture.WithUpstreamRoots(roots))
			}
			p, err := capture.NewProxy(map[string]string{"openai": up.URL}, memAuth(&memRecorder{}), opts...)
			if err != nil {
				t.Fatal(err)
			}
			ts := serve(t, p, p)
			return chatCall(t, http.DefaultClient, ts.URL+"/proxy/openai/v1/chat/completions", "roots-proxy", "gpt-test")
		}},
		"mcp": {func(t *testing.T, roots *x509.CertPool) (int, string) {
			opts := []capture.MCPOption{capture.WithLogger(quiet)}
			if roots != nil {
				opts = append(opts, capture.WithUpstreamRoots(roots))
			}
			m, err := capture.NewMCP(map[string]string{"tools": up.URL + "/mcp"}, memAuth(&memRecorder{}), opts...)
			if err != nil {
				t.Fatal(err)
			}
			ts := serve(t, m, m)
			return mcpCall(t, ts.URL+"/mcp/tools/", "roots-mcp", "get_weather", `{"city":"Paris"}`)
		}},
		"intercept": {func(t *testing.T, roots *x509.CertPool) (int, string) {
			opts := []capture.InterceptOption{capture.WithLogger(quiet)}
			if roots != nil {
				opts = append(opts, capture.WithUpstreamRoots(roots))
			}
			dir := t.TempDir()
			ic, err := capture.NewInterceptor(capture.InterceptConfig{Hosts: []string{"api.openai.com"}, Other: "refuse",
				CACert: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca.key"),
				Resolve: map[string]string{"api.openai.com": upAddr}}, memAuth(&memRecorder{}), opts...)
			if err != nil {
				t.Fatal(err)
			}
			ts := serve(t, ic, ic)
			proxyURL, _ := url.Parse(ts.URL)
			proxyURL.User = url.UserPassword("agent", "agent-token")
			agentRoots := x509.NewCertPool()
			agentRoots.AddCert(ic.CA())
			agent := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL),
				TLSClientConfig: &tls.Config{RootCAs: agentRoots}}}
			defer agent.CloseIdleConnections()
			return chatCall(t, agent, "https://api.openai.com/v1/chat/completions", "roots-intercept", "gpt-test")
		}},
	}
	for _, name := range []string{"proxy", "mcp", "intercept"} {
		t.Run(name, func(t *testing.T) {
			mu.Lock()
			protos = nil
			mu.Unlock()
			if code, body := fronts[name].call(t, nil); code != http.StatusBadGateway {
				t.Errorf("without WithUpstreamRoots: %d %.300s, want 502", code, body)
			}
			mu.Lock()
			if len(protos) != 0 {
				t.Errorf("without WithUpstreamRoots, %d requests reached the upstream", len(protos))
			}
			mu.Unlock()
			if code, body := fronts[name].call(t, upCA.Pool()); code != http.StatusOK {
				t.Errorf("with WithUpstreamRoots: %d %.300s, want 200", code, body)
			}
			mu.Lock()
			if !slices.Equal(protos, []string{"HTTP/2.0"}) {
				t.Errorf("with WithUpstreamRoots, the upstream saw %v, want one HTTP/2.0 request", protos)
			}
			mu.Unlock()
		})
	}
}

// TestRootsWithTransportRefused: WithUpstreamRoots configures the default
// transport, which WithTransport replaces: together they are refused
// rather than the roots ignored.
func TestRootsWithTransportRefused(t *testing.T) {
	opts := []capture.TransportOption{capture.WithUpstreamRoots(x509.NewCertPool()), capture.WithTransport(http.DefaultTransport)}
	if _, err := capture.NewProxy(nil, memAuth(&memRecorder{}), opts[0], opts[1]); err == nil {
		t.Error("NewProxy accepted WithUpstreamRoots with WithTransport")
	}
	if _, err := capture.NewMCP(nil, memAuth(&memRecorder{}), opts[0], opts[1]); err == nil {
		t.Error("NewMCP accepted WithUpstreamRoots with WithTransport")
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	oaoption "github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/cli/clitest"
	"github.com/llmaudittrail/llmaudittrail/internal/providertest"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/internal/testproc"
	"github.com/llmaudittrail/llmaudittrail/server"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "replay-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "replay")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building replay: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestHelpMatchesDocs(t *testing.T) {
	clitest.CheckHelp(t, binary, "replay", "../../docs/commands.md", "show --help", "step --help", "serve --help")
}

type world struct {
	t                         *testing.T
	st                        *servertest.Server
	srv                       *server.Server
	ts                        *httptest.Server
	up                        *providertest.Fake
	write                     string
	auditorFile, appenderFile string
	logKey                    string
	readerFile                string
}

func newWorld(t *testing.T, opts ...func(*server.Config)) *world {
	up := providertest.New(t)
	st := servertest.Start(t, func(c *server.Config) {
		c.Upstreams = map[string]string{"openai": up.URL, "anthropic": up.URL}
		c.CaptureMode = "fail-closed"
		for _, o := range opts {
			o(c)
		}
	})
	w := &world{t: t, st: st, srv: st.Srv, ts: st.HS, up: up, logKey: st.LogPub}
	w.write = w.token(auth.Spec{Name: "rx-bot", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeWrite}})
	w.auditorFile = st.TokenFile(auth.Spec{Name: "auditor", Tenant: server.DefaultTenant, Global: true, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	w.readerFile = st.TokenFile(auth.Spec{Name: "reader", Tenant: server.DefaultTenant, Global: true, Scopes: []string{auth.ScopeRead}})
	w.appenderFile = st.TokenFile(auth.Spec{Name: "replayer", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeWrite, auth.ScopeAudit}})
	return w
}

func (w *world) token(spec auth.Spec) string { return w.st.Token(spec) }

// runAgent is a tool-loop agent on openai-go.
func runAgent(base, prompt string, opts ...oaoption.RequestOption) (string, error) {
	c := openai.NewClient(append([]oaoption.RequestOption{oaoption.WithBaseURL(base), oaoption.WithAPIKey(providertest.OpenAIKey), oaoption.WithMaxRetries(0)}, opts...)...)
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}
	tools := []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "invoice_get",
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"query": map[string]any{"type": "string"}}}})}
	for range 4 {
		r, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: msgs, Tools: tools})
		if err != nil {
			return "", err
		}
		m := r.Choices[0].Message
		if len(m.ToolCalls) == 0 {
			return m.Content, nil
		}
		msgs = append(msgs, m.ToParam())
		for _, tc := range m.ToolCalls {
			msgs = append(msgs, openai.ToolMessage(`{"invoice":"INV-2291","amount":"1,204.50 EUR"}`, tc.ID))
		}
	}
	return "", errors.New("no answer")
}

// record runs the agent through the capture proxy and waits until the log
// has every response.
func (w *world) record(session, prompt string) string {
	w.t.Helper()
	ans, err := runAgent(w.ts.URL+"/proxy/openai/v1/", prompt, oaoption.WithHeader(capture.HeaderToken, w.write), oaoption.WithHeader(capture.HeaderSession, session))
	if err != nil {
		w.t.Fatal(err)
	}
	b, _ := os.ReadFile(w.auditorFile)
	c, _ := client.New(w.ts.URL, client.WithToken(strings.TrimSpace(string(b))))
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		p, err := c.Session(context.Background(), session, client.SessionQuery{})
		if err == nil && len(p.Events) == 6 { // 2 calls, 1 tool call, its result (seen in the second request)
			return ans
		}
	}
	w.t.Fatal("the session did not settle")
	return ""
}

type proc struct {
	cmd         *exec.Cmd
	out, errOut *testproc.Buffer
	done        chan struct{}
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), out: &testproc.Buffer{}, errOut: &testproc.Buffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errOut
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
	return p
}

func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%v did not exit\n%s", p.cmd.Args, p.errOut.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

func (w *world) trust(token string) []string {
	return []string{"--url", w.ts.URL, "--log-key", w.logKey, "--token-file", token}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitListening waits until the replay server accepts connections.
func waitListening(t *testing.T, addr string, p *proc) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("replay serve exited: %s", p.errOut.String())
		default:
		}
	}
	t.Fatalf("replay serve did not listen on %s: %s", addr, p.errOut.String())
}

func TestShow(t *testing.T) {
	w := newWorld(t)
	w.record("ap-1", "Post invoice INV-2291.")
	p := start(t, append([]string{"show", "ap-1"}, w.trust(w.auditorFile)...)...)
	if code := p.wait(t); code != 0 || !strings.Contains(p.out.String(), "every event verified") || !strings.Contains(p.out.String(), "invoice_get") {
		t.Fatalf("show: exit %d\n%s%s", code, p.out.String(), p.errOut.String())
	}
	p = start(t, append(append([]string{"show"}, w.trust(w.auditorFile)...), "--json", "ap-1")...)
	var tl struct {
		Verified bool
		Steps    []struct{ Kind string }
	}
	if code := p.wait(t); code != 0 || json.Unmarshal([]byte(p.out.String()), &tl) != nil || !tl.Verified || len(tl.Steps) != 4 { // call, tool call, its result, call
		t.Fatalf("show --json: exit %d\n%s", code, p.out.String())
	}
	p = start(t, append([]string{"show", "ap-1", "--html"}, w.trust(w.auditorFile)...)...)
	if code := p.wait(t); code != 0 || !strings.HasPrefix(p.out.String(), "<!DOCTYPE html>") {
		t.Fatalf("show --html: exit %d", code)
	}
	// Without the audit scope: payloads are not verified, and it says so.
	p = start(t, append([]string{"show", "ap-1"}, w.trust(w.readerFile)...)...)
	if code := p.wait(t); code != 0 || !strings.Contains(p.errOut.String(), "no audit scope") {
		t.Fatalf("show with a read token: exit %d\n%s", code, p.errOut.String())
	}
	// Usage and unreachable logs.
	for _, args := range [][]string{{"show"}, {"show", "ap-1", "--json", "--html", "--url", "x", "--log-key", "y"}, {"nope"}} {
		if code := start(t, args...).wait(t); code != 2 {
			t.Errorf("%v: exit %d", args, code)
		}
	}
	p = start(t, "show", "ap-1", "--url", "http://127.0.0.1:1", "--log-key", w.logKey)
	if code := p.wait(t); code != 2 {
		t.Errorf("unreachable log: exit %d", code)
	}
	p = start(t, append([]string{"show", "no-such-session"}, w.trust(w.auditorFile)...)...)
	if code := p.wait(t); code != 2 || !strings.Contains(p.errOut.String(), "no such session") {
		t.Errorf("unknown session: exit %d %s", code, p.errOut.String())
	}
}

func TestServeReproducesAndDiverges(t *testing.T) {
	w := newWorld(t)
	want := w.record("ap-2", "Post invoice INV-2291.")
	calls := w.up.Requests()
	dir := t.TempDir()

	addr := freeAddr(t)
	verdict := filepath.Join(dir, "verdict.json")
	verdictProof := filepath.Join(dir, "verdict.tlog-proof")
	p := start(t, append([]string{"serve", "ap-2", "--listen", addr, "--verdict", verdict, "--linger", "100ms", "--append-token", w.appenderFile, "--verdict-proof", verdictProof}, w.trust(w.auditorFile)...)...)
	waitListening(t, addr, p)
	got, err := runAgent("http://"+addr+"/proxy/openai/v1/", "Post invoice INV-2291.")
	if err != nil {
		t.Fatal(err)
	}
	code := p.wait(t)
	var v struct {
		Verdict  string
		Served   int `json:"served_attempts"`
		Recorded int `json:"recorded_attempts"`
	}
	b, _ := os.ReadFile(verdict)
	if code != 0 || json.Unmarshal(b, &v) != nil || v.Verdict != "reproduced" || v.Served != 2 || got != want || w.up.Requests() != calls {
		t.Fatalf("serve: exit %d, verdict %s, answer %q (recorded %q), %d upstream calls\n%s", code, b, got, want, w.up.Requests()-calls, p.errOut.String())
	}
	if !strings.Contains(p.errOut.String(), "verdict appended to the log at entry") {
		t.Fatalf("no verdict event: %s", p.errOut.String())
	}
	b, _ = os.ReadFile(w.auditorFile)
	c, _ := client.New(w.ts.URL, client.WithToken(strings.TrimSpace(string(b))))
	page, err := c.Session(context.Background(), "replay.ap-2", client.SessionQuery{})
	if err != nil || len(page.Events) != 1 || page.Events[0].Kind != "replay.verdict" {
		t.Fatalf("verdict event: %v %+v", err, page)
	}
	rc, err := c.Entry(context.Background(), page.Events[0].Index, 0)
	for deadline := time.Now().Add(5 * time.Second); err != nil && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		rc, err = c.Entry(context.Background(), page.Events[0].Index, 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	l, _ := event.ParseLeaf(rc.Leaf)
	if l.Attributes["replay.verdict"] != "reproduced" || l.Attributes["replay.session"] != "ap-2" {
		t.Fatalf("verdict event attributes %v", l.Attributes)
	}
	// The verdict event's tlog-proof verifies with the log key alone.
	proofText, err := os.ReadFile(verdictProof)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := os.ReadFile(w.logKey)
	key, _ := checkpoint.NewVerifier(strings.TrimSpace(string(kb)))
	vr, err := api.VerifyReceipt(proofText, key, nil)
	if err != nil || vr.Index != page.Events[0].Index || !bytes.Equal(vr.Leaf, rc.Leaf) {
		t.Fatalf("--verdict-proof: %v, %+v\n%s", err, vr, proofText)
	}

	// Another prompt: diverged, exit 1, the divergence named.
	addr = freeAddr(t)
	p = start(t, append([]string{"serve", "ap-2", "--listen", addr, "--linger", "100ms"}, w.trust(w.auditorFile)...)...)
	waitListening(t, addr, p)
	if _, err := runAgent("http://"+addr+"/proxy/openai/v1/", "Post invoice INV-2292."); err == nil {
		t.Fatal("the changed agent was answered")
	}
	if code := p.wait(t); code != 1 || !strings.Contains(p.out.String(), `"path": "messages[0].content"`) || !strings.Contains(p.out.String(), `"code": "RPL1001"`) {
		t.Fatalf("diverged: exit %d\n%s", code, p.out.String())
	}

	// Stopped before the agent is done: incomplete, exit 3.
	addr = freeAddr(t)
	p = start(t, append([]string{"serve", "ap-2", "--listen", addr}, w.trust(w.auditorFile)...)...)
	waitListening(t, addr, p)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t); code != 3 || !strings.Contains(p.out.String(), `"verdict": "incomplete"`) {
		t.Fatalf("SIGTERM: exit %d\n%s", code, p.out.String())
	}
	// A read token cannot disclose the payloads a replay needs.
	p = start(t, append([]string{"serve", "ap-2", "--listen", freeAddr(t)}, w.trust(w.readerFile)...)...)
	if code := p.wait(t); code != 2 {
		t.Fatalf("serve with a read token: exit %d", code)
	}
	if code := start(t, append([]string{"serve", "ap-2", "--timing", "slow"}, w.trust(w.auditorFile)...)...).wait(t); code != 2 {
		t.Fatalf("bad --timing: exit %d", code)
	}
}

// TestStepUnderTmux drives the step-through view in a real terminal
// (tmux): it moves, jumps to the tool call and to the second call, shows
// the payload and quits.
func TestStepUnderTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (.ci/run installs it)")
	}
	w := newWorld(t)
	w.record("ap-3", "Post invoice INV-2291.")
	sock := filepath.Join(t.TempDir(), "tmux.sock")
	name := "replay-step"
	args := append([]string{"-S", sock, "new-session", "-d", "-s", name, "-x", "160", "-y", "50", binary, "step", "ap-3"}, w.trust(w.auditorFile)...)
	if out, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("tmux", "-S", sock, "kill-server").Run() })
	screen := func() string {
		out, _ := exec.Command("tmux", "-S", sock, "capture-pane", "-p", "-t", name).Output()
		return string(out)
	}
	waitScreen := func(want string) string {
		t.Helper()
		var s string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if s = screen(); strings.Contains(s, want) {
				return s
			}
		}
		t.Fatalf("the screen never showed %q:\n%s", want, s)
		return ""
	}
	keys := func(k ...string) {
		if out, err := exec.Command("tmux", append([]string{"-S", sock, "send-keys", "-t", name}, k...)...).CombinedOutput(); err != nil {
			t.Fatalf("send-keys: %v %s", err, out)
		}
	}
	s := waitScreen("event 1/6")
	for _, want := range []string{"session ap-3", "llm.request", "[verified]", "payload (application/json", `"model": "gpt-4o"`} {
		if !strings.Contains(s, want) {
			t.Fatalf("first screen has no %q:\n%s", want, s)
		}
	}
	keys("t")
	s = waitScreen("event 3/6")
	if !strings.Contains(s, "tool.call") || !strings.Contains(s, "gen_ai.tool.name = invoice_get") {
		t.Fatalf("after t:\n%s", s)
	}
	keys("c")
	waitScreen("event 5/6")
	keys("j")
	s = waitScreen("event 6/6")
	if !strings.Contains(s, "assembled text:") || !strings.Contains(s, "Based on what I found") {
		t.Fatalf("the last response:\n%s", s)
	}
	keys("s")
	waitScreen("no later signature")
	keys("q")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := exec.Command("tmux", "-S", sock, "has-session", "-t", name).Run(); err != nil {
			return // the program quit and the session closed
		}
	}
	t.Fatalf("q did not quit:\n%s", screen())
}

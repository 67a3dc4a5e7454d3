package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/console"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/testproc"
	"github.com/llmaudittrail/llmaudittrail/monitor"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestBidiEscapedEverywhere (#26): a logged value holding U+202E (right-to-
// left override, which reorders the text after it in a terminal or a page)
// and U+200B (zero width space) shows escaped, as \u202e and \u200b, in
// replay show, in the console's session timeline and in the monitor's
// alerts: the three read the value from the log and render it with the
// one escaper (event.SafeText).
func TestBidiEscapedEverywhere(t *testing.T) {
	const (
		session = "bidi-1"
		hostile = "invoice_get\u202etxt.exe\u200b"
		escaped = `invoice_get\u202etxt.exe\u200b`
	)
	w := newWorld(t, func(cfg *server.Config) {
		cfg.Console = func(s *server.Server) (http.Handler, error) {
			key, err := checkpoint.NewVerifier(s.VerifierKey())
			if err != nil {
				return nil, err
			}
			return console.New(console.Config{Client: s.UserClient, Key: key, Policy: s.Policy(), Logger: slog.New(slog.DiscardHandler)})
		}
	})
	ctx := context.Background()
	writer, err := client.New(w.ts.URL, client.WithToken(w.write))
	if err != nil {
		t.Fatal(err)
	}
	name, _ := json.Marshal(hostile)
	if _, err := writer.Append(ctx, []*event.Request{{Session: session, Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "rx-bot"},
		Attributes: map[string]json.RawMessage{"gen_ai.tool.name": name, "gen_ai.tool.call.id": json.RawMessage(`"call_1"`)}}}); err != nil {
		t.Fatal(err)
	}
	clean := func(where, s string) {
		t.Helper()
		if strings.ContainsAny(s, "\u202e\u200b") || !strings.Contains(s, escaped) {
			t.Errorf("%s shows the value unescaped (or not at all):\n%s", where, s)
		}
	}

	// replay show, the binary.
	p := start(t, append([]string{"show", session}, w.trust(w.auditorFile)...)...)
	if code := p.wait(t); code != 0 {
		t.Fatalf("replay show: exit %d\n%s", code, p.errOut.String())
	}
	clean("replay show", p.out.String())

	// The console's session timeline, signed in with a read token.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	get := func(u string) string {
		t.Helper()
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		if _, err := io.Copy(&b, resp.Body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", u, resp.StatusCode, b.String())
		}
		return b.String()
	}
	base := w.ts.URL + console.Path
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(get(base))
	if csrf == nil {
		t.Fatal("no CSRF token on the sign-in page")
	}
	reader := w.token(auth.Spec{Name: "console-reader", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeRead}})
	resp, err := hc.PostForm(base+"login", url.Values{"csrf": {csrf[1]}, "token": {reader}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	clean("the console", get(base+"sessions/"+session))

	// The monitor, with a rule whose message names the tool.
	rules, err := monitor.ParseRules("bidi.yaml", []byte(`version: 1
rules:
  - name: tool.any
    severity: high
    match: e.kind == "tool.call"
    message: '"agent " + e.actor.id + " called " + string(e.attributes["gen_ai.tool.name"])'
`))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := os.ReadFile(w.readerFile)
	lc, err := client.New(w.ts.URL, client.WithToken(strings.TrimSpace(string(tok))))
	if err != nil {
		t.Fatal(err)
	}
	key, err := checkpoint.NewVerifier(w.srv.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	out := &testproc.Buffer{}
	m, err := monitor.New(monitor.Config{Log: lc, LogKey: key, Rules: rules, StateDir: filepath.Join(t.TempDir(), "monitor"),
		Poll: 50 * time.Millisecond, Stdout: out, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(mctx) }()
	var alert monitor.Alert
	for deadline := time.Now().Add(20 * time.Second); alert.Rule == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, l := range strings.Split(out.String(), "\n") {
			var a monitor.Alert
			if json.Unmarshal([]byte(l), &a) == nil && a.Rule == "tool.any" {
				alert = a
			}
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if alert.Rule == "" {
		t.Fatalf("no alert of rule tool.any:\n%s", out.String())
	}
	clean("the monitor's alert", alert.Message)
}

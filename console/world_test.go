package console_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/console"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// world is a log server with two witnesses (policy: both), the compliance
// reporter and the console, and traffic of one tenant, clinic-a: a triage
// session with a model call, a tool call and a decision; a billing session
// that a monitor alert names; a replay verdict; an enrolled signer.
type world struct {
	t      testing.TB
	srv    *server.Server
	hs     *httptest.Server
	dir    string
	url    string // the console's root
	policy *checkpoint.Policy

	// Tokens of clinic-a: an auditor (read, audit), a signer (sign, read,
	// bound to dr-ada), a reader (read only); and a global auditor.
	auditor, signer, reader, global string
	writer                          *client.Client
	// Entries written.
	triage  []client.Written
	billing []client.Written
	alert   client.Written
	verdict client.Written
}

const (
	tenant      = "clinic-a"
	signerID    = "dr-ada"
	printedName = "Dr. Ada Lovelace"
	secret      = "correct horse battery"
)

type worldOptions struct {
	witnesses   bool
	public      bool // --public-entries
	leafVersion int  // --leaf-version (0: the default, 2)
	console     func(cfg *console.Config)
	// console2 is console with the server (for what it offers: People).
	console2 func(cfg *console.Config, s *server.Server)
	// listener, if set, is where the server listens (its URL known
	// before the console is made).
	listener net.Listener
}

func newWorld(t testing.TB, o worldOptions) *world {
	t.Helper()
	var opts []servertest.Option
	if o.listener != nil {
		opts = append(opts, servertest.WithListener(o.listener))
	}
	fx := servertest.Start(t, func(cfg *server.Config) {
		cfg.PublicEntries = o.public
		cfg.LeafVersion = o.leafVersion
		if o.witnesses {
			keys, _, err := server.InitKeys(cfg.DataDir, "", server.KeySources{})
			if err != nil {
				t.Fatal(err)
			}
			a := witnesstest.StartOurWitness(t, keys.Signer.Name(), keys.VKey)
			b := witnesstest.StartOurWitness(t, keys.Signer.Name(), keys.VKey)
			cfg.WitnessPolicy = []byte(a.PolicyLine("witness-a") + "\n" + b.PolicyLine("witness-b") + "\ngroup both all witness-a witness-b\nquorum both\n")
		}
		rep, err := compliance.NewReporter(nil, "", slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Reporter = rep
		cfg.Console = func(s *server.Server) (http.Handler, error) {
			key, err := checkpoint.NewVerifier(s.VerifierKey())
			if err != nil {
				return nil, err
			}
			cc := console.Config{Client: s.UserClient, Key: key, Policy: s.Policy(), Logger: slog.New(slog.DiscardHandler)}
			if o.console != nil {
				o.console(&cc)
			}
			if o.console2 != nil {
				o.console2(&cc, s)
			}
			return console.New(cc)
		}
	}, opts...)
	w := &world{t: t, srv: fx.Srv, hs: fx.HS, dir: fx.Dir, url: fx.URL + console.Path, policy: fx.Srv.Policy()}
	w.auditor = w.token(auth.Spec{Name: "auditor", Tenant: tenant, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	w.signer = w.token(auth.Spec{Name: "ada", Tenant: tenant, Scopes: []string{auth.ScopeSign, auth.ScopeRead}, Actors: []string{signerID}})
	w.reader = w.token(auth.Spec{Name: "reader", Tenant: tenant, Scopes: []string{auth.ScopeRead}})
	w.global = w.token(auth.Spec{Name: "log-auditor", Tenant: server.DefaultTenant, Global: true, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	w.writer = w.client(w.token(auth.Spec{Name: "agents", Tenant: tenant, Scopes: []string{auth.ScopeWrite}}))
	return w
}

func (w *world) token(spec auth.Spec) string {
	tok, _, err := w.srv.Tokens().Create(context.Background(), spec)
	if err != nil {
		w.t.Fatal(err)
	}
	return tok
}

func (w *world) client(token string) *client.Client {
	c, err := client.New(w.hs.URL, client.WithToken(token))
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

func attrs(kv map[string]any) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for k, v := range kv {
		b, _ := json.Marshal(v)
		out[k] = b
	}
	return out
}

func (w *world) append(c *client.Client, evs ...*event.Request) []client.Written {
	w.t.Helper()
	out, err := c.Append(context.Background(), evs)
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

// traffic writes the sessions, the signer, an alert and a verdict.
func (w *world) traffic() {
	w.t.Helper()
	ctx := context.Background()
	bot := event.Actor{Type: "agent", ID: "triage-bot"}
	w.triage = w.append(w.writer,
		&event.Request{Session: "triage-7", Kind: "llm.request", Subject: "patient-0042", Actor: bot,
			Attributes: attrs(map[string]any{"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "capture.call.id": "c1", "capture.attempt": 1, "capture.api": "chat.completions"}),
			Payload:    json.RawMessage(`{"model":"gpt-4o","messages":[{"role":"user","content":"Summarise the triage note for patient 0042"}]}`)},
		&event.Request{Session: "triage-7", Kind: "llm.response", Subject: "patient-0042", Actor: bot,
			Attributes: attrs(map[string]any{"gen_ai.provider.name": "openai", "gen_ai.response.model": "gpt-4o-2024-08-06", "capture.call.id": "c1", "capture.attempt": 1,
				"http.response.status_code": 200, "gen_ai.usage.input_tokens": 412, "gen_ai.usage.output_tokens": 96, "capture.duration_ms": 830}),
			Payload: json.RawMessage(`{"choices":[{"message":{"role":"assistant","content":"Chest pain, stable vitals: refer to cardiology within 24 h."}}]}`)},
		&event.Request{Session: "triage-7", Kind: "tool.call", Actor: bot,
			Attributes: attrs(map[string]any{"gen_ai.tool.name": "chart.read", "gen_ai.tool.call.id": "call_1"}), Payload: json.RawMessage(`{"patient":"0042"}`)},
		&event.Request{Session: "triage-7", Kind: "tool.result", Actor: bot,
			Attributes: attrs(map[string]any{"gen_ai.tool.name": "chart.read", "gen_ai.tool.call.id": "call_1", "capture.duration_ms": 12}), Payload: json.RawMessage(`{"vitals":"stable"}`)},
		&event.Request{Session: "triage-7", Kind: "agent.decision", Actor: bot, Attributes: attrs(map[string]any{"decision.outcome": "refer"})},
	)
	billing := event.Actor{Type: "agent", ID: "billing-bot"}
	w.billing = w.append(w.writer,
		&event.Request{Session: "billing-2", Kind: "llm.request", Actor: billing,
			Attributes: attrs(map[string]any{"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4", "capture.call.id": "b1"}),
			Payload:    json.RawMessage(`{"messages":[{"role":"user","content":"Code the visit"}]}`)},
		&event.Request{Session: "billing-2", Kind: "tool.call", Actor: billing,
			Attributes: attrs(map[string]any{"gen_ai.tool.name": "payments.transfer", "gen_ai.tool.call.id": "toolu_1"})},
	)
	admin := w.client(w.token(auth.Spec{Name: "clinic-admin", Tenant: tenant, Scopes: []string{auth.ScopeAdmin}}))
	if _, err := admin.Enroll(ctx, api.Enrollment{ID: signerID, PrintedName: printedName, Secret: secret, IdentityVerifiedBy: "hr.jones"}); err != nil {
		w.t.Fatal(err)
	}
	mon := w.client(w.token(auth.Spec{Name: "monitor", Tenant: tenant, Scopes: []string{auth.ScopeWrite, auth.ScopeMonitor}}))
	about := w.billing[1]
	w.alert = w.append(mon, &event.Request{Session: "monitor.m1", Kind: "monitor.alert", Actor: event.Actor{Type: "system", ID: "monitor.m1"},
		Attributes: attrs(map[string]any{"monitor.alert_id": "a1", "monitor.rule": "tool.forbidden", "monitor.severity": "high",
			"monitor.message": "agent billing-bot called forbidden tool payments.transfer", "monitor.source": "rule", "monitor.raised_at": time.Now().UTC().Format(time.RFC3339),
			"monitor.index": about.Index, "monitor.tenant": tenant, "monitor.session": "billing-2", "monitor.kind": "tool.call"})})[0]
	rv := w.client(w.token(auth.Spec{Name: "replayer", Tenant: tenant, Scopes: []string{auth.ScopeWrite, auth.ScopeAudit}}))
	w.verdict = w.append(rv, &event.Request{Session: "replay.triage-7", Kind: "replay.verdict", Actor: event.Actor{Type: "system", ID: "replay"},
		Attributes: attrs(map[string]any{"replay.verdict": "diverged", "replay.session": "triage-7", "replay.first_code": "RPL1001",
			"replay.first_path": "messages[0].content", "replay.first_index": w.triage[0].Index, "replay.differences": 1})})[0]
	w.waitPublished()
}

// waitPublished waits until a published checkpoint covers every entry.
func (w *world) waitPublished() {
	w.t.Helper()
	size, err := w.srv.Log().Reader().IntegratedSize(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	c := w.client("")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		raw, err := c.Tiles().ReadCheckpoint(context.Background())
		if err == nil {
			if cp, err := api.VerifyCheckpoint(raw, mustVerifier(w.t, w.srv.VerifierKey()), w.policy); err == nil && cp.Size >= size {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.t.Fatalf("no published checkpoint covers size %d", size)
}

func mustVerifier(t testing.TB, vkey string) note.Verifier {
	v, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sign signs a record as dr-ada through the API.
func (w *world) signRecord(index uint64, leafHash []byte, meaning string) *api.SignatureResponse {
	w.t.Helper()
	r, err := w.client(w.signer).Sign(context.Background(), api.SignRequest{Signer: signerID, Secret: secret, Index: index,
		LeafHash: hex.EncodeToString(leafHash), Meaning: meaning}, client.WaitForCheckpoint())
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

// repoRoot is the module's root directory.
func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}

func hasAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

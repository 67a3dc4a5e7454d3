package monitor

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// pack returns the shipped rule pack with params replaced (old -> new).
func pack(t testing.TB, repl ...string) *Rules {
	t.Helper()
	b, err := os.ReadFile("rules/llm-agents.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("pack has no %q", repl[i])
		}
		s = strings.Replace(s, repl[i], repl[i+1], 1)
	}
	rs, err := ParseRules("llm-agents.yaml", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

const (
	hoursLine  = `business_hours: {timezone: "", start: 7, end: 19, days: [1, 2, 3, 4, 5]}`
	allHours   = "business_hours: {timezone: UTC, start: 0, end: 24, days: [1, 2, 3, 4, 5, 6, 7]}"
	noHours    = "business_hours: {timezone: Europe/Berlin, start: 0, end: 0, days: [1, 2, 3, 4, 5, 6, 7]}"
	toolsLine  = "allowed_tools: []"
	someTools  = "allowed_tools: [search, read_file, patient.lookup, shell.exec]"
	medicalOff = "# medical_mode: true"
	medicalOn  = "medical_mode: true"
)

func TestPackParses(t *testing.T) {
	rs := pack(t)
	want := []string{"tool.forbidden", "tool.unexpected", "tokens.spike", "cost.spike", "upstream.error_burst",
		"session.seq_gap", "session.broken_chain", "session.model_change", "time.skew", "activity.outside_hours",
		"capture.gap", "timestamp.failed", "approval.unsigned", "signer.locked", "erasure.override", "signin.failed_burst",
		"access.denied_burst"}
	if got := rs.Names(); !slices.Equal(got, want) {
		t.Fatalf("rules = %v, want %v", got, want)
	}
}

// warmUp appends normal LLM traffic so that baselines have samples.
func warmUp(c *crafttest.Log) {
	var cs []crafttest.Craft
	for i := range 25 {
		cs = append(cs,
			crafttest.Craft{Kind: "llm.request", Session: "warm", Attrs: attrs("gen_ai.request.model", "gpt-4o")},
			crafttest.Craft{Kind: "llm.response", Session: "warm", Attrs: attrs("gen_ai.request.model", "gpt-4o", "gen_ai.response.model", "gpt-4o",
				"gen_ai.usage.input_tokens", 800+i*3, "gen_ai.usage.output_tokens", 200+i)})
	}
	c.Add(cs...)
}

type ruleHit struct {
	rule  string
	index uint64
}

func hits(as []Alert) []ruleHit {
	var out []ruleHit
	for _, a := range as {
		h := ruleHit{rule: a.Rule}
		if a.Index != nil {
			h.index = *a.Index
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].index != out[j].index {
			return out[i].index < out[j].index
		}
		return out[i].rule < out[j].rule
	})
	return out
}

// TestPackFiresOnCraftedStream appends, after normal traffic, one crafted
// event (or burst) per rule of the pack to a real Tessera log and checks
// that the monitor raises exactly the expected alerts.
func TestPackFiresOnCraftedStream(t *testing.T) {
	c := crafttest.New(t)
	warmUp(c)
	c.WaitPublished()
	cfg := craftConfig(c, t.TempDir())
	cfg.Start = 0
	cfg.Rules = pack(t, hoursLine, allHours, medicalOff, medicalOn, toolsLine, someTools)
	r := startMonitor(t, cfg)
	r.waitPos(c.Size)
	if as := r.out.alerts(t); len(as) != 0 {
		t.Fatalf("alerts on normal traffic:\n%s", dump(as))
	}

	var want []ruleHit
	expect := func(idx []uint64, at int, rules ...string) {
		for _, rl := range rules {
			want = append(want, ruleHit{rl, idx[at]})
		}
	}
	i := c.Add(crafttest.Craft{Kind: "tool.call", Session: "tools", Attrs: attrs("gen_ai.tool.name", "shell.exec")})
	expect(i, 0, "tool.forbidden")
	i = c.Add(crafttest.Craft{Kind: "tool.call", Session: "tools", Attrs: attrs("gen_ai.tool.name", "rm_rf")})
	expect(i, 0, "tool.unexpected")
	i = c.Add(crafttest.Craft{Kind: "llm.response", Session: "warm", Attrs: attrs("gen_ai.response.model", "gpt-4o",
		"gen_ai.usage.input_tokens", 50000, "gen_ai.usage.output_tokens", 10000)})
	expect(i, 0, "tokens.spike", "cost.spike")
	var errs []crafttest.Craft
	for range 5 {
		errs = append(errs, crafttest.Craft{Kind: "llm.response", Session: "errs", Attrs: attrs("error.type", "timeout")})
	}
	i = c.Add(errs...)
	expect(i, 4, "upstream.error_burst")
	i = c.Add(crafttest.Craft{Kind: "agent.decision", Session: "gap"}, crafttest.Craft{Kind: "agent.decision", Session: "gap"},
		crafttest.Craft{Kind: "agent.decision", Session: "gap", SkipSeq: true})
	expect(i, 2, "session.seq_gap")
	i = c.Add(crafttest.Craft{Kind: "agent.decision", Session: "chain"}, crafttest.Craft{Kind: "agent.decision", Session: "chain"},
		crafttest.Craft{Kind: "agent.decision", Session: "chain", BadPrev: true})
	expect(i, 2, "session.broken_chain")
	i = c.Add(crafttest.Craft{Kind: "llm.response", Session: "model", Attrs: attrs("gen_ai.response.model", "gpt-4o")},
		crafttest.Craft{Kind: "llm.response", Session: "model", Attrs: attrs("gen_ai.response.model", "gpt-4o-mini")})
	expect(i, 1, "session.model_change")
	i = c.Add(crafttest.Craft{Kind: "agent.decision", Session: "skew", At: time.Now().Add(-time.Hour)})
	expect(i, 0, "time.skew")
	i = c.Add(crafttest.Craft{Kind: "capture.gap", Session: "cap", ActorType: "system", Actor: "proxy", Attrs: attrs("capture.reason", "log unavailable")})
	expect(i, 0, "capture.gap")
	i = c.Add(crafttest.Craft{Kind: "timestamp.failed", Session: "timestamps", ActorType: "system", Actor: "log-server", Attrs: attrs("timestamp.tsa", "https://tsa.example/", "timestamp.tree_size", 7, "timestamp.error", "connection refused")})
	expect(i, 0, "timestamp.failed")
	i = c.Add(crafttest.Craft{Kind: "agent.decision", Session: "med1", Attrs: attrs("decision.outcome", "approved")})
	expect(i, 0, "approval.unsigned")
	i = c.Add(crafttest.Craft{Kind: "human.signature", Session: "med2", ActorType: "human", Actor: "dr-who"},
		crafttest.Craft{Kind: "agent.decision", Session: "med2", Attrs: attrs("decision.outcome", "approved")},
		crafttest.Craft{Kind: "agent.decision", Session: "med2", Attrs: attrs("decision.outcome", "approved")})
	expect(i, 2, "approval.unsigned")
	i = c.Add(crafttest.Craft{Kind: "signature.failed", Session: "signer.dr-who", ActorType: "system", Actor: "log-server", Attrs: attrs("signer.id", "dr-who", "signature.failure", "wrong_secret")},
		crafttest.Craft{Kind: "signer.locked", Session: "signer.dr-who", ActorType: "system", Actor: "log-server", Attrs: attrs("signer.id", "dr-who")})
	expect(i, 1, "signer.locked")
	i = c.Add(crafttest.Craft{Kind: "erasure", Session: "erasures", ActorType: "human", Actor: "token.dpo", Attrs: attrs("erasure.override", true, "erasure.override_reason", "court order")})
	expect(i, 0, "erasure.override")
	// Four failed sign-ins are no alert, the fifth within 5 minutes is.
	var fails []crafttest.Craft
	for j := range 5 {
		reason := []string{"invalid_token", "no_role", "nonce", "unknown_token", "invalid_token"}[j]
		fails = append(fails, crafttest.Craft{Kind: "access.signin_failed", Session: "access.signin_failures", ActorType: "system", Actor: "log-server",
			Attrs: attrs("access.method", "oidc", "access.reason", reason)})
	}
	i = c.Add(fails...)
	expect(i, 4, "signin.failed_burst")
	// Denied actions count per person (the actor's on_behalf_of, over
	// their sign-ins) or token: four of a token are no alert, the fifth of
	// a person, in their second sign-in, is.
	var denied []crafttest.Craft
	for j := range 9 {
		d := crafttest.Craft{Kind: "access.denied", Session: "access.sso-1", ActorType: "human", Actor: "sso-1", OnBehalfOf: "ps-ada",
			Attrs: attrs("access.method", "oidc", "access.reason", "forbidden", "access.detail", "POST /v1/signatures: 403")}
		switch {
		case j%2 == 1:
			d.Session, d.Actor, d.OnBehalfOf = "access.tok1", "token.tok1", ""
			d.Attrs = attrs("access.method", "token", "access.reason", "forbidden", "access.detail", "GET /v1/entries/1/payload: 403")
		case j > 4:
			d.Session, d.Actor = "access.sso-2", "sso-2"
		}
		denied = append(denied, d)
	}
	i = c.Add(denied...)
	expect(i, 8, "access.denied_burst")
	i = c.Add(crafttest.Craft{Raw: []byte("this is not an audit event")})
	expect(i, 0, verify.RuleMalformedEntry)
	c.WaitPublished()
	r.waitPos(c.Size)

	sort.Slice(want, func(a, b int) bool {
		if want[a].index != want[b].index {
			return want[a].index < want[b].index
		}
		return want[a].rule < want[b].rule
	})
	got := hits(r.out.alerts(t))
	if !slices.Equal(got, want) {
		t.Fatalf("alerts:\n got %v\nwant %v\n%s", got, want, dump(r.out.alerts(t)))
	}
	// Every rule of the pack fired.
	fired := map[string]bool{}
	for _, h := range got {
		fired[h.rule] = true
	}
	for _, n := range cfg.Rules.Names() {
		if n == "activity.outside_hours" {
			continue // TestPackOutsideHours
		}
		if !fired[n] {
			t.Errorf("rule %s never fired", n)
		}
	}
}

// TestPackQuietOnCleanStream: normal traffic of every kind raises nothing.
func TestPackQuietOnCleanStream(t *testing.T) {
	c := crafttest.New(t)
	warmUp(c)
	cfg := craftConfig(c, t.TempDir())
	cfg.Start = 0
	cfg.Rules = pack(t, hoursLine, allHours, medicalOff, medicalOn, toolsLine, someTools)
	r := startMonitor(t, cfg)
	for round := range 3 {
		s := fmt.Sprintf("clean-%d", round)
		c.Add(
			crafttest.Craft{Kind: "llm.request", Session: s, Attrs: attrs("gen_ai.request.model", "gpt-4o", "gen_ai.operation.name", "chat")},
			crafttest.Craft{Kind: "llm.response", Session: s, Attrs: attrs("gen_ai.request.model", "gpt-4o", "gen_ai.response.model", "gpt-4o",
				"gen_ai.usage.input_tokens", 900, "gen_ai.usage.output_tokens", 210)},
			crafttest.Craft{Kind: "tool.call", Session: s, Attrs: attrs("gen_ai.tool.name", "search")},
			crafttest.Craft{Kind: "tool.result", Session: s, Attrs: attrs("gen_ai.tool.name", "search")},
			crafttest.Craft{Kind: "tool.call", Session: s, Attrs: attrs("gen_ai.tool.name", "patient.lookup")},
			crafttest.Craft{Kind: "tool.result", Session: s, Attrs: attrs("gen_ai.tool.name", "patient.lookup", "error.type", "not_found")},
			crafttest.Craft{Kind: "human.signature", Session: s, ActorType: "human", Actor: "dr-who", Attrs: attrs("signature.meaning", "approval")},
			crafttest.Craft{Kind: "agent.decision", Session: s, Attrs: attrs("decision.outcome", "approved")},
			crafttest.Craft{Kind: "agent.decision", Session: s, Attrs: attrs("decision.outcome", "rejected")},
			crafttest.Craft{Kind: "config.change", Session: "ops", ActorType: "system", Actor: "deployer"},
			crafttest.Craft{Kind: "signature.failed", Session: "signer.dr-who", ActorType: "system", Actor: "log-server", Attrs: attrs("signer.id", "dr-who", "signature.failure", "wrong_secret")},
			crafttest.Craft{Kind: "erasure", Session: "erasures", ActorType: "human", Actor: "token.dpo", Attrs: attrs("erasure.override", false, "erasure.legal_basis", "gdpr-art17-1a")},
		)
	}
	c.WaitPublished()
	r.waitPos(c.Size)
	if as := r.out.alerts(t); len(as) != 0 {
		t.Fatalf("alerts on a clean stream:\n%s", dump(as))
	}
}

// TestPackOutsideHours: with no business hours, every agent or human
// actor is alerted once per cooldown; system actors never.
func TestPackOutsideHours(t *testing.T) {
	c := crafttest.New(t)
	cfg := craftConfig(c, t.TempDir())
	cfg.Start = 0
	cfg.Rules = pack(t, hoursLine, noHours)
	r := startMonitor(t, cfg)
	i := c.Add(
		crafttest.Craft{Kind: "agent.decision", Session: "night", Actor: "agent-a"},
		crafttest.Craft{Kind: "agent.decision", Session: "night", Actor: "agent-a"},
		crafttest.Craft{Kind: "human.signature", Session: "night", ActorType: "human", Actor: "nurse"},
		crafttest.Craft{Kind: "config.change", Session: "night", ActorType: "system", Actor: "cron"},
		crafttest.Craft{Kind: "agent.decision", Session: "night", Actor: "agent-a"},
	)
	c.WaitPublished()
	r.waitPos(c.Size)
	want := []ruleHit{{"activity.outside_hours", i[0]}, {"activity.outside_hours", i[2]}}
	as := r.out.alerts(t)
	if got := hits(as); !slices.Equal(got, want) {
		t.Fatalf("alerts %v, want %v", got, want)
	}
	// The alert says which time zone it judged by, and the local time.
	if m := as[0].Message; !strings.Contains(m, " Europe/Berlin (") || !strings.HasSuffix(m, "outside business hours 0:00-0:00 Europe/Berlin") {
		t.Errorf("message %q", m)
	}
}

func TestBadRuleFiles(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"yaml", "version: 1\nrules:\n  - name: x\n    match: [\n", "bad.yaml:4: "},
		{"unknown field", "version: 1\nrules:\n  - name: x\n    severity: low\n    match: 'true'\n    wen: 'true'\n", "bad.yaml:6: field wen not found"},
		{"version", "version: 2\nrules: []\n", "bad.yaml:1: version must be 1"},
		{"no rules", "version: 1\n", "no rules"},
		{"severity", "version: 1\nrules:\n  - name: x\n    severity: urgent\n    match: 'true'\n", `bad.yaml:4: rule "x": severity must be one of`},
		{"cel syntax", "version: 1\nrules:\n  - name: x\n    severity: low\n    match: e.kind ==\n", `bad.yaml:5: rule "x": match: `},
		{"cel block line", "version: 1\nrules:\n  - name: x\n    severity: low\n    match: |\n      e.kind == \"a\" &&\n      nosuchvar\n", `bad.yaml:7: rule "x": match: undeclared reference to 'nosuchvar'`},
		{"not bool", "version: 1\nrules:\n  - name: x\n    severity: low\n    match: '1 + 2'\n", `bad.yaml:5: rule "x": match must be a bool expression`},
		{"missing match", "version: 1\nrules:\n  - name: x\n    severity: low\n", `bad.yaml:3: rule "x": match is required`},
		{"window without threshold", "version: 1\nrules:\n  - name: x\n    severity: low\n    match: 'true'\n    window: 1m\n", `bad.yaml:6: rule "x": a window needs a threshold`},
		{"bad duration", "version: 1\nrules:\n  - name: x\n    severity: low\n    match: 'true'\n    cooldown: soon\n", `bad.yaml:6: rule "x": cooldown "soon"`},
		{"baseline without value", "version: 1\nrules:\n  - name: x\n    severity: low\n    match: 'true'\n    baseline: {z: 3}\n", `bad.yaml:6: rule "x": a baseline needs a numeric value`},
		{"duplicate", "version: 1\nrules:\n  - name: x\n    severity: low\n    match: 'true'\n  - name: x\n    severity: low\n    match: 'true'\n", `bad.yaml:6: rule "x": duplicate rule name`},
		{"bad name", "version: 1\nrules:\n  - name: X Y\n    severity: low\n    match: 'true'\n", `bad.yaml:3: rule "X Y": name must be`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRules("bad.yaml", []byte(tc.text))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrBadRules) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzParseRules(f *testing.F) {
	b, _ := os.ReadFile("rules/llm-agents.yaml")
	f.Add(b)
	f.Add([]byte("version: 1\nrules:\n  - name: x\n    severity: low\n    match: 'true'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseRules("fuzz.yaml", data)
		if err == nil && len(rs.Names()) == 0 {
			t.Fatal("accepted a file without rules")
		}
		if err != nil && !errors.Is(err, ErrBadRules) {
			t.Fatalf("error %v does not wrap ErrBadRules", err)
		}
	})
}

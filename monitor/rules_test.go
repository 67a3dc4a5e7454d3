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

	"github.com/llmaudittrail/llmaudittrail/event"
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
	hoursLine  = "business_hours: {timezone: UTC, start: 7, end: 19, days: [1, 2, 3, 4, 5]}"
	allHours   = "business_hours: {timezone: UTC, start: 0, end: 24, days: [1, 2, 3, 4, 5, 6, 7]}"
	noHours    = "business_hours: {timezone: UTC, start: 0, end: 0, days: [1, 2, 3, 4, 5, 6, 7]}"
	medicalOff = "medical_mode: false"
	medicalOn  = "medical_mode: true"
)

func TestPackParses(t *testing.T) {
	rs := pack(t)
	want := []string{"tool.forbidden", "tool.unexpected", "tokens.spike", "cost.spike", "upstream.error_burst",
		"session.seq_gap", "session.broken_chain", "session.model_change", "time.skew", "activity.outside_hours",
		"capture.gap", "approval.unsigned", "signer.locked", "erasure.override"}
	if got := rs.Names(); !slices.Equal(got, want) {
		t.Fatalf("rules = %v, want %v", got, want)
	}
}

// warmUp appends normal LLM traffic so that baselines have samples.
func warmUp(c *craftLog) {
	var cs []craft
	for i := range 25 {
		cs = append(cs,
			craft{kind: "llm.request", session: "warm", attrs: attrs("gen_ai.request.model", "gpt-4o")},
			craft{kind: "llm.response", session: "warm", attrs: attrs("gen_ai.request.model", "gpt-4o", "gen_ai.response.model", "gpt-4o",
				"gen_ai.usage.input_tokens", 800+i*3, "gen_ai.usage.output_tokens", 200+i)})
	}
	c.add(cs...)
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
	c := newCraftLog(t)
	warmUp(c)
	c.waitPublished()
	cfg := c.config(t.TempDir())
	cfg.Start = 0
	cfg.Rules = pack(t, hoursLine, allHours, medicalOff, medicalOn)
	r := startMonitor(t, cfg)
	r.waitPos(c.size)
	if as := r.out.alerts(t); len(as) != 0 {
		t.Fatalf("alerts on normal traffic:\n%s", dump(as))
	}

	var want []ruleHit
	expect := func(idx []uint64, at int, rules ...string) {
		for _, rl := range rules {
			want = append(want, ruleHit{rl, idx[at]})
		}
	}
	i := c.add(craft{kind: "tool.call", session: "tools", attrs: attrs("gen_ai.tool.name", "shell.exec")})
	expect(i, 0, "tool.forbidden")
	i = c.add(craft{kind: "tool.call", session: "tools", attrs: attrs("gen_ai.tool.name", "rm_rf")})
	expect(i, 0, "tool.unexpected")
	i = c.add(craft{kind: "llm.response", session: "warm", attrs: attrs("gen_ai.response.model", "gpt-4o",
		"gen_ai.usage.input_tokens", 50000, "gen_ai.usage.output_tokens", 10000)})
	expect(i, 0, "tokens.spike", "cost.spike")
	var errs []craft
	for range 5 {
		errs = append(errs, craft{kind: "llm.response", session: "errs", attrs: attrs("error.type", "timeout")})
	}
	i = c.add(errs...)
	expect(i, 4, "upstream.error_burst")
	i = c.add(craft{kind: "agent.decision", session: "gap"}, craft{kind: "agent.decision", session: "gap"},
		craft{kind: "agent.decision", session: "gap", skipSeq: true})
	expect(i, 2, "session.seq_gap")
	i = c.add(craft{kind: "agent.decision", session: "chain"}, craft{kind: "agent.decision", session: "chain"},
		craft{kind: "agent.decision", session: "chain", badPrev: true})
	expect(i, 2, "session.broken_chain")
	i = c.add(craft{kind: "llm.response", session: "model", attrs: attrs("gen_ai.response.model", "gpt-4o")},
		craft{kind: "llm.response", session: "model", attrs: attrs("gen_ai.response.model", "gpt-4o-mini")})
	expect(i, 1, "session.model_change")
	i = c.add(craft{kind: "agent.decision", session: "skew", at: time.Now().Add(-time.Hour)})
	expect(i, 0, "time.skew")
	i = c.add(craft{kind: "capture.gap", session: "cap", actorType: "system", actor: "proxy", attrs: attrs("capture.reason", "log unavailable")})
	expect(i, 0, "capture.gap")
	i = c.add(craft{kind: "agent.decision", session: "med1", attrs: attrs("decision.outcome", "approved")})
	expect(i, 0, "approval.unsigned")
	i = c.add(craft{kind: "human.signature", session: "med2", actorType: "human", actor: "dr-who"},
		craft{kind: "agent.decision", session: "med2", attrs: attrs("decision.outcome", "approved")},
		craft{kind: "agent.decision", session: "med2", attrs: attrs("decision.outcome", "approved")})
	expect(i, 2, "approval.unsigned")
	i = c.add(craft{kind: "signature.failed", session: "signer.dr-who", actorType: "system", actor: "log-server", attrs: attrs("signer.id", "dr-who", "signature.failure", "wrong_secret")},
		craft{kind: "signer.locked", session: "signer.dr-who", actorType: "system", actor: "log-server", attrs: attrs("signer.id", "dr-who")})
	expect(i, 1, "signer.locked")
	i = c.add(craft{kind: "erasure", session: "erasures", actorType: "human", actor: "token.dpo", attrs: attrs("erasure.override", true, "erasure.override_reason", "court order")})
	expect(i, 0, "erasure.override")
	i = c.add(craft{raw: []byte("this is not an audit event")})
	expect(i, 0, RuleMalformedEntry)
	c.waitPublished()
	r.waitPos(c.size)

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
	c := newCraftLog(t)
	warmUp(c)
	cfg := c.config(t.TempDir())
	cfg.Start = 0
	cfg.Rules = pack(t, hoursLine, allHours, medicalOff, medicalOn)
	r := startMonitor(t, cfg)
	for round := range 3 {
		s := fmt.Sprintf("clean-%d", round)
		c.add(
			craft{kind: "llm.request", session: s, attrs: attrs("gen_ai.request.model", "gpt-4o", "gen_ai.operation.name", "chat")},
			craft{kind: "llm.response", session: s, attrs: attrs("gen_ai.request.model", "gpt-4o", "gen_ai.response.model", "gpt-4o",
				"gen_ai.usage.input_tokens", 900, "gen_ai.usage.output_tokens", 210)},
			craft{kind: "tool.call", session: s, attrs: attrs("gen_ai.tool.name", "search")},
			craft{kind: "tool.result", session: s, attrs: attrs("gen_ai.tool.name", "search")},
			craft{kind: "tool.call", session: s, attrs: attrs("gen_ai.tool.name", "patient.lookup")},
			craft{kind: "tool.result", session: s, attrs: attrs("gen_ai.tool.name", "patient.lookup", "error.type", "not_found")},
			craft{kind: "human.signature", session: s, actorType: "human", actor: "dr-who", attrs: attrs("signature.meaning", "approval")},
			craft{kind: "agent.decision", session: s, attrs: attrs("decision.outcome", "approved")},
			craft{kind: "agent.decision", session: s, attrs: attrs("decision.outcome", "rejected")},
			craft{kind: "config.change", session: "ops", actorType: "system", actor: "deployer"},
			craft{kind: "signature.failed", session: "signer.dr-who", actorType: "system", actor: "log-server", attrs: attrs("signer.id", "dr-who", "signature.failure", "wrong_secret")},
			craft{kind: "erasure", session: "erasures", actorType: "human", actor: "token.dpo", attrs: attrs("erasure.override", false, "erasure.legal_basis", "gdpr-art17-1a")},
		)
	}
	c.waitPublished()
	r.waitPos(c.size)
	if as := r.out.alerts(t); len(as) != 0 {
		t.Fatalf("alerts on a clean stream:\n%s", dump(as))
	}
}

// TestPackOutsideHours: with no business hours, every agent or human
// actor is alerted once per cooldown; system actors never.
func TestPackOutsideHours(t *testing.T) {
	c := newCraftLog(t)
	cfg := c.config(t.TempDir())
	cfg.Start = 0
	cfg.Rules = pack(t, hoursLine, noHours)
	r := startMonitor(t, cfg)
	i := c.add(
		craft{kind: "agent.decision", session: "night", actor: "agent-a"},
		craft{kind: "agent.decision", session: "night", actor: "agent-a"},
		craft{kind: "human.signature", session: "night", actorType: "human", actor: "nurse"},
		craft{kind: "config.change", session: "night", actorType: "system", actor: "cron"},
		craft{kind: "agent.decision", session: "night", actor: "agent-a"},
	)
	c.waitPublished()
	r.waitPos(c.size)
	want := []ruleHit{{"activity.outside_hours", i[0]}, {"activity.outside_hours", i[2]}}
	if got := hits(r.out.alerts(t)); !slices.Equal(got, want) {
		t.Fatalf("alerts %v, want %v", got, want)
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

// TestParseHeadOnBenchLeaves checks event.ParseHead, which the full audit
// uses, against ParseLeaf on the benchmark's leaves.
func TestParseHeadOnBenchLeaves(t *testing.T) {
	for i := range 80 {
		d := benchLeaf(i)
		h, err := event.ParseHead(d)
		l, lerr := event.ParseLeaf(d)
		if err != nil || lerr != nil || h != l.Head() {
			t.Fatalf("ParseHead(%s) = %+v %v", d, h, err)
		}
	}
	for _, bad := range []string{`{"v":1,"id":"x","kind":"a.b","time":"t","tenant":"t","session":"s","seq":1,"actor":{`, `{"v":2}`, `not json`} {
		if _, err := event.ParseHead([]byte(bad)); err == nil {
			t.Errorf("ParseHead accepted %s", bad)
		}
	}
}

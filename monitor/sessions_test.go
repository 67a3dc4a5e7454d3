package monitor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
)

// The realistic-session fixture (testdata/sessions, recorded by
// capture/sessions_test.go through the proxy and the Go middleware with the
// official openai-go and anthropic-sdk-go clients): the shipped pack, as
// shipped, must be quiet on it, and each misbehaviour seeded into it must
// raise exactly its alert.

type fixtureEvent struct {
	Session    string         `json:"session"`
	Kind       string         `json:"kind"`
	Actor      event.Actor    `json:"actor"`
	Attributes map[string]any `json:"attributes"`
}

func loadSessions(t *testing.T) []fixtureEvent {
	t.Helper()
	data, err := os.ReadFile("../testdata/sessions/sessions.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var out []fixtureEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev fixtureEvent
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.UseNumber()
		if err := d.Decode(&ev); err != nil {
			t.Fatalf("fixture: %v", err)
		}
		out = append(out, ev)
	}
	if len(out) < 40 {
		t.Fatalf("fixture has %d events", len(out))
	}
	return out
}

// spacing is the time between two replayed events: an agent fleet's
// ordinary pace, and short enough that every event stays well inside the
// pack's max_clock_skew of when the crafted log integrates it.
const spacing = 400 * time.Millisecond

// rounds is how often the fixture is replayed (sessions renamed per round),
// so that every baseline has its min_samples.
const rounds = 6

// replay turns the fixture into crafted events: rounds copies, then
// whatever extra holds, timed so that the last event is now.
func replay(fix []fixtureEvent, extra ...crafttest.Craft) []crafttest.Craft {
	var cs []crafttest.Craft
	for r := range rounds {
		for _, ev := range fix {
			a := map[string]any{}
			for k, v := range ev.Attributes {
				a[k] = v
			}
			cs = append(cs, crafttest.Craft{Kind: ev.Kind, Session: fmt.Sprintf("%s-r%d", ev.Session, r), ActorType: ev.Actor.Type, Actor: ev.Actor.ID, Attrs: a})
		}
	}
	cs = append(cs, extra...)
	start := time.Now().Add(-time.Duration(len(cs)) * spacing)
	for i := range cs {
		cs[i].At = start.Add(time.Duration(i) * spacing)
	}
	return cs
}

// runPack appends cs to a fresh crafted log, runs the monitor with rules
// from its start and returns the rule hits.
func runPack(t *testing.T, rules *Rules, cs []crafttest.Craft) ([]ruleHit, []Alert) {
	t.Helper()
	c := crafttest.New(t)
	cfg := craftConfig(c, t.TempDir())
	cfg.Start = 0
	cfg.Rules = rules
	r := startMonitor(t, cfg)
	for i := 0; i < len(cs); i += 256 {
		c.Add(cs[i:min(i+256, len(cs))]...)
	}
	c.WaitPublished()
	r.waitPos(c.Size)
	as := r.out.alerts(t)
	return hits(as), as
}

// TestPackQuietOnRealisticSessions: the shipped pack, unchanged, raises no
// alert on ordinary traffic recorded with the official SDKs (dated model
// snapshots, usage that grows with the conversation, tool loops, streams,
// rate limiting retried to success).
func TestPackQuietOnRealisticSessions(t *testing.T) {
	fix := loadSessions(t)
	_, as := runPack(t, pack(t), replay(fix))
	if len(as) != 0 {
		t.Fatalf("%d alerts on ordinary traffic:\n%s", len(as), dump(as))
	}
}

// TestOldModelChangeRuleFailsOnRealisticSessions: the fixture catches the
// rule that mixed request and response models (every call "switched"
// twice, from the alias to its snapshot and back).
func TestOldModelChangeRuleFailsOnRealisticSessions(t *testing.T) {
	fix := loadSessions(t)
	b, err := os.ReadFile("rules/llm-agents.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "  - name: session.model_change")
	j := strings.Index(s, "  - name: time.skew")
	old := `  - name: session.model_change
    severity: medium
    match: >-
      e.kind in ["llm.request", "llm.response"] &&
      ("gen_ai.response.model" in e.attributes || "gen_ai.request.model" in e.attributes)
    group_by: e.tenant + "/" + e.session
    value: >-
      string("gen_ai.response.model" in e.attributes ? e.attributes["gen_ai.response.model"] : e.attributes["gen_ai.request.model"])
    condition: last != null && value != last
    message: '"session " + e.session + " switched model from " + string(last) + " to " + string(value)'

`
	rs, err := ParseRules("old.yaml", []byte(s[:i]+old+s[j:]))
	if err != nil {
		t.Fatal(err)
	}
	got, as := runPack(t, rs, replay(fix))
	n := 0
	for _, h := range got {
		if h.rule == "session.model_change" {
			n++
		}
	}
	if n < 10 || n != len(as) {
		t.Fatalf("the old rule raised %d model_change alerts of %d; the fixture should show it misfiring on every call:\n%s", n, len(as), dump(as))
	}
}

// TestPackOnSeededRealisticSessions: each misbehaviour seeded into the
// realistic traffic raises exactly its alert, at the seeded entry.
func TestPackOnSeededRealisticSessions(t *testing.T) {
	fix := loadSessions(t)
	agent := func(kind, session string, kv ...any) crafttest.Craft {
		return crafttest.Craft{Kind: kind, Session: session, ActorType: "agent", Actor: "triage-bot", Attrs: attrs(kv...)}
	}
	req := func(session, model string) crafttest.Craft {
		return agent("llm.request", session, "gen_ai.provider.name", "openai", "gen_ai.request.model", model, "capture.front", "proxy")
	}
	resp := func(session, model, served string, in, out int) crafttest.Craft {
		return agent("llm.response", session, "gen_ai.provider.name", "openai", "gen_ai.request.model", model, "gen_ai.response.model", served,
			"gen_ai.usage.input_tokens", in, "gen_ai.usage.output_tokens", out, "http.response.status_code", 200, "capture.outcome", "complete")
	}
	type seed struct {
		name   string
		pack   []string          // replacements in the pack (a documented option)
		extra  []crafttest.Craft // appended after the ordinary traffic
		at     int               // index in extra of the entry the alert names
		rule   string            // "": no alert
		substr string            // in the alert's message
	}
	seeds := []seed{
		{name: "forbidden tool", extra: []crafttest.Craft{
			req("s-tool", "gpt-4o"), resp("s-tool", "gpt-4o", "gpt-4o-2024-08-06", 180, 19),
			agent("tool.call", "s-tool", "gen_ai.tool.name", "shell_exec", "gen_ai.tool.type", "function"),
		}, at: 2, rule: "tool.forbidden", substr: "shell_exec"},
		{name: "served model changed for the same request", extra: []crafttest.Craft{
			req("s-model", "gpt-4o"), resp("s-model", "gpt-4o", "gpt-4o-2024-08-06", 180, 19),
			req("s-model", "gpt-4o"), resp("s-model", "gpt-4o", "gpt-4o-2024-08-06", 250, 19),
			req("s-model", "gpt-4o"), resp("s-model", "gpt-4o", "gpt-4o-2024-11-20", 310, 26),
		}, at: 5, rule: "session.model_change", substr: "requests for gpt-4o switched model from gpt-4o-2024-08-06 to gpt-4o-2024-11-20"},
		// An agent that routes between models or providers asks for each
		// one: no alert (it raised one per switch before).
		{name: "agent switches model and provider deliberately", extra: []crafttest.Craft{
			req("s-route", "gpt-4o-mini"), resp("s-route", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 180, 19),
			req("s-route", "gpt-4o"), resp("s-route", "gpt-4o", "gpt-4o-2024-08-06", 250, 19),
			agent("llm.request", "s-route", "gen_ai.provider.name", "anthropic", "gen_ai.request.model", "claude-sonnet-4-5"),
			agent("llm.response", "s-route", "gen_ai.provider.name", "anthropic", "gen_ai.request.model", "claude-sonnet-4-5",
				"gen_ai.response.model", "claude-sonnet-4-5-20250929", "gen_ai.usage.input_tokens", 310, "gen_ai.usage.output_tokens", 26,
				"http.response.status_code", 200, "capture.outcome", "complete"),
			req("s-route", "gpt-4o-mini"), resp("s-route", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 380, 26),
		}},
		{name: "token spike", extra: []crafttest.Craft{
			req("s-spike", "gpt-4o-mini"), resp("s-spike", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 160, 9000),
		}, at: 1, rule: "tokens.spike", substr: "output of 9000 tokens for acme/gpt-4o-mini-2024-07-18"},
		{name: "a long context is no spike", extra: []crafttest.Craft{
			req("s-context", "gpt-4o"), resp("s-context", "gpt-4o", "gpt-4o-2024-08-06", 30000, 26),
		}},
		{name: "error burst", extra: func() []crafttest.Craft {
			var cs []crafttest.Craft
			for range 5 {
				cs = append(cs, req("s-err", "gpt-4o"), agent("llm.response", "s-err", "gen_ai.request.model", "gpt-4o",
					"error.type", "server_error", "http.response.status_code", 500, "capture.outcome", "upstream_error"))
			}
			return cs
		}(), at: 9, rule: "upstream.error_burst", substr: "server_error"},
		{name: "seq gap", extra: []crafttest.Craft{
			agent("agent.decision", "s-gap", "decision.outcome", "proposed"),
			{Kind: "agent.decision", Session: "s-gap", ActorType: "agent", Actor: "triage-bot", SkipSeq: true},
		}, at: 1, rule: "session.seq_gap", substr: "seq 2 after 0"},
		{name: "unsigned approval in medical mode", pack: []string{"# medical_mode: true", "medical_mode: true"}, extra: []crafttest.Craft{
			{Kind: "human.signature", Session: "s-med-ok", ActorType: "human", Actor: "dr-ada"},
			agent("agent.decision", "s-med-ok", "decision.outcome", "approved"),
			agent("agent.decision", "s-med", "decision.outcome", "approved"),
		}, at: 2, rule: "approval.unsigned", substr: "s-med "},
		{name: "capture gap", extra: []crafttest.Craft{
			{Kind: "capture.gap", Session: "s-cap", ActorType: "system", Actor: "capture", Attrs: attrs("capture.reason", "log unreachable for 12 events")},
		}, at: 0, rule: "capture.gap", substr: "log unreachable"},
		{name: "timestamp authority down", extra: []crafttest.Craft{
			{Kind: "timestamp.failed", Session: "timestamps", ActorType: "system", Actor: "log-server", Attrs: attrs("timestamp.tsa", "https://tsa.example/rfc3161", "timestamp.tree_size", 12, "timestamp.error", "connection refused")},
		}, at: 0, rule: "timestamp.failed", substr: "https://tsa.example/rfc3161 gave no token for the checkpoint of size 12: connection refused"},
	}
	for _, sd := range seeds {
		t.Run(sd.name, func(t *testing.T) {
			cs := replay(fix, sd.extra...)
			got, as := runPack(t, pack(t, sd.pack...), cs)
			var want []ruleHit
			if sd.rule != "" {
				want = []ruleHit{{sd.rule, uint64(len(cs) - len(sd.extra) + sd.at)}} // the crafted log's index k is cs[k]
			}
			if !slices.Equal(got, want) {
				t.Fatalf("alerts %v, want %v:\n%s", got, want, dump(as))
			}
			if sd.rule != "" && !strings.Contains(as[0].Message, sd.substr) {
				t.Errorf("message %q does not say %q", as[0].Message, sd.substr)
			}
		})
	}
}

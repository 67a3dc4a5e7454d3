package compliance

import (
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
)

// TestSOXNothingToJudge: a period of agent traffic with no configuration
// change and no approval at all (nothing was ever approved) gives the
// change and segregation-of-duties controls nothing to judge: they say so
// (not applicable, "no evidence"), and the change control does not claim
// that the agents used approved models.
func TestSOXNothingToJudge(t *testing.T) {
	w := newWorld(t)
	w.token("crafted", "triage-bot", "write")
	w.add(crafttest.Craft{Kind: "retention.set", Session: "retention", ActorType: "system", Actor: "log-server", Writer: serverWr,
		Attrs: crafttest.Attrs("retention.floor", "7y", "retention.profiles", []string{"sox"}, "retention.scope", "tenant")})
	w.clock = w.from
	w.status()
	for _, s := range []string{"case-1", "case-2"} {
		w.add(crafttest.Craft{Kind: "llm.request", Session: s, Attrs: crafttest.Attrs("gen_ai.request.model", "gpt-4o")})
		w.add(crafttest.Craft{Kind: "llm.response", Session: s, Attrs: crafttest.Attrs("gen_ai.response.model", "gpt-4o")})
		w.add(crafttest.Craft{Kind: "tool.call", Session: s, Attrs: crafttest.Attrs("gen_ai.tool.name", "search")})
		w.status()
	}
	w.c.WaitPublished()
	r := w.compute("sox", testParams())
	for id, want := range map[string]string{
		"sox-itgc-change":      NotApplicable,
		"sox-itgc-sod":         NotApplicable,
		"sox-as2201-benchmark": NotApplicable,
	} {
		c := control(r, id)
		if c.Status != want {
			t.Errorf("%s: %s (%s), want %s", id, c.Status, c.Evidence.Summary, want)
		}
		if strings.Contains(c.Evidence.Summary, "used only the approved") {
			t.Errorf("%s claims approved use with nothing approved: %s", id, c.Evidence.Summary)
		}
	}
	if c := control(r, "sox-itgc-change"); !strings.Contains(c.Evidence.Summary, "no evidence") || c.Evidence.Counts["llm_requests"] != 2 {
		t.Errorf("sox-itgc-change: %s %v", c.Evidence.Summary, c.Evidence.Counts)
	}
}

// TestSOXApprovedChangeIsANewBaseline: an approved configuration change in
// the period starts a new baseline (PCAOB AS 2201.B28-B31): neither the
// approval of a second configuration nor the first approval of an agent
// inside the period makes the benchmark fail; an unapproved change does.
func TestSOXApprovedChangeIsANewBaseline(t *testing.T) {
	change := func(w *world, hash string, approve bool) func() {
		return func() {
			cfg, h := w.add(crafttest.Craft{Kind: "config.change", Session: "config", ActorType: "human", Actor: "eng-carol",
				Attrs: crafttest.Attrs("config.agent", "triage-bot", "config.model", "gpt-4o", "config.sha256", hash, "config.prompt_sha256", strings.Repeat("a", 64))})
			w.at["change"] = cfg
			if approve {
				w.sign("cfo-bob", bobTok, "config", cfg, h, "approved", "signer+secret", "sess-bob-"+hash)
			}
			w.add(crafttest.Craft{Kind: "llm.request", Session: "case-9", Attrs: crafttest.Attrs("gen_ai.request.model", "gpt-4o", "capture.system_prompt.sha256", strings.Repeat("a", 64))})
		}
	}
	for _, c := range []struct {
		name   string
		first  bool // no configuration before the period
		hash   string
		signed bool
		want   string
	}{
		{"a second approved configuration", false, "c0ffee02", true, Satisfied},
		{"the first approval inside the period", true, "c0ffee01", true, Satisfied},
		{"an unapproved change", false, "bad0", false, NotSatisfied},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			if c.first {
				w.skip["config"] = true
			}
			w.build(map[string]func(){"during": change(w, c.hash, c.signed)})
			r := w.compute("sox", testParams())
			b := control(r, "sox-as2201-benchmark")
			if b.Status != c.want {
				t.Fatalf("benchmark: %s (%s) %+v, want %s", b.Status, b.Evidence.Summary, b.Evidence.Offending, c.want)
			}
			if c.want == NotSatisfied && (len(b.Evidence.Offending) != 1 || b.Evidence.Offending[0].Index != w.at["change"]) {
				t.Errorf("benchmark offending %+v, want entry %d", b.Evidence.Offending, w.at["change"])
			}
			baselines, _ := b.Evidence.Facts["baselines"].(map[string][]string)
			if n := len(baselines[tenant+"/triage-bot"]); c.signed && n != map[bool]int{true: 1, false: 2}[c.first] {
				t.Errorf("baselines %v", b.Evidence.Facts["baselines"])
			}
			if ch := control(r, "sox-itgc-change"); (ch.Status == Satisfied) != c.signed {
				t.Errorf("change control: %s (%s)", ch.Status, ch.Evidence.Summary)
			}
		})
	}
}

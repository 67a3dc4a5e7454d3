package compliance

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
)

func statuses(r *Report) map[string]string {
	m := map[string]string{}
	for _, c := range r.Controls {
		m[c.ID] = c.Status
	}
	return m
}

func control(r *Report, id string) ControlResult {
	for _, c := range r.Controls {
		if c.ID == id {
			return c
		}
	}
	return ControlResult{}
}

// TestCleanPeriodSatisfiesEveryControl: a period recorded as it should be
// satisfies every control of every profile (none is merely not
// applicable), and the report is a pure function of the log: computed
// twice, the same bytes.
func TestCleanPeriodSatisfiesEveryControl(t *testing.T) {
	w := newWorld(t)
	w.build(nil)
	for _, prof := range ProfileNames() {
		r := w.compute(prof, testParams())
		for _, c := range r.Controls {
			if c.Status != Satisfied {
				t.Errorf("%s %s: %s: %s %+v", prof, c.ID, c.Status, c.Evidence.Summary, c.Evidence.Offending)
			}
		}
		if r.Entries.InPeriod == 0 || r.Range.StartSize == 0 || r.Range.EndSize != w.c.Size || len(r.Range.ConsistencyProof) == 0 {
			t.Errorf("%s: entries %+v range %+v", prof, r.Entries, r.Range)
		}
		a, _ := r.Canonical()
		b, _ := w.compute(prof, testParams()).Canonical()
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two computations differ", prof)
		}
	}
	r := w.compute("part11", testParams())
	if len(r.Signatures) != 7 {
		t.Errorf("%d signature manifestations, want 7: %+v", len(r.Signatures), r.Signatures)
	}
	for _, m := range r.Signatures {
		if !m.Valid || m.PrintedName == "" || m.Time == "" || m.Meaning == "" {
			t.Errorf("manifestation %+v", m)
		}
	}
}

// TestSeededViolations: each violation seeded into an otherwise clean
// period makes exactly the control it should not-satisfied, naming the
// offending entry.
func TestSeededViolations(t *testing.T) {
	type seeded struct {
		name, profile, control string
		seed                   func(w *world) (hooks map[string]func(), want func() uint64)
	}
	at := func(w *world, key string) func() uint64 { return func() uint64 { return w.at[key] } }
	seed := func(w *world, cr crafttest.Craft) func() {
		return func() { w.at["seeded"], _ = w.add(cr) }
	}
	seededAt := func(w *world) func() uint64 { return at(w, "seeded") }
	modelChange := func(w *world) (map[string]func(), func() uint64) {
		return map[string]func(){"during": seed(w, crafttest.Craft{Kind: "llm.request", Session: "case-1", Attrs: crafttest.Attrs("gen_ai.request.model", "gpt-4o-mini")})}, seededAt(w)
	}
	seqGap := func(w *world) (map[string]func(), func() uint64) {
		return map[string]func(){"during": seed(w, crafttest.Craft{Kind: "tool.result", Session: "case-1", SkipSeq: true, Attrs: crafttest.Attrs("gen_ai.tool.name", "search")})}, seededAt(w)
	}
	forged := func(w *world) (map[string]func(), func() uint64) {
		return map[string]func(){"end": func() { w.at["seeded"] = w.findNote() }}, seededAt(w)
	}
	outage := func(w *world) (map[string]func(), func() uint64) {
		return map[string]func(){"during": func() {
			first := w.clock
			w.at["seeded"], _ = w.add(crafttest.Craft{Kind: "capture.gap", Session: "case-3", ActorType: "system", Actor: "proxy",
				Attrs: crafttest.Attrs("capture.gap.first_time", first.Format(time.RFC3339Nano), "capture.gap.last_time", first.Add(10*time.Minute).Format(time.RFC3339Nano),
					"capture.gap.count", 3, "capture.gap.error", "log unavailable")})
		}}, seededAt(w)
	}
	cases := []seeded{
		{"gated call without its signature", "part11", "part11-11.10f", func(w *world) (map[string]func(), func() uint64) {
			w.skip["gate-signature"] = true
			return nil, at(w, "gatedcase-2")
		}},
		{"seq gap", "part11", "part11-11.10e", seqGap},
		{"forged edit in place", "part11", "part11-11.10a", forged},
		{"retention floor too low", "part11", "part11-11.10c", func(w *world) (map[string]func(), func() uint64) {
			w.floor = "1y"
			return nil, at(w, "floor")
		}},
		{"erasure inside the floor", "part11", "part11-11.10c", func(w *world) (map[string]func(), func() uint64) {
			return map[string]func(){"during": seed(w, crafttest.Craft{Kind: "erasure", Session: "erasures", ActorType: "human", Actor: "token.dpo", Writer: serverWr,
				Attrs: crafttest.Attrs("erasure.sessions", []string{"case-1"}, "erasure.override", false, "erasure.legal_basis", "gdpr-art17-1a")})}, seededAt(w)
		}},
		{"undeclared model change", "part11", "part11-11.10k", modelChange},
		{"an agent approves its own output", "sox", "sox-itgc-sod", func(w *world) (map[string]func(), func() uint64) {
			return map[string]func(){"during": func() {
				rec, _ := w.add(crafttest.Craft{Kind: "agent.decision", Session: "gl-7", Attrs: crafttest.Attrs("decision.outcome", "proposed")})
				w.at["seeded"], _ = w.add(crafttest.Craft{Kind: "agent.decision", Session: "gl-7", Attrs: crafttest.Attrs("decision.outcome", "approved", "decision.record", rec)})
			}}, seededAt(w)
		}},
		{"unapproved model change", "sox", "sox-itgc-change", func(w *world) (map[string]func(), func() uint64) {
			return map[string]func(){"during": func() {
				w.at["seeded"], _ = w.add(crafttest.Craft{Kind: "config.change", Session: "config", ActorType: "human", Actor: "eng-carol",
					Attrs: crafttest.Attrs("config.agent", "triage-bot", "config.model", "gpt-4o-mini", "config.sha256", "bad0")})
				w.add(crafttest.Craft{Kind: "llm.request", Session: "case-2", Attrs: crafttest.Attrs("gen_ai.request.model", "gpt-4o-mini")})
			}}, seededAt(w)
		}},
		{"a system prompt other than the approved one", "sox", "sox-itgc-change", func(w *world) (map[string]func(), func() uint64) {
			return map[string]func(){"during": seed(w, crafttest.Craft{Kind: "llm.request", Session: "case-2",
				Attrs: crafttest.Attrs("gen_ai.request.model", "gpt-4o", "capture.system_prompt.sha256", strings.Repeat("e", 64))})}, seededAt(w)
		}},
		{"seq gap", "sox", "sox-as1105", seqGap},
		{"forged edit in place", "sox", "sox-as1105", forged},
		{"capture outage", "sox", "sox-itgc-operations", outage},
		{"a write by a token not in the log", "sox", "sox-itgc-access", func(w *world) (map[string]func(), func() uint64) {
			return map[string]func(){"during": seed(w, crafttest.Craft{Kind: "tool.call", Session: "rogue", Writer: &event.Writer{Token: "tok-rogue", Via: event.ViaAPI},
				Attrs: crafttest.Attrs("gen_ai.tool.name", "search")})}, seededAt(w)
		}},
		{"capture outage", "eu-ai-act", "euaia-art12.1", outage},
		{"undeclared model change", "eu-ai-act", "euaia-art12.2", modelChange},
		{"one person approves a two-person call", "eu-ai-act", "euaia-art14", func(w *world) (map[string]func(), func() uint64) {
			w.skip["second-person"] = true
			return nil, at(w, "biometric")
		}},
		{"retention floor below six months", "eu-ai-act", "euaia-art19", func(w *world) (map[string]func(), func() uint64) {
			w.floor = "3m"
			return nil, at(w, "floor")
		}},
		{"the monitor falls silent", "eu-ai-act", "euaia-art72", func(w *world) (map[string]func(), func() uint64) {
			w.skip["late-status"] = true
			return nil, nil
		}},
		{"an overdue serious incident", "eu-ai-act", "euaia-art73", func(w *world) (map[string]func(), func() uint64) {
			return map[string]func(){"during": func() {
				w.at["seeded"], _ = w.add(crafttest.Craft{Kind: "incident.reported", Session: "incidents", ActorType: "human", Actor: "qa.lead",
					Attrs: crafttest.Attrs("incident.id", "INC-2", "incident.classification", "widespread", "incident.aware_at", w.clock.Add(-72*time.Hour).Format(time.RFC3339))})
			}}, seededAt(w)
		}},
	}
	// An unapproved configuration change also breaks the AS 2201 baseline.
	alsoFails := map[string][]string{"sox/unapproved model change": {"sox-as2201-benchmark"}}
	for _, tc := range cases {
		t.Run(tc.profile+"/"+tc.name, func(t *testing.T) {
			w := newWorld(t)
			hooks, want := tc.seed(w)
			w.build(hooks)
			r := w.compute(tc.profile, testParams())
			for _, c := range r.Controls {
				wantStatus := Satisfied
				if c.ID == tc.control || slices.Contains(alsoFails[tc.profile+"/"+tc.name], c.ID) {
					wantStatus = NotSatisfied
				}
				if c.Status != wantStatus {
					t.Errorf("%s: %s (%s), want %s", c.ID, c.Status, c.Evidence.Summary, wantStatus)
				}
			}
			if want == nil {
				return
			}
			c := control(r, tc.control)
			if !slices.ContainsFunc(c.Evidence.Offending, func(o Offense) bool { return o.Index == want() }) {
				t.Errorf("%s does not name entry %d: %+v", tc.control, want(), c.Evidence.Offending)
			}
		})
	}
}

// findNote tampers with the log's files: the note's text is rewritten in
// place in every entry bundle that holds it (an edit in place, as an
// operator with disk access could make). It returns the note's index.
func (w *world) findNote() uint64 {
	w.t.Helper()
	w.c.WaitPublished()
	found := false
	err := filepath.Walk(filepath.Join(w.c.Dir, "tile", "entries"), func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(`"note.text":"original"`)) {
			found = true
			return os.WriteFile(path, bytes.Replace(b, []byte(`"note.text":"original"`), []byte(`"note.text":"forged!!"`), 1), 0o644)
		}
		return nil
	})
	if err != nil || !found {
		w.t.Fatalf("tampering: %v (found %v)", err, found)
	}
	return w.at["note"]
}

// TestOffendingCapped: a control with more offending entries than
// MaxOffending lists the first MaxOffending of them, in index order, and
// counts them all.
func TestOffendingCapped(t *testing.T) {
	w := newWorld(t)
	const n = MaxOffending + 7
	ghost := &event.Writer{Token: "tok-ghost", Via: event.ViaAPI}
	var first uint64
	w.build(map[string]func(){"during": func() {
		batch := make([]crafttest.Craft, n)
		for i := range batch {
			w.clock = w.clock.Add(time.Millisecond)
			batch[i] = crafttest.Craft{Raw: w.c.Leaf(crafttest.Craft{Tenant: tenant, Kind: "tool.call", Session: "ghost", ActorType: "agent", Actor: "triage-bot",
				Writer: ghost, At: w.clock, Attrs: crafttest.Attrs("gen_ai.tool.name", "search")})}
		}
		first = w.c.Add(batch...)[0]
	}})
	r := w.compute("part11", testParams())
	c := control(r, "part11-11.10d")
	ev := c.Evidence
	if c.Status != NotSatisfied || ev.OffendingTotal != n || len(ev.Offending) != MaxOffending || !strings.HasPrefix(ev.Summary, "1007 records") {
		t.Fatalf("%s: %s, %d listed of %d", c.Status, ev.Summary, len(ev.Offending), ev.OffendingTotal)
	}
	for i, o := range ev.Offending {
		if o.Index != first+uint64(i) || !strings.Contains(o.Reason, "tok-ghost") {
			t.Fatalf("offending[%d] = %+v, want entry %d", i, o, first+uint64(i))
		}
	}
}

// TestWitnessFindingSaysWhatSatisfiesIt (#27 item 1): without a cosigned
// checkpoint, §11.10(a) is not satisfied and its finding says what would
// satisfy it.
func TestWitnessFindingSaysWhatSatisfiesIt(t *testing.T) {
	w := newWorld(t)
	w.build(nil)
	p := testParams()
	p.RequireWitnessQuorum = true
	for _, c := range w.compute("part11", p).Controls {
		if c.ID != "part11-11.10a" {
			continue
		}
		if c.Status != NotSatisfied || !strings.Contains(c.Evidence.Summary, "--witness-policy") || !strings.Contains(c.Evidence.Summary, "docs/witness.md") {
			t.Fatalf("§11.10(a) without a witness: %s: %s", c.Status, c.Evidence.Summary)
		}
		return
	}
	t.Fatal("no part11-11.10a control")
}

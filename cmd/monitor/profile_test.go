package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/monitor"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestComplianceSwitch: one switch, the server's --compliance part11
// (server.Config.Compliance, with the compliance package's Reporter),
// enables what the profile needs everywhere, and the monitor and monitor
// report read it from the log rather than from flags and files of their
// own: the shipped rule pack, which does not set medical_mode, alerts on an
// agent's approval without a signature, from the start of the log and when
// started past the server's record; a rule file that sets medical_mode
// overrides the log; and the report gates approvals on a signature
// (§11.10(f)), without --config.
func TestComplianceSwitch(t *testing.T) {
	rep, err := compliance.NewReporter(nil, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	l := startLog(t, func(c *server.Config) { c.Compliance, c.Reporter = []string{"part11"}, rep })
	lc, err := client.New(l.hs.URL, client.WithToken(l.token))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	add := func(session, kind string, attrs map[string]any) uint64 {
		t.Helper()
		a := map[string]json.RawMessage{}
		for k, v := range attrs {
			a[k], _ = json.Marshal(v)
		}
		w, err := lc.Append(ctx, []*event.Request{{Session: session, Kind: kind, Actor: event.Actor{Type: "agent", ID: "a1"}, Attributes: a}})
		if err != nil {
			t.Fatal(err)
		}
		return w[0].Index
	}
	approve := func(session string) uint64 {
		return add(session, "agent.decision", map[string]any{"decision.outcome": "approved"})
	}
	first := approve("case-1")
	args := func(rules, start, level string) []string {
		return []string{"--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF, "--rules", rules, "--state", t.TempDir(),
			"--start", start, "--poll", "50ms", "--log-level", level}
	}
	fromStart := startBinary(t, args(l.rules, "0", "warn")...)
	pack, _ := os.ReadFile(l.rules)
	off := filepath.Join(t.TempDir(), "off.yaml")
	os.WriteFile(off, []byte(strings.Replace(string(pack), "# medical_mode: true", "medical_mode: false", 1)), 0o644)
	overridden := startBinary(t, args(off, "0", "warn")...)
	// A monitor that starts past the server's record reads it at start.
	for l.size() <= first {
		time.Sleep(20 * time.Millisecond)
	}
	atEnd := startBinary(t, args(l.rules, "end", "info")...)
	waitFor(t, atEnd.errOut, "starting to follow the log")
	second := approve("case-2")
	forbidden := add("case-3", "tool.call", map[string]any{"gen_ai.tool.name": "shell.exec"})

	alerted := func(r *run, rule string, index uint64) bool {
		return slices.ContainsFunc(alertsIn(t, r.out.String()), func(a monitor.Alert) bool {
			return a.Rule == rule && a.Index != nil && *a.Index == index
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for !(alerted(fromStart, "approval.unsigned", first) && alerted(fromStart, "approval.unsigned", second) &&
		alerted(atEnd, "approval.unsigned", second) && alerted(overridden, "tool.forbidden", forbidden)) {
		if time.Now().After(deadline) {
			t.Fatalf("alerts: from the start:\n%s\nat the end:\n%s\n%s\noverridden:\n%s", fromStart.out.String(), atEnd.out.String(), atEnd.errOut.String(), overridden.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if alerted(overridden, "approval.unsigned", first) || alerted(overridden, "approval.unsigned", second) {
		t.Errorf("the rule file's medical_mode: false does not override the log's:\n%s", overridden.out.String())
	}

	// The report reads its parameters from the log: approvals are gated.
	out := filepath.Join(t.TempDir(), "part11.json")
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r := startBinary(t, "report", "--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF, "--profile", "part11", "--from", from, "--to", to, "--out", out)
	<-r.done
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, r.errOut.String())
	}
	rp, err := compliance.ParseReport(data)
	if err != nil {
		t.Fatal(err)
	}
	c := control(rp, "part11-11.10f")
	offends := func(i uint64) bool {
		return slices.ContainsFunc(c.Evidence.Offending, func(o compliance.Offense) bool { return o.Index == i })
	}
	if len(rp.Parameters.Gates) == 0 || c.Status != compliance.NotSatisfied || !offends(first) || !offends(second) {
		t.Errorf("part11 report without --config: gates %+v; 11.10(f) %s (%s) %+v", rp.Parameters.Gates, c.Status, c.Evidence.Summary, c.Evidence.Offending)
	}
}

// waitFor waits until b holds s.
func waitFor(t *testing.T, b interface{ String() string }, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", s, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

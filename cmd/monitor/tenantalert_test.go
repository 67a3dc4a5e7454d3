package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/monitor"
)

// TestGlobalMonitorAlertInTenant: a global monitor (one global token of
// read and monitor scope, for reading and --append-token, in the default
// tenant) alerting on a session of tenant X writes its monitor.alert in
// X, written by its own token; X's sox report counts it (alerts_by_rule),
// computed by the server, by monitor report with a global token and with
// X's own token and keys (given, or read with the token), one digest (and verify-report with a global
// token recomputes it identical). A tenant's token may not write in
// another tenant.
func TestGlobalMonitorAlertInTenant(t *testing.T) {
	l := startTenantReportLog(t, event.LeafVersionEnvelope)
	ctx := context.Background()
	x := threeTenants[0]
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(rules, []byte("version: 1\nrules:\n  - name: tenant.flagged\n    severity: high\n    match: e.kind == \"tool.call\" && e.session == \"sess-flagged\"\n"), 0o644)
	writer := l.s.Client(l.s.Token(auth.Spec{Name: "writer-flagged", Tenant: x, Scopes: []string{auth.ScopeWrite}}))
	if _, err := writer.Append(ctx, []*event.Request{{Session: "sess-flagged", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "agent-" + x}}}); err != nil {
		t.Fatal(err)
	}
	monTok, mon, err := l.s.Srv.Tokens().Create(ctx, auth.Spec{Name: "monitor-global", Tenant: event.DefaultTenant, Global: true, Scopes: []string{auth.ScopeRead, auth.ScopeMonitor}})
	if err != nil {
		t.Fatal(err)
	}
	monFile := filepath.Join(t.TempDir(), "monitor.token")
	os.WriteFile(monFile, []byte(monTok+"\n"), 0o600)
	r := startBinary(t, "--url", l.s.URL, "--log-key", l.s.LogPub, "--token-file", monFile, "--append-token", monFile,
		"--rules", rules, "--state", t.TempDir(), "--start", "0", "--poll", "50ms", "--log-level", "warn")

	// The alert lands in X's monitor session.
	admin := l.s.Client(l.s.Admin)
	var alert *api.SessionEntry
	for deadline := time.Now().Add(30 * time.Second); alert == nil && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		page, err := admin.Session(ctx, "monitor."+monitor.DefaultInstance, client.SessionQuery{Tenant: x})
		if err != nil {
			continue
		}
		for i, e := range page.Events {
			if e.Kind == event.KindMonitorAlert {
				alert = &page.Events[i]
			}
		}
	}
	if alert == nil {
		t.Fatalf("no monitor.alert in tenant %s's monitor session after 30 s\nmonitor stderr:\n%s", x, r.errOut.String())
	}
	l.size = max(l.size, alert.Index+1)
	l.waitPublished(t)
	bs, err := admin.Bodies(ctx, alert.Index, alert.Index+1, l.size)
	if err != nil || len(bs.Entries) != 1 {
		t.Fatalf("reading the alert's body: %v", err)
	}
	leaf, err := event.ParseLeaf(bs.Entries[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Tenant != x || leaf.Writer == nil || leaf.Writer.Token != mon.ID || leaf.Writer.Via != event.ViaAPI ||
		leaf.Attributes.String(event.AttrMonitorSession) != "sess-flagged" {
		t.Fatalf("the alert is in tenant %q, written by %+v about session %q; want tenant %s, the monitor's token, sess-flagged",
			leaf.Tenant, leaf.Writer, leaf.Attributes.String(event.AttrMonitorSession), x)
	}

	// A tenant's token may not write in another tenant.
	other := l.s.Client(l.s.Token(auth.Spec{Name: "monitor-other", Tenant: threeTenants[1], Scopes: []string{auth.ScopeMonitor}}))
	if _, err := other.Append(ctx, []*event.Request{{Session: "monitor.x", Kind: event.KindMonitorAlert, Actor: event.Actor{Type: "system", ID: "monitor.x"}}}, client.InTenant(x)); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("a token of tenant %s wrote in tenant %s: %v", threeTenants[1], x, err)
	}

	// X's report counts the alert, whoever computes it.
	auditorFile := l.s.TokenFile(auth.Spec{Name: "auditor-" + x, Tenant: x, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	auditorTok, _ := os.ReadFile(auditorFile)
	keys := l.keysFile(t, strings.TrimSpace(string(auditorTok)))
	l.waitPublished(t)
	from := l.from.UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	a, err := admin.Report(ctx, api.ReportQuery{Profile: "sox", Tenant: x, From: mustTime(t, from), To: mustTime(t, to), Format: api.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	answer := filepath.Join(dir, "answer.json")
	os.WriteFile(answer, a.Body, 0o644)
	reports := map[string][]byte{"server": a.JSON.Report}
	common := []string{"--url", l.s.URL, "--log-key", l.s.LogPub, "--profile", "sox", "--tenant", x, "--from", from, "--to", to, "--at", answer}
	for name, args := range map[string][]string{
		"global token": {"--token-file", l.s.AdminFile},
		"tenant token": {"--token-file", auditorFile, "--tenant-key", keys},
		// The keys read with the token (audit scope).
		"tenant token, keys read": {"--token-file", auditorFile},
	} {
		out := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".json")
		var errb strings.Builder
		code := report(append(append(common, args...), "--out", out), &errb, &errb)
		data, err := os.ReadFile(out)
		if code == 2 || err != nil {
			t.Fatalf("monitor report with a %s: exit %d, %v\n%s", name, code, err, errb.String())
		}
		reports[name] = data
	}
	// verify-report with a global token recomputes the server's report of
	// X (reading X's keys itself) identical.
	var vout strings.Builder
	if code := verifyReport([]string{"--url", l.s.URL, "--log-key", l.s.LogPub, "--token-file", l.s.AdminFile, answer}, &vout, &vout); code != 0 {
		t.Errorf("verify-report of tenant %s's report with a global token: exit %d\n%s", x, code, vout.String())
	}
	for name, raw := range reports {
		var rep compliance.Report
		if err := json.Unmarshal(raw, &rep); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(control(&rep, "sox-itgc-operations").Evidence.Facts["alerts_by_rule"]); !strings.Contains(got, "tenant.flagged:1") {
			t.Errorf("tenant %s's report (%s) does not count the global monitor's alert: alerts_by_rule %s", x, name, got)
		}
		if compliance.Digest(raw) != a.SHA256 {
			t.Errorf("tenant %s's report computed with the %s differs from the server's", x, name)
		}
	}
}

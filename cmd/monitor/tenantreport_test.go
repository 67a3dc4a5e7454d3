package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// tenantReportLog is a log of leaf version 3 with three tenants, a global
// writer whose tenant is the first, a global monitor's status and the
// default scope's retention floor (the sox profile).
type tenantReportLog struct {
	*envelopeLog
	globalWriter, monitorTok string
	from                     time.Time // the tenant report's period begins
}

func startTenantReportLog(t *testing.T, leafVersion int) *tenantReportLog {
	t.Helper()
	s := servertest.Start(t, func(c *server.Config) {
		c.LeafVersion = leafVersion
		c.Compliance = []string{"sox"}
		rep, err := compliance.NewReporter(nil, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Reporter = rep
	})
	l := &tenantReportLog{envelopeLog: &envelopeLog{s: s}}
	ctx := context.Background()
	write := func(tok, tenant, session, kind string, n int) {
		t.Helper()
		var evs []*event.Request
		for range n {
			evs = append(evs, &event.Request{Session: session, Kind: kind, Actor: event.Actor{Type: "agent", ID: "agent-" + tenant},
				Payload: json.RawMessage(`{"text":"payload of ` + tenant + `"}`)})
		}
		w, err := s.Client(tok).Append(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		l.size = max(l.size, w[len(w)-1].Index+1)
	}
	for i, tenant := range threeTenants {
		if i == 2 {
			// The report's period begins here, between the second
			// tenant's events and the third's: its range begins at the
			// first entry of the report's own after it.
			l.from = time.Now().Truncate(time.Second).Add(time.Second)
			time.Sleep(time.Until(l.from))
		}
		tok := s.Token(auth.Spec{Name: "writer-" + tenant, Tenant: tenant, Scopes: []string{auth.ScopeWrite}})
		write(tok, tenant, "sess-"+tenant, "tool.call", 3)
	}
	// An alert of another tenant's monitor: not log-wide.
	alerter := s.Token(auth.Spec{Name: "monitor-" + threeTenants[1], Tenant: threeTenants[1], Scopes: []string{auth.ScopeMonitor}})
	al, err := s.Client(alerter).Append(ctx, []*event.Request{{Session: "monitor.t2", Kind: event.KindMonitorAlert, Actor: event.Actor{Type: "system", ID: "monitor.t2"},
		Attributes: map[string]json.RawMessage{event.AttrMonitorRule: json.RawMessage(`"custom.rule"`)}}})
	if err != nil {
		t.Fatal(err)
	}
	l.size = max(l.size, al[0].Index+1)
	// A global writer whose own tenant is the first: its creation record
	// is in that tenant, and log-wide.
	l.globalWriter = s.Token(auth.Spec{Name: "global-writer", Tenant: threeTenants[0], Global: true, Scopes: []string{auth.ScopeWrite}})
	write(l.globalWriter, threeTenants[0], "sess-global-writer", "tool.call", 2)
	// A global monitor (tenant default) reports its status: log-wide.
	l.monitorTok = s.Token(auth.Spec{Name: "monitor", Tenant: event.DefaultTenant, Global: true, Scopes: []string{auth.ScopeRead, auth.ScopeMonitor}})
	st, err := s.Client(l.monitorTok).Append(ctx, []*event.Request{{Session: "monitor.t1", Kind: event.KindMonitorStatus, Actor: event.Actor{Type: "system", ID: "monitor.t1"},
		Attributes: map[string]json.RawMessage{event.AttrMonitorInstance: json.RawMessage(`"t1"`)}}})
	if err != nil {
		t.Fatal(err)
	}
	l.size = max(l.size, st[0].Index+1)
	return l
}

// keysFile reads tenant's keys (GET /v1/tenant-key) with the tenant's
// token and writes the answer to a file.
func (l *tenantReportLog) keysFile(t *testing.T, tok string) string {
	t.Helper()
	r, err := l.s.Client(tok).TenantKeys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(r)
	p := filepath.Join(t.TempDir(), r.Tenant+".keys.json")
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	l.size = max(l.size, r.Access.Index+1) // the read is recorded
	return p
}

// TestMonitorReportTenant: on a log of leaf version 3, tenant X's sox
// report computed by the server (global token), by monitor report with a
// global token and by monitor report with X's own read,audit token and its
// keys are one report (one digest); monitor verify-report with X's token
// recomputes it identical (exit 0) and refuses an edited one (exit 1).
// X's report lists the global write and admin tokens and X's own, not
// another tenant's; X's token reads X's bodies and the log-wide ones, no
// other tenant's.
func TestMonitorReportTenant(t *testing.T) {
	l := startTenantReportLog(t, event.LeafVersionEnvelope)
	ctx := context.Background()
	x := threeTenants[0]
	auditorSpec := auth.Spec{Name: "auditor-" + x, Tenant: x, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}}
	auditorFile := l.s.TokenFile(auditorSpec)
	auditorTok, _ := os.ReadFile(auditorFile)
	keys := l.keysFile(t, strings.TrimSpace(string(auditorTok)))
	l.waitPublished(t)

	// What X's token reads: its bodies and the log-wide records, no other
	// tenant's.
	bs, err := l.s.Client(string(auditorTok)).Bodies(ctx, 0, l.size, l.size)
	if err != nil {
		t.Fatal(err)
	}
	logWide := map[string]int{}
	for _, b := range bs.Entries {
		h, err := event.ParseHead(b.Body)
		switch {
		case err != nil:
			t.Errorf("body %d: %v", b.Index, err)
		case event.BodyLogWide(b.Body):
			logWide[h.Kind]++
		case h.Tenant != x:
			t.Errorf("tenant %s got body %d of tenant %q", x, b.Index, h.Tenant)
		}
	}
	for _, k := range []string{event.KindTokenCreated, event.KindMonitorStatus, event.KindRetentionSet} {
		if logWide[k] == 0 {
			t.Errorf("tenant %s reads no log-wide %s (log-wide bodies read: %v)", x, k, logWide)
		}
	}

	from := l.from.UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	a, err := l.s.Client(l.s.Admin).Report(ctx, api.ReportQuery{Profile: "sox", Tenant: x, From: mustTime(t, from), To: mustTime(t, to), Format: api.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	answer := filepath.Join(dir, "answer.json")
	os.WriteFile(answer, a.Body, 0o644)
	var rep compliance.Report
	if err := json.Unmarshal(a.JSON.Report, &rep); err != nil {
		t.Fatal(err)
	}
	// sox-itgc-access: the global writer and the admin (log-wide) and X's
	// writer; not the other tenants' writers.
	holders := fmt.Sprint(control(&rep, "sox-itgc-access").Evidence.Facts["write_and_admin_tokens"])
	for _, want := range []string{"(global-writer,", "(admin,", "(writer-" + x + ","} {
		if !strings.Contains(holders, want) {
			t.Errorf("tenant %s's sox-itgc-access does not list %s: %s", x, want, holders)
		}
	}
	for _, other := range threeTenants[1:] {
		if strings.Contains(holders, other) {
			t.Errorf("tenant %s's sox-itgc-access lists tenant %s's token: %s", x, other, holders)
		}
	}
	if rep.Entries.InScope == 0 {
		t.Fatalf("the report reads no entry of tenant %s", x)
	}
	// The period's range and the sampled inclusion proofs are over the
	// tree's leaves (the envelopes' hashes).
	for _, bad := range []string{"does not verify", "not consistent"} {
		if bytes.Contains(a.JSON.Report, []byte(bad)) {
			t.Errorf("the report says %q:\n%s", bad, a.JSON.Report)
		}
	}
	if len(rep.Range.ConsistencyProof) == 0 {
		t.Errorf("the report's period range has no consistency proof")
	}
	if rep.Range.StartSize == 0 {
		t.Fatalf("the report's period begins at the log's start; the test wants it later")
	}

	run := func(cmd func([]string, io.Writer, io.Writer) int, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cmd(args, &out, &errb)
		return code, out.String(), errb.String()
	}
	common := []string{"--url", l.s.URL, "--log-key", l.s.LogPub, "--profile", "sox", "--tenant", x, "--from", from, "--to", to, "--at", answer}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"global token", []string{"--token-file", l.s.AdminFile}},
		{"tenant token", []string{"--token-file", auditorFile, "--tenant-key", keys}},
	} {
		out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
		code, _, stderr := run(report, append(append(common, tc.args...), "--out", out)...)
		data, err := os.ReadFile(out)
		if code == 2 || err != nil {
			t.Fatalf("monitor report with a %s: exit %d, %v\n%s", tc.name, code, err, stderr)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != a.SHA256 {
			t.Errorf("monitor report with a %s differs from the server's report of tenant %s:\n%s\n%s", tc.name, x, data, a.JSON.Report)
		}
	}

	// The keys of X with --tenant of another tenant: a usage error.
	if code, _, stderr := run(report, "--url", l.s.URL, "--log-key", l.s.LogPub, "--profile", "sox", "--tenant", threeTenants[1], "--from", from, "--to", to,
		"--at", answer, "--token-file", auditorFile, "--tenant-key", keys); code != 2 {
		t.Errorf("monitor report with tenant %s's keys for tenant %s: exit %d, want 2\n%s", x, threeTenants[1], code, stderr)
	}

	verifyArgs := []string{"--url", l.s.URL, "--log-key", l.s.LogPub, "--token-file", auditorFile, "--tenant-key", keys}
	if code, out, stderr := run(verifyReport, append(verifyArgs, answer)...); code != 0 || !strings.Contains(out, "OK "+answer+": recomputed at checkpoint size") {
		t.Fatalf("verify-report with tenant %s's token: exit %d\n%s%s", x, code, out, stderr)
	}
	c := rep.Controls[0]
	flipped := map[string]string{"satisfied": "not-satisfied", "not-satisfied": "satisfied", "not-applicable": "satisfied"}[c.Status]
	old := []byte(`"status":"` + c.Status + `"`)
	i := bytes.Index(a.JSON.Report, old)
	if i < 0 {
		t.Fatalf("no %s in the report", old)
	}
	edited := filepath.Join(dir, "edited.json")
	os.WriteFile(edited, editedData(a.JSON.Report, i, old, flipped), 0o644)
	if code, out, stderr := run(verifyReport, append(verifyArgs, edited)...); code != 1 || !strings.Contains(out, "FAIL "+edited) || !strings.Contains(out, c.ID) {
		t.Fatalf("verify-report of an edited report with tenant %s's token: exit %d\n%s%s", x, code, out, stderr)
	}
	// The server's answer with its report edited (its sha256 left as the
	// server gave it): exit 1 too.
	editedAnswer := filepath.Join(dir, "edited-answer.json")
	ea, _ := json.Marshal(map[string]any{"report": json.RawMessage(editedData(a.JSON.Report, i, old, flipped)), "sha256": a.SHA256})
	os.WriteFile(editedAnswer, ea, 0o644)
	if code, out, stderr := run(verifyReport, append(verifyArgs, editedAnswer)...); code != 1 || !strings.Contains(out, "FAIL "+editedAnswer) || !strings.Contains(out, c.ID) {
		t.Fatalf("verify-report of an edited answer with tenant %s's token: exit %d\n%s%s", x, code, out, stderr)
	}
	// A hex key alone (no log-wide key) does not make a tenant's report.
	hexKey := filepath.Join(dir, "hex.key")
	os.WriteFile(hexKey, []byte(strings.Repeat("ab", 32)), 0o600)
	r := startBinary(t, "verify-report", "--url", l.s.URL, "--log-key", l.s.LogPub, "--token-file", auditorFile, "--tenant-key", hexKey, answer)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(r.errOut.String(), "log-wide key") {
		t.Errorf("verify-report with a hex key alone: exit %d, want 2\n%s", code, r.errOut.String())
	}
}

// TestMonitorReportTenantV2: on a log of leaf version 2 a tenant's token
// makes no report: exit 2, saying that a tenant's report needs leaf
// version 3 (or a global token).
func TestMonitorReportTenantV2(t *testing.T) {
	l := startTenantReportLog(t, event.LeafVersion)
	x := threeTenants[0]
	tok := l.s.TokenFile(auth.Spec{Name: "auditor-" + x, Tenant: x, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r := startBinary(t, "report", "--url", l.s.URL, "--log-key", l.s.LogPub, "--token-file", tok, "--profile", "sox", "--tenant", x, "--from", from, "--to", to)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(r.errOut.String(), "leaf version 3") || !strings.Contains(r.errOut.String(), "global token") {
		t.Errorf("a tenant's report on a version 2 log: exit %d, want 2 naming leaf version 3\n%s", code, r.errOut.String())
	}
}

// TestMonitorVerifyTenantLogWide: monitor verify with a tenant's keys (the
// JSON answer of GET /v1/tenant-key) checks the log-wide records too: exit
// 0 on a clean log, 1 with tenant.body_missing when the operator withholds
// one log-wide body from the tenant.
func TestMonitorVerifyTenantLogWide(t *testing.T) {
	l := startTenantReportLog(t, event.LeafVersionEnvelope)
	x := threeTenants[0]
	tokFile := l.s.TokenFile(auth.Spec{Name: "auditor-" + x, Tenant: x, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	tok, _ := os.ReadFile(tokFile)
	keys := l.keysFile(t, strings.TrimSpace(string(tok)))
	l.waitPublished(t)
	run := func(u string) (int, string) {
		var out bytes.Buffer
		code := verifyLog([]string{"--url", u, "--log-key", l.s.LogPub, "--token-file", tokFile, "--tenant-key", keys, "--tenant", x}, &out, io.Discard)
		return code, out.String()
	}
	if code, out := run(l.s.URL); code != 0 || !strings.Contains(out, "or the log-wide tag") {
		t.Fatalf("clean log: exit %d\n%s", code, out)
	}
	target, _ := url.Parse(l.s.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	dropped := 0
	rp.ModifyResponse = func(r *http.Response) error {
		if r.Request.URL.Path != "/v1/bodies" || r.StatusCode != http.StatusOK {
			return nil
		}
		var b api.Bodies
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			return err
		}
		r.Body.Close()
		for i, e := range b.Entries {
			if event.BodyLogWide(e.Body) {
				b.Entries = append(b.Entries[:i:i], b.Entries[i+1:]...)
				dropped++
				break
			}
		}
		raw, _ := json.Marshal(b)
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
		r.Header.Del("Content-Length")
		return nil
	}
	ps := httptest.NewServer(rp)
	defer ps.Close()
	code, out := run(ps.URL)
	if dropped == 0 {
		t.Fatal("the proxy dropped no log-wide body")
	}
	if code != 1 || !strings.Contains(out, "tenant.body_missing") || !strings.Contains(out, "log-wide record") {
		t.Errorf("a withheld log-wide body: exit %d, want 1 with tenant.body_missing\n%s", code, out)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

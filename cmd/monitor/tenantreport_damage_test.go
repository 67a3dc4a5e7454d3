package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// damageOthers is a proxy in front of the log that serves GET /v1/bodies
// with another tenant's bodies damaged: the body of its session's seq 1
// withheld (which breaks the session's chain for the reader) and the body
// of seq 2 altered (it no longer matches its envelope). What it damaged is
// counted in *n.
func damageOthers(t *testing.T, target, other string, n *int) *httptest.Server {
	return damageBodies(t, target, func(h event.Head, body []byte) ([]byte, bool) {
		if h.Tenant != other || event.BodyLogWide(body) {
			return body, true
		}
		switch h.Seq {
		case 1:
			*n++
			return nil, false
		case 2:
			*n++
			return bytes.Replace(body, []byte("agent-"+other), []byte("agent-"+other[:len(other)-1]+"X"), 1), true
		}
		return body, true
	})
}

// damageBodies is a proxy in front of the log that serves GET /v1/bodies
// with each body replaced by what damage returns (false: withheld).
func damageBodies(t *testing.T, target string, damage func(event.Head, []byte) ([]byte, bool)) *httptest.Server {
	t.Helper()
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(r *http.Response) error {
		if r.Request.URL.Path != "/v1/bodies" || r.StatusCode != http.StatusOK {
			return nil
		}
		var b api.Bodies
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			return err
		}
		r.Body.Close()
		kept := b.Entries[:0]
		for _, e := range b.Entries {
			if h, err := event.ParseHead(e.Body); err == nil {
				var ok bool
				if e.Body, ok = damage(h, e.Body); !ok {
					continue
				}
			}
			kept = append(kept, e)
		}
		b.Entries = kept
		raw, _ := json.Marshal(b)
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
		r.Header.Del("Content-Length")
		return nil
	}
	ps := httptest.NewServer(rp)
	t.Cleanup(ps.Close)
	return ps
}

// TestMonitorReportTenantOthersDamaged: on a log of leaf version 3 whose
// operator serves another tenant's bodies damaged (one withheld, which
// breaks that tenant's session chain, one altered), tenant X's sox report
// computed by monitor report with a global token, and with X's own token
// and keys, is the server's report of X over the undamaged log (one
// digest): a tenant report's audit findings are those about the tree, X's
// bodies, the log-wide records and the report's entries, never another
// tenant's entries, whoever computes it.
func TestMonitorReportTenantOthersDamaged(t *testing.T) {
	l := startTenantReportLog(t, event.LeafVersionEnvelope)
	ctx := context.Background()
	x, other := threeTenants[0], threeTenants[1]
	auditorFile := l.s.TokenFile(auth.Spec{Name: "auditor-" + x, Tenant: x, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	auditorTok, _ := os.ReadFile(auditorFile)
	keys := l.keysFile(t, strings.TrimSpace(string(auditorTok)))
	l.waitPublished(t)

	from := l.from.UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	a, err := l.s.Client(l.s.Admin).Report(ctx, api.ReportQuery{Profile: "sox", Tenant: x, From: mustTime(t, from), To: mustTime(t, to), Format: api.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	answer := filepath.Join(dir, "answer.json")
	os.WriteFile(answer, a.Body, 0o644)

	damaged := 0
	ps := damageOthers(t, l.s.URL, other, &damaged)
	// A global audit through the proxy finds the damage.
	var vout bytes.Buffer
	if code := verifyLog([]string{"--url", ps.URL, "--log-key", l.s.LogPub, "--token-file", l.s.AdminFile}, &vout, io.Discard); code != 1 ||
		!strings.Contains(vout.String(), "tenant.body_missing") || !strings.Contains(vout.String(), "tenant.body_mismatch") {
		t.Fatalf("monitor verify with a global token through the damaging proxy: exit %d, want 1 with the body findings\n%s", code, vout.String())
	}
	if damaged < 2 {
		t.Fatalf("the proxy damaged %d bodies of tenant %s, want 2", damaged, other)
	}
	common := []string{"--url", ps.URL, "--log-key", l.s.LogPub, "--profile", "sox", "--tenant", x, "--from", from, "--to", to, "--at", answer}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"global token", []string{"--token-file", l.s.AdminFile}},
		{"tenant token", []string{"--token-file", auditorFile, "--tenant-key", keys}},
	} {
		out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
		var errb bytes.Buffer
		code := report(append(append(common, tc.args...), "--out", out), io.Discard, &errb)
		data, err := os.ReadFile(out)
		if code == 2 || err != nil {
			t.Fatalf("monitor report with a %s: exit %d, %v\n%s", tc.name, code, err, errb.String())
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != a.SHA256 {
			t.Errorf("monitor report with a %s, tenant %s's bodies damaged, differs from the server's report of tenant %s:\n%s\n%s", tc.name, other, x, data, a.JSON.Report)
		}
	}
}

// TestMonitorReportTenantOwnWithheld: on a log of leaf version 3 whose
// operator withholds one of tenant X's bodies (the last of a session, so
// no chain breaks), X's sox report says so (sox-as1105 lists
// tenant.body_missing at that entry among its offending entries; the
// control is not satisfied here for want of a witness too), and monitor
// report with a global token and with X's own token and keys give one
// report.
func TestMonitorReportTenantOwnWithheld(t *testing.T) {
	l := startTenantReportLog(t, event.LeafVersionEnvelope)
	x := threeTenants[0]
	auditorFile := l.s.TokenFile(auth.Spec{Name: "auditor-" + x, Tenant: x, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	auditorTok, _ := os.ReadFile(auditorFile)
	keys := l.keysFile(t, strings.TrimSpace(string(auditorTok)))
	l.waitPublished(t)

	from := l.from.UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	a, err := l.s.Client(l.s.Admin).Report(context.Background(), api.ReportQuery{Profile: "sox", Tenant: x, From: mustTime(t, from), To: mustTime(t, to), Format: api.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	answer := filepath.Join(dir, "answer.json")
	os.WriteFile(answer, a.Body, 0o644)

	withheld := -1
	ps := damageBodies(t, l.s.URL, func(h event.Head, body []byte) ([]byte, bool) {
		if h.Tenant == x && h.Session == "sess-global-writer" && h.Seq == 1 {
			withheld++
			return nil, false
		}
		return body, true
	})
	common := []string{"--url", ps.URL, "--log-key", l.s.LogPub, "--profile", "sox", "--tenant", x, "--from", from, "--to", to, "--at", answer}
	var digests []string
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"global token", []string{"--token-file", l.s.AdminFile}},
		{"tenant token", []string{"--token-file", auditorFile, "--tenant-key", keys}},
	} {
		out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
		var errb bytes.Buffer
		code := report(append(append(common, tc.args...), "--out", out), io.Discard, &errb)
		data, err := os.ReadFile(out)
		if code != 1 || err != nil {
			t.Fatalf("monitor report with a %s, one of tenant %s's bodies withheld: exit %d, want 1, %v\n%s", tc.name, x, code, err, errb.String())
		}
		var rep compliance.Report
		if err := json.Unmarshal(data, &rep); err != nil {
			t.Fatal(err)
		}
		c := control(&rep, "sox-as1105")
		if c.Status != compliance.NotSatisfied || !slices.ContainsFunc(c.Evidence.Offending, func(o compliance.Offense) bool { return strings.HasPrefix(o.Reason, verify.RuleBodyMissing+":") }) {
			t.Errorf("monitor report with a %s, one of tenant %s's bodies withheld: sox-as1105 %s, offending %+v, want %s", tc.name, x, c.Status, c.Evidence.Offending, verify.RuleBodyMissing)
		}
		sum := sha256.Sum256(data)
		digests = append(digests, hex.EncodeToString(sum[:]))
	}
	if withheld < 0 {
		t.Fatal("the proxy withheld no body")
	}
	if digests[0] != digests[1] {
		t.Errorf("one of tenant %s's bodies withheld: the global token's report %s differs from the tenant token's %s", x, digests[0], digests[1])
	}
}

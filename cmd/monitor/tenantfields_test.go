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
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
)

// TestMonitorVerifyFieldSalt: monitor verify with a tenant's read token
// and its key exits 0 on a clean log of leaf version 4, each body's field
// salt opening its envelope's field commitment; and 1, with a
// tenant.body_mismatch finding, when the operator serves a body with a
// field salt that does not open it (a proxy in front of the server alters
// or drops field_salt in the /v1/bodies answers), so that the fields a
// disclosure would show are not the body's.
func TestMonitorVerifyFieldSalt(t *testing.T) {
	l := startEnvelopeLogVersion(t, event.LeafVersionFields)
	tenant := threeTenants[0]
	keyFile := l.tenantKeyFile(t, tenant)
	tokFile := l.s.TokenFile(auth.Spec{Name: "auditor-" + tenant, Tenant: tenant, Scopes: []string{auth.ScopeRead}})
	l.size++ // the key read is recorded
	l.waitPublished(t)
	want := l.tenantEntries(t, tenant, l.size)

	// The operator's server: it alters the field salt of the tenant's
	// body at index target as mode says.
	mode, target, altered := "honest", uint64(0), false
	u, _ := url.Parse(l.s.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(r *http.Response) error {
		if r.Request.URL.Path != "/v1/bodies" || r.StatusCode != http.StatusOK || mode == "honest" {
			return nil
		}
		var b api.Bodies
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			return err
		}
		r.Body.Close()
		for i := range b.Entries {
			if e := &b.Entries[i]; e.Index == target {
				switch mode {
				case "flip":
					e.FieldSalt = bytes.Clone(e.FieldSalt)
					e.FieldSalt[0] ^= 1
				case "drop":
					e.FieldSalt = nil
				case "other":
					// Another body's salt: each body has its own.
					e.FieldSalt = b.Entries[(i+1)%len(b.Entries)].FieldSalt
				}
				altered = true
			}
		}
		raw, _ := json.Marshal(b)
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
		r.Header.Del("Content-Length")
		return nil
	}
	ps := httptest.NewServer(rp)
	defer ps.Close()
	run := func() (int, string) {
		var out, errb bytes.Buffer
		code := verifyLog([]string{"--url", ps.URL, "--log-key", l.s.LogPub, "--token-file", tokFile, "--tenant-key", keyFile, "--tenant", tenant}, &out, &errb)
		return code, out.String() + errb.String()
	}

	code, out := run()
	if code != 0 {
		t.Fatalf("clean version 4 log: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, fmt.Sprintf(": %d entries carry its tag", want)) || want < 7 {
		t.Errorf("clean log: output does not count the tenant's %d entries\n%s", want, out)
	}
	// The tenant's first event: the proxy finds its index among the bodies
	// the tenant reads.
	bs, err := l.s.Client(l.s.Admin).Bodies(t.Context(), 0, l.size, l.size)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs.Entries {
		if h, err := event.ParseHead(b.Body); err == nil && h.Tenant == tenant && h.Kind != "" && !event.BodyLogWide(b.Body) {
			target = b.Index
			break
		}
	}
	for _, m := range []string{"flip", "drop", "other"} {
		mode, altered = m, false
		code, out := run()
		if !altered {
			t.Fatalf("%s: the proxy altered no field salt (entry %d)", m, target)
		}
		if code != 1 || !strings.Contains(out, "tenant.body_mismatch") || !strings.Contains(out, fmt.Sprintf("entry %d", target)) {
			t.Errorf("%s: a field salt that does not open entry %d: exit %d, want 1 with tenant.body_mismatch\n%s", m, target, code, out)
		}
	}
}

// TestMonitorVerifyLeafVersionMix: an operator that appends one of a
// tenant's events to a log of leaf version 4 as an envelope of version 3
// (tag and body hash right, no field commitment: none of its fields could
// be disclosed; a crafted log plays it) is found by monitor verify with the
// tenant's key, exit 1 with log.malformed_entry; the same log with every
// entry of version 4 exits 0.
func TestMonitorVerifyLeafVersionMix(t *testing.T) {
	for _, tc := range []struct {
		name      string
		downgrade bool
		code      int
		want      string
	}{
		{"honest", false, 0, "OK: everything verified"},
		{"version 3 entry", true, 1, "log.malformed_entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := crafttest.New(t)
			secret := bytes.Repeat([]byte{7}, 32)
			s4, err := event.NewEnvelopeSealerVersion(secret, event.LeafVersionFields)
			if err != nil {
				t.Fatal(err)
			}
			s3, err := event.NewEnvelopeSealer(secret)
			if err != nil {
				t.Fatal(err)
			}
			const tenant = "bank-alpha"
			bodies := map[uint64][]byte{}
			for i := range 4 {
				body := c.Leaf(crafttest.Craft{Tenant: tenant, Session: "s1", Kind: "tool.call"})
				env := s4.Seal(tenant, body)
				if i == 2 && tc.downgrade {
					env = s3.Seal(tenant, body)
				}
				bodies[c.Add(crafttest.Craft{Raw: env.Marshal()})[0]] = body
			}
			c.WaitPublished()
			target, _ := url.Parse(c.HS.URL)
			rp := httputil.NewSingleHostReverseProxy(target)
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/bodies" {
					rp.ServeHTTP(w, r)
					return
				}
				q := r.URL.Query()
				var start, end, size uint64
				fmt.Sscan(q.Get("start"), &start)
				fmt.Sscan(q.Get("end"), &end)
				fmt.Sscan(q.Get("size"), &size)
				out := api.Bodies{TreeSize: size, Start: start, End: end, Entries: []api.Body{}}
				for i := start; i < end; i++ {
					if b, ok := bodies[i]; ok {
						out.Entries = append(out.Entries, api.Body{Index: i, Body: b, FieldSalt: s4.FieldSalt(b)})
					}
				}
				json.NewEncoder(w).Encode(out)
			}))
			defer hs.Close()
			dir := t.TempDir()
			pub, keyFile, tok := filepath.Join(dir, "log.pub"), filepath.Join(dir, "tenant.key"), filepath.Join(dir, "token")
			k := s4.TenantKey(tenant)
			for p, b := range map[string]string{pub: c.KeyText + "\n", keyFile: k.String(), tok: "any"} {
				if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			code := verifyLog([]string{"--url", hs.URL, "--log-key", pub, "--token-file", tok, "--tenant-key", keyFile, "--tenant", tenant}, &out, io.Discard)
			if code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Errorf("exit %d, want %d with %s\n%s", code, tc.code, tc.want, out.String())
			}
		})
	}
}

// TestMonitorReportTenantV4: on a log of leaf version 4, tenant X's sox
// report computed by the server (global token) and by monitor report with
// X's own read,audit token and its keys are one report (one digest), and
// monitor verify-report with X's token recomputes it (exit 0).
func TestMonitorReportTenantV4(t *testing.T) {
	l := startTenantReportLog(t, event.LeafVersionFields)
	ctx := context.Background()
	x := threeTenants[0]
	auditorFile := l.s.TokenFile(auth.Spec{Name: "auditor-" + x, Tenant: x, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	tok, err := os.ReadFile(auditorFile)
	if err != nil {
		t.Fatal(err)
	}
	keys := l.keysFile(t, strings.TrimSpace(string(tok)))
	l.waitPublished(t)

	from := l.from.UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	a, err := l.s.Client(l.s.Admin).Report(ctx, api.ReportQuery{Profile: "sox", Tenant: x, From: mustTime(t, from), To: mustTime(t, to), Format: api.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	answer, out := filepath.Join(dir, "answer.json"), filepath.Join(dir, "tenant.json")
	if err := os.WriteFile(answer, a.Body, 0o644); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	code := report([]string{"--url", l.s.URL, "--log-key", l.s.LogPub, "--profile", "sox", "--tenant", x, "--from", from, "--to", to, "--at", answer,
		"--token-file", auditorFile, "--tenant-key", keys, "--out", out}, io.Discard, &errb)
	data, err := os.ReadFile(out)
	if code == 2 || err != nil {
		t.Fatalf("monitor report with a tenant token on a version 4 log: exit %d, %v\n%s", code, err, errb.String())
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != a.SHA256 {
		t.Errorf("monitor report with tenant %s's token differs from the server's report:\n%s\n%s", x, data, a.JSON.Report)
	}
	var o bytes.Buffer
	errb.Reset()
	if code := verifyReport([]string{"--url", l.s.URL, "--log-key", l.s.LogPub, "--token-file", auditorFile, "--tenant-key", keys, answer}, &o, &errb); code != 0 || !strings.Contains(o.String(), "OK "+answer) {
		t.Errorf("verify-report with tenant %s's token on a version 4 log: exit %d\n%s%s", x, code, o.String(), errb.String())
	}
}

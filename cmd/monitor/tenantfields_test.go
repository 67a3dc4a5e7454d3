package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
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

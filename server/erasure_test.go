package server

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	// The compliance profiles these tests name, and their floors: the server
	// knows the profiles a program links (cmd/log-server links compliance).
	_ "github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// retentionSets lists the retention.set events of a log as tenant=floor.
func retentionSets(t *testing.T, srv *Server) []string {
	t.Helper()
	ctx := context.Background()
	size, err := srv.Log().Reader().IntegratedSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := range size {
		d, err := srv.Log().ReadLeaf(ctx, i, size)
		if err != nil {
			t.Fatal(err)
		}
		l, err := event.ParseLeaf(d)
		if err != nil {
			t.Fatal(err)
		}
		if l.Kind == "retention.set" {
			out = append(out, fmt.Sprintf("%s=%v%v", l.Tenant, l.Attributes["retention.floor"], l.Attributes["retention.profiles"]))
		}
	}
	return out
}

// TestRetentionFloorsRecorded: each configured floor is recorded once in
// the log as retention.set, again only when it changes; a floor below its
// profiles' minimum is refused at start.
func TestRetentionFloorsRecorded(t *testing.T) {
	dir := t.TempDir()
	open := func(profiles []string, conf string) (*Server, error) {
		return Open(context.Background(), Config{DataDir: dir, CheckpointInterval: 100 * time.Millisecond, Compliance: profiles, ComplianceConfig: []byte(conf)})
	}
	step := func(what string, profiles []string, conf string, want []string) {
		t.Helper()
		srv, err := open(profiles, conf)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got := retentionSets(t, srv)
		srv.Close(context.Background())
		if !slices.Equal(got, want) {
			t.Fatalf("%s: retention.set events %v, want %v", what, got, want)
		}
	}
	step("no profiles", nil, "", nil)
	clinic := "tenants:\n  clinic-a: {profiles: [part11]}\n"
	first := []string{"clinic-a=7y[part11]"}
	step("a tenant with part11", nil, clinic, first)
	step("the same again", nil, clinic, first)
	second := append(first, "default=6m[eu-ai-act]", "clinic-a=7y[eu-ai-act part11]")
	step("eu-ai-act for every tenant", []string{"eu-ai-act"}, clinic, second)
	third := append(second, "clinic-a=10y[eu-ai-act part11]")
	step("a raised floor", []string{"eu-ai-act"}, "tenants:\n  clinic-a: {profiles: [part11], retention: 10y}\n", third)
	for _, bad := range []struct {
		profiles []string
		conf     string
	}{
		{nil, "tenants:\n  clinic-a: {profiles: [part11], retention: 1y}\n"},
		{[]string{"sox"}, "retention: 6m\n"},
		{[]string{"eu-ai-act"}, "retention: 30d\n"},
	} {
		if srv, err := open(bad.profiles, bad.conf); err == nil || !strings.Contains(err.Error(), "never lowered") {
			if srv != nil {
				srv.Close(context.Background())
			}
			t.Errorf("floor %v %q: %v, want a refusal", bad.profiles, bad.conf, err)
		}
	}
	for _, bad := range []string{"profiles: [part12]\n", "tenants:\n  'bad tenant': {}\n", "retention: 7 years\n", "profiles: {x: 1}\n"} {
		if srv, err := open(nil, bad); err == nil {
			srv.Close(context.Background())
			t.Errorf("config %q accepted", bad)
		}
	}
	if _, err := open([]string{"part12"}, ""); err == nil {
		t.Error("unknown profile accepted")
	}
}

// vaultSecrets reads, straight from vault.db, what an erasure of sessions
// and a person must destroy: wrapped data keys, sealed payloads (with their
// commitment salts) and the sealed value of the pseudonym.
func vaultSecrets(t *testing.T, dir, tenant string, sessions []string, pseudonym string) [][]byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, VaultDB)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out [][]byte
	collect := func(q string, args ...any) {
		rows, err := db.Query(q, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				t.Fatal(err)
			}
			if len(b) > 0 {
				out = append(out, b)
			}
		}
	}
	for _, s := range sessions {
		collect(`SELECT wrapped FROM data_keys WHERE tenant = ? AND session = ?`, tenant, s)
		collect(`SELECT sealed FROM payloads WHERE tenant = ? AND session = ?`, tenant, s)
	}
	collect(`SELECT sealed FROM pseudonyms WHERE tenant = ? AND pseudonym = ?`, tenant, pseudonym)
	return out
}

// findInDir returns the files under dir that contain any of needles.
func findInDir(t *testing.T, dir string, needles [][]byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, n := range needles {
			if bytes.Contains(b, n) {
				rel, _ := filepath.Rel(dir, path)
				hits = append(hits, fmt.Sprintf("%s holds needle %d", rel, i))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestErasure: holds stop erasures (a subject's hold covers its sessions),
// the retention floor refuses one with the date it ends unless overridden
// (and the override is recorded as such), and an erasure destroys for
// real: 410 on every erased payload, nothing of the keys, ciphertexts,
// plaintexts or salts left in any file of the data directory, and the log
// still verifies.
func TestErasure(t *testing.T) {
	s := newTestServer(t, func(c *Config) {
		c.ComplianceConfig = []byte("tenants:\n  clinic-a: {profiles: [part11]}\n")
	})
	ctx := context.Background()
	admin := s.client(t, s.admin)
	const subject = "patient-42-Jane-Roe"
	write := func(c *client.Client, session, subj, text string) client.Written {
		t.Helper()
		w, err := c.Append(ctx, []*event.Request{{Session: session, Kind: "llm.response", Subject: subj,
			Actor: event.Actor{Type: "agent", ID: "triage-bot"}, Payload: json.RawMessage(`{"text":"` + text + `"}`)}})
		if err != nil {
			t.Fatal(err)
		}
		return w[0]
	}
	e9 := write(admin, "case-9", subject, "ERASE-ME-nine")
	e10 := write(admin, "case-10", subject, "ERASE-ME-ten")
	e11 := write(admin, "case-11", "patient-7", "KEEP-ME-eleven")
	var salts [][]byte
	for _, w := range []client.Written{e9, e10} {
		d, err := admin.Payload(ctx, w.Index)
		if err != nil {
			t.Fatal(err)
		}
		salts = append(salts, d.Salt)
	}
	ps := s.leafAt(t, e9.Index).Subject

	// Before: the secrets an erasure must destroy are in the files (so the
	// search below would find them).
	secrets := vaultSecrets(t, s.dir, DefaultTenant, []string{"case-9", "case-10"}, ps)
	if len(secrets) < 5 {
		t.Fatalf("%d secrets in vault.db, want 2 keys, 2 payloads and a pseudonym", len(secrets))
	}
	s.srv.Vault().Forget(ctx) // move the WAL into vault.db, as after an erasure
	if hits := findInDir(t, s.dir, secrets); len(hits) < len(secrets) {
		t.Fatalf("only %v of %d secrets found before the erasure: the search is blind", hits, len(secrets))
	}

	erase := func(c *client.Client, req api.ErasureRequest) (*api.ErasureResponse, error) {
		return c.Erase(ctx, req)
	}
	bySubject := api.ErasureRequest{Target: api.Target{Subject: subject}, LegalBasis: "gdpr-art17-1a", Reason: "request of 2026-11-30"}
	byCase10 := api.ErasureRequest{Target: api.Target{Session: "case-10"}, LegalBasis: "gdpr-art17-1a"}

	// A hold on the subject covers each of its sessions, override or not.
	ptok, _ := s.token(t, auth.Spec{Name: "dpo", Tenant: DefaultTenant, Scopes: []string{auth.ScopePrivacy}})
	dpo := s.client(t, ptok)
	var hold *api.HoldResponse
	s.appends(t, "a hold on the subject", []string{"hold.placed"}, func() {
		var err error
		if hold, err = dpo.PlaceHold(ctx, api.Target{Subject: subject}, "litigation 2026-17"); err != nil {
			t.Fatal(err)
		}
	})
	if hold.Hold.Subject != ps || strings.Contains(fmt.Sprint(s.leafAt(t, hold.Event.Index)), subject) {
		t.Fatalf("hold %+v: want the pseudonym %s, never the subject", hold.Hold, ps)
	}
	for _, req := range []api.ErasureRequest{bySubject, byCase10, {Target: byCase10.Target, LegalBasis: "gdpr-art17-1a", OverrideReason: "urgent"}} {
		s.appends(t, "an erasure under hold", nil, func() {
			_, err := erase(dpo, req)
			ce := wantAPIError(t, "erasure under hold", err, http.StatusConflict, "legal_hold")
			if !strings.Contains(ce.Message, hold.Hold.ID) {
				t.Errorf("legal_hold answer %q does not name the hold", ce.Message)
			}
		})
	}
	s.appends(t, "a release", []string{"hold.released"}, func() {
		if _, err := dpo.ReleaseHold(ctx, hold.Hold.ID); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := dpo.ReleaseHold(ctx, hold.Hold.ID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("second release: %v", err)
	}
	// A hold on one of the subject's sessions stops the subject's erasure.
	h2, err := dpo.PlaceHold(ctx, api.Target{Session: "case-9"}, "audit 2026-Q4")
	if err != nil {
		t.Fatal(err)
	}
	s.appends(t, "a subject erasure with a session held", nil, func() {
		_, err := erase(dpo, bySubject)
		wantAPIError(t, "session hold", err, http.StatusConflict, "legal_hold")
	})
	if _, err := dpo.ReleaseHold(ctx, h2.Hold.ID); err != nil {
		t.Fatal(err)
	}

	// Bad requests append nothing.
	wtok, _ := s.token(t, auth.Spec{Name: "writer", Tenant: DefaultTenant, Scopes: []string{auth.ScopeWrite, auth.ScopeRead, auth.ScopeAudit}})
	for _, c := range []struct {
		what   string
		c      *client.Client
		req    api.ErasureRequest
		status int
		code   string
	}{
		{"no legal basis", dpo, api.ErasureRequest{Target: byCase10.Target}, 400, "invalid_event"},
		{"session and subject", dpo, api.ErasureRequest{Target: api.Target{Session: "case-9", Subject: subject}, LegalBasis: "x"}, 400, "invalid_event"},
		{"an unknown session", dpo, api.ErasureRequest{Target: api.Target{Session: "case-404"}, LegalBasis: "x"}, 404, "not_found"},
		{"an unknown subject", dpo, api.ErasureRequest{Target: api.Target{Subject: "nobody"}, LegalBasis: "x"}, 404, "not_found"},
		{"a token without admin or privacy", s.client(t, wtok), bySubject, 403, "forbidden"},
	} {
		s.appends(t, c.what, nil, func() {
			_, err := erase(c.c, c.req)
			wantAPIError(t, c.what, err, c.status, c.code)
		})
	}

	// The erasure.
	var er *api.ErasureResponse
	s.appends(t, "the erasure", []string{"erasure"}, func() {
		if er, err = erase(dpo, bySubject); err != nil {
			t.Fatal(err)
		}
	})
	if !slices.Equal(er.Sessions, []string{"case-10", "case-9"}) || er.Payloads != 2 || er.Override || !er.Forgotten || er.Subject != ps {
		t.Fatalf("erasure %+v", er)
	}
	el := s.leafAt(t, er.Event.Index)
	if el.Attributes["erasure.legal_basis"] != "gdpr-art17-1a" || el.Attributes["erasure.override"] != false || el.Attributes["erasure.subject"] != ps || el.Writer.Via != event.ViaServer {
		t.Fatalf("erasure leaf %+v", el)
	}
	for _, w := range []client.Written{e9, e10} {
		code, body, _ := s.do(t, "GET", fmt.Sprintf("/v1/events/%d/payload", w.Index), s.admin, nil)
		if code != http.StatusGone || !strings.Contains(string(body), `"erased"`) {
			t.Errorf("payload %d after erasure: %d %s", w.Index, code, body)
		}
	}
	if _, err := admin.Pseudonym(ctx, "", ps); !errors.Is(err, client.ErrErased) {
		t.Errorf("pseudonym after erasure: %v", err)
	}
	if d, err := admin.Payload(ctx, e11.Index); err != nil || !strings.Contains(string(d.Payload), "KEEP-ME") {
		t.Fatalf("another subject's payload after the erasure: %v", err)
	}
	// Nothing of it in any file: not the wrapped keys, ciphertexts or sealed
	// pseudonym, nor the plaintexts, salts (raw, hex, base64) or subject.
	needles := slices.Clone(secrets)
	for _, sl := range salts {
		needles = append(needles, sl, []byte(hex.EncodeToString(sl)), []byte(base64.StdEncoding.EncodeToString(sl)))
	}
	needles = append(needles, []byte("ERASE-ME"), []byte(subject))
	if hits := findInDir(t, s.dir, needles); len(hits) > 0 {
		t.Fatalf("after the erasure: %v", hits)
	}
	s.audit(t)

	// The retention floor of clinic-a (part11, 7 years).
	ctok, _ := s.token(t, auth.Spec{Name: "clinic-a-admin", Tenant: "clinic-a", Scopes: []string{auth.ScopeAdmin}})
	clinic := s.client(t, ctok)
	rx := write(clinic, "rx-1", "", "prescription")
	rxTime, _ := time.Parse(event.TimeFormat, s.leafAt(t, rx.Index).Time)
	until := rxTime.AddDate(7, 0, 0).Format(time.RFC3339)
	rxReq := api.ErasureRequest{Target: api.Target{Session: "rx-1"}, LegalBasis: "gdpr-art17-1a"}
	s.appends(t, "an erasure inside the floor", nil, func() {
		_, err := erase(clinic, rxReq)
		ce := wantAPIError(t, "inside the floor", err, http.StatusConflict, "retention_floor")
		if !strings.Contains(ce.Message, until) || !strings.Contains(ce.Message, "7y") {
			t.Errorf("retention_floor answer %q does not name the floor and its end %s", ce.Message, until)
		}
	})
	rxReq.OverrideReason = "court order 2026-991"
	s.appends(t, "an override", []string{"erasure"}, func() {
		if er, err = erase(clinic, rxReq); err != nil {
			t.Fatal(err)
		}
	})
	ol := s.leafAt(t, er.Event.Index)
	if !er.Override || ol.Tenant != "clinic-a" || ol.Attributes["erasure.override"] != true ||
		ol.Attributes["erasure.override_reason"] != "court order 2026-991" || ol.Attributes["erasure.floor"] != "7y" {
		t.Fatalf("override leaf %+v", ol)
	}
	if _, err := clinic.Payload(ctx, rx.Index); !errors.Is(err, client.ErrErased) {
		t.Errorf("payload after the override: %v", err)
	}
	s.audit(t)
}

// TestErasureOnBehalfOf is the attack of issue #24 (finding 3) over HTTP:
// with eu-ai-act, erasing a person who appears only as on_behalf_of in a
// held session is refused (409, nothing appended, the mapping intact), a
// hold on a person covers the sessions where they are on_behalf_of, and
// inside the floor the erasure needs override_reason.
func TestErasureOnBehalfOf(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.Compliance = []string{"eu-ai-act"} })
	ctx := context.Background()
	admin := s.client(t, s.admin)
	w, err := admin.Append(ctx, []*event.Request{
		{Session: "held-3", Kind: "llm.request", Actor: event.Actor{Type: "agent", ID: "scribe", OnBehalfOf: "dr.trent"}, Payload: json.RawMessage(`"dictation"`)},
		{Session: "ward-4", Kind: "llm.request", Actor: event.Actor{Type: "agent", ID: "scribe", OnBehalfOf: "dr.held"}, Payload: json.RawMessage(`"rounds"`)},
		{Session: "ward-5", Kind: "llm.request", Actor: event.Actor{Type: "agent", ID: "scribe", OnBehalfOf: "dr.floor"}, Payload: json.RawMessage(`"notes"`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	trent := s.leafAt(t, w[0].Index).Actor.OnBehalfOf
	ptok, _ := s.token(t, auth.Spec{Name: "dpo", Tenant: DefaultTenant, Scopes: []string{auth.ScopePrivacy, auth.ScopeAudit}})
	dpo := s.client(t, ptok)
	if _, err := dpo.PlaceHold(ctx, api.Target{Session: "held-3"}, "litigation"); err != nil {
		t.Fatal(err)
	}
	if _, err := dpo.PlaceHold(ctx, api.Target{Subject: "dr.held"}, "investigation"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  api.ErasureRequest
		code string
	}{
		{"the person of a held session", api.ErasureRequest{Target: api.Target{Subject: "dr.trent"}, LegalBasis: "gdpr-art17-1a"}, "legal_hold"},
		{"the same with an override", api.ErasureRequest{Target: api.Target{Subject: "dr.trent"}, LegalBasis: "gdpr-art17-1a", OverrideReason: "urgent"}, "legal_hold"},
		{"a session of a held person", api.ErasureRequest{Target: api.Target{Session: "ward-4"}, LegalBasis: "gdpr-art17-1a", OverrideReason: "urgent"}, "legal_hold"},
		{"a held person", api.ErasureRequest{Target: api.Target{Subject: "dr.held"}, LegalBasis: "gdpr-art17-1a"}, "legal_hold"},
		{"a person inside the floor", api.ErasureRequest{Target: api.Target{Subject: "dr.floor"}, LegalBasis: "gdpr-art17-1a"}, "retention_floor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.appends(t, tc.name, nil, func() {
				_, err := dpo.Erase(ctx, tc.req)
				wantAPIError(t, tc.name, err, http.StatusConflict, tc.code)
			})
		})
	}
	if v, err := dpo.Pseudonym(ctx, DefaultTenant, trent); err != nil || v.Value != "dr.trent" {
		t.Fatalf("the mapping of %s after refused erasures: %+v, %v", trent, v, err)
	}
	if _, err := dpo.Payload(ctx, w[0].Index); err != nil {
		t.Fatalf("the payload after refused erasures: %v", err)
	}
	// With an override, the person inside the floor is erased with the
	// session where they are on_behalf_of.
	var e *api.ErasureResponse
	s.appends(t, "an override", []string{"erasure"}, func() {
		if e, err = dpo.Erase(ctx, api.ErasureRequest{Target: api.Target{Subject: "dr.floor"}, LegalBasis: "gdpr-art17-1a", OverrideReason: "court order 17"}); err != nil {
			t.Fatal(err)
		}
	})
	if !e.Override || !slices.Equal(e.Sessions, []string{"ward-5"}) {
		t.Fatalf("override erasure = %+v, want ward-5 with override", e)
	}
}

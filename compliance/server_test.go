package compliance

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// liveLog is a log server with a witness, the compliance reporter and
// some real traffic: payloads, a signer, signatures made through the API,
// an erasure.
type liveLog struct {
	srv   *server.Server
	hs    *httptest.Server
	key   trust
	admin *client.Client
	token string
	from  time.Time
}

type trust struct {
	vkey   string
	policy *checkpoint.Policy
}

func startLive(t *testing.T) *liveLog { t.Helper(); return startLiveWith(t, nil) }

// startLiveWith is startLive with sd, when not nil, passed to the log's
// SetFieldCommitmentForTest before the traffic is written.
func startLiveWith(t *testing.T, sd func(c *event.Commitment, salt, payload []byte)) *liveLog {
	t.Helper()
	rep, err := NewReporter([]byte("controls:\n  sample_size: 6\n  gates:\n    - {tools: [payments.transfer], meaning: approved}\n"), "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fx := servertest.Start(t, func(cfg *server.Config) {
		keys, _, err := server.InitKeys(cfg.DataDir, "", server.KeySources{})
		if err != nil {
			t.Fatal(err)
		}
		w := witnesstest.StartOurWitness(t, keys.Signer.Name(), keys.VKey)
		cfg.Compliance = []string{"part11", "sox"}
		cfg.WitnessPolicy = []byte(w.PolicyLine("ours") + "\nquorum ours\n")
		cfg.Reporter = rep
		cfg.BatchMaxAge = 0
	})
	l := &liveLog{srv: fx.Srv, hs: fx.HS, admin: fx.Client(fx.Admin), token: fx.Admin, from: time.Now().UTC().Add(-time.Minute).Truncate(time.Second),
		key: trust{vkey: fx.Srv.VerifierKey(), policy: fx.Srv.Policy()}}
	if sd != nil {
		fx.Srv.Log().SetFieldCommitmentForTest(sd)
	}
	l.traffic(t)
	return l
}

func (l *liveLog) traffic(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	var recs []client.Written
	for i := range 20 {
		w, err := l.admin.Append(ctx, []*event.Request{{Session: fmt.Sprintf("case-%d", i%4), Kind: "llm.response", Subject: fmt.Sprintf("patient-%d", i%3),
			Actor: event.Actor{Type: "agent", ID: "triage-bot"}, Payload: json.RawMessage(fmt.Sprintf(`{"answer":"summary %d"}`, i))}})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, w...)
	}
	if _, err := l.admin.Enroll(ctx, api.Enrollment{ID: "dr-ada", PrintedName: "Dr. Ada Lovelace", Secret: "correct horse battery", IdentityVerifiedBy: "hr.jones"}); err != nil {
		t.Fatal(err)
	}
	tok, _, err := l.srv.Tokens().Create(ctx, auth.Spec{Name: "ada", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeSign}, Actors: []string{"dr-ada"}})
	if err != nil {
		t.Fatal(err)
	}
	ada, _ := client.New(l.hs.URL, client.WithToken(tok))
	sess := ""
	for i, r := range recs[:3] {
		req := api.SignRequest{Secret: "correct horse battery", Index: r.Index, LeafHash: hex.EncodeToString(r.LeafHash), Meaning: "approved", SigningSession: sess}
		if i == 0 {
			req.Signer = "dr-ada"
		}
		s, err := ada.Sign(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		sess = s.SigningSession
	}
	// An erasure: its sampled payloads count as erased by a logged erasure.
	if _, err := l.admin.Erase(ctx, api.ErasureRequest{Target: api.Target{Session: "case-3"}, LegalBasis: "gdpr-art17-1a", OverrideReason: "test of an override"}); err != nil {
		t.Fatal(err)
	}
	l.waitCovered(t)
}

func (l *liveLog) waitCovered(t *testing.T) {
	t.Helper()
	size, _ := l.srv.Log().Reader().IntegratedSize(context.Background())
	deadline := time.Now().Add(20 * time.Second)
	for {
		cp, _, err := l.srv.Log().Checkpoint(context.Background())
		if err == nil && cp.Size >= size && l.key.policy.Satisfied(l.latestRaw(t)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no cosigned checkpoint covers the log")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *liveLog) latestRaw(t *testing.T) []byte {
	raw, err := l.admin.Tiles().ReadCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (l *liveLog) get(t *testing.T, path, token string) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", l.hs.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func (l *liveLog) source(t *testing.T) Source {
	key, err := checkpoint.NewVerifier(l.key.vkey)
	if err != nil {
		t.Fatal(err)
	}
	return Source{Log: l.admin, Key: key, Policy: l.key.policy, Logger: slog.New(slog.DiscardHandler)}
}

// TestServerReportRecomputes: the server's report (GET /v1/reports/...),
// anchored by a report.issued event with a receipt, and the one a third
// party recomputes from the log's tiles with its own verification hash
// equal; a report edited afterwards does not verify.
func TestServerReportRecomputes(t *testing.T) {
	l := startLive(t)
	q := fmt.Sprintf("from=%s&to=%s", l.from.Format(time.RFC3339), time.Now().UTC().Add(time.Hour).Format(time.RFC3339))
	code, body, _ := l.get(t, "/v1/reports/part11?"+q, l.token)
	if code != 200 {
		t.Fatalf("GET /v1/reports/part11 = %d %s", code, body)
	}
	var ans struct {
		Report  json.RawMessage   `json:"report"`
		SHA256  string            `json:"sha256"`
		Event   api.EventResponse `json:"event"`
		Receipt *api.Receipt      `json:"receipt"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || ans.Receipt == nil || ans.Event.Index == 0 || Digest(ans.Report) != ans.SHA256 {
		t.Fatalf("answer %s (%v)", body, err)
	}
	var shape struct {
		Controls []map[string]json.RawMessage `json:"controls"`
	}
	json.Unmarshal(ans.Report, &shape)
	for _, c := range shape.Controls {
		for _, k := range []string{"id", "citation", "title", "status", "evidence"} {
			if _, ok := c[k]; !ok {
				t.Fatalf("control without %q: %v", k, c)
			}
		}
	}
	r, err := ParseReport(ans.Report)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Controls {
		if c.Status == NotSatisfied {
			t.Errorf("%s not satisfied on a clean log: %s %+v", c.ID, c.Evidence.Summary, c.Evidence.Offending)
		}
	}
	if c := control(r, "part11-11.10c"); c.Evidence.Counts["payloads_read_back"] == 0 || c.Evidence.Counts["payloads_sampled"] != 6 {
		t.Errorf("payload sample: %+v", c.Evidence.Counts)
	}
	if len(r.Log.Cosigned) != 1 || len(r.Signatures) != 3 {
		t.Errorf("cosigned %v, %d signatures", r.Log.Cosigned, len(r.Signatures))
	}
	// The event that anchors it.
	issued, err := event.ParseLeaf(mustBase64(t, ans.Event.Leaf))
	if err != nil || issued.Kind != event.KindReportIssued || issued.Attributes["report.sha256"] != ans.SHA256 || issued.Writer.Via != event.ViaServer {
		t.Fatalf("report.issued %+v (%v)", issued, err)
	}

	// A third party recomputes it from the tiles.
	l.waitCovered(t)
	v, err := Verify(context.Background(), l.source(t), body)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Equal || v.Anchored == nil || *v.Anchored != ans.Event.Index {
		t.Fatalf("verification: %+v", v)
	}
	// The bare report with its anchor as a tlog-proof apart (monitor
	// verify-report --anchor); the tlog-proof of another entry anchors
	// nothing.
	if ans.Receipt.TlogProof == "" {
		t.Fatal("the report's receipt carries no tlog_proof")
	}
	var bareReport map[string]json.RawMessage
	json.Unmarshal(body, &bareReport)
	v, err = VerifyAnchored(context.Background(), l.source(t), bareReport["report"], []byte(ans.Receipt.TlogProof))
	if err != nil || !v.Equal || v.Anchored == nil || *v.Anchored != ans.Event.Index {
		t.Fatalf("report with its tlog-proof anchor: %+v %v", v, err)
	}
	other, _, err := l.admin.EntryProof(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyAnchored(context.Background(), l.source(t), bareReport["report"], other); !errors.Is(err, ErrNotAnchored) {
		t.Fatalf("report with another entry's tlog-proof: %v, want ErrNotAnchored", err)
	}
	// An edited answer does not verify: the control that differs is named,
	// and the answer's sha256 is found not to be its report's.
	edited := bytes.Replace(body, []byte(`"status":"satisfied"`), []byte(`"status":"not-satisfied"`), 1)
	v, err = Verify(context.Background(), l.source(t), edited)
	if err != nil || v.Equal || !strings.HasPrefix(v.Difference, "control ") || !strings.Contains(v.Detail, "edited after it was issued") || v.Anchored != nil {
		t.Fatalf("an edited answer: %+v %v", v, err)
	}
	var bare map[string]json.RawMessage
	json.Unmarshal(body, &bare)
	v, err = Verify(context.Background(), l.source(t), bytes.Replace(bare["report"], []byte(`"status":"satisfied"`), []byte(`"status":"not-satisfied"`), 1))
	if err != nil || v.Equal || !strings.HasPrefix(v.Difference, "control ") {
		t.Fatalf("an edited report: %+v %v", v, err)
	}
}

func mustBase64(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	if err := json.Unmarshal([]byte(`"`+s+`"`), &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServerReportFormatsAndAccess: every format answers with the report's
// digest in a header; the OSCAL one validates; a tenant's auditor gets
// its own tenant only; bad queries are 400, unknown profiles 404, and a
// token without the audit scope 403.
func TestServerReportFormatsAndAccess(t *testing.T) {
	l := startLive(t)
	ctx := context.Background()
	q := fmt.Sprintf("from=%s&to=%s", l.from.Format(time.RFC3339), time.Now().UTC().Add(time.Hour).Format(time.RFC3339))
	formats := []string{"oscal", "html"}
	if _, err := ChromiumPath(""); err == nil {
		formats = append(formats, "pdf")
	}
	for _, f := range formats {
		code, body, h := l.get(t, "/v1/reports/sox?format="+f+"&"+q, l.token)
		if code != 200 || len(h.Get("X-Report-SHA256")) != 64 || h.Get("X-Report-Event") == "" {
			t.Fatalf("%s: %d %v %.200s", f, code, h, body)
		}
		switch f {
		case "oscal":
			if err := validateOSCAL(t, body); err != nil {
				t.Fatalf("server OSCAL: %v", err)
			}
		case "html":
			if !bytes.Contains(body, []byte("Dr. Ada Lovelace")) || h.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Fatalf("html: %s", h.Get("Content-Type"))
			}
		case "pdf":
			if !bytes.HasPrefix(body, []byte("%PDF-")) {
				t.Fatal("not a PDF")
			}
		}
	}
	other, _, _ := l.srv.Tokens().Create(ctx, auth.Spec{Name: "aud-b", Tenant: "clinic-b", Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	writer, _, _ := l.srv.Tokens().Create(ctx, auth.Spec{Name: "w", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeWrite, auth.ScopeRead}})
	for _, c := range []struct {
		path, token string
		code        int
	}{
		{"/v1/reports/part11?tenant=default&" + q, other, 403},
		{"/v1/reports/part11?" + q, writer, 403},
		{"/v1/reports/part11?" + q, "", 401},
		{"/v1/reports/hipaa?" + q, l.token, 404},
		{"/v1/reports/part11?from=yesterday&to=today", l.token, 400},
		{"/v1/reports/part11?format=docx&" + q, l.token, 400},
		{"/v1/reports/part11?extra=1&" + q, l.token, 400},
	} {
		if code, body, _ := l.get(t, c.path, c.token); code != c.code {
			t.Errorf("%s: %d %s, want %d", c.path, code, body, c.code)
		}
	}
	// clinic-b's auditor gets clinic-b's report, with nothing of default in it.
	code, body, _ := l.get(t, "/v1/reports/part11?"+q, other)
	if code != 200 {
		t.Fatalf("tenant report: %d %s", code, body)
	}
	var ans api.ReportResponse
	json.Unmarshal(body, &ans)
	r, _ := ParseReport(ans.Report)
	// clinic-b's one entry is the creation of its auditor's token (in the
	// report when a checkpoint covers it already).
	if r.Tenant != "clinic-b" || r.Entries.InScope > 1 || r.Entries.InPeriod != r.Entries.ByKind[event.KindTokenCreated] || len(r.Signatures) != 0 {
		t.Fatalf("clinic-b's report: tenant %s, %d in scope, %v in the period, %d signatures", r.Tenant, r.Entries.InScope, r.Entries.ByKind, len(r.Signatures))
	}
	if _, err := l.admin.Report(ctx, api.ReportQuery{Profile: "eu-ai-act", From: l.from, To: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("client.Report: %v", err)
	}
	if _, err := l.admin.Report(ctx, api.ReportQuery{Profile: "nope", From: l.from, To: time.Now().Add(time.Hour)}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("client.Report of an unknown profile: %v", err)
	}
}

// TestServerReportPayloadSampleChecksSD: the log wrote every payload's leaf
// with another payload's field commitment (sd); the payloads open their
// HMACs. The payload sample of the report reads them back with
// client.Payload, which refuses them: 21 CFR 11.10(c) is not satisfied and
// names each sampled entry that was not erased.
func TestServerReportPayloadSampleChecksSD(t *testing.T) {
	other, _ := disclosure.Build(bytes.Repeat([]byte{1}, 32), []byte(`{"answer":"another payload"}`))
	l := startLiveWith(t, func(c *event.Commitment, salt, payload []byte) { c.SD = other.Hash() })
	q := fmt.Sprintf("from=%s&to=%s", l.from.Format(time.RFC3339), time.Now().UTC().Add(time.Hour).Format(time.RFC3339))
	code, body, _ := l.get(t, "/v1/reports/part11?"+q, l.token)
	if code != 200 {
		t.Fatalf("GET /v1/reports/part11 = %d %s", code, body)
	}
	var ans struct {
		Report json.RawMessage `json:"report"`
	}
	json.Unmarshal(body, &ans)
	r, err := ParseReport(ans.Report)
	if err != nil {
		t.Fatal(err)
	}
	c := control(r, "part11-11.10c")
	bad := 0
	for _, o := range c.Evidence.Offending {
		if strings.Contains(o.Reason, client.ErrCommitment.Error()) {
			bad++
		}
	}
	if c.Status != NotSatisfied || c.Evidence.Counts["payloads_read_back"] != 0 || bad == 0 ||
		bad+c.Evidence.Counts["payloads_erased_by_logged_erasure"] != c.Evidence.Counts["payloads_sampled"] {
		t.Errorf("11.10(c) %s: %+v, %d offending for the commitment", c.Status, c.Evidence, bad)
	}
}

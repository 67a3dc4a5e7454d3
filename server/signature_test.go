package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/signature"
	"github.com/llmaudittrail/llmaudittrail/signer"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// fastSigners keeps argon2id cheap in tests (the default costs 64 MiB and
// three passes per attempt) and locks a signer after three failures.
func fastSigners(c *Config) {
	c.SignerPolicy = signer.Policy{Time: 1, MemoryKiB: 1024, Threads: 1, MaxFailures: 3}
}

// kindsSince returns the kinds of the entries appended at from and after.
func (s *testServer) kindsSince(t *testing.T, from uint64) []string {
	t.Helper()
	ctx := context.Background()
	size := s.size(t)
	var out []string
	for i := from; i < size; i++ {
		d, err := s.srv.Log().ReadLeaf(ctx, i, size)
		if err != nil {
			t.Fatal(err)
		}
		h, err := event.ParseHead(d)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Kind)
	}
	return out
}

// leafAt parses the entry at index.
func (s *testServer) leafAt(t *testing.T, index uint64) *event.Leaf {
	t.Helper()
	d, err := s.srv.Log().ReadLeaf(context.Background(), index, s.size(t))
	if err != nil {
		t.Fatal(err)
	}
	l, err := event.ParseLeaf(d)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appends runs f and checks that exactly the kinds want were appended.
func (s *testServer) appends(t *testing.T, what string, want []string, f func()) {
	t.Helper()
	before := s.size(t)
	f()
	if got := s.kindsSince(t, before); !slices.Equal(got, want) {
		t.Errorf("%s appended %v, want %v", what, got, want)
	}
}

func (s *testServer) client(t *testing.T, token string) *client.Client {
	t.Helper()
	c, err := client.New(s.ts.URL, client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wantAPIError checks that err is the server's answer status/code.
func wantAPIError(t *testing.T, what string, err error, status int, code string) *client.Error {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != status || ce.Code != code {
		t.Fatalf("%s: %v, want %d %s", what, err, status, code)
	}
	return ce
}

func (s *testServer) audit(t *testing.T) *verify.Report {
	t.Helper()
	s.waitCovered(t, s.size(t)-1)
	key, _ := checkpoint.NewVerifier(s.srv.VerifierKey())
	rep, err := verify.Audit(context.Background(), verify.Config{Log: s.client(t, s.admin), LogKey: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("audit findings: %+v", rep.Findings)
	}
	return rep
}

const (
	adaName   = "Dr. Ada Lovelace"
	adaSecret = "correct horse battery staple"
)

// TestSignatureEndToEnd: a clinician is enrolled, signs an llm.response
// with meaning "approved", and a third party verifies the exported
// signature twice: with signature.VerifyExport (receipts against the log
// key), and with a program that uses only the standard library's
// crypto/ed25519, the statement format of docs/signatures.md and the
// enrollment leaf.
func TestSignatureEndToEnd(t *testing.T) {
	s := newTestServer(t, fastSigners)
	ctx := context.Background()
	admin := s.client(t, s.admin)
	rec := s.post(t, "triage-7", "llm.response", map[string]string{"summary": "chest pain, ECG normal, discharge"})

	// Enrollment: the interface's exact body and answer.
	var enrolled api.SignerResponse
	s.appends(t, "enrollment", []string{signature.KindEnrolled}, func() {
		body := `{"id":"dr-ada","printed_name":"Dr. Ada Lovelace","secret":"` + adaSecret + `","identity_verified_by":"hr.jones"}`
		code, b, _ := s.do(t, "POST", "/v1/signers", s.admin, []byte(body))
		if code != http.StatusCreated {
			t.Fatalf("POST /v1/signers = %d %s", code, b)
		}
		if err := json.Unmarshal(b, &enrolled); err != nil || enrolled.PublicKey == "" || enrolled.Event.Index == 0 {
			t.Fatalf("enrollment answer %s (%v)", b, err)
		}
	})
	el := s.leafAt(t, enrolled.Event.Index)
	if el.Attributes[signature.AttrPublicKey] != enrolled.PublicKey || el.Attributes[signature.AttrPrintedName] != adaName ||
		el.Attributes[signature.AttrVerifiedBy] != "hr.jones" || el.Writer.Via != event.ViaServer {
		t.Fatalf("enrollment leaf %+v", el)
	}
	// Re-enrollment of the id (for anyone) is refused and appends nothing.
	s.appends(t, "re-enrollment", nil, func() {
		_, err := admin.Enroll(ctx, api.Enrollment{ID: "dr-ada", PrintedName: "Mallory", Secret: "another secret", IdentityVerifiedBy: "hr.jones"})
		wantAPIError(t, "re-enrollment", err, http.StatusConflict, "signer_exists")
	})

	tok, _ := s.token(t, auth.Spec{Name: "ada-sign", Tenant: DefaultTenant, Scopes: []string{auth.ScopeSign, auth.ScopeRead}, Actors: []string{"dr-ada"}})
	ada := s.client(t, tok)
	var sig *api.SignatureResponse
	s.appends(t, "signing", []string{event.KindHumanSignature}, func() {
		var err error
		sig, err = ada.Sign(ctx, api.SignRequest{Signer: "dr-ada", Secret: adaSecret, Index: rec.Index, LeafHash: rec.LeafHash,
			Meaning: "approved", Reason: "triage summary checked against the chart"}, client.WaitForCheckpoint())
		if err != nil {
			t.Fatal(err)
		}
	})
	if sig.Event.Receipt == nil || sig.SigningSession == "" {
		t.Fatalf("signature answer without receipt or signing session: %+v", sig)
	}
	st, err := signature.ParseStatement(sig.Statement)
	if err != nil {
		t.Fatal(err)
	}
	if canon, _ := st.Marshal(); string(canon) != sig.StatementText {
		t.Fatalf("statement %s is not the canonical %s", canon, sig.StatementText)
	}
	want := signature.Statement{Origin: s.srv.Log().Origin(), Index: rec.Index, LeafHash: rec.LeafHash, Meaning: "approved",
		Reason: "triage summary checked against the chart", Tenant: DefaultTenant, Signer: "dr-ada", PrintedName: adaName,
		KeyID: enrolled.Signer.KeyID, Time: st.Time, Nonce: st.Nonce}
	if *st != want {
		t.Fatalf("statement %+v, want %+v", st, want)
	}
	// The signature event is in the record's session, by the signer.
	sl := s.leafAt(t, sig.Event.Index)
	if sl.Session != "triage-7" || sl.Actor.ID != "dr-ada" || sl.Actor.Type != "human" || sl.Attributes[signature.AttrStatement] != sig.StatementText {
		t.Fatalf("signature leaf %+v", sl)
	}

	// Export, as a third party receives it.
	s.waitCovered(t, s.size(t)-1)
	export, err := ada.SignatureExport(ctx, sig.Event.Index)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := checkpoint.NewVerifier(s.srv.VerifierKey())
	v, err := signature.VerifyExport(export, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.EnrollmentIndex != enrolled.Event.Index || v.EventIndex == nil || *v.EventIndex != sig.Event.Index || !v.RecordChecked {
		t.Fatalf("verified %+v", v)
	}
	// The same signature as three tlog-proofs (each receipt of the export
	// carries its own), and a set where the record is not the signed one.
	var x0 signature.Export
	if err := json.Unmarshal(export, &x0); err != nil || x0.Event.TlogProof == "" || x0.Enrollment.TlogProof == "" || x0.Record.TlogProof == "" {
		t.Fatalf("export without tlog-proofs: %s (%v)", export, err)
	}
	vp, err := signature.VerifyProofs([]byte(x0.Event.TlogProof), []byte(x0.Enrollment.TlogProof), []byte(x0.Record.TlogProof), key, nil)
	if err != nil || vp.EnrollmentIndex != enrolled.Event.Index || !vp.RecordChecked || vp.Statement.Meaning != "approved" {
		t.Fatalf("VerifyProofs = %+v, %v", vp, err)
	}
	if _, err := signature.VerifyProofs([]byte(x0.Event.TlogProof), []byte(x0.Enrollment.TlogProof), []byte(x0.Enrollment.TlogProof), key, nil); !errors.Is(err, signature.ErrInvalid) {
		t.Fatalf("VerifyProofs with the enrollment as the record: %v", err)
	}
	if _, err := signature.VerifyProofs([]byte(x0.Record.TlogProof), []byte(x0.Enrollment.TlogProof), nil, key, nil); !errors.Is(err, signature.ErrInvalid) {
		t.Fatalf("VerifyProofs with the record as the signature event: %v", err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "signature.json")
	os.WriteFile(good, export, 0o644)
	out, err := exec.Command("go", "run", "./testdata/verifysig", good).CombinedOutput()
	if err != nil {
		t.Fatalf("stdlib verifier: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `OK: "Dr. Ada Lovelace" (dr-ada) approved entry `+fmt.Sprint(rec.Index)) {
		t.Fatalf("stdlib verifier said %s", out)
	}

	// Both checkers refuse a tampered export: the meaning changed after
	// signing.
	var x map[string]any
	json.Unmarshal(export, &x)
	x["statement"] = strings.Replace(x["statement"].(string), `"meaning":"approved"`, `"meaning":"rejected"`, 1)
	bad, _ := json.Marshal(x)
	if _, err := signature.VerifyExport(bad, key, nil); !errors.Is(err, signature.ErrInvalid) {
		t.Fatalf("VerifyExport of a tampered export: %v", err)
	}
	badPath := filepath.Join(dir, "tampered.json")
	os.WriteFile(badPath, bad, 0o644)
	out, err = exec.Command("go", "run", "./testdata/verifysig", badPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "does not verify") {
		t.Fatalf("stdlib verifier of a tampered export: %v\n%s", err, out)
	}

	if rep := s.audit(t); rep.Signatures != 1 {
		t.Fatalf("audit checked %d signatures, want 1", rep.Signatures)
	}
}

// TestSignatureRefusals: every refusal answers its status and appends
// what it should (a signature.failed for a failed attempt, signer.locked
// at the lock-out) and nothing else.
func TestSignatureRefusals(t *testing.T) {
	s := newTestServer(t, fastSigners)
	ctx := context.Background()
	admin := s.client(t, s.admin)
	rec := s.post(t, "journal", "llm.response", map[string]string{"entry": "accrual 4711"})
	rec2 := s.post(t, "journal", "llm.response", map[string]string{"entry": "accrual 4712"})
	for _, id := range []string{"dr-ada", "dr-lock", "dr-rev"} {
		if _, err := admin.Enroll(ctx, api.Enrollment{ID: id, PrintedName: "Signer " + id, Secret: adaSecret, IdentityVerifiedBy: "hr.jones"}); err != nil {
			t.Fatal(err)
		}
	}
	bound := func(ids ...string) *client.Client {
		tok, _ := s.token(t, auth.Spec{Name: "sign-" + strings.Join(ids, "-"), Tenant: DefaultTenant, Scopes: []string{auth.ScopeSign, auth.ScopeRead}, Actors: ids})
		return s.client(t, tok)
	}
	ada, lock, rev := bound("dr-ada"), bound("dr-lock"), bound("dr-rev")
	req := func(signer string, index uint64, leafHash string) api.SignRequest {
		return api.SignRequest{Signer: signer, Secret: adaSecret, Index: index, LeafHash: leafHash, Meaning: "approved"}
	}
	failed := []string{signature.KindFailed}

	s.appends(t, "a token bound to another signer", failed, func() {
		_, err := lock.Sign(ctx, req("dr-ada", rec.Index, rec.LeafHash))
		wantAPIError(t, "not bound", err, http.StatusForbidden, "not_bound")
	})
	rtok, _ := s.token(t, auth.Spec{Name: "reader", Tenant: DefaultTenant, Scopes: []string{auth.ScopeRead, auth.ScopeWrite}, Actors: []string{"dr-ada"}})
	s.appends(t, "a token without the sign scope", nil, func() {
		_, err := s.client(t, rtok).Sign(ctx, req("dr-ada", rec.Index, rec.LeafHash))
		wantAPIError(t, "no sign scope", err, http.StatusForbidden, "forbidden")
	})
	s.appends(t, "a wrong secret", failed, func() {
		r := req("dr-ada", rec.Index, rec.LeafHash)
		r.Secret = "not the secret"
		_, err := ada.Sign(ctx, r)
		wantAPIError(t, "wrong secret", err, http.StatusUnauthorized, "wrong_secret")
	})
	s.appends(t, "a leaf hash of another record (transplant)", failed, func() {
		_, err := ada.Sign(ctx, req("dr-ada", rec.Index, rec2.LeafHash))
		wantAPIError(t, "transplant", err, http.StatusConflict, "leaf_mismatch")
	})
	s.appends(t, "an unknown index", failed, func() {
		_, err := ada.Sign(ctx, req("dr-ada", rec.Index+1000, rec.LeafHash))
		wantAPIError(t, "unknown index", err, http.StatusNotFound, "not_found")
	})
	s.appends(t, "an unknown meaning", nil, func() {
		r := req("dr-ada", rec.Index, rec.LeafHash)
		r.Meaning = "liked"
		_, err := ada.Sign(ctx, r)
		wantAPIError(t, "unknown meaning", err, http.StatusBadRequest, "invalid_event")
	})
	var first *api.SignatureResponse
	s.appends(t, "a signature", []string{event.KindHumanSignature}, func() {
		var err error
		if first, err = ada.Sign(ctx, req("dr-ada", rec.Index, rec.LeafHash)); err != nil {
			t.Fatal(err)
		}
	})
	s.appends(t, "the same signature again (replay)", failed, func() {
		_, err := ada.Sign(ctx, req("dr-ada", rec.Index, rec.LeafHash))
		wantAPIError(t, "replay", err, http.StatusConflict, "already_signed")
	})
	// Another meaning on the same record is another signature.
	s.appends(t, "a second meaning", []string{event.KindHumanSignature}, func() {
		r := req("dr-ada", rec.Index, rec.LeafHash)
		r.Meaning = "responsible"
		if _, err := ada.Sign(ctx, r); err != nil {
			t.Fatal(err)
		}
	})

	// Lock-out after three failures in the window (11.300(d)).
	wrong := req("dr-lock", rec.Index, rec.LeafHash)
	wrong.Secret = "guess guess"
	for i := range 3 {
		want := failed
		if i == 2 {
			want = []string{signature.KindFailed, signature.KindLocked}
		}
		s.appends(t, fmt.Sprintf("failure %d", i+1), want, func() {
			_, err := lock.Sign(ctx, wrong)
			wantAPIError(t, "wrong secret", err, http.StatusUnauthorized, "wrong_secret")
		})
	}
	s.appends(t, "a locked signer with the right secret", failed, func() {
		_, err := lock.Sign(ctx, req("dr-lock", rec.Index, rec.LeafHash))
		wantAPIError(t, "locked", err, http.StatusLocked, "locked")
		if !errors.Is(err, client.ErrLocked) {
			t.Error("a 423 is not client.ErrLocked")
		}
	})
	locked := s.leafAt(t, s.size(t)-2)
	if locked.Kind != signature.KindLocked || locked.Attributes[signature.AttrSigner] != "dr-lock" || locked.Writer.Via != event.ViaServer {
		t.Fatalf("lock-out leaf %+v", locked)
	}
	s.appends(t, "an unlock", []string{signature.KindUnlocked}, func() {
		if _, err := lock.UnlockSigner(ctx, "dr-lock"); !errors.Is(err, client.ErrForbidden) {
			t.Fatalf("unlock by the signer's own token: %v", err)
		}
		if _, err := admin.UnlockSigner(ctx, "dr-lock"); err != nil {
			t.Fatal(err)
		}
	})
	s.appends(t, "a signature after the unlock", []string{event.KindHumanSignature}, func() {
		if _, err := lock.Sign(ctx, req("dr-lock", rec.Index, rec.LeafHash)); err != nil {
			t.Fatal(err)
		}
	})

	// Revocation (11.300(c)): for good; the id is never enrolled again.
	s.appends(t, "a revocation", []string{signature.KindRevoked}, func() {
		if _, err := admin.RevokeSigner(ctx, "dr-rev", "badge lost"); err != nil {
			t.Fatal(err)
		}
	})
	s.appends(t, "a revoked signer", failed, func() {
		_, err := rev.Sign(ctx, req("dr-rev", rec.Index, rec.LeafHash))
		wantAPIError(t, "revoked", err, http.StatusForbidden, "signer_revoked")
	})
	s.appends(t, "re-enrollment of a revoked id", nil, func() {
		_, err := admin.Enroll(ctx, api.Enrollment{ID: "dr-rev", PrintedName: "Signer dr-rev", Secret: adaSecret, IdentityVerifiedBy: "hr.jones"})
		wantAPIError(t, "re-enroll", err, http.StatusConflict, "signer_exists")
	})

	// Rotation (11.300(b)): a new key under a new secret; the old secret
	// no longer signs, both signatures verify from the log.
	const newSecret = "a brand new secret"
	s.appends(t, "a rotation", []string{signature.KindKeyRotated}, func() {
		if _, err := ada.RotateKey(ctx, "dr-ada", adaSecret, newSecret); err != nil {
			t.Fatal(err)
		}
	})
	r := req("dr-ada", rec2.Index, rec2.LeafHash)
	s.appends(t, "the old secret after rotation", failed, func() {
		_, err := ada.Sign(ctx, r)
		wantAPIError(t, "old secret", err, http.StatusUnauthorized, "wrong_secret")
	})
	r.Secret = newSecret
	var second *api.SignatureResponse
	s.appends(t, "a signature with the new key", []string{event.KindHumanSignature}, func() {
		var err error
		if second, err = ada.Sign(ctx, r); err != nil {
			t.Fatal(err)
		}
	})
	s.waitCovered(t, s.size(t)-1)
	key, _ := checkpoint.NewVerifier(s.srv.VerifierKey())
	for _, sr := range []*api.SignatureResponse{first, second} {
		x, err := ada.SignatureExport(ctx, sr.Event.Index)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := signature.VerifyExport(x, key, nil); err != nil {
			t.Errorf("export of %d: %v", sr.Event.Index, err)
		}
	}
	// Another tenant's token sees no signature here.
	other, _ := s.token(t, auth.Spec{Name: "other-read", Tenant: "clinic-b", Scopes: []string{auth.ScopeRead}})
	if _, err := s.client(t, other).SignatureExport(ctx, first.Event.Index); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("export to another tenant: %v", err)
	}
	if rep := s.audit(t); rep.Signatures != 4 {
		t.Fatalf("audit checked %d signatures, want 4", rep.Signatures)
	}
}

// TestSigningSessions: 21 CFR 11.200(a)(1). The first signing of a session
// uses every component; later ones in the same continuous session the
// secret alone; a session is the token's own, and ends when idle or old.
func TestSigningSessions(t *testing.T) {
	// Generous limits: a loaded machine must not idle a session out early
	// (the signer package's tests check the limits exactly, on a fake clock).
	const idle, maxAge = 1500 * time.Millisecond, 4 * time.Second
	s := newTestServer(t, func(c *Config) {
		fastSigners(c)
		c.SignerPolicy.SessionIdle, c.SignerPolicy.SessionMax = idle, maxAge
	})
	ctx := context.Background()
	admin := s.client(t, s.admin)
	if _, err := admin.Enroll(ctx, api.Enrollment{ID: "dr-ada", PrintedName: adaName, Secret: adaSecret, IdentityVerifiedBy: "hr.jones"}); err != nil {
		t.Fatal(err)
	}
	tok, _ := s.token(t, auth.Spec{Name: "ada-1", Tenant: DefaultTenant, Scopes: []string{auth.ScopeSign}, Actors: []string{"dr-ada"}})
	tok2, _ := s.token(t, auth.Spec{Name: "ada-2", Tenant: DefaultTenant, Scopes: []string{auth.ScopeSign}, Actors: []string{"dr-ada"}})
	ada, ada2 := s.client(t, tok), s.client(t, tok2)
	n := 0
	record := func() api.EventResponse {
		n++
		return s.post(t, "batch", "llm.response", map[string]int{"n": n})
	}

	rec := record()
	// Without a session, the signer must be named.
	_, err := ada.Sign(ctx, api.SignRequest{Secret: adaSecret, Index: rec.Index, LeafHash: rec.LeafHash, Meaning: "reviewed"})
	wantAPIError(t, "no signer, no session", err, http.StatusBadRequest, "invalid_event")
	first, err := ada.Sign(ctx, api.SignRequest{Signer: "dr-ada", Secret: adaSecret, Index: rec.Index, LeafHash: rec.LeafHash, Meaning: "reviewed"})
	if err != nil {
		t.Fatal(err)
	}
	sess := first.SigningSession
	inSession := func(c *client.Client, secret string) (*api.SignatureResponse, error) {
		rec := record()
		return c.Sign(ctx, api.SignRequest{SigningSession: sess, Secret: secret, Index: rec.Index, LeafHash: rec.LeafHash, Meaning: "reviewed"})
	}
	// Later signings: the secret alone.
	next, err := inSession(ada, adaSecret)
	if err != nil {
		t.Fatal(err)
	}
	if next.SigningSession != sess {
		t.Fatalf("signing session changed from %s to %s", sess, next.SigningSession)
	}
	if st, _ := signature.ParseStatement(next.Statement); st.Signer != "dr-ada" || st.PrintedName != adaName {
		t.Fatalf("in-session statement %+v", st)
	}
	// The events say which components were used, and name the session by
	// a digest only.
	l1, l2 := s.leafAt(t, first.Event.Index), s.leafAt(t, next.Event.Index)
	if l1.Attributes[signature.AttrComponents] != "signer+secret" || l2.Attributes[signature.AttrComponents] != "secret" ||
		l1.Attributes[signature.AttrSession] != l2.Attributes[signature.AttrSession] || strings.Contains(fmt.Sprint(l1.Attributes), sess) {
		t.Fatalf("components/session attributes: %v / %v", l1.Attributes, l2.Attributes)
	}
	// ... never without it.
	_, err = inSession(ada, "")
	wantAPIError(t, "session without the secret", err, http.StatusUnauthorized, "wrong_secret")
	// Another token, even one bound to the same signer, cannot use it.
	_, err = inSession(ada2, adaSecret)
	wantAPIError(t, "another token's session", err, http.StatusUnauthorized, "signing_session")
	// Idle past the policy: the session is over; all components again.
	time.Sleep(idle + 200*time.Millisecond)
	_, err = inSession(ada, adaSecret)
	wantAPIError(t, "idle session", err, http.StatusUnauthorized, "signing_session")
	rec = record()
	again, err := ada.Sign(ctx, api.SignRequest{Signer: "dr-ada", Secret: adaSecret, Index: rec.Index, LeafHash: rec.LeafHash, Meaning: "reviewed"})
	if err != nil {
		t.Fatal(err)
	}
	if again.SigningSession == sess {
		t.Fatal("an ended session was handed out again")
	}
	// Used steadily, a session still ends at its maximum age.
	sess = again.SigningSession
	start := time.Now()
	for {
		_, err := inSession(ada, adaSecret)
		if err != nil {
			wantAPIError(t, "old session", err, http.StatusUnauthorized, "signing_session")
			break
		}
		if time.Since(start) > 2*maxAge {
			t.Fatalf("the session outlived its maximum age %v", maxAge)
		}
		time.Sleep(idle / 3)
	}
	if el := time.Since(start); el < maxAge-idle {
		t.Fatalf("the session ended after %v, before its maximum age %v", el, maxAge)
	}
	s.audit(t)
}

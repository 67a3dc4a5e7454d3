package server

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fmtlog "github.com/transparency-dev/formats/log"
	tproof "github.com/transparency-dev/formats/proof"
	fwitness "github.com/transparency-dev/formats/witness"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
)

// peerVerify checks a tlog-proof with code we did not write, as an
// outside auditor would: transparency-dev/formats/proof parses it,
// x/mod's note and formats/log check the log's signature and the
// checkpoint, formats/witness's policy parser (Sigsum-style, with witness
// URLs) checks the witness quorum, and transparency-dev/merkle checks the
// inclusion of the RFC 6962 hash of the extra data (the leaf).
func peerVerify(text []byte, logVKey string, policy []byte) error {
	var p tproof.TLogProof
	if err := p.Unmarshal(text); err != nil {
		return err
	}
	v, err := note.NewVerifier(logVKey)
	if err != nil {
		return err
	}
	cp, _, _, err := fmtlog.ParseCheckpoint(p.Checkpoint, v.Name(), v)
	if err != nil {
		return err
	}
	if policy != nil {
		g, err := fwitness.ParsePolicy(policy)
		if err != nil {
			return err
		}
		if !g.Satisfied(p.Checkpoint) {
			return errors.New("witness quorum not met")
		}
	}
	hashes := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		hashes[i] = p.Hashes[i][:]
	}
	return proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(p.ExtraData), hashes, cp.Hash)
}

// TestEntryProof: GET /v1/entries/{index}/proof answers a tlog-proof with
// the leaf as extra data to whoever may read the entry (a tenant's token
// for its tenant's entries only), and our verifier and the peer's accept
// it; a write receipt carries the same form.
func TestEntryProof(t *testing.T) {
	s := newTestServer(t, nil)
	a, _ := s.token(t, auth.Spec{Name: "reader-a", Tenant: "clinic-a", Scopes: []string{auth.ScopeRead}})
	b, _ := s.token(t, auth.Spec{Name: "reader-b", Tenant: "clinic-b", Scopes: []string{auth.ScopeRead}})
	w, _ := s.token(t, auth.Spec{Name: "writer-a", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}})
	code, body, _ := s.do(t, "POST", "/v1/events?wait=checkpoint", w, []byte(`{"session":"s","kind":"tool.call","actor":{"type":"agent","id":"bot"}}`))
	if code != http.StatusCreated {
		t.Fatalf("POST = %d %s", code, body)
	}
	rc, err := api.ParseReceipt(body)
	if err != nil {
		t.Fatal(err)
	}
	if rc.TlogProof == "" {
		t.Fatal("the write receipt carries no tlog_proof")
	}
	v, _ := checkpoint.NewVerifier(s.srv.VerifierKey())
	if _, err := api.VerifyReceipt([]byte(rc.TlogProof), v, nil); err != nil {
		t.Fatalf("the write receipt's tlog_proof: %v", err)
	}
	if err := peerVerify([]byte(rc.TlogProof), s.srv.VerifierKey(), nil); err != nil {
		t.Fatalf("the peer refuses the write receipt's tlog_proof: %v", err)
	}

	path := fmt.Sprintf("/v1/entries/%d/proof", rc.Index)
	code, text, h := s.do(t, "GET", path, a, nil)
	if code != http.StatusOK || h.Get("Content-Type") != api.TlogProofMediaType {
		t.Fatalf("GET %s as clinic-a = %d %s %s", path, code, h.Get("Content-Type"), text)
	}
	vr, err := api.VerifyReceipt(text, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := vr.Event(); err != nil || e.Tenant != "clinic-a" || vr.Index != rc.Index {
		t.Fatalf("verified %+v %v", vr, err)
	}
	if err := peerVerify(text, s.srv.VerifierKey(), nil); err != nil {
		t.Fatalf("peer: %v", err)
	}
	for _, tc := range []struct {
		who, token string
		want       int
	}{
		{"anonymous", "", http.StatusUnauthorized},
		{"another tenant's reader", b, http.StatusNotFound},
		{"a write-only token", w, http.StatusForbidden},
	} {
		code, body, _ := s.do(t, "GET", path, tc.token, nil)
		if code != tc.want || bytes.Contains(body, []byte("extra")) || bytes.Contains(body, []byte(base64.StdEncoding.EncodeToString(rc.Leaf[:30]))) {
			t.Errorf("GET %s as %s = %d %s, want %d without the entry", path, tc.who, code, body, tc.want)
		}
	}
	if code, _, _ := s.do(t, "GET", path+"?size=1", a, nil); code != http.StatusBadRequest {
		t.Errorf("?size on the proof = %d, want 400", code)
	}
	if code, _, _ := s.do(t, "GET", "/v1/entries/999999/proof", s.admin, nil); code == http.StatusOK {
		t.Errorf("proof of an entry beyond the log = %d", code)
	}
}

// TestTlogProofWithWitnesses: with a witness policy in tlog-policy form,
// keys/policy is written for auditors; a tlog-proof from the server passes
// our verifier and the peer's (reading keys/policy), and a flipped proof
// hash, a checkpoint of another log and a checkpoint short of the quorum's
// cosignatures are refused by both.
func TestTlogProofWithWitnesses(t *testing.T) {
	dir := t.TempDir()
	keys, _, err := InitKeys(dir, "", KeySources{})
	if err != nil {
		t.Fatal(err)
	}
	w := witnesstest.StartOurWitness(t, keys.Signer.Name(), keys.VKey)
	// tlog-policy form: the log by its key, the witness with its URL.
	s := newTestServerIn(t, dir, func(c *Config) {
		c.WitnessPolicy = []byte("log " + keys.VKey + "\n" + w.PolicyLine("ours") + "\nquorum ours\n")
		c.WitnessTimeout = 5 * time.Second
		c.ReceiptWait = 10 * time.Second
	})
	policyText, err := os.ReadFile(filepath.Join(dir, PolicyFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := "log " + keys.VKey + "\nwitness ours " + w.VerifierKey + " " + w.URL + "\ngroup group-1 1 ours\nquorum group-1\n"; string(policyText) != want {
		t.Fatalf("keys/policy =\n%s\nwant\n%s", policyText, want)
	}
	policy, err := checkpoint.ParsePolicy(policyText)
	if err != nil {
		t.Fatal(err)
	}
	r := s.postWait(t, "tp", 0)
	if r.Receipt == nil {
		t.Fatalf("no receipt: %s", r.ReceiptError)
	}
	good := []byte(r.Receipt.TlogProof)
	if _, err := api.VerifyReceipt(good, keys.Verifier, policy); err != nil {
		t.Fatalf("ours: %v", err)
	}
	if err := peerVerify(good, keys.VKey, policyText); err != nil {
		t.Fatalf("peer: %v\n%s", err, good)
	}

	// A flipped bit in a proof hash.
	rc, _ := api.ParseTlogProof(good)
	if len(rc.InclusionProof) == 0 {
		// One entry after the admin token's creation: there is a proof.
		t.Fatal("no proof hashes to flip")
	}
	rc.InclusionProof[0][0] ^= 1
	flipped, _ := rc.MarshalTlogProof()
	// A checkpoint signed by another log's key (same origin: a forgery),
	// and one of another origin altogether.
	other := witnesstest.NewLog(t, keys.Signer.Name())
	other.Append(int(r.Receipt.TreeSize))
	rc2, _ := api.ParseTlogProof(good)
	rc2.Checkpoint = string(other.Checkpoint(t, r.Receipt.TreeSize))
	forged, _ := rc2.MarshalTlogProof()
	another := witnesstest.NewLog(t, "another.test/log")
	another.Append(int(r.Receipt.TreeSize))
	rc3, _ := api.ParseTlogProof(good)
	rc3.Checkpoint = string(another.Checkpoint(t, r.Receipt.TreeSize))
	otherLog, _ := rc3.MarshalTlogProof()
	// The witness's cosignature line removed.
	var kept []string
	for _, l := range strings.SplitAfter(r.Receipt.Checkpoint, "\n") {
		if !strings.HasPrefix(l, "\u2014 "+w.Name+" ") {
			kept = append(kept, l)
		}
	}
	if len(kept) != len(strings.SplitAfter(r.Receipt.Checkpoint, "\n"))-1 {
		t.Fatalf("the checkpoint has no cosignature of %s:\n%s", w.Name, r.Receipt.Checkpoint)
	}
	rc4, _ := api.ParseTlogProof(good)
	rc4.Checkpoint = strings.Join(kept, "")
	uncosigned, _ := rc4.MarshalTlogProof()

	for _, tc := range []struct {
		name string
		text []byte
		want error
	}{
		{"flipped proof hash", flipped, api.ErrReceiptInclusion},
		{"checkpoint signed with another key", forged, api.ErrReceiptCheckpoint},
		{"checkpoint of another log", otherLog, api.ErrReceiptCheckpoint},
		{"too few cosignatures", uncosigned, api.ErrReceiptCheckpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := api.VerifyReceipt(tc.text, keys.Verifier, policy); !errors.Is(err, tc.want) {
				t.Errorf("ours: err = %v, want %v", err, tc.want)
			}
			if err := peerVerify(tc.text, keys.VKey, policyText); err == nil {
				t.Errorf("the peer accepted it")
			}
		})
	}
	// The same with the stand-alone verifier that docs/verifying.md shows
	// (testdata/verifytlogproof: formats, merkle and x/mod only).
	pdir := t.TempDir()
	var paths []string
	for name, text := range map[string][]byte{"good": good, "flipped": flipped, "forged": forged, "other-log": otherLog, "uncosigned": uncosigned} {
		p := filepath.Join(pdir, name+api.TlogProofExt)
		os.WriteFile(p, text, 0o644)
		paths = append(paths, p)
	}
	out, err := exec.Command("go", append([]string{"run", "./testdata/verifytlogproof", filepath.Join(dir, LogPubFile), filepath.Join(dir, PolicyFile)}, paths...)...).CombinedOutput()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 1 || strings.Count(string(out), "FAIL ") != 4 ||
		!strings.Contains(string(out), "OK "+filepath.Join(pdir, "good.tlog-proof")+": {") {
		t.Fatalf("verifytlogproof: %v\n%s", err, out)
	}
	if _, err := api.VerifyReceipt(uncosigned, keys.Verifier, nil); err != nil {
		t.Errorf("without a policy the uncosigned checkpoint is the log's own: %v", err)
	}
	// The leaf is the event.
	vr, _ := api.VerifyReceipt(good, keys.Verifier, policy)
	if l, err := event.ParseLeaf(vr.Leaf); err != nil || l.Session != "tp" {
		t.Fatalf("leaf %v %v", l, err)
	}
}

// TestPolicyForms: the server takes the Sigsum-style form as before, and
// refuses a tlog-policy that lists other logs or a witness without URL.
func TestPolicyForms(t *testing.T) {
	dir := t.TempDir()
	keys, _, err := InitKeys(dir, "", KeySources{})
	if err != nil {
		t.Fatal(err)
	}
	w := witnesstest.StartOurWitness(t, keys.Signer.Name(), keys.VKey)
	_, otherVKey, _ := checkpoint.GenerateKey("other.test/log")
	for name, policy := range map[string]string{
		"another log":         "log " + otherVKey + "\n" + w.PolicyLine("ours") + "\nquorum ours\n",
		"witness without URL": "witness ours " + w.VerifierKey + "\nquorum ours\n",
	} {
		_, err := Open(t.Context(), Config{DataDir: dir, WitnessPolicy: []byte(policy)})
		if err == nil || !strings.Contains(err.Error(), "witness policy") {
			t.Errorf("%s: Open = %v, want a witness policy error", name, err)
		}
	}
	s := newTestServerIn(t, dir, func(c *Config) {
		c.WitnessPolicy = []byte(w.PolicyLine("ours") + "\nquorum ours\n")
	})
	if s.srv.Policy() == nil {
		t.Fatal("no policy")
	}
}

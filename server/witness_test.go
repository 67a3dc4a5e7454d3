package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
	"github.com/llmaudittrail/llmaudittrail/witness"
)

// TestWitnessedCheckpoints2of3 runs the log server with a 2-of-3 witness
// policy over our witness, litewitness and omniwitness (the last two not
// written by us). Published checkpoints carry a quorum of cosignatures that
// verify with transparency-dev/formats' cosignature/v1 verifier; with two
// witnesses down nothing more is published (fail closed).
func TestWitnessedCheckpoints2of3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts external witnesses")
	}
	dir := t.TempDir()
	keys, _, err := InitKeys(dir, "", KeySources{})
	if err != nil {
		t.Fatal(err)
	}
	origin := keys.Signer.Name()
	peers := []*witnesstest.Peer{
		witnesstest.StartOurWitness(t, origin, keys.VKey),
		witnesstest.StartLitewitness(t, origin, keys.VKey),
		witnesstest.StartOmniwitness(t, origin, keys.VKey),
	}
	policy := fmt.Sprintf("%s\n%s\n%s\ngroup g 2 ours lite omni\nquorum g\n",
		peers[0].PolicyLine("ours"), peers[1].PolicyLine("lite"), peers[2].PolicyLine("omni"))
	s := newTestServerIn(t, dir, func(c *Config) {
		c.WitnessPolicy = []byte(policy)
		c.WitnessTimeout = 3 * time.Second
		c.ReceiptWait = 8 * time.Second
	})
	if s.srv.Policy() == nil {
		t.Fatal("policy not in force")
	}

	var cosigned map[string]bool
	for i := range 3 {
		r := s.postWait(t, "w", i)
		if r.Receipt == nil {
			t.Fatalf("event %d: no receipt: %s", i, r.ReceiptError)
		}
		cp, err := s.srv.Policy().Verify([]byte(r.Receipt.Checkpoint), keys.Verifier)
		if err != nil {
			t.Fatalf("receipt checkpoint fails the policy: %v", err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(r.Receipt.Leaf), r.Receipt.InclusionProof, cp.Hash); err != nil {
			t.Fatal(err)
		}
		cosigned = cosigners(t, []byte(r.Receipt.Checkpoint), peers)
		if len(cosigned) < 2 {
			t.Fatalf("checkpoint cosigned by %v, want at least 2 of 3", cosigned)
		}
	}
	t.Logf("cosigned by %v", cosigned)

	// One witness down: 2 of 3 still publish.
	peers[1].Stop()
	r := s.postWait(t, "w", 10)
	if r.Receipt == nil {
		t.Fatalf("with one witness down: no receipt: %s", r.ReceiptError)
	}
	if c := cosigners(t, []byte(r.Receipt.Checkpoint), peers); len(c) < 2 || c[peers[1].Name] {
		t.Fatalf("with litewitness down, cosigners = %v", c)
	}
	// Two down: fail closed, nothing new is published.
	peers[2].Stop()
	before := s.publishedSize(t)
	r = s.postWait(t, "w", 11)
	if r.Receipt != nil || r.ReceiptError == "" {
		t.Fatalf("with two witnesses down a receipt was issued: %+v", r.Receipt)
	}
	if after := s.publishedSize(t); after != before {
		t.Fatalf("checkpoint advanced from %d to %d without quorum", before, after)
	}
}

func cosigners(t *testing.T, cp []byte, peers []*witnesstest.Peer) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, p := range peers {
		v, err := fnote.NewVerifierForCosignatureV1(p.VerifierKey)
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open(cp, note.VerifierList(v))
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			continue
		}
		if err != nil {
			t.Fatalf("opening checkpoint with %s: %v", p.Name, err)
		}
		if len(n.Sigs) == 1 {
			out[p.Name] = true
		}
	}
	return out
}

func (s *testServer) postWait(t *testing.T, session string, i int) api.EventResponse {
	t.Helper()
	body := fmt.Sprintf(`{"session":%q,"kind":"tool.call","actor":{"type":"agent","id":"a"},"payload":{"i":%d}}`, session, i)
	code, b, _ := s.do(t, "POST", "/v1/events?wait=checkpoint", s.admin, []byte(body))
	if code != 201 {
		t.Fatalf("POST = %d %s", code, b)
	}
	var r api.EventResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func (s *testServer) publishedSize(t *testing.T) uint64 {
	t.Helper()
	raw, err := s.srv.Log().Reader().ReadCheckpoint(context.Background())
	if err != nil {
		return 0
	}
	v, _ := checkpoint.NewVerifier(s.srv.VerifierKey())
	cp, _, err := checkpoint.Verify(raw, v)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}

// With --witness-fail-open, checkpoints keep being published while the
// quorum is missing; without it (above) they are not.
func TestWitnessFailOpen(t *testing.T) {
	dir := t.TempDir()
	keys, _, err := InitKeys(dir, "", KeySources{})
	if err != nil {
		t.Fatal(err)
	}
	w := witnesstest.StartOurWitness(t, keys.Signer.Name(), keys.VKey)
	s := newTestServerIn(t, dir, func(c *Config) {
		c.WitnessPolicy = []byte(w.PolicyLine("ours") + "\nquorum ours\n")
		c.WitnessFailOpen = true
		c.WitnessTimeout = time.Second
		c.ReceiptWait = 8 * time.Second
	})
	host := witnessHost(t, w.URL)
	r := s.postWait(t, "fo", 0)
	if r.Receipt == nil || len(cosigners(t, []byte(r.Receipt.Checkpoint), []*witnesstest.Peer{w})) != 1 {
		t.Fatalf("with the witness up: receipt %+v (%s)", r.Receipt, r.ReceiptError)
	}
	// The witness client is measured (internal/metrics).
	if n := witnessObserved(t, host); n == 0 {
		t.Errorf("no witness request to %s observed", host)
	}
	w.Stop()
	r = s.postWait(t, "fo", 1)
	if r.Receipt == nil {
		t.Fatalf("fail-open with the witness down: no receipt (%s)", r.ReceiptError)
	}
	if n := witnessFailures(host, "error") + witnessFailures(host, "timeout"); n == 0 {
		t.Errorf("no witness failure counted for %s while it was down", host)
	}
	if len(cosigners(t, []byte(r.Receipt.Checkpoint), []*witnesstest.Peer{w})) != 0 {
		t.Fatal("cosignature from a stopped witness")
	}
	if _, err := s.srv.Policy().Verify([]byte(r.Receipt.Checkpoint), keys.Verifier); !errors.Is(err, checkpoint.ErrNoQuorum) {
		t.Fatalf("policy check of a fail-open checkpoint = %v, want ErrNoQuorum", err)
	}
}

// TestWitnessGroupIsTesserasOwn checks that the tree the server hands
// Tessera (built from checkpoint.ParsePolicy's parse) is the group Tessera
// builds from the same text: the same endpoints, satisfied by the same
// cosignatures.
func TestWitnessGroupIsTesserasOwn(t *testing.T) {
	l := witnesstest.NewLog(t, "log.test/groups")
	l.Append(3)
	type w struct {
		signer note.Signer
		vkey   string
	}
	var ws []w
	var text strings.Builder
	for i := range 4 {
		skey, vkey, _ := note.GenerateKey(rand.Reader, fmt.Sprintf("w%d.test/w", i))
		s, _ := fnote.NewSignerForCosignatureV1(skey)
		cv, _ := fnote.VKeyToCosignatureV1(vkey)
		ws = append(ws, w{s, cv})
		fmt.Fprintf(&text, "witness W%d %s http://127.0.0.1:%d/w%d\n", i, cv, 7000+i, i)
	}
	text.WriteString("group ab any W0 W1\ngroup cd all W2 W3\ngroup top 1 ab cd\nquorum top\n")
	p, err := checkpoint.ParsePolicy([]byte(text.String()))
	if err != nil {
		t.Fatal(err)
	}
	ours, err := witnessGroup(p)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := tessera.NewWitnessGroupFromPolicy([]byte(text.String()))
	if err != nil {
		t.Fatal(err)
	}
	oe, te := ours.Endpoints(), theirs.Endpoints()
	if len(oe) != 4 || len(oe) != len(te) {
		t.Fatalf("endpoints %v, Tessera's %v", oe, te)
	}
	for u := range te {
		if _, ok := oe[u]; !ok {
			t.Fatalf("endpoint %s missing from %v", u, oe)
		}
	}
	raw := l.Checkpoint(t, 3)
	for m := range 16 {
		n, err := note.Open(raw, note.VerifierList(mustVerifier(t, l.VerifierKey)))
		if err != nil {
			t.Fatal(err)
		}
		var signers []note.Signer
		for i := range ws {
			if m&(1<<i) != 0 {
				signers = append(signers, ws[i].signer)
			}
		}
		cp, err := note.Sign(&note.Note{Text: n.Text, Sigs: n.Sigs}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ours.Satisfied(cp), theirs.Satisfied(cp); got != want {
			t.Fatalf("cosigners %04b: ours %v, Tessera's %v", m, got, want)
		}
	}
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestWitnessOverTLS: a witness on HTTPS with a private CA cosigns when
// the server trusts that CA (WitnessRoots, log-server --ca-file), and not
// without it.
func TestWitnessOverTLS(t *testing.T) {
	for _, trust := range []bool{true, false} {
		dir := t.TempDir()
		keys, _, err := InitKeys(dir, "", KeySources{})
		if err != nil {
			t.Fatal(err)
		}
		wdir := t.TempDir()
		w, err := witness.Open(context.Background(), wdir, &witness.Config{Name: "tls.test/witness",
			Logs: []witness.LogConfig{{Origin: keys.Signer.Name(), Key: keys.VKey}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewTLSServer(w.Handler())
		policy := fmt.Sprintf("witness w %s %s\nquorum w\n", w.VerifierKey(), ts.URL)
		if !trust {
			// Fail-closed: not even the first checkpoint is published.
			_, err := Open(context.Background(), Config{DataDir: dir, WitnessPolicy: []byte(policy), WitnessTimeout: 2 * time.Second,
				CheckpointInterval: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
			if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
				t.Fatalf("untrusted witness: %v", err)
			}
		} else {
			s := newTestServerIn(t, dir, func(c *Config) {
				c.WitnessPolicy = []byte(policy)
				c.WitnessTimeout = 2 * time.Second
				c.ReceiptWait = 4 * time.Second
				pool := x509.NewCertPool()
				pool.AddCert(ts.Certificate())
				c.WitnessRoots = pool
			})
			if r := s.postWait(t, "w", 0); r.Receipt == nil || !strings.Contains(r.Receipt.Checkpoint, "tls.test/witness") {
				t.Fatalf("trusted: no cosigned receipt: %+v %s", r.Receipt, r.ReceiptError)
			}
		}
		ts.Close()
		w.Close()
	}
}

// A witness added at a restart cosigns the log's checkpoint, and a log that
// does not grow has its checkpoint published and cosigned afresh
// (Config.CheckpointRepublish; Tessera's own default is ten minutes, so a
// witness added to a quiet log cosigned nothing for that long).
func TestWitnessAddedAtRestartCosignsExisting(t *testing.T) {
	dir := t.TempDir()
	s := newTestServerIn(t, dir, nil)
	for i := range 3 {
		s.post(t, "before", "tool.call", map[string]int{"i": i})
	}
	s.waitCovered(t, 2)
	s.ts.Close()
	if err := s.srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	keys, _, err := InitKeys(dir, "", KeySources{})
	if err != nil {
		t.Fatal(err)
	}
	w := witnesstest.StartOurWitness(t, keys.Signer.Name(), keys.VKey)
	s2 := newTestServerIn(t, dir, func(c *Config) {
		c.WitnessPolicy = []byte(w.PolicyLine("ours") + "\nquorum ours\n")
		c.WitnessTimeout = 2 * time.Second
		c.CheckpointRepublish = 500 * time.Millisecond
	})
	// cosigned waits for a checkpoint that meets the policy and differs
	// from not.
	cosigned := func(not []byte) []byte {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			raw, err := s2.srv.Log().Reader().ReadCheckpoint(context.Background())
			if err == nil && !bytes.Equal(raw, not) {
				if _, err := s2.srv.Policy().Verify(raw, keys.Verifier); err == nil {
					return raw
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no new cosigned checkpoint within 20 s (last: %v)", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	first := cosigned(nil)
	size := s2.publishedSize(t)
	if size < 3 {
		t.Fatalf("cosigned checkpoint of size %d, want the 3 entries written before the restart", size)
	}
	// No writes: the same tree is published again, with a fresh
	// cosignature.
	again := cosigned(first)
	if s2.publishedSize(t) != size {
		t.Fatalf("the log grew from %d to %d without writes", size, s2.publishedSize(t))
	}
	t.Logf("size %d republished:\n%s\n%s", size, first, again)
}

package witness_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
)

// tesseraLog is a bare Tessera appender on the POSIX driver whose
// checkpoints must satisfy a witness policy before they are published
// (fail closed).
type tesseraLog struct {
	log      *witnesstest.Log // key and origin only
	appender *tessera.Appender
	awaiter  *tessera.PublicationAwaiter
}

func newTesseraLog(t *testing.T, l *witnesstest.Log, policy string) *tesseraLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	driver, err := posix.New(ctx, posix.Config{Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(l.SignerKey())
	if err != nil {
		t.Fatal(err)
	}
	group, err := tessera.NewWitnessGroupFromPolicy([]byte(policy))
	if err != nil {
		t.Fatalf("policy %q: %v", policy, err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(64, 20*time.Millisecond).
		WithCheckpointInterval(100*time.Millisecond).
		WithWitnesses(group, &tessera.WitnessOptions{FailOpen: false, Timeout: 10 * time.Second})
	appender, shutdown, reader, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		shutdown(sctx)
		cancel()
	})
	return &tesseraLog{
		log:      l,
		appender: appender,
		awaiter:  tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, 25*time.Millisecond),
	}
}

// addAndAwait appends n entries and returns the first published checkpoint
// that covers them all.
func (tl *tesseraLog) addAndAwait(t *testing.T, n int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var last tessera.IndexFuture
	for i := range n {
		last = tl.appender.Add(ctx, tessera.NewEntry(fmt.Appendf(nil, "entry %d at %v", i, time.Now().UnixNano())))
	}
	_, cp, err := tl.awaiter.Await(ctx, last)
	if err != nil {
		t.Fatalf("awaiting publication: %v", err)
	}
	return cp
}

// verifyWitnessed checks that cp is signed by the log and cosigned by every
// peer, using formats' checkpoint parser and cosignature/v1 verifier.
func verifyWitnessed(t *testing.T, l *witnesstest.Log, cp []byte, peers ...*witnesstest.Peer) *log.Checkpoint {
	t.Helper()
	logV, err := note.NewVerifier(l.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	var vs []note.Verifier
	for _, p := range peers {
		v, err := fnote.NewVerifierForCosignatureV1(p.VerifierKey)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	c, _, n, err := log.ParseCheckpoint(cp, l.Origin, logV, vs...)
	if err != nil {
		t.Fatalf("published checkpoint %q: %v", cp, err)
	}
	for i, p := range peers {
		found := false
		for _, s := range n.Sigs {
			if s.Name == vs[i].Name() && s.Hash == vs[i].KeyHash() {
				found = true
				if _, err := fnote.CoSigV1Timestamp(s); err != nil {
					t.Errorf("%s cosignature has no timestamp: %v", p.Name, err)
				}
			}
		}
		if !found {
			t.Errorf("published checkpoint lacks a valid cosignature by %s:\n%s", p.Name, cp)
		}
	}
	return c
}

// TestTesseraInterop runs a bare Tessera v1.0.4 appender whose policy
// names one witness, fail closed, against our witness, litewitness and
// omniwitness, and checks that every published checkpoint carries a
// verifying cosignature. Several publications exercise consistency proofs.
func TestTesseraInterop(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(t testing.TB, origin, vkey string, more ...witnesstest.LogKey) *witnesstest.Peer
		peer  bool
	}{
		{"ours", witnesstest.StartOurWitness, false},
		{"ours-process", witnesstest.StartOurWitnessProcess, false},
		{"litewitness", witnesstest.StartLitewitness, true},
		{"omniwitness", witnesstest.StartOmniwitness, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.peer && testing.Short() {
				t.Skip("builds and runs a peer witness")
			}
			l := witnesstest.NewLog(t, "tessera.test/"+tc.name)
			p := tc.start(t, l.Origin, l.VerifierKey)
			tl := newTesseraLog(t, l, p.PolicyLine("w")+"\nquorum w\n")
			var prev uint64
			for round, n := range []int{1, 5, 17} {
				c := verifyWitnessed(t, l, tl.addAndAwait(t, n), p)
				if c.Size < prev+uint64(n) {
					t.Fatalf("round %d: published size %d, want at least %d", round, c.Size, prev+uint64(n))
				}
				prev = c.Size
			}
		})
	}
}

// TestTesseraTwoOfThree publishes through a 2-of-3 policy over our witness,
// litewitness and omniwitness.
func TestTesseraTwoOfThree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs peer witnesses")
	}
	l := witnesstest.NewLog(t, "tessera.test/2of3")
	peers := []*witnesstest.Peer{
		witnesstest.StartOurWitness(t, l.Origin, l.VerifierKey),
		witnesstest.StartLitewitness(t, l.Origin, l.VerifierKey),
		witnesstest.StartOmniwitness(t, l.Origin, l.VerifierKey),
	}
	policy := strings.Join([]string{
		peers[0].PolicyLine("ours"),
		peers[1].PolicyLine("lite"),
		peers[2].PolicyLine("omni"),
		"group two-of-three 2 ours lite omni",
		"quorum two-of-three",
	}, "\n") + "\n"
	tl := newTesseraLog(t, l, policy)
	// The same policy text, as every verifier in the project reads it.
	p, err := checkpoint.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	logV, err := note.NewVerifier(l.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}

	// Tessera publishes as soon as the policy is met, so a checkpoint may
	// carry two or three cosignatures.
	cp := tl.addAndAwait(t, 3)
	if got := cosigners(t, l, cp, peers); len(got) < 2 {
		t.Fatalf("published checkpoint cosigned by %v, want at least 2 of 3", got)
	}
	if _, err := p.Verify(cp, logV); err != nil {
		t.Fatalf("checkpoint.Policy.Verify: %v", err)
	}

	// With litewitness down the policy is still met by the other two.
	peers[1].Stop()
	cp = tl.addAndAwait(t, 4)
	if got := cosigners(t, l, cp, peers); len(got) != 2 || got[0] != peers[0].Name || got[1] != peers[2].Name {
		t.Fatalf("published checkpoint cosigned by %v, want ours and omniwitness", got)
	}
	if _, err := p.Verify(cp, logV); err != nil {
		t.Fatalf("checkpoint.Policy.Verify: %v", err)
	}
	// Stripped of one cosignature it no longer meets the policy.
	if _, err := p.Verify(dropLastSignature(cp), logV); !errors.Is(err, checkpoint.ErrNoQuorum) {
		t.Fatalf("checkpoint with one cosignature: %v, want ErrNoQuorum", err)
	}
}

func dropLastSignature(cp []byte) []byte {
	s := strings.TrimSuffix(string(cp), "\n")
	return []byte(s[:strings.LastIndex(s, "\n")+1])
}

// cosigners returns the names of the peers with a valid cosignature on
// cp, after checking the log signature.
func cosigners(t *testing.T, l *witnesstest.Log, cp []byte, peers []*witnesstest.Peer) []string {
	t.Helper()
	var names []string
	for _, p := range peers {
		logV, err := note.NewVerifier(l.VerifierKey)
		if err != nil {
			t.Fatal(err)
		}
		_, _, n, err := log.ParseCheckpoint(cp, l.Origin, logV, p.Verifier(t))
		if err != nil {
			t.Fatalf("published checkpoint %q: %v", cp, err)
		}
		if len(n.Sigs) == 2 {
			names = append(names, p.Name)
		}
	}
	return names
}

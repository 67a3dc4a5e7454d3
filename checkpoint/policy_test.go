package checkpoint_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
)

type testWitness struct {
	signer note.Signer // cosignature/v1
	plain  note.Signer // the same key as a plain Ed25519 note signer
	vkey   string      // cosignature/v1 verifier key
}

func newTestWitness(t testing.TB, name string) *testWitness {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	cvkey, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return &testWitness{signer: s, plain: plain, vkey: cvkey}
}

// cosign adds signatures by signers to the signed note raw.
func cosign(t *testing.T, raw []byte, logV note.Verifier, signers ...note.Signer) []byte {
	t.Helper()
	n, err := note.Open(raw, note.VerifierList(logV))
	if err != nil {
		t.Fatal(err)
	}
	out, err := note.Sign(&note.Note{Text: n.Text, Sigs: n.Sigs}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPolicyVerify(t *testing.T) {
	const origin = "log.test/policy"
	skey, vkey, err := checkpoint.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	logS, err := checkpoint.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	logV, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	root := base64.StdEncoding.EncodeToString(make([]byte, 32))
	raw, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n42\n%s\n", origin, root)}, logS)
	if err != nil {
		t.Fatal(err)
	}

	a, b, c := newTestWitness(t, "a.test/w"), newTestWitness(t, "b.test/w"), newTestWitness(t, "c.test/w")
	stranger := newTestWitness(t, "stranger.test/w")
	witnesses := fmt.Sprintf("witness A %s https://a.test/\nwitness B %s https://b.test\nwitness C %s http://127.0.0.1:7380\n", a.vkey, b.vkey, c.vkey)

	// A cosignature by A whose signature bytes are corrupted.
	badA := cosign(t, raw, logV, a.signer)
	{
		i := strings.LastIndex(string(badA), " ") + 1
		sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(badA[i:])))
		if err != nil {
			t.Fatal(err)
		}
		sig[20] ^= 1
		badA = append(badA[:i], base64.StdEncoding.EncodeToString(sig)+"\n"...)
	}
	// Another log's key with the same name signs the same text.
	otherSkey, _, _ := checkpoint.GenerateKey(origin)
	otherS, _ := checkpoint.NewSigner(otherSkey)
	forged, _ := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n42\n%s\n", origin, root)}, otherS, a.signer, b.signer, c.signer)

	for _, tc := range []struct {
		name   string
		policy string
		raw    []byte
		want   error // nil, ErrNoQuorum or ErrInvalid
	}{
		{"single witness cosigned", witnesses + "quorum A\n", cosign(t, raw, logV, a.signer), nil},
		{"single witness missing", witnesses + "quorum A\n", cosign(t, raw, logV, b.signer), checkpoint.ErrNoQuorum},
		{"no cosignatures", witnesses + "quorum A\n", raw, checkpoint.ErrNoQuorum},
		{"unknown witness only", witnesses + "quorum A\n", cosign(t, raw, logV, stranger.signer), checkpoint.ErrNoQuorum},
		{"corrupted cosignature", witnesses + "quorum A\n", badA, checkpoint.ErrNoQuorum},
		{"plain Ed25519 signature is not a cosignature", witnesses + "quorum A\n", cosign(t, raw, logV, a.plain), checkpoint.ErrNoQuorum},

		{"2 of 3 with 0", witnesses + "group g 2 A B C\nquorum g\n", raw, checkpoint.ErrNoQuorum},
		{"2 of 3 with 1", witnesses + "group g 2 A B C\nquorum g\n", cosign(t, raw, logV, c.signer), checkpoint.ErrNoQuorum},
		{"2 of 3 with 1 and a stranger", witnesses + "group g 2 A B C\nquorum g\n", cosign(t, raw, logV, c.signer, stranger.signer), checkpoint.ErrNoQuorum},
		{"2 of 3 with 2", witnesses + "group g 2 A B C\nquorum g\n", cosign(t, raw, logV, a.signer, c.signer), nil},
		{"2 of 3 with 3", witnesses + "group g 2 A B C\nquorum g\n", cosign(t, raw, logV, a.signer, b.signer, c.signer), nil},
		{"all with 2 of 3", witnesses + "group g all A B C\nquorum g\n", cosign(t, raw, logV, a.signer, b.signer), checkpoint.ErrNoQuorum},
		{"any with 1", witnesses + "group g any A B C\nquorum g\n", cosign(t, raw, logV, b.signer), nil},
		{"nested: C and (A or B), only A", witnesses + "group ab any A B\ngroup g all ab C\nquorum g\n", cosign(t, raw, logV, a.signer), checkpoint.ErrNoQuorum},
		{"nested: C and (A or B), B and C", witnesses + "group ab any A B\ngroup g all ab C\nquorum g\n", cosign(t, raw, logV, b.signer, c.signer), nil},
		{"quorum none", witnesses + "quorum none\n", raw, nil},
		{"comments and log line", "# policy\nlog " + vkey + "\n" + witnesses + "quorum A # just A\n", cosign(t, raw, logV, a.signer), nil},

		{"quorum but bad log signature", witnesses + "group g any A B C\nquorum g\n", forged, checkpoint.ErrInvalid},
		{"quorum none but bad log signature", witnesses + "quorum none\n", forged, checkpoint.ErrInvalid},
		{"not a note", witnesses + "quorum none\n", []byte("hello\n"), checkpoint.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := checkpoint.ParsePolicy([]byte(tc.policy))
			if err != nil {
				t.Fatalf("ParsePolicy: %v", err)
			}
			cp, err := p.Verify(tc.raw, logV)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if cp.Origin != origin || cp.Size != 42 {
					t.Fatalf("Verify = %+v", cp)
				}
				return
			}
			if !errors.Is(err, tc.want) || cp != nil {
				t.Fatalf("Verify = %+v, %v; want %v", cp, err, tc.want)
			}
			if errors.Is(err, checkpoint.ErrNoQuorum) && errors.Is(err, checkpoint.ErrInvalid) {
				t.Fatalf("error %v is both ErrNoQuorum and ErrInvalid", err)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	a, b := newTestWitness(t, "a.test/w"), newTestWitness(t, "b.test/w")
	_, logVKey, _ := checkpoint.GenerateKey("log.test/parse")
	p, err := checkpoint.ParsePolicy([]byte(fmt.Sprintf("witness A %s https://a.test/w/\nwitness B %s http://127.0.0.1:1\ngroup g 1 A B\nquorum g\n", a.vkey, b.vkey)))
	if err != nil {
		t.Fatal(err)
	}
	ws := p.Witnesses()
	if len(ws) != 2 || ws[0].Name != "A" || ws[0].URL != "https://a.test/w" || ws[1].Name != "B" || ws[1].URL != "http://127.0.0.1:1" ||
		ws[0].Verifier.Name() != "a.test/w" || ws[1].Verifier.KeyHash() != b.signer.KeyHash() {
		t.Errorf("Witnesses() = %+v", ws)
	}

	for name, text := range map[string]string{
		"no quorum":                      fmt.Sprintf("witness A %s https://a.test\n", a.vkey),
		"unknown quorum":                 fmt.Sprintf("witness A %s https://a.test\nquorum X\n", a.vkey),
		"unknown member":                 fmt.Sprintf("witness A %s https://a.test\ngroup g 1 A X\nquorum g\n", a.vkey),
		"threshold too high":             fmt.Sprintf("witness A %s https://a.test\ngroup g 2 A\nquorum g\n", a.vkey),
		"threshold 0":                    fmt.Sprintf("witness A %s https://a.test\ngroup g 0 A\nquorum g\n", a.vkey),
		"member twice":                   fmt.Sprintf("witness A %s https://a.test\nwitness B %s\ngroup g 2 A A\nquorum g\n", a.vkey, b.vkey),
		"empty group (all)":              "group g all\nquorum none\n",
		"two quorum lines":               fmt.Sprintf("witness A %s\nquorum A\nquorum none\n", a.vkey),
		"carriage return":                fmt.Sprintf("witness A %s\r\nquorum A\n", a.vkey),
		"log key twice":                  "log " + logVKey + "\nlog " + logVKey + "\nquorum none\n",
		"log key under another name":     "log " + logVKey + "\nlog " + renamed(t, logVKey, "log.test/alias") + "\nquorum none\n",
		"witness key under another name": fmt.Sprintf("witness A %s\nwitness A2 %s\ngroup g 2 A A2\nquorum g\n", a.vkey, renamed(t, a.vkey, "alias.test/w")),
		"log key not a vkey":             "log nope\nquorum none\n",
		"log URL not http":               "log " + logVKey + " ftp://l.test\nquorum none\n",
		"bad key":                        "witness A nope https://a.test\nquorum A\n",
		"bad URL scheme":                 fmt.Sprintf("witness A %s ftp://a.test\nquorum A\n", a.vkey),
		"relative URL":                   fmt.Sprintf("witness A %s a.test/w\nquorum A\n", a.vkey),
		"same key twice":                 fmt.Sprintf("witness A %s https://a.test\nwitness A2 %s https://a2.test\ngroup g 2 A A2\nquorum g\n", a.vkey, a.vkey),
		"duplicate name":                 fmt.Sprintf("witness A %s https://a.test\nwitness A %s https://b.test\nquorum A\n", a.vkey, b.vkey),
		"unknown keyword":                fmt.Sprintf("witness A %s https://a.test\nquorom A\n", a.vkey),
		"keyword as a name":              fmt.Sprintf("witness any %s https://a.test\nquorum any\n", a.vkey),
		"group without member":           "group g 1\nquorum g\n",
	} {
		if _, err := checkpoint.ParsePolicy([]byte(text)); err == nil {
			t.Errorf("%s: ParsePolicy accepted %q", name, text)
		}
	}
}

// TestPolicyAgreesWithTessera checks, on random policies and random sets of
// cosignatures, that ParsePolicy accepts what Tessera's parser accepts and
// that Policy.Satisfied agrees with tessera.WitnessGroup.Satisfied.
func TestPolicyAgreesWithTessera(t *testing.T) {
	const origin = "log.test/diff"
	skey, vkey, _ := checkpoint.GenerateKey(origin)
	logS, _ := checkpoint.NewSigner(skey)
	logV, _ := checkpoint.NewVerifier(vkey)
	root := base64.StdEncoding.EncodeToString(make([]byte, 32))
	raw, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n7\n%s\n", origin, root)}, logS)
	if err != nil {
		t.Fatal(err)
	}
	ws := make([]*testWitness, 5)
	for i := range ws {
		ws[i] = newTestWitness(t, fmt.Sprintf("w%d.test/w", i))
	}
	// Every subset of the five witnesses' cosignatures.
	signed := make([][]byte, 1<<len(ws))
	for m := range signed {
		var ss []note.Signer
		for i, w := range ws {
			if m&(1<<i) != 0 {
				ss = append(ss, w.signer)
			}
		}
		signed[m] = cosign(t, raw, logV, ss...)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	accepted := 0
	for iter := range 300 {
		var b strings.Builder
		names := []string{}
		for i, w := range ws {
			if rng.IntN(4) > 0 {
				fmt.Fprintf(&b, "witness W%d %s http://127.0.0.1:%d\n", i, w.vkey, 7000+i)
				names = append(names, fmt.Sprintf("W%d", i))
			}
		}
		for g := range rng.IntN(4) {
			var members []string
			for range rng.IntN(4) {
				if len(names) > 0 {
					members = append(members, names[rng.IntN(len(names))])
				}
			}
			if rng.IntN(10) == 0 {
				members = append(members, "nosuch")
			}
			threshold := []string{"any", "all", "0", "1", "2", "3", "9"}[rng.IntN(7)]
			fmt.Fprintf(&b, "group G%d %s %s\n", g, threshold, strings.Join(members, " "))
			names = append(names, fmt.Sprintf("G%d", g))
		}
		switch rng.IntN(6) {
		case 0:
			b.WriteString("quorum none\n")
		case 1:
		default:
			if len(names) > 0 {
				fmt.Fprintf(&b, "quorum %s\n", names[rng.IntN(len(names))])
			}
		}
		text := b.String()
		ours, oerr := checkpoint.ParsePolicy([]byte(text))
		theirs, terr := tessera.NewWitnessGroupFromPolicy([]byte(text))
		if oerr == nil && terr != nil || oerr != nil && terr == nil && !forbiddenByTlogPolicy(text) {
			t.Fatalf("iteration %d: policy\n%s\nParsePolicy: %v; Tessera: %v", iter, text, oerr, terr)
		}
		if oerr != nil {
			continue
		}
		accepted++
		for m, cp := range signed {
			if got, want := ours.Satisfied(cp), theirs.Satisfied(cp); got != want {
				t.Fatalf("iteration %d: policy\n%s\ncosigners %05b: Satisfied = %v, Tessera says %v", iter, text, m, got, want)
			}
		}
	}
	if accepted < 50 {
		t.Fatalf("only %d of 300 random policies were valid: the generator tests too little", accepted)
	}
}

// forbiddenByTlogPolicy reports whether a policy breaks a rule of C2SP
// tlog-policy that Tessera's parser does not check: a threshold of 0, a
// group without members, a member named twice in one group.
func forbiddenByTlogPolicy(text string) bool {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "group" {
			continue
		}
		if f[2] == "0" || len(f) == 3 {
			return true
		}
		seen := map[string]bool{}
		for _, m := range f[3:] {
			if seen[m] {
				return true
			}
			seen[m] = true
		}
	}
	return false
}

// TestTlogPolicy reads the C2SP tlog-policy form: logs by note key, witness
// URLs optional; a policy that lists logs verifies only their checkpoints;
// TlogPolicy writes a policy that reads back to the same decisions.
func TestTlogPolicy(t *testing.T) {
	const origin = "log.test/tlog-policy"
	skey, vkey, _ := checkpoint.GenerateKey(origin)
	logS, _ := checkpoint.NewSigner(skey)
	logV, _ := checkpoint.NewVerifier(vkey)
	_, otherVKey, _ := checkpoint.GenerateKey(origin) // same origin, another key
	otherV, _ := checkpoint.NewVerifier(otherVKey)
	raw, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n7\n%s\n", origin, base64.StdEncoding.EncodeToString(make([]byte, 32)))}, logS)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := newTestWitness(t, "a.test/w"), newTestWitness(t, "b.test/w"), newTestWitness(t, "c.test/w")
	text := fmt.Sprintf("# tlog-policy\n  log %s https://log.test\n\nwitness X1 %s\nwitness X2\t%s\nwitness Y1 %s https://y1.test/\n"+
		"group X-witnesses 2 X1 X2\ngroup X-and-Y all X-witnesses Y1\nquorum X-and-Y\n", vkey, a.vkey, b.vkey, c.vkey)
	p, err := checkpoint.ParsePolicy([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if ls := p.Logs(); len(ls) != 1 || ls[0].Verifier.Name() != origin || ls[0].URL != "https://log.test" {
		t.Fatalf("Logs() = %+v", ls)
	}
	if ws := p.Witnesses(); len(ws) != 3 || ws[0].URL != "" || ws[2].URL != "https://y1.test" {
		t.Fatalf("Witnesses() = %+v", ws)
	}
	all := cosign(t, raw, logV, a.signer, b.signer, c.signer)
	short := cosign(t, raw, logV, a.signer, c.signer) // X-witnesses lacks X2
	if _, err := p.Verify(all, logV); err != nil {
		t.Fatalf("fully cosigned: %v", err)
	}
	if _, err := p.Verify(short, logV); !errors.Is(err, checkpoint.ErrNoQuorum) {
		t.Fatalf("one X witness short: err = %v, want ErrNoQuorum", err)
	}
	if _, err := p.Verify(all, otherV); !errors.Is(err, checkpoint.ErrOtherLog) {
		t.Fatalf("a log key the policy does not list: err = %v, want ErrOtherLog", err)
	}
	// Written back, the policy decides the same.
	again, err := checkpoint.ParsePolicy(p.TlogPolicy(vkey))
	if err != nil {
		t.Fatalf("%v\n%s", err, p.TlogPolicy(vkey))
	}
	for _, cp := range [][]byte{raw, short, all} {
		if again.Satisfied(cp) != p.Satisfied(cp) {
			t.Fatalf("TlogPolicy text decides otherwise:\n%s", p.TlogPolicy(vkey))
		}
	}
	if _, err := again.Verify(all, otherV); !errors.Is(err, checkpoint.ErrOtherLog) {
		t.Fatalf("written policy: err = %v, want ErrOtherLog", err)
	}
	var none *checkpoint.Policy
	if got, want := string(none.TlogPolicy(vkey)), "log "+vkey+"\nquorum none\n"; got != want {
		t.Fatalf("no policy: %q, want %q", got, want)
	}
	// A Sigsum log line (hex key) is read and ignored, as before.
	if _, err := checkpoint.ParsePolicy([]byte("log " + strings.Repeat("ab", 32) + " https://sigsum.test\nquorum none\n")); err != nil {
		t.Fatal(err)
	}
}

// FuzzParsePolicy: the parser never panics, and a policy it accepts,
// written back with TlogPolicy, reads back to a policy that decides the
// same on every subset of two witnesses' cosignatures.
func FuzzParsePolicy(f *testing.F) {
	a, b := newTestWitness(f, "a.test/w"), newTestWitness(f, "b.test/w")
	const origin = "log.test/fuzz"
	skey, vkey, _ := checkpoint.GenerateKey(origin)
	logS, _ := checkpoint.NewSigner(skey)
	logV, _ := checkpoint.NewVerifier(vkey)
	raw, _ := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n7\n%s\n", origin, base64.StdEncoding.EncodeToString(make([]byte, 32)))}, logS)
	var signed [][]byte
	for _, ss := range [][]note.Signer{nil, {a.signer}, {b.signer}, {a.signer, b.signer}} {
		n, _ := note.Open(raw, note.VerifierList(logV))
		out, _ := note.Sign(&note.Note{Text: n.Text, Sigs: n.Sigs}, ss...)
		signed = append(signed, out)
	}
	f.Add(fmt.Sprintf("log %s\nwitness A %s\nwitness B %s https://b.test\ngroup g any A B\nquorum g\n", vkey, a.vkey, b.vkey))
	f.Add(fmt.Sprintf("witness A %s http://a.test\nwitness B %s http://b.test\ngroup g 2 A B\ngroup h all g A\nquorum h\n", a.vkey, b.vkey))
	f.Add("quorum none\n")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := checkpoint.ParsePolicy([]byte(text))
		if err != nil {
			return
		}
		again, err := checkpoint.ParsePolicy(p.TlogPolicy(vkey))
		if err != nil {
			t.Fatalf("TlogPolicy of %q is refused: %v\n%s", text, err, p.TlogPolicy(vkey))
		}
		for i, cp := range signed {
			if p.Satisfied(cp) != again.Satisfied(cp) {
				t.Fatalf("cosigners %02b: %q and its TlogPolicy decide differently", i, text)
			}
		}
	})
}

// renamed is vkey's public key under another key name, with the key id that
// name gives it (C2SP signed-note: the id hashes the name and the key), so
// that it is a valid vkey of the same key.
func renamed(t *testing.T, vkey, name string) string {
	t.Helper()
	parts := strings.SplitN(vkey, "+", 3) // the name has no "+", the base64 may
	key, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(append(append([]byte(name), '\n'), key...))
	out := fmt.Sprintf("%s+%08x+%s", name, binary.BigEndian.Uint32(h[:4]), parts[2])
	// It must be a valid key of its kind, or the policy would be refused
	// for that instead.
	if _, err := note.NewVerifier(out); err != nil {
		if _, err := fnote.NewVerifierForCosignatureV1(out); err != nil {
			t.Fatalf("renamed key %s: %v", out, err)
		}
	}
	return out
}

package timestamp_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/tsatest"
	"github.com/llmaudittrail/llmaudittrail/timestamp"
)

const cp1 = "localhost/llmaudittrail\n3\nq2NR7Vyml8MSfdiVyn1IRUTyuMZNGWRfSNoikbyXdyw=\n\n— localhost/llmaudittrail Az3grlgL5A2sWS0nNi6RDJFUfEOJBZ0oNyhH2HfCIfJphz8uDPt8MqY8ZqEYpRmnSfbRWmbx1lWEAmwDKGVqWrdFLIuc=\n"
const cp2 = "localhost/llmaudittrail\n4\nNHcqnDxwNrC3yBZkVbTCmkJYFqNA8KRS+8CdbiFuGkE=\n\n— localhost/llmaudittrail Az3grlgL7w7KqQb5BvXe5dQxqmaeShyc0BWA3ra9ApXUNVAoTnp3Hc3i6XkB3TDpq9e3yUiyoPyu1bA/2xlqFcrqzQ0=\n"

// stamp asks the TSA for a token on checkpoint.
func stamp(t *testing.T, a *tsatest.TSA, checkpoint string) []byte {
	t.Helper()
	req, err := timestamp.NewRequest([]byte(checkpoint))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := req.Token(tsatest.Post(t, a.URL, req.DER))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTokenFromSigstoreTSA: a token of sigstore's timestamp-server on a
// checkpoint verifies against its chain and the checkpoint, and is refused
// against another checkpoint, another TSA's roots, or with a flipped byte.
func TestTokenFromSigstoreTSA(t *testing.T) {
	a := tsatest.Start(t, "TSA one")
	other := tsatest.NewChain(t, "TSA two")
	tok := stamp(t, a, cp1)

	v, err := timestamp.NewVerifier(a.Chain)
	if err != nil {
		t.Fatal(err)
	}
	st, err := v.Verify(tok, []byte(cp1))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if st.Signer.Subject.CommonName != "TSA one" || st.Time.IsZero() || st.Serial == nil {
		t.Fatalf("stamp %+v", st)
	}

	// Another checkpoint: the imprint is not its hash.
	if _, err := v.Verify(tok, []byte(cp2)); !errors.Is(err, timestamp.ErrImprint) {
		t.Fatalf("Verify(another checkpoint) = %v, want ErrImprint", err)
	}
	// Another TSA's roots only: the chain does not verify.
	vo, err := timestamp.NewVerifier(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vo.Verify(tok, []byte(cp1)); !errors.Is(err, timestamp.ErrSignature) {
		t.Fatalf("Verify(other roots) = %v, want ErrSignature", err)
	}
	// Both TSAs' roots: verifies.
	both, err := timestamp.NewVerifier(other, a.Chain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := both.Verify(tok, []byte(cp1)); err != nil {
		t.Fatalf("Verify(both roots) = %v", err)
	}
	// The last byte is in the signature: flipped, it fails.
	bad := bytes.Clone(tok)
	bad[len(bad)-1] ^= 1
	if _, err := v.Verify(bad, []byte(cp1)); err == nil {
		t.Fatal("a token with a flipped signature byte verified")
	}
	if _, err := v.Verify([]byte("not a token"), []byte(cp1)); !errors.Is(err, timestamp.ErrMalformed) {
		t.Fatalf("Verify(garbage) = %v, want ErrMalformed", err)
	}
}

// TestAnswerToAnotherRequest: the TSA's answer to one request is refused
// as the answer to another (nonce), and an error status is ErrRefused.
func TestAnswerToAnotherRequest(t *testing.T) {
	a := tsatest.Start(t, "TSA")
	r1, err := timestamp.NewRequest([]byte(cp1))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := timestamp.NewRequest([]byte(cp1))
	if err != nil {
		t.Fatal(err)
	}
	ans := tsatest.Post(t, a.URL, r1.DER)
	if _, err := r2.Token(ans); !errors.Is(err, timestamp.ErrMismatch) {
		t.Fatalf("Token(answer to another request) = %v, want ErrMismatch", err)
	}
	r3, err := timestamp.NewRequest([]byte(cp2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r3.Token(ans); err == nil {
		t.Fatal("the answer for another checkpoint was taken")
	}
	// A rejection status (RFC 3161 PKIStatusInfo rejection, badAlg).
	rejection := []byte{0x30, 0x09, 0x30, 0x07, 0x02, 0x01, 0x02, 0x03, 0x02, 0x07, 0x80}
	if _, err := r1.Token(rejection); !errors.Is(err, timestamp.ErrRefused) {
		t.Fatalf("Token(rejection) = %v, want ErrRefused", err)
	}
}

// TestOpenSSLVerifiesToken: Debian's openssl ts -verify accepts the token
// against the checkpoint file and the TSA's root, and refuses it against
// another checkpoint.
func TestOpenSSLVerifiesToken(t *testing.T) {
	openssl := tsatest.OpenSSL(t)
	a := tsatest.Start(t, "TSA")
	tok := stamp(t, a, cp1)
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokFile, cpFile, otherFile := write("cp.tsr", string(tok)), write("checkpoint", cp1), write("other", cp2)
	run := func(data string) (string, error) {
		out, err := exec.Command(openssl, "ts", "-verify", "-token_in", "-in", tokFile, "-data", data, "-CAfile", a.RootFile).CombinedOutput()
		return string(out), err
	}
	if out, err := run(cpFile); err != nil {
		t.Fatalf("openssl ts -verify: %v\n%s", err, out)
	}
	if out, err := run(otherFile); err == nil {
		t.Fatalf("openssl ts -verify accepted the token for another checkpoint:\n%s", out)
	}
}

package timestamp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// selfSigned is a PEM root certificate, for a Verifier in the fuzz tests.
func selfSigned(t testing.TB) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// FuzzToken: a TSA's answer and a stored token are outside input: no
// input panics the parsers, and nothing but a token signed under the
// roots verifies.
func FuzzToken(f *testing.F) {
	f.Add([]byte{0x30, 0x09, 0x30, 0x07, 0x02, 0x01, 0x02, 0x03, 0x02, 0x07, 0x80})
	f.Add([]byte{0x30, 0x03, 0x30, 0x01, 0x02})
	f.Add([]byte("not DER"))
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x80, 0x30, 0x80, 0x02, 0x01, 0x03})
	v, err := NewVerifier(selfSigned(f))
	if err != nil {
		f.Fatal(err)
	}
	req, err := NewRequest([]byte("checkpoint\n"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if tok, err := req.Token(b); err == nil {
			t.Fatalf("Token accepted %x as %x", b, tok)
		}
		if _, err := v.Verify(b, []byte("checkpoint\n")); err == nil {
			t.Fatalf("Verify accepted %x", b)
		}
		ParseUnverified(b)
	})
}

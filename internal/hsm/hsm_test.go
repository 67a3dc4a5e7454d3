package hsm_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/internal/hsm"
	"github.com/llmaudittrail/llmaudittrail/internal/hsm/hsmtest"
)

func TestParseURI(t *testing.T) {
	u, err := hsm.ParseURI("pkcs11:token=my%20token;object=log-key;type=private?module-path=/usr/lib/x.so&pin-source=file:/etc/pin")
	if err != nil {
		t.Fatal(err)
	}
	if u.Token != "my token" || u.Object != "log-key" || u.ModulePath != "/usr/lib/x.so" || u.PinSource != "file:/etc/pin" {
		t.Fatalf("ParseURI = %+v", u)
	}
	for _, bad := range []string{
		"token=x;object=y?module-path=/m.so",
		"pkcs11:object=y?module-path=/m.so",
		"pkcs11:token=x?module-path=/m.so",
		"pkcs11:token=x;object=y",
		"pkcs11:token=x;object=y;slot-id=3?module-path=/m.so",
		"pkcs11:token=x;object=y;type=public?module-path=/m.so",
		"pkcs11:token=x;object=y?module-path=/m.so&pin-value=1&pin-source=file:/p",
		"pkcs11:token=x;object=y?module-path=/m.so&max-sessions=3",
	} {
		if _, err := hsm.ParseURI(bad); err == nil {
			t.Errorf("ParseURI(%q) accepted it", bad)
		}
	}
}

// TestSoftHSM generates an Ed25519 key in a SoftHSM2 token and checks its
// note and cosignature/v1 signatures with verifiers we did not write
// (golang.org/x/mod/sumdb/note, transparency-dev/formats/note).
func TestSoftHSM(t *testing.T) {
	tk := hsmtest.New(t, "llmaudit-test")
	uri := tk.URI("log-key")
	k, err := hsm.Generate(uri)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hsm.Generate(uri); err == nil {
		t.Fatal("Generate made a second key of the same name")
	}
	msg := []byte("hello")
	sig, err := k.Sign(msg)
	if err != nil || !ed25519.Verify(k.Public(), msg, sig) {
		t.Fatalf("Sign = %x, %v: not an Ed25519 signature by the public key", sig, err)
	}
	k.Close()
	// After Close the module may be gone: signing fails instead of calling
	// into it (which crashed the process), and a second Close does nothing.
	if _, err := k.Sign(msg); !errors.Is(err, hsm.ErrClosed) {
		t.Fatalf("Sign after Close = %v, want ErrClosed", err)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// A wrong PIN does not log in (while no key of the token is open: a
	// PKCS#11 login holds for the whole application).
	if _, err := hsm.Open(strings.Replace(uri, "pin-value="+tk.PIN, "pin-value=wrong", 1)); err == nil {
		t.Fatal("Open logged in with a wrong PIN")
	}

	// Reopened by URI, with the PIN from a 0600 file.
	pinFile := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(pinFile, []byte(tk.PIN+"\n"), 0o600)
	k, err = hsm.Open(strings.Replace(uri, "pin-value="+tk.PIN, "pin-source=file:"+pinFile, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if _, err := hsm.Open(tk.URI("no-such-key")); err == nil {
		t.Fatal("Open found a key that does not exist")
	}
	ns, err := k.NoteSigner("log.test/hsm")
	if err != nil {
		t.Fatal(err)
	}
	text := "log.test/hsm\n7\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"
	signed, err := note.Sign(&note.Note{Text: text}, ns)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(ns.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := note.Open(signed, note.VerifierList(v)); err != nil || n.Text != text {
		t.Fatalf("note.Open of the HSM-signed note: %v", err)
	}

	cs, err := k.CosignatureSigner("witness.test/hsm")
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(&note.Note{Text: text}, cs)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := fnote.NewVerifierForCosignatureV1(cs.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cosigned, note.VerifierList(cv))
	if err != nil || len(n.Sigs) != 1 {
		t.Fatalf("cosignature/v1 of the HSM does not verify: %v", err)
	}
	if _, err := fnote.CoSigV1Timestamp(n.Sigs[0]); err != nil {
		t.Fatal(err)
	}
	// A cosignature by another key of the same name fails the verifier.
	other, _, _ := note.GenerateKey(rand.Reader, "witness.test/hsm")
	os2, err := fnote.NewSignerForCosignatureV1(other)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := note.Sign(&note.Note{Text: text}, os2)
	if _, err := note.Open(forged, note.VerifierList(cv)); err == nil {
		t.Fatal("the verifier accepted another key's cosignature")
	}
}

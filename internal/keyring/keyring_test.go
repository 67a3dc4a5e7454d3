//go:build linux

package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestAddGetRemove(t *testing.T) {
	desc := "llmaudit-test:" + rand.Text()
	if _, err := Get(desc); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	if err := Add(desc, secret); err != nil {
		t.Skipf("the kernel keyring is not usable here: %v", err)
	}
	t.Cleanup(func() { Remove(desc) })
	got, err := Get(desc)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Get = %x, %v; want %x", got, err, secret)
	}
	if err := Remove(desc); err != nil {
		t.Fatal(err)
	}
	if _, err := Get(desc); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Remove = %v, want ErrNotFound", err)
	}
}

// TestKeyctlInterop: a key an operator adds with keyctl (Debian's keyutils)
// is the key Get reads.
func TestKeyctlInterop(t *testing.T) {
	keyctl, err := exec.LookPath("keyctl")
	if err != nil {
		t.Skip("keyctl (Debian keyutils) is not installed; .ci/run installs it")
	}
	desc := "llmaudit-test:" + rand.Text()
	want := hex.EncodeToString([]byte(rand.Text()))
	cmd := exec.Command(keyctl, "padd", "user", desc, "@u")
	cmd.Stdin = strings.NewReader(want)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("keyctl padd: %v\n%s", err, out)
	}
	t.Cleanup(func() { Remove(desc) })
	got, err := Get(desc)
	if err != nil || string(got) != want {
		t.Fatalf("Get = %q, %v; want %q", got, err, want)
	}
}

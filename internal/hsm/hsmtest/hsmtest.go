// Package hsmtest gives tests a SoftHSM2 token of their own (Debian's
// softhsm2 package, which .ci/run installs): a token directory and
// configuration in a temporary directory, initialised with softhsm2-util.
package hsmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Module is where Debian's softhsm2 package puts its PKCS#11 module.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// Token is an initialised SoftHSM2 token.
type Token struct {
	Label string
	PIN   string
	// Env is the environment that points SoftHSM2 at the token
	// (SOFTHSM2_CONF), for child processes.
	Env []string
}

// URI returns the PKCS#11 URI of the key object in the token.
func (tk *Token) URI(object string) string {
	return "pkcs11:token=" + tk.Label + ";object=" + object + "?module-path=" + Module + "&pin-value=" + tk.PIN
}

// New initialises a token labelled label in a temporary directory and sets
// SOFTHSM2_CONF for this process (and so for the test). It skips the test
// when SoftHSM2 is not installed.
func New(t *testing.T, label string) *Token {
	t.Helper()
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		t.Skip("softhsm2 (Debian package) is not installed; .ci/run installs it")
	}
	if _, err := os.Stat(Module); err != nil {
		t.Skipf("%s: %v", Module, err)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	tk := &Token{Label: label, PIN: "4711-test", Env: append(os.Environ(), "SOFTHSM2_CONF="+conf)}
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", tk.PIN, "--so-pin", "so-pin-0")
	cmd.Env = tk.Env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return tk
}

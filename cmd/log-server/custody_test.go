package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/internal/hsm/hsmtest"
	"github.com/llmaudittrail/llmaudittrail/internal/keyring"
)

func stop(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.errc; err != nil {
		t.Fatalf("clean shutdown failed: %v", err)
	}
}

// postPayload writes an event with a payload and returns its index.
func postPayload(t *testing.T, url, tok string) uint64 {
	t.Helper()
	r := post(t, url, tok, "custody")
	if r == nil {
		t.Fatal("write refused")
	}
	return r.Index
}

func readPayload(t *testing.T, url, tok string, index uint64) int {
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/events/%d/payload", url, index), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestMasterKeyInKernelKeyring: with --master-key-source keyring:DESC the
// first start puts a new master key in the user keyring and none on disk;
// the key stays there across a restart and the payloads stay readable.
func TestMasterKeyInKernelKeyring(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	desc := "llmaudit-test:" + rand.Text()
	if _, err := keyring.Get(desc); err != keyring.ErrNotFound {
		t.Skipf("the kernel keyring is not usable here: %v", err)
	}
	t.Cleanup(func() { keyring.Remove(desc) })
	bin := buildBinary(t)
	dir := t.TempDir()
	p := startWith(t, bin, dir, nil, "--master-key-source", "keyring:"+desc)
	tok := readToken(t, dir)
	idx := postPayload(t, p.url, tok)
	stop(t, p)
	if _, err := os.Stat(filepath.Join(dir, "keys", "master.key")); !os.IsNotExist(err) {
		t.Fatalf("keys/master.key exists with the keyring source (%v)", err)
	}
	if _, err := keyring.Get(desc); err != nil {
		t.Fatalf("the master key is not in the keyring after the first start: %v", err)
	}
	p = startWith(t, bin, dir, nil, "--master-key-source", "keyring:"+desc)
	if code := readPayload(t, p.url, tok, idx); code != 200 {
		t.Fatalf("payload after restart = %d, want 200", code)
	}
	stop(t, p)

	// Another key under another description, or the environment
	// disagreeing, stops the server with a message naming them.
	other := "llmaudit-test:" + rand.Text()
	keyring.Add(other, []byte(strings.Repeat("ab", 32)))
	t.Cleanup(func() { keyring.Remove(other) })
	for _, tc := range []struct {
		env   []string
		flags []string
		want  string
	}{
		{nil, []string{"--master-key-source", "keyring:" + other}, "vault.db"},
		{append(os.Environ(), "LLMAUDIT_MASTER_KEY="+strings.Repeat("cd", 32)), []string{"--master-key-source", "keyring:" + desc}, "LLMAUDIT_MASTER_KEY"},
	} {
		cmd := exec.Command(bin, append([]string{"--data", dir, "--listen", "127.0.0.1:0"}, tc.flags...)...)
		cmd.Env = tc.env
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !bytes.Contains(out, []byte(tc.want)) {
			t.Fatalf("start with a mismatched key: %v\n%s\nwant exit 1 naming %s", err, out, tc.want)
		}
	}
}

// TestMasterKeyEnvDisagreesWithFile: LLMAUDIT_MASTER_KEY next to another
// keys/master.key stops the server, naming both.
func TestMasterKeyEnvDisagreesWithFile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	stop(t, start(t, bin, dir))
	cmd := exec.Command(bin, "--data", dir, "--listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "LLMAUDIT_MASTER_KEY="+strings.Repeat("0f", 32))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !bytes.Contains(out, []byte("LLMAUDIT_MASTER_KEY")) || !bytes.Contains(out, []byte("master.key")) {
		t.Fatalf("start with another LLMAUDIT_MASTER_KEY: %v\n%s\nwant exit 1 naming the variable and the file", err, out)
	}
}

// TestSigningKeyInSoftHSM: log-server keygen makes the key in a SoftHSM2
// token; the server signs its checkpoints there, across a restart, with
// no signing key in the data directory.
func TestSigningKeyInSoftHSM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	tk := hsmtest.New(t, "llmaudit-cmd")
	bin := buildBinary(t)
	uri := tk.URI("log")
	cmd := exec.Command(bin, "keygen", "--signing-key", uri, "--origin", "hsm.test/cmd")
	cmd.Env = tk.Env
	vkey, err := cmd.Output()
	if err != nil {
		t.Fatalf("keygen: %v", err)
	}
	v, err := checkpoint.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for round := range 2 {
		p := startWith(t, bin, dir, tk.Env, "--signing-key", uri, "--origin", "hsm.test/cmd")
		tok := readToken(t, dir)
		postPayload(t, p.url, tok)
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := client.Get(p.url + "/checkpoint")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if cp, _, err := checkpoint.Verify(b, v); err == nil && cp.Size > uint64(round) {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no checkpoint verifying with the HSM key", round)
			}
			time.Sleep(50 * time.Millisecond)
		}
		stop(t, p)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "log.key")); !os.IsNotExist(err) {
		t.Fatalf("keys/log.key exists with a PKCS#11 signing key (%v)", err)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "keys", "log.pub"))
	if strings.TrimSpace(string(pub)) != strings.TrimSpace(string(vkey)) {
		t.Fatalf("log.pub = %q, keygen printed %q", pub, vkey)
	}
}

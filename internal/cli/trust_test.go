package cli_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
)

// TestReadTrustTlogPolicy: a tlog-policy naming one log stands in for
// --log-key; one naming logs refuses a --log-key it does not name; without
// either there is nothing to verify against.
func TestReadTrustTlogPolicy(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, vkey, _ := checkpoint.GenerateKey("log.test/a")
	_, otherVKey, _ := checkpoint.GenerateKey("log.test/a") // same origin, another key
	named := write("policy", "log "+vkey+"\nquorum none\n")
	unnamed := write("sigsum-style", "quorum none\n")
	key := write("log.pub", vkey+"\n")
	other := write("other.pub", otherVKey+"\n")

	v, p, err := cli.ReadTrust("", named)
	if err != nil || p == nil || v.Name() != "log.test/a" {
		t.Fatalf("policy alone: %v %v %v", v, p, err)
	}
	want, _ := checkpoint.NewVerifier(vkey)
	if v.KeyHash() != want.KeyHash() {
		t.Fatal("the policy's log key is not the one it names")
	}
	if _, _, err := cli.ReadTrust(key, named); err != nil {
		t.Fatalf("the named key: %v", err)
	}
	if _, _, err := cli.ReadTrust(other, named); !errors.Is(err, checkpoint.ErrOtherLog) {
		t.Fatalf("a key the policy does not name: %v, want ErrOtherLog", err)
	}
	if _, _, err := cli.ReadTrust(other, unnamed); err != nil {
		t.Fatalf("a policy naming no log takes any key: %v", err)
	}
	if _, _, err := cli.ReadTrust("", unnamed); err == nil {
		t.Fatal("no key and a policy naming no log: accepted")
	}
}

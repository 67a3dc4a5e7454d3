package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTokenCommands creates a scoped token with the CLI while the server
// runs, uses it, revokes it, and sees it refused.
func TestTokenCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	p := start(t, bin, dir)
	// Key files are private.
	for _, f := range []string{"log.key", "master.key", "admin.token"} {
		st, err := os.Stat(filepath.Join(dir, "keys", f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("keys/%s: %v mode %v, want 0600", f, err, st.Mode().Perm())
		}
	}
	out, err := exec.Command(bin, "token", "create", "--data", dir, "--name", "agent-7", "--tenant", "clinic-a", "--scopes", "write").Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	tok := strings.TrimSpace(string(out))
	if !strings.HasPrefix(tok, "lat_") {
		t.Fatalf("token create printed %q", tok)
	}
	list, err := exec.Command(bin, "token", "list", "--data", dir).Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^([0-9a-f]{16})\tagent-7\tclinic-a\twrite$`).FindSubmatch(list)
	if m == nil {
		t.Fatalf("token list:\n%s", list)
	}
	if r := post(t, p.url, tok, "cli"); r == nil {
		t.Fatal("new token refused")
	}
	if out, err := exec.Command(bin, "token", "create", "--data", dir, "--name", "x", "--scopes", "root").CombinedOutput(); err == nil || !strings.Contains(string(out), "unknown scope") {
		t.Fatalf("bad scope accepted: %s", out)
	}
	for _, args := range [][]string{{"--tenant", "bad tenant/../x"}, {"--name", strings.Repeat("n", 5000)}, {"--actor", "bad actor"}} {
		cmd := exec.Command(bin, append([]string{"token", "create", "--data", dir, "--name", "x"}, args...)...)
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "invalid token spec") {
			t.Fatalf("token create %q accepted: %s", args, out)
		}
	}
	// A global monitor token bound to an actor shows as such.
	if _, err := exec.Command(bin, "token", "create", "--data", dir, "--name", "mon", "--global", "--scopes", "read,monitor", "--actor", "monitor.a", "--actor", "monitor.b").Output(); err != nil {
		t.Fatalf("token create --global: %v", err)
	}
	list, _ = exec.Command(bin, "token", "list", "--data", dir).Output()
	if !regexp.MustCompile(`(?m)^[0-9a-f]{16}\tmon\tdefault\tread,monitor global actors=monitor.a,monitor.b$`).Match(list) {
		t.Fatalf("token list does not show the global, actor-bound token:\n%s", list)
	}
	if out, err := exec.Command(bin, "token", "revoke", "--data", dir, "--id", string(m[1])).CombinedOutput(); err != nil {
		t.Fatalf("token revoke: %v %s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("POST", p.url+"/v1/events", strings.NewReader(`{"session":"cli","kind":"tool.call","actor":{"type":"agent","id":"a"}}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked token still accepted (%d)", resp.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A world-readable key stops the next start with a clear error.
	p.cmd.Process.Kill()
	<-p.errc
	os.Chmod(filepath.Join(dir, "keys", "master.key"), 0o644)
	out, err = exec.Command(bin, "--data", dir, "--listen", "127.0.0.1:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "master.key has mode 0644") {
		t.Fatalf("start with a 0644 master key: %v\n%s", err, out)
	}
}

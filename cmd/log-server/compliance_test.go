package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// TestComplianceFlags: --compliance and --compliance-config set the floors
// the log records at start (retention.set), and a bad profile or a floor
// below a profile's minimum stops the server before it serves.
func TestComplianceFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	conf := filepath.Join(t.TempDir(), "compliance.yaml")
	os.WriteFile(conf, []byte("tenants:\n  clinic-a: {profiles: [part11], retention: 10y}\n"), 0o644)
	p := startWith(t, bin, dir, nil, "--compliance", "eu-ai-act", "--compliance-config", conf)
	tok := readToken(t, dir)
	// Four events at start (two floors, two compliance configurations);
	// wait until a checkpoint covers them.
	deadline := time.Now().Add(10 * time.Second)
	size := 0
	for size < 4 && time.Now().Before(deadline) {
		if resp, err := client.Get(p.url + "/checkpoint"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if lines := strings.Split(string(b), "\n"); len(lines) > 1 {
				size, _ = strconv.Atoi(lines[1])
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	var floors, configs []string
	for i := 0; i < size; i++ {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/entries/%d", p.url, i), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ Leaf string }
		json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("entry %d: %d", i, resp.StatusCode)
		}
		leaf, _ := base64.StdEncoding.DecodeString(r.Leaf)
		var l struct {
			Kind, Tenant string
			Attributes   map[string]any
		}
		json.Unmarshal(leaf, &l)
		switch l.Kind {
		case "retention.set":
			floors = append(floors, fmt.Sprintf("%s=%v", l.Tenant, l.Attributes["retention.floor"]))
		case "compliance.config":
			configs = append(configs, fmt.Sprintf("%s=%v %v", l.Tenant, l.Attributes["compliance.profiles"], l.Attributes["compliance.rule_params"]))
		}
	}
	stop(t, p)
	if strings.Join(floors, " ") != "default=6m clinic-a=10y" {
		t.Fatalf("retention.set events %v, want default=6m clinic-a=10y", floors)
	}
	// What the profiles switch on is recorded beside the floors: the
	// monitor's medical mode for the tenant that runs part11.
	if want := []string{"default=[eu-ai-act] {}", `clinic-a=[eu-ai-act part11] {"medical_mode":true}`}; !slices.Equal(configs, want) {
		t.Fatalf("compliance.config events %q, want %q", configs, want)
	}
	os.WriteFile(conf, []byte("tenants:\n  clinic-a: {profiles: [part11], retention: 5y}\n"), 0o644)
	for _, tc := range []struct {
		flags []string
		code  int
		want  string
	}{
		{[]string{"--compliance", "hipaa"}, 2, `unknown compliance profile "hipaa"`},
		{[]string{"--compliance-config", filepath.Join(dir, "missing.yaml")}, 2, "--compliance-config"},
		{[]string{"--compliance-config", conf}, 1, "never lowered"},
	} {
		out, err := exec.Command(bin, append([]string{"--data", dir, "--listen", "127.0.0.1:0"}, tc.flags...)...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != tc.code || !bytes.Contains(out, []byte(tc.want)) {
			t.Errorf("%v: %v\n%s\nwant exit %d naming %q", tc.flags, err, out, tc.code, tc.want)
		}
	}
}

// TestComplianceWitnessWarning: --compliance part11 without a witness
// policy says at start that the witness controls will fail and what to do
// (run a witness, --witness-policy, docs/witness.md); with a policy it says
// nothing of the kind.
func TestComplianceWitnessWarning(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binary")
	}
	bin := buildBinary(t)
	_, vkey, err := note.GenerateKey(rand.Reader, "w.test/w")
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "policy")
	// The witness is never reached: fail-open publishes without it.
	os.WriteFile(policy, []byte("witness w "+vkey+" http://127.0.0.1:9\nquorum w\n"), 0o644)
	for _, tc := range []struct {
		name  string
		flags []string
		warn  bool
	}{
		{"no policy", []string{"--compliance", "part11"}, true},
		{"policy", []string{"--compliance", "part11", "--witness-policy", policy, "--witness-fail-open"}, false},
		{"no profile", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logf := filepath.Join(t.TempDir(), "server.log")
			t.Setenv("LLMAUDIT_TEST_SERVER_LOG", logf)
			stop(t, startWith(t, bin, t.TempDir(), nil, tc.flags...))
			b, _ := os.ReadFile(logf)
			var warning string
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "level=WARN") && strings.Contains(line, "witness") {
					warning = line
				}
			}
			if !tc.warn {
				if warning != "" {
					t.Fatalf("warned with %v: %s", tc.flags, warning)
				}
				return
			}
			for _, want := range []string{"compliance=part11", "none is set", "§11.10(a)", "Run a witness", "--witness-policy FILE", "docs/witness.md"} {
				if !strings.Contains(warning, want) {
					t.Errorf("start-up warning %q does not say %q; the log:\n%s", warning, want, b)
				}
			}
		})
	}
}

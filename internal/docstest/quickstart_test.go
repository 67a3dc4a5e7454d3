// Package docstest runs the quickstarts of docs/: every sh block of a
// quickstart, in order, in one bash, in a scratch directory, with the
// binaries built once and free ports in place of the documented ones. A
// command that fails fails the test, with the script's output and the
// logs the servers wrote.
package docstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var shBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// script returns the sh blocks of a Markdown file, in order.
func script(t *testing.T, doc string) string {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range shBlock.FindAllSubmatch(b, -1) {
		out = append(out, string(m[1]))
	}
	if len(out) == 0 {
		t.Fatalf("%s has no sh block", doc)
	}
	return strings.Join(out, "\n")
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// run runs a quickstart. The `go` on its PATH hands out the binaries
// built here for `go build -o bin/ ./cmd/...` and runs anything else with
// the real go.
func run(t *testing.T, doc string) string {
	if testing.Short() {
		t.Skip("runs a whole journey")
	}
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (.ci/run installs it): %v", tool, err)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command(goBin, "build", "-o", bin+"/", "./cmd/log-server", "./cmd/witness", "./cmd/monitor", "./cmd/replay")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, out)
	}
	shim := t.TempDir()
	wrapper := fmt.Sprintf(`#!/bin/sh
if [ "$1" = build ] && [ "$2" = -o ] && [ "$3" = bin/ ]; then
  shift 3; mkdir -p bin
  for p in "$@"; do cp %q/"$(basename "$p")" bin/; done
  exit 0
fi
exec %q "$@"
`, bin, goBin)
	if err := os.WriteFile(filepath.Join(shim, "go"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	text := script(t, filepath.Join(root, doc))
	for _, p := range []string{"8080", "7380"} {
		text = strings.ReplaceAll(text, ":"+p, ":"+freePort(t))
	}
	work := t.TempDir()
	// The shipped rule pack, where the quickstarts name it.
	pack, err := os.ReadFile(filepath.Join(root, "monitor/rules/llm-agents.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(work, "monitor/rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "monitor/rules/llm-agents.yaml"), pack, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", text)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+shim+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A file, not a pipe: the servers the script starts in the background
	// keep its output open, and Run would wait for them.
	outFile, err := os.Create(filepath.Join(t.TempDir(), "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	cmd.Stdout, cmd.Stderr = outFile, outFile
	err = cmd.Run()
	// Whatever the script left running (servers started with &) stops
	// with it.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	outBytes, _ := os.ReadFile(outFile.Name())
	out := string(outBytes)
	if err != nil {
		var logs strings.Builder
		for _, name := range []string{"first-start.log", "log-server.log", "witness.log", "monitor.log"} {
			if b, rerr := os.ReadFile(filepath.Join(work, name)); rerr == nil {
				fmt.Fprintf(&logs, "\n--- %s (last 3000 bytes)\n%s", name, tail(b, 3000))
			}
		}
		t.Fatalf("%s: %v\n--- output\n%s%s", doc, err, out, logs.String())
	}
	t.Logf("%s:\n%s", doc, out)
	return out
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// The Part 11 journey ends with every control satisfied or not
// applicable, the report recomputed equal and the log intact.
func TestQuickstartPart11(t *testing.T) {
	out := run(t, "docs/quickstart-part11.md")
	for _, want := range []string{"part11-11.10a satisfied", "part11-11.50 satisfied", "part11-11.70 satisfied", "OK: everything verified"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report does not say %q", want)
		}
	}
	if !strings.Contains(out, " 0 not satisfied") || strings.Contains(out, " not-satisfied") {
		t.Errorf("a control is not satisfied")
	}
}

// The SOX journey: an approved configuration change, a monitor running,
// the report in three formats from one computation, every control
// satisfied, recomputed equal, the log intact.
func TestQuickstartSOX(t *testing.T) {
	out := run(t, "docs/quickstart-sox.md")
	for _, want := range []string{"sox-itgc-change satisfied", "sox-itgc-sod satisfied", "sox-itgc-operations satisfied", "sox-as2201-benchmark satisfied", "0 not satisfied", "OK: everything verified"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report does not say %q", want)
		}
	}
}

// The EU AI Act journey: automatic logging, the floor, an oversight event,
// the monitor reporting; every control satisfied or not applicable.
func TestQuickstartEUAIAct(t *testing.T) {
	out := run(t, "docs/quickstart-eu-ai-act.md")
	for _, want := range []string{"euaia-art12.1 satisfied", "euaia-art14 satisfied", "euaia-art19 satisfied", "euaia-art72 satisfied", " 0 not satisfied", "OK: everything verified"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report does not say %q", want)
		}
	}
}

package main

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/cli/clitest"
)

func TestHelpMatchesDocs(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "loadgen")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	clitest.CheckHelp(t, bin, "loadgen", "../../docs/commands.md")
}

package main

import (
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/cli/clitest"
)

func TestHelpMatchesDocs(t *testing.T) {
	clitest.CheckHelp(t, binary, "monitor", "../../docs/commands.md", "verify --help", "verify-receipt --help", "verify-disclosure --help", "verify-signature --help", "report --help", "verify-report --help")
}

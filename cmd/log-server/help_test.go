package main

import (
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/cli/clitest"
)

func TestHelpMatchesDocs(t *testing.T) {
	clitest.CheckHelp(t, buildBinary(t), "log-server", "../../docs/commands.md", "config --help", "token create --help", "token revoke --help", "token list --help", "mcp wrap --help")
}

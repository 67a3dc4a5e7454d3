package main_test

import (
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/cli/clitest"
	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
)

func TestHelpMatchesDocs(t *testing.T) {
	clitest.CheckHelp(t, witnesstest.BuildOurWitness(t), "witness", "../../docs/commands.md", "keygen --help")
}

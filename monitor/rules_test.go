package monitor

import (
	"os"
	"testing"
)

func TestPackParses(t *testing.T) {
	b, err := os.ReadFile("rules/llm-agents.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ParseRules("llm-agents.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rs.Names())
}

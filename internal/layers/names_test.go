package layers

import (
	"slices"
	"strings"
	"testing"
)

// TestKindsAndKeysNamedOnce holds the tree to the rule: every event kind
// and attribute key is a constant declared once, and non-test code names
// it by the constant.
func TestKindsAndKeysNamedOnce(t *testing.T) {
	names, violations, err := CheckNames("../..")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n.Value] = true
	}
	for _, v := range []string{"llm.request", "tool.call", "access.read", "human.signature", "report.issued", "monitor.alert",
		"access.signin", "compliance.config", "capture.outcome", "gen_ai.tool.name", "access.reason", "signer.id"} {
		if !have[v] {
			t.Errorf("%q is not in the registry", v)
		}
	}
	if len(names) < 150 {
		t.Errorf("the registry has %d names, want the tree's 150 and more", len(names))
	}
	for _, v := range violations {
		t.Error(v)
	}
}

// TestCheckNamesCatchesLiterals shows the rule failing on a fixture.
func TestCheckNamesCatchesLiterals(t *testing.T) {
	names, got, err := CheckNames("testdata/names")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 4 {
		t.Errorf("registry %v, want the fixture's 4 constants", names)
	}
	want := []string{
		`"fix.kind" is declared 2 times: other.KindFixAgain, owner.KindFix`,
		`use/use.go:10: "fix.kind" spells other.KindFixAgain: name the constant`,
		`use/use.go:11: "fix.key" spells owner.AttrFix: name the constant`,
		`use/use.go:12: attribute key "fix.undeclared" is not declared (add a Kind or Attr constant in the package that owns it, event/kinds.go or event/attributes.go)`,
		`use/use.go:13: attribute key "fix.read" is not declared (add a Kind or Attr constant in the package that owns it, event/kinds.go or event/attributes.go)`,
		`use/use.go:14: kind "fix.other" is not declared (add a Kind or Attr constant in the package that owns it, event/kinds.go or event/attributes.go)`,
		`use/use.go:15: attribute key "fix.map" is not declared (add a Kind or Attr constant in the package that owns it, event/kinds.go or event/attributes.go)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

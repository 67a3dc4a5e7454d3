package main

import (
	"flag"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/period"
	"github.com/llmaudittrail/llmaudittrail/profile"
	"github.com/llmaudittrail/llmaudittrail/retention"
)

// A profile registered from this test file, after compliance's own (the
// whole of a test-only profile, its controls and report, is
// compliance/testonly_test.go; here only its name and floor matter).
func init() {
	profile.Register(profile.Profile{Name: "test-only", Title: "A made-up rule for tests", Floor: period.Period{Years: 3, Months: 6}})
}

// TestComplianceFlagListsRegistry: the --compliance help lists every
// registered profile with its floor, a test-only one too, and an unknown
// value is refused with the same names.
func TestComplianceFlagListsRegistry(t *testing.T) {
	const want = "compliance profiles, comma-separated: part11, sox, eu-ai-act, test-only (retention floors 7y, 7y, 6m, 3y6m; combined, the strictest wins)"
	c := defaultConfig()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	bindConfig(fs, &c)
	if got := fs.Lookup("compliance").Usage; got != want {
		t.Errorf("--compliance help:\n got %s\nwant %s", got, want)
	}
	if _, err := retention.ParseProfiles("test-only,gxp"); err == nil ||
		err.Error() != `unknown compliance profile "gxp" (registered: part11, sox, eu-ai-act, test-only)` {
		t.Errorf("--compliance test-only,gxp: %v", err)
	}
	if p, err := retention.ParseProfiles("test-only"); err != nil || len(p) != 1 {
		t.Errorf("--compliance test-only: %v, %v", p, err)
	}
}

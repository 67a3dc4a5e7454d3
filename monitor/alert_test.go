package monitor

import (
	"encoding/json"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/verify"
)

// TestAlertOfFinding: a finding of the log's verification is raised as an
// alert of the same JSON, so that monitor verify's findings and the
// follower's alerts read alike.
func TestAlertOfFinding(t *testing.T) {
	idx := uint64(7)
	f := verify.Finding{ID: "id", Time: "2026-01-02T03:04:05Z", Rule: verify.RuleSessionChain, Severity: "critical", Index: &idx,
		Message: "m", Source: verify.SourceIntegrity, Origin: "o", Tenant: "t", Session: "s", TreeSize: 9, Details: map[string]any{"k": "v"}}
	for _, f := range []verify.Finding{f, {Rule: verify.RuleFork, Message: "m"}} {
		fj, _ := json.Marshal(f)
		aj, _ := json.Marshal(alertOf(f))
		if string(fj) != string(aj) {
			t.Errorf("finding %s\nalert   %s", fj, aj)
		}
	}
}

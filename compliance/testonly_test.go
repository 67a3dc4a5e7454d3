package compliance

import (
	"github.com/llmaudittrail/llmaudittrail/internal/period"
	"github.com/llmaudittrail/llmaudittrail/profile"
)

// testOnly is a profile that exists only in tests, added the way a profile
// is added: this one file, and one registration line (a real profile's is
// a line in registry.go; a test's must be an init function). Its rule and
// its floor (3y6m, which no real profile has) are made up, so that nothing
// else can know them: TestTestOnlyProfile (registry_test.go) finds its floor
// enforced by retention and the server, its name among the valid
// --compliance values, and its report computed. It has no parameters: a
// profile's parameters are a struct in ProfileParams.
var testOnly = Profile{
	Profile: profile.Profile{
		Name: "test-only", Title: "A made-up rule for tests", Floor: period.Period{Years: 3, Months: 6},
		Basis: "Made-up rule §1: records kept three and a half years",
	},
	Controls: []Control{
		{"test-only-1", "Made-up rule §1", "Records kept three and a half years", retentionControl},
		{"test-only-2", "Made-up rule §2", "Something was recorded in the period", func(c *collector) ControlResult {
			ev := Evidence{Counts: map[string]int{"entries_in_period": c.inPeriod}}
			if c.inPeriod == 0 {
				return notSatisfied("nothing was recorded in the period", ev)
			}
			return verdict("entries were recorded in the period", "", offenses{}, ev)
		}},
	},
}

func init() { register(testOnly) }

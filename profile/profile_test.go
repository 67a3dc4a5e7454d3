package profile

import (
	"errors"
	"slices"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/period"
)

// TestRegistry: profiles register in order, a name is taken once, and an
// unknown name's error lists the registered ones.
func TestRegistry(t *testing.T) {
	t.Cleanup(func() { profiles = nil })
	if err := Unknown("gxp").Error(); err != `unknown compliance profile "gxp" (no profile is registered: the program does not link package compliance)` {
		t.Errorf("empty registry: %s", err)
	}
	Register(Profile{Name: "records", Title: "Records", Floor: period.Period{Years: 7}, Basis: "a rule"})
	Register(Profile{Name: "logs", Title: "Logs", Floor: period.Period{Months: 6}})
	if got := Names(); !slices.Equal(got, []string{"records", "logs"}) {
		t.Errorf("Names() = %v", got)
	}
	if p, ok := Lookup("logs"); !ok || p.Floor != (period.Period{Months: 6}) {
		t.Errorf("Lookup(logs) = %+v, %v", p, ok)
	}
	if _, ok := Lookup("gxp"); ok {
		t.Error("Lookup(gxp) found a profile")
	}
	var u *UnknownError
	if err := error(Unknown("gxp")); !errors.As(err, &u) || u.Name != "gxp" || err.Error() != `unknown compliance profile "gxp" (registered: records, logs)` {
		t.Errorf("Unknown(gxp) = %v", err)
	}
	for _, bad := range []Profile{{Name: "records", Title: "Again"}, {Name: "", Title: "No name"}, {Name: "Bad Name", Title: "x"}, {Name: "untitled"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%+v) did not panic", bad)
				}
			}()
			Register(bad)
		}()
	}
	if got := len(All()); got != 2 {
		t.Errorf("%d profiles after refused registrations", got)
	}
}

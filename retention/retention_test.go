package retention

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
	"github.com/llmaudittrail/llmaudittrail/profile"
)

// The profiles these tests know, registered from this test file the way
// package compliance registers its own: retention knows only what is
// registered, and nothing here depends on the real profiles' floors.
func init() {
	profile.Register(profile.Profile{Name: "records-7y", Title: "A records rule", Floor: Period{Years: 7}})
	profile.Register(profile.Profile{Name: "audit-7y", Title: "An audit rule", Floor: Period{Years: 7}})
	profile.Register(profile.Profile{Name: "logs-6m", Title: "A logging rule", Floor: Period{Months: 6}})
}

func TestParsePeriod(t *testing.T) {
	for in, want := range map[string]Period{"7y": {Years: 7}, "6m": {Months: 6}, "30d": {Days: 30}, "1y6m": {Years: 1, Months: 6}, " 2y3m4d ": {Years: 2, Months: 3, Days: 4}} {
		if got, err := ParsePeriod(in); err != nil || got != want {
			t.Errorf("ParsePeriod(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "7", "y", "7w", "7 years", "-1y", "1001y", "99999999999999999999y"} {
		if p, err := ParsePeriod(bad); err == nil {
			t.Errorf("ParsePeriod(%q) = %v, want an error", bad, p)
		}
	}
	// Calendar arithmetic: 7 years from a leap day.
	leap := time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC)
	if got := (Period{Years: 7}).End(leap); !got.Equal(time.Date(2035, 3, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("7y from a leap day = %v", got)
	}
	if !(Period{Years: 1}).Longer(Period{Months: 11, Days: 30}) || (Period{Months: 6}).Longer(Period{Months: 6}) {
		t.Error("Longer")
	}
}

func TestFloorStrictestWinsNeverLowered(t *testing.T) {
	for _, c := range []struct {
		profiles []string
		raise    string
		want     string
		err      bool
	}{
		{nil, "", "0d", false},
		{[]string{"logs-6m"}, "", "6m", false},
		{[]string{"logs-6m", "records-7y"}, "", "7y", false},
		{[]string{"audit-7y", "logs-6m"}, "10y", "10y", false},
		{[]string{"logs-6m"}, "1y", "1y", false},
		{[]string{"logs-6m"}, "5m", "", true},
		{[]string{"records-7y"}, "6y11m", "", true},
		{nil, "3d", "3d", false},
	} {
		var raise *Period
		if c.raise != "" {
			p, _ := ParsePeriod(c.raise)
			raise = &p
		}
		got, err := Floor(c.profiles, raise)
		if (err != nil) != c.err || (!c.err && got.String() != c.want) {
			t.Errorf("Floor(%v, %s) = %v, %v; want %s (error %v)", c.profiles, c.raise, got, err, c.want, c.err)
		}
	}
	if got, err := ParseProfiles("records-7y, audit-7y,records-7y"); err != nil || !slices.Equal(got, []string{"records-7y", "audit-7y"}) {
		t.Fatalf("ParseProfiles = %v, %v", got, err)
	}
	// An unknown profile is refused with the registered ones listed, by
	// the parser, the floor and the configuration.
	var unknown *profile.UnknownError
	if _, err := ParseProfiles("logs-6m,hipaa"); !errors.As(err, &unknown) ||
		err.Error() != `unknown compliance profile "hipaa" (registered: records-7y, audit-7y, logs-6m)` {
		t.Errorf("ParseProfiles(logs-6m,hipaa): %v", err)
	}
	if _, err := Floor([]string{"logs-6m", "hipaa"}, nil); !errors.As(err, &unknown) || unknown.Name != "hipaa" {
		t.Errorf("Floor(logs-6m, hipaa): %v", err)
	}
	if _, err := ParseConfig([]byte("tenants:\n  clinic-a: {profiles: [hipaa]}\n")); !errors.As(err, &unknown) {
		t.Errorf("a tenant with an unknown profile: %v", err)
	}
}

func TestConfigRules(t *testing.T) {
	c, err := ParseConfig([]byte(`
profiles: [logs-6m]
report_title: other keys belong to the reports
tenants:
  clinic-a: {profiles: [records-7y], retention: 10y}
  shop-b: {retention: 1y}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Rules(nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(tenant, floor string, profiles ...string) {
		t.Helper()
		f, p := r.For(tenant)
		if f.String() != floor || !slices.Equal(p, profiles) {
			t.Errorf("%s: %s %v, want %s %v", tenant, f, p, floor, profiles)
		}
	}
	check("default", "6m", "logs-6m")
	check("unlisted", "6m", "logs-6m")
	check("clinic-a", "10y", "logs-6m", "records-7y")
	check("shop-b", "1y", "logs-6m")
	// With audit-7y for every tenant (--compliance audit-7y), shop-b's 1y
	// is below the 7y audit-7y requires: refused, naming the tenant.
	if _, err := c.Rules([]string{"audit-7y"}); err == nil || !strings.Contains(err.Error(), "shop-b") {
		t.Errorf("a tenant floor below the profiles: %v", err)
	}
}

func TestHolds(t *testing.T) {
	db, err := sqldb.OpenSQLite(filepath.Join(t.TempDir(), "state.db"), sqlitedb.Durable)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h1, _ := s.Place(ctx, "acme", "case-1", "", "litigation")
	h2, _ := s.Place(ctx, "acme", "", "ps_abc", "inquiry")
	s.Place(ctx, "other", "case-2", "", "x")
	ids := func(hs []Hold, err error) []string {
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, h := range hs {
			out = append(out, h.ID)
		}
		return out
	}
	if got := ids(s.Held(ctx, "acme", []string{"case-1", "case-2"}, nil)); !slices.Equal(got, []string{h1.ID}) {
		t.Errorf("session holds %v", got)
	}
	if got := ids(s.Held(ctx, "acme", nil, []string{"ps_abc"})); !slices.Equal(got, []string{h2.ID}) {
		t.Errorf("subject holds %v", got)
	}
	if got := ids(s.Held(ctx, "other", nil, []string{"ps_abc"})); got != nil {
		t.Errorf("another tenant's holds %v", got)
	}
	if _, err := s.Release(ctx, "other", h1.ID); err != ErrNotFound {
		t.Errorf("release from another tenant: %v", err)
	}
	if _, err := s.Release(ctx, "acme", h1.ID); err != nil {
		t.Fatal(err)
	}
	if got := ids(s.Held(ctx, "acme", []string{"case-1"}, nil)); got != nil {
		t.Errorf("released hold still holds: %v", got)
	}
	if _, err := s.Release(ctx, "acme", h1.ID); err != ErrNotFound {
		t.Errorf("second release: %v", err)
	}
}

package retention

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
)

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
		{[]string{"eu-ai-act"}, "", "6m", false},
		{[]string{"eu-ai-act", "part11"}, "", "7y", false},
		{[]string{"sox", "eu-ai-act"}, "10y", "10y", false},
		{[]string{"eu-ai-act"}, "1y", "1y", false},
		{[]string{"eu-ai-act"}, "5m", "", true},
		{[]string{"part11"}, "6y11m", "", true},
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
	if _, err := ParseProfiles("part11, sox,part11"); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseProfiles("hipaa"); err == nil {
		t.Error("unknown profile accepted")
	}
}

func TestConfigRules(t *testing.T) {
	c, err := ParseConfig([]byte(`
profiles: [eu-ai-act]
report_title: other keys belong to the reports
tenants:
  clinic-a: {profiles: [part11], retention: 10y}
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
	check("default", "6m", "eu-ai-act")
	check("unlisted", "6m", "eu-ai-act")
	check("clinic-a", "10y", "eu-ai-act", "part11")
	check("shop-b", "1y", "eu-ai-act")
	// With sox for every tenant (--compliance sox), shop-b's 1y is below
	// the 7y sox requires: refused, naming the tenant.
	if _, err := c.Rules([]string{"sox"}); err == nil || !strings.Contains(err.Error(), "shop-b") {
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

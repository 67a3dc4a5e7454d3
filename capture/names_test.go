package capture

import (
	"regexp"
	"testing"
)

// queryName and upstreamName accept exactly what the regular expressions
// they replace accepted.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"", "a", "api-version", "key[]", "x.y_z-1", "A", "_a", "-a", "a b", "é", "0123456789012345678901234567890123",
		"openai", "gw.1", "Upper", "a/b"} {
		f.Add(s)
	}
	queryRE := regexp.MustCompile(`^[A-Za-z0-9_.\-\[\]]{1,32}$`)
	upstreamRE := regexp.MustCompile(`^[a-z0-9][a-z0-9_.\-]{0,63}$`)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := queryName(s), queryRE.MatchString(s); got != want {
			t.Fatalf("queryName(%q) = %v, the regular expression says %v", s, got, want)
		}
		if got, want := upstreamName(s), upstreamRE.MatchString(s); got != want {
			t.Fatalf("upstreamName(%q) = %v, the regular expression says %v", s, got, want)
		}
	})
}

package event

import (
	"regexp"
	"testing"
)

// The hand-written character classes accept exactly what the regular
// expressions they replace accepted.
func FuzzValidators(f *testing.F) {
	for _, s := range []string{"", "a", "llm.request", "a..b", "a.", ".a", "A", "a_1.b_2", "s-1", "x:y@z", "1abc", "_x", "a/b",
		"application/json", "text/plain; charset=utf-8", "text/plain;\x01", "a/b/c", "/b", "a/", "Application/json", "a+b.c/d-e", "é"} {
		f.Add(s)
	}
	kindRE := regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	attrKeyRE := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.\-]*$`)
	idRE := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@\-]*$`)
	mediaTypeRE := regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+\-]*/[a-z0-9][a-z0-9!#$&^_.+\-]*(;[ -~]*)?$`)
	nameRE := regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+\-]*/[a-z0-9][a-z0-9!#$&^_.+\-]*$`)
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range []struct {
			name      string
			got, want bool
		}{
			{"ValidKind", ValidKind(s), len(s) <= 64 && kindRE.MatchString(s)},
			{"validAttrKey", validAttrKey(s), attrKeyRE.MatchString(s)},
			{"ValidID", ValidID(s), len(s) <= MaxIDLength && idRE.MatchString(s)},
			{"ValidMediaType", ValidMediaType(s), len(s) <= 128 && mediaTypeRE.MatchString(s)},
			{"MediaTypeName", MediaTypeName(s), nameRE.MatchString(s)},
		} {
			if c.got != c.want {
				t.Fatalf("%s(%q) = %v, the regular expression says %v", c.name, s, c.got, c.want)
			}
		}
	})
}

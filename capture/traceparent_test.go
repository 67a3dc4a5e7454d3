package capture

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestTraceContext(t *testing.T) {
	const trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tc := range []struct {
		name   string
		values []string
		ok     bool
	}{
		{"valid", []string{"00-" + trace + "-" + span + "-01"}, true},
		{"not sampled", []string{"00-" + trace + "-" + span + "-00"}, true},
		{"later version, longer", []string{"01-" + trace + "-" + span + "-01-what-comes"}, true},
		{"absent", nil, false},
		{"two headers", []string{"00-" + trace + "-" + span + "-01", "00-" + trace + "-" + span + "-01"}, false},
		{"upper case", []string{"00-4BF92F3577B34DA6A3CE929D0E0E4736-" + span + "-01"}, false},
		{"version ff", []string{"ff-" + trace + "-" + span + "-01"}, false},
		{"version 00, longer", []string{"00-" + trace + "-" + span + "-01-x"}, false},
		{"zero trace", []string{"00-00000000000000000000000000000000-" + span + "-01"}, false},
		{"zero span", []string{"00-" + trace + "-0000000000000000-01"}, false},
		{"short", []string{"00-" + trace + "-" + span}, false},
		{"separators", []string{"00_" + trace + "-" + span + "-01"}, false},
		{"not hex", []string{"00-" + trace[:31] + "g-" + span + "-01"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.values {
				h.Add("traceparent", v)
			}
			gotTrace, gotSpan := traceContext(h)
			if tc.ok && (gotTrace != trace || gotSpan != span) {
				t.Fatalf("traceContext(%q) = %q, %q; want %q, %q", tc.values, gotTrace, gotSpan, trace, span)
			}
			if !tc.ok && (gotTrace != "" || gotSpan != "") {
				t.Fatalf("traceContext(%q) = %q, %q; want nothing", tc.values, gotTrace, gotSpan)
			}
		})
	}
}

// traceContext accepts exactly the headers a reading of the specification's
// grammar accepts: version 00 at 55 characters, a later version (not ff)
// at 55 or more with a dash after the flags, lower-case hex, ids not zero.
func FuzzTraceContext(f *testing.F) {
	for _, s := range []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""} {
		f.Add(s)
	}
	re := regexp.MustCompile(`(?s)^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?$`)
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Set("traceparent", v)
		trace, span := traceContext(h)
		m := re.FindStringSubmatch(v)
		want := m != nil && m[1] != "ff" && (m[1] != "00" || m[4] == "") &&
			strings.Trim(m[2], "0") != "" && strings.Trim(m[3], "0") != ""
		if want != (trace != "") {
			t.Fatalf("traceContext(%q) = %q, %q; the grammar says %v", v, trace, span, want)
		}
		if want && (trace != m[2] || span != m[3]) {
			t.Fatalf("traceContext(%q) = %q, %q; want %q, %q", v, trace, span, m[2], m[3])
		}
	})
}

package capture

import (
	"net/http"
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

package capture

import "net/http"

// traceContext reads the W3C Trace Context traceparent header of a request
// (https://www.w3.org/TR/trace-context/#traceparent-header): the trace id
// and the id of the caller's span (parent-id), each lower-case hex, or ""
// for both when the header is absent or not a valid version 00 header (or
// a later version's first 55 characters, as the specification says to read
// one). The ids are random numbers the agent's tracer drew, nothing of the
// request's content; the OTLP receiver matches them with the spans the
// agent exports (docs/otel.md, "Calls seen twice").
func traceContext(h http.Header) (traceID, spanID string) {
	vs := h.Values("Traceparent")
	if len(vs) != 1 {
		return "", "" // none, or ambiguous: the specification says to ignore both
	}
	v := vs[0]
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return "", ""
	}
	version, trace, span, flags := v[0:2], v[3:35], v[36:52], v[53:55]
	if !lowerHex(version) || !lowerHex(trace) || !lowerHex(span) || !lowerHex(flags) || version == "ff" {
		return "", ""
	}
	if version == "00" && len(v) != 55 || version != "00" && len(v) > 55 && v[55] != '-' {
		return "", ""
	}
	if allZero(trace) || allZero(span) {
		return "", ""
	}
	return trace, span
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

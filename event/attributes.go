package event

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Attributes are a leaf's attributes as ParseLeaf decodes them: strings,
// booleans, json.Number for numbers and []any for arrays. Its methods read
// one attribute each and return the zero value (and false) when it is
// missing or of another type: a reader of the log never panics on what a
// writer chose to put there.
type Attributes map[string]any

// String is the string attribute k, "" if none.
func (a Attributes) String(k string) string {
	s, _ := a[k].(string)
	return s
}

// Strings is the string elements of the array attribute k (others are
// skipped), nil if none.
func (a Attributes) Strings(k string) []string {
	vs, _ := a[k].([]any)
	var out []string
	for _, v := range vs {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Bool is the boolean attribute k, false if none.
func (a Attributes) Bool(k string) bool {
	b, _ := a[k].(bool)
	return b
}

// Float is the number attribute k.
func (a Attributes) Float(k string) (float64, bool) {
	switch v := a[k].(type) {
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case float64:
		return v, true
	case int64:
		return float64(v), true
	case int:
		return float64(v), true
	case uint64:
		return float64(v), true
	}
	return 0, false
}

// Number is the number attribute k, 0 if none.
func (a Attributes) Number(k string) float64 {
	f, _ := a.Float(k)
	return f
}

// Uint is the attribute k if it is a non-negative integer.
func (a Attributes) Uint(k string) (uint64, bool) {
	switch v := a[k].(type) {
	case json.Number:
		n, err := strconv.ParseUint(string(v), 10, 64)
		return n, err == nil
	case float64:
		if v >= 0 && v < math.MaxUint64 && v == math.Trunc(v) {
			return uint64(v), true
		}
	case int64:
		return uint64(v), v >= 0
	case int:
		return uint64(v), v >= 0
	case uint64:
		return v, true
	}
	return 0, false
}

// Time is the attribute k if it is an RFC 3339 time (TimeFormat is one).
func (a Attributes) Time(k string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, a.String(k))
	return t, err == nil
}

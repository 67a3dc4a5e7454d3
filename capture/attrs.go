package capture

import (
	"encoding/json"
	"math"
	"strings"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// attrs are event attributes under construction. set drops empty and nil
// values and bounds strings and arrays to what a leaf accepts.
type attrs map[string]any

func (a attrs) set(k string, v any) {
	switch v := v.(type) {
	case string:
		if v != "" {
			a[k] = clean(v, maxAttrString)
		}
	case []string:
		if len(v) == 0 {
			return
		}
		if len(v) > 64 {
			v = v[:64]
		}
		out := make([]string, len(v))
		for i, s := range v {
			out[i] = clean(s, 128)
		}
		a[k] = out
	case *int64:
		if v != nil {
			a[k] = *v
		}
	case *float64:
		if v != nil && !math.IsNaN(*v) && !math.IsInf(*v, 0) {
			a[k] = *v
		}
	case float64:
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			a[k] = v
		}
	case int:
		a[k] = int64(v)
	case int64, bool:
		a[k] = v
	}
}

// clean makes s a short printable string for a leaf: valid UTF-8, control
// characters replaced, at most n bytes. Leaves stay small whatever an
// upstream or an agent sends.
func clean(s string, n int) string {
	s = strings.ToValidUTF8(event.Clip(s, 4*n), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	return event.Clip(s, n)
}

func (a attrs) clone() attrs {
	out := make(attrs, len(a)+16)
	for k, v := range a {
		out[k] = v
	}
	return out
}

// raw encodes the attributes for an event.Request.
func (a attrs) raw() map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(a))
	for k, v := range a {
		b, err := json.Marshal(v)
		if err != nil {
			continue
		}
		out[k] = b
	}
	return out
}

func millis(d time.Duration) int64 { return d.Milliseconds() }

// timeAttr formats t as the leaf's time format does.
func timeAttr(t time.Time) string { return t.UTC().Format(event.TimeFormat) }

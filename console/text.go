package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Every value the console shows from the log is attacker-controlled text.
// html/template escapes it for HTML; event.SafeText (one line) and
// event.SafeBlock (several) also make it visible as what it is: control
// characters, bidirectional overrides and invisible characters are shown
// escaped, so that nothing in a value can reorder, hide or restyle the
// text around it.

// short shows the start of a long hex string.
func short(h string) string {
	if len(h) <= 16 {
		return h
	}
	return h[:16] + "…"
}

// value renders an attribute value: strings as they are, anything else as
// compact JSON.
func value(v any) string {
	if s, ok := v.(string); ok {
		return event.SafeText(s)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return event.SafeText(fmt.Sprint(v))
	}
	return event.SafeText(strings.TrimSuffix(b.String(), "\n"))
}

// attr is one attribute of a leaf, for display.
type attr struct{ Key, Value string }

func attrs(m map[string]any) []attr {
	out := make([]attr, 0, len(m))
	for k, v := range m {
		out = append(out, attr{Key: event.SafeText(k), Value: value(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// when renders a leaf time (or an RFC 3339 one) as UTC to the second, or
// the value as text if it is not a time.
func when(s string) string {
	for _, f := range []string{event.TimeFormat, time.RFC3339Nano} {
		if t, err := time.Parse(f, s); err == nil {
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		}
	}
	return event.SafeText(s)
}

// ago says how long ago t was, roughly.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "in the future (clock skew?)"
	case d < 2*time.Second:
		return "just now"
	case d < 2*time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// pretty indents a JSON payload; anything else is returned as it is.
func pretty(payload []byte) string {
	var out bytes.Buffer
	if json.Indent(&out, payload, "", "  ") == nil {
		return out.String()
	}
	return string(payload)
}

// and joins names as prose: "a", "a and b", "a, b and c".
func and(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

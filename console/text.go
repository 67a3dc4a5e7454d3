package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Every value the console shows from the log is attacker-controlled text.
// html/template escapes it for HTML; these functions also make it visible
// as what it is: control characters (a terminal's escapes among them),
// bidirectional overrides and invisible characters are shown escaped, so
// that nothing in a value can reorder, hide or restyle the text around it.

// invisible reports whether r changes how the text around it reads
// without being seen: C0 and C1 controls, bidirectional controls,
// zero-width characters and the byte-order mark.
func invisible(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r >= 0x200b && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2060 && r <= 0x2069, r == 0xfeff, r == 0x061c:
		return true
	}
	return false
}

func escapeRune(b *strings.Builder, r rune) {
	switch {
	case r == '\n':
		b.WriteString(`\n`)
	case r == '\t':
		b.WriteString(`\t`)
	case r == '\r':
		b.WriteString(`\r`)
	case r < 0x100:
		fmt.Fprintf(b, `\x%02x`, r)
	default:
		fmt.Fprintf(b, `\u%04x`, r)
	}
}

// line renders s as one line of visible text.
func line(s string) string {
	if !needsEscape(s, false) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				fmt.Fprintf(&b, `\x%02x`, s[i])
				continue
			}
		}
		if invisible(r) {
			escapeRune(&b, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// block renders s as text of several lines: newlines and tabs are kept,
// every other invisible character is shown escaped.
func block(s string) string {
	if !needsEscape(s, true) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				fmt.Fprintf(&b, `\x%02x`, s[i])
				continue
			}
		}
		if invisible(r) && r != '\n' && r != '\t' {
			escapeRune(&b, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func needsEscape(s string, multiline bool) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if invisible(r) && !(multiline && (r == '\n' || r == '\t')) {
			return true
		}
	}
	return false
}

// clip shortens s to n runes with an ellipsis.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

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
		return line(s)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return line(fmt.Sprint(v))
	}
	return line(strings.TrimSuffix(b.String(), "\n"))
}

// attr is one attribute of a leaf, for display.
type attr struct{ Key, Value string }

func attrs(m map[string]any) []attr {
	out := make([]attr, 0, len(m))
	for k, v := range m {
		out = append(out, attr{Key: line(k), Value: value(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// attrString reads a string attribute of a leaf.
func attrString(l *event.Leaf, k string) string {
	if l == nil {
		return ""
	}
	s, _ := l.Attributes[k].(string)
	return s
}

// attrUint reads a non-negative integer attribute of a leaf.
func attrUint(l *event.Leaf, k string) (uint64, bool) {
	if l == nil {
		return 0, false
	}
	switch v := l.Attributes[k].(type) {
	case json.Number:
		var n uint64
		if _, err := fmt.Sscan(v.String(), &n); err == nil {
			return n, true
		}
	case float64:
		if v >= 0 && v == float64(uint64(v)) {
			return uint64(v), true
		}
	}
	return 0, false
}

// when renders a leaf time (or an RFC 3339 one) as UTC to the second, or
// the value as text if it is not a time.
func when(s string) string {
	for _, f := range []string{event.TimeFormat, time.RFC3339Nano} {
		if t, err := time.Parse(f, s); err == nil {
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		}
	}
	return line(s)
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

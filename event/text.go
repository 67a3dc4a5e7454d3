package event

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Every value read from a log is text that its writer chose. SafeText and
// SafeBlock make it visible as what it is wherever it is shown (a terminal,
// a page, an alert): C0 and C1 control characters (a terminal's escape
// sequences among them), bidirectional controls, zero-width characters, the
// byte-order mark and bytes that are not UTF-8 are written escaped (\n, \t,
// \r, \xNN, \uNNNN), so that nothing in a value can reorder, hide or
// restyle the text around it. HTML escaping is a separate matter
// (html/template does it).

// Invisible reports whether r changes how the text around it reads without
// being seen: C0 and C1 controls, bidirectional controls (U+061C,
// U+200E-U+200F, U+202A-U+202E, U+2066-U+2069), zero-width characters
// (U+200B-U+200D, U+2060-U+2064) and the byte-order mark.
func Invisible(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r >= 0x200b && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2060 && r <= 0x2069, r == 0xfeff, r == 0x061c:
		return true
	}
	return false
}

// SafeText renders s as one line of visible text: every invisible
// character (Invisible), newlines and tabs included, and every byte that is
// not UTF-8, is written escaped.
func SafeText(s string) string { return safe(s, false) }

// SafeBlock renders s as visible text of several lines: newlines and tabs
// are kept, everything else that SafeText escapes is escaped.
func SafeBlock(s string) string { return safe(s, true) }

func safe(s string, multiline bool) string {
	kept := func(r rune) bool { return multiline && (r == '\n' || r == '\t') }
	clean := utf8.ValidString(s)
	for _, r := range s {
		if clean && Invisible(r) && !kept(r) {
			clean = false
		}
	}
	if clean {
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
		if !Invisible(r) || kept(r) {
			b.WriteRune(r)
			continue
		}
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

// Shorten returns s cut to at most n bytes without splitting a UTF-8
// sequence, ending in "…" when it was cut (the mark counts in n): for
// showing the start of a long value.
func Shorten(s string, n int) string {
	const mark = "…"
	if len(s) <= n {
		return s
	}
	if n < len(mark) {
		return Clip(mark, n)
	}
	return Clip(s, n-len(mark)) + mark
}

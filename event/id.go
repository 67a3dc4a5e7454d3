package event

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"
)

// The character classes of the identifiers and names a leaf holds. They
// are checked byte by byte rather than with regexp, which an agent
// embedding capture.Hook would otherwise link (some 90 KB).

func lower(c byte) bool { return 'a' <= c && c <= 'z' }
func digit(c byte) bool { return '0' <= c && c <= '9' }
func alnum(c byte) bool { return lower(c) || digit(c) || 'A' <= c && c <= 'Z' }

// token reports whether s is one first byte that first accepts followed by
// bytes that rest accepts.
func token(s string, first, rest func(byte) bool) bool {
	if s == "" || !first(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !rest(s[i]) {
			return false
		}
	}
	return true
}

// Identifiers: printable ASCII without spaces or '/', so they are safe in
// URLs, headers and file names: [A-Za-z0-9][A-Za-z0-9_.:@-]*.
func idByte(c byte) bool {
	return alnum(c) || c == '_' || c == '.' || c == ':' || c == '@' || c == '-'
}

// Attribute keys: [A-Za-z0-9_][A-Za-z0-9_.-]*.
func validAttrKey(s string) bool {
	return token(s, func(c byte) bool { return alnum(c) || c == '_' },
		func(c byte) bool { return alnum(c) || c == '_' || c == '.' || c == '-' })
}

// reservedAttrKey reports whether s is a member name the field
// commitment of a body reserves (RFC 9901's "_sd" and "_sd_alg"; "..."
// is not a valid name anyway): a body with such an attribute has no field
// tree (docs/disclosure.md), so no event may carry one.
func reservedAttrKey(s string) bool { return s == "_sd" || s == "_sd_alg" }

// ValidID reports whether s is acceptable as a session, tenant or actor id:
// 1-MaxIDLength characters from [A-Za-z0-9_.:@-], starting with a letter or
// digit.
func ValidID(s string) bool { return len(s) <= MaxIDLength && token(s, alnum, idByte) }

// ValidKind reports whether s is a well-formed event kind such as
// "llm.request" or "erasure": one or more dot-separated lower-case words
// ([a-z][a-z0-9_]*, joined by '.').
func ValidKind(s string) bool {
	if len(s) > 64 {
		return false
	}
	for {
		word, rest, more := strings.Cut(s, ".")
		if !token(word, lower, func(c byte) bool { return lower(c) || digit(c) || c == '_' }) {
			return false
		}
		if !more {
			return true
		}
		s = rest
	}
}

// MediaTypeName reports whether s is a bare media type, type/subtype, each
// [a-z0-9][a-z0-9!#$&^_.+-]* (RFC 6838's restricted names, lower case).
func MediaTypeName(s string) bool {
	name := func(c byte) bool { return lower(c) || digit(c) || strings.IndexByte("!#$&^_.+-", c) >= 0 }
	first := func(c byte) bool { return lower(c) || digit(c) }
	typ, sub, ok := strings.Cut(s, "/")
	return ok && token(typ, first, name) && token(sub, first, name)
}

// ValidMediaType reports whether s is a media type the vault accepts: a
// bare one (MediaTypeName), optionally followed by ';' and parameters of
// printable ASCII.
func ValidMediaType(s string) bool {
	if len(s) > 128 {
		return false
	}
	name, params, hasParams := strings.Cut(s, ";")
	if !MediaTypeName(name) {
		return false
	}
	if hasParams {
		for i := 0; i < len(params); i++ {
			if params[i] < ' ' || params[i] > '~' {
				return false
			}
		}
	}
	return true
}

// NewID returns a random 128-bit id (32 hex digits) laid out like a UUIDv7:
// 48 bits of Unix milliseconds, then 80 random bits. Ids sort by time, so
// B-trees keyed by them grow at their right edge.
func NewID() string {
	b := make([]byte, 16)
	rand.Read(b[6:])
	ms := uint64(time.Now().UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	return hex.EncodeToString(b)
}

// Clip returns s cut to at most n bytes without splitting a UTF-8 sequence.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

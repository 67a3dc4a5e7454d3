package event

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"time"
)

var (
	kindRE    = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	attrKeyRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.\-]*$`)
	// Identifiers: printable ASCII without spaces or '/', so they are safe in
	// URLs, headers and file names.
	idRE        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@\-]*$`)
	mediaTypeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+\-]*/[a-z0-9][a-z0-9!#$&^_.+\-]*(;[ -~]*)?$`)
)

// ValidID reports whether s is acceptable as a session, tenant or actor id:
// 1-MaxIDLength characters from [A-Za-z0-9_.:@-], starting with a letter or
// digit.
func ValidID(s string) bool { return len(s) <= MaxIDLength && idRE.MatchString(s) }

// ValidKind reports whether s is a well-formed event kind such as
// "llm.request" or "erasure": one or more dot-separated lower-case words.
func ValidKind(s string) bool { return len(s) <= 64 && kindRE.MatchString(s) }

// ValidMediaType reports whether s is a media type the vault accepts.
func ValidMediaType(s string) bool { return len(s) <= 128 && mediaTypeRE.MatchString(s) }

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

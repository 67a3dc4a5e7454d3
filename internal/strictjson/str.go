package strictjson

import (
	"bytes"
	"encoding/binary"
)

// StringEnd finds the end of the JSON string whose opening quote is at
// b[open]: the index just past its closing quote, or -1 if it has none. It
// reports whether the string has a backslash escape, and whether it is
// plain: no escape, and every byte printable ASCII (0x20 to 0x7e), so that
// its contents are its value, byte for byte. It checks nothing else (what
// follows a backslash, control characters in an escaped string, UTF-8).
//
// It finds the quotes and backslashes with bytes.IndexByte, which reads
// many bytes an instruction, and checks the plain bytes eight at a time:
// strings are most of an event's bytes (a payload's prompt), and a loop
// over each byte of them was a large part of reading one.
func StringEnd(b []byte, open int) (end int, escaped, plain bool) {
	i := open + 1
	q := -1 // the first quote at or after i, while q >= i
	for i <= len(b) {
		if q < i {
			k := bytes.IndexByte(b[i:], '"')
			if k < 0 {
				return -1, escaped, false
			}
			q = i + k
		}
		k := bytes.IndexByte(b[i:q], '\\')
		if k < 0 {
			return q + 1, escaped, !escaped && printable(b[open+1:q])
		}
		escaped = true
		i += k + 2
	}
	return -1, escaped, false
}

// printable reports whether every byte of s is in 0x20..0x7e.
func printable(s []byte) bool {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	for len(s) >= 8 {
		w := binary.LittleEndian.Uint64(s)
		// With no byte at 0x80 or above, adding 0x01 to each byte carries
		// into its high bit only from 0x7f, and adding 0x60 leaves a high
		// bit clear only below 0x20; neither carries into the next byte.
		if w&high != 0 || (w+ones)&high != 0 || (w+0x60*ones)&high != high {
			return false
		}
		s = s[8:]
	}
	for _, c := range s {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// noControl reports whether s has no byte below 0x20.
func noControl(s []byte) bool {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	for len(s) >= 8 {
		w := binary.LittleEndian.Uint64(s)
		// Some byte is below 0x20 exactly when subtracting 0x20 from
		// each byte borrows into a high bit that the byte lacked.
		if (w-0x20*ones)&^w&high != 0 {
			return false
		}
		s = s[8:]
	}
	for _, c := range s {
		if c < 0x20 {
			return false
		}
	}
	return true
}

// plainRun is the length of the run of bytes at the start of s that are
// printable ASCII (0x20 to 0x7e) other than '"' and '\\': each is a
// character of a JSON string by itself.
func plainRun(s []byte) int {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	// hasZero: some byte of w is 0.
	hasZero := func(w uint64) bool { return (w-ones)&^w&high != 0 }
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := binary.LittleEndian.Uint64(s[i:])
		if w&high != 0 || (w+ones)&high != 0 || (w+0x60*ones)&high != high || hasZero(w^('"'*ones)) || hasZero(w^('\\'*ones)) {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			break
		}
	}
	return i
}

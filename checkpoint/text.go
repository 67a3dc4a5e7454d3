package checkpoint

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrNonCanonical is returned (wrapped) by CheckText for a checkpoint text
// that is not in the one form c2sp.org/tlog-checkpoint allows.
var ErrNonCanonical = errors.New("checkpoint text is not canonical")

// HashSize is the size of the root hash of a checkpoint (SHA-256).
const HashSize = 32

// CheckText checks that text (a checkpoint note's text, signatures
// excluded) is canonical per c2sp.org/tlog-checkpoint, so that one tree
// state has one text: an origin line that is valid UTF-8 without Unicode
// spaces, "+" or control characters; the tree size in decimal ASCII
// without sign or leading zeros ("0" alone allowed); the root hash as the
// standard, padded, strict base64 of HashSize bytes; then non-empty
// extension lines; every line ends in a newline. Parsers such as
// formats/log.ParseCheckpoint accept "03" and base64 with non-zero
// padding bits, which two signers could use to sign one tree state twice
// with different texts.
func CheckText(text string) error {
	body, ok := strings.CutSuffix(text, "\n")
	if !ok {
		return nonCanonical("it does not end in a newline")
	}
	lines := strings.Split(body, "\n")
	if len(lines) < 3 {
		return nonCanonical("%d lines, want origin, size and root hash", len(lines))
	}
	origin, size, hash := lines[0], lines[1], lines[2]
	switch {
	case origin == "":
		return nonCanonical("empty origin line")
	case !utf8.ValidString(origin):
		return nonCanonical("origin line is not UTF-8")
	case strings.ContainsFunc(origin, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '+' }):
		return nonCanonical("origin line %q has a space, a control character or a '+'", origin)
	}
	if size == "" || size[0] == '0' && len(size) > 1 || strings.TrimLeft(size, "0123456789") != "" {
		return nonCanonical("tree size %q is not decimal without leading zeros", size)
	}
	if _, err := strconv.ParseUint(size, 10, 64); err != nil {
		return nonCanonical("tree size %q does not fit in 64 bits", size)
	}
	if len(hash) != base64.StdEncoding.EncodedLen(HashSize) {
		return nonCanonical("root hash is not the base64 of %d bytes", HashSize)
	}
	if h, err := base64.StdEncoding.Strict().DecodeString(hash); err != nil || len(h) != HashSize {
		return nonCanonical("root hash is not the canonical base64 of %d bytes", HashSize)
	}
	for i, ext := range lines[3:] {
		if ext == "" {
			return nonCanonical("extension line %d is empty", i+1)
		}
	}
	return nil
}

func nonCanonical(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNonCanonical, fmt.Sprintf(format, args...))
}

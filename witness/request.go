package witness

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
)

// MaxProofLines is the largest number of consistency proof lines a
// tlog-witness client may send (c2sp.org/tlog-witness).
const MaxProofLines = 63

// hashSize is the size of an RFC 6962 (SHA-256) Merkle tree hash.
const hashSize = 32

// Request is a parsed add-checkpoint request body. Nothing in it has been
// verified: Checkpoint is the raw signed note exactly as the client sent it.
type Request struct {
	// OldSize is the size of the latest checkpoint the client believes the
	// witness cosigned.
	OldSize uint64
	// Proof is the consistency proof from OldSize to the checkpoint's size,
	// one 32-byte hash per entry.
	Proof [][]byte
	// Checkpoint is the signed checkpoint note, unverified.
	Checkpoint []byte
}

// ParseRequest parses an add-checkpoint request body: an "old N" line, up
// to MaxProofLines base64 hash lines, an empty line and a checkpoint note.
// Every line must end in a newline. The size must be canonical decimal (no
// sign, no leading zeros), at most 2^63-1, and each hash line exactly the
// canonical base64 of 32 bytes, so that a parsed request re-encodes to the
// same bytes (see Request.Marshal). Errors wrap ErrMalformedRequest.
func ParseRequest(body []byte) (*Request, error) {
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, malformed("missing old size line")
	}
	num, ok := bytes.CutPrefix(line, []byte("old "))
	if !ok {
		return nil, malformed("first line does not start with \"old \"")
	}
	oldSize, err := parseSize(num)
	if err != nil {
		return nil, malformed("old size: %v", err)
	}
	req := &Request{OldSize: oldSize}
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, malformed("missing empty line before the checkpoint")
		}
		if len(line) == 0 {
			break
		}
		if len(req.Proof) == MaxProofLines {
			return nil, malformed("more than %d consistency proof lines", MaxProofLines)
		}
		h, err := parseHash(line)
		if err != nil {
			return nil, malformed("proof line %d: %v", len(req.Proof)+1, err)
		}
		req.Proof = append(req.Proof, h)
	}
	if len(rest) == 0 {
		return nil, malformed("empty checkpoint")
	}
	req.Checkpoint = rest
	return req, nil
}

// Marshal encodes r as an add-checkpoint request body.
func (r *Request) Marshal() []byte {
	b := fmt.Appendf(nil, "old %d\n", r.OldSize)
	for _, h := range r.Proof {
		b = base64.StdEncoding.AppendEncode(b, h)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, r.Checkpoint...)
}

// parseSize parses a canonical decimal tree size that fits in an int64 (the
// largest integer SQLite stores).
func parseSize(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 1 && b[0] == '0' || b[0] < '0' || b[0] > '9' {
		return 0, fmt.Errorf("%q is not a canonical decimal", b)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal below 2^63", b)
	}
	return uint64(n), nil
}

func parseHash(line []byte) ([]byte, error) {
	if len(line) != base64.StdEncoding.EncodedLen(hashSize) {
		return nil, fmt.Errorf("not a base64 %d-byte hash", hashSize)
	}
	h := make([]byte, base64.StdEncoding.DecodedLen(len(line)))
	// Strict rejects non-zero padding bits; the length check above rejects
	// the CR and LF characters that the decoder would otherwise skip.
	n, err := base64.StdEncoding.Strict().Decode(h, line)
	if err != nil || n != hashSize {
		return nil, fmt.Errorf("not a base64 %d-byte hash", hashSize)
	}
	return h[:hashSize], nil
}

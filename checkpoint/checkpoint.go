// Package checkpoint signs, parses and verifies C2SP tlog-checkpoint notes.
//
// A checkpoint is a signed note (golang.org/x/mod/sumdb/note) whose text is
// the origin line, the tree size and the base64 root hash
// (github.com/transparency-dev/formats/log). Every verifier in this project
// goes through Verify (log signature only) or Policy.Verify (log signature plus
// a witness quorum).
package checkpoint

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	fmtlog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// ErrInvalid is returned (wrapped) by Verify for a checkpoint that is not a
// validly signed checkpoint of the expected log.
var ErrInvalid = errors.New("invalid checkpoint")

// GenerateKey makes a new Ed25519 note key pair whose key name is the log's
// origin. It returns the signer key ("PRIVATE+KEY+...") and the verifier key
// in note vkey format.
func GenerateKey(origin string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, origin)
}

// NewSigner returns a note signer for the private key skey.
func NewSigner(skey string) (note.Signer, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("parsing log signing key: %w", err)
	}
	return s, nil
}

// NewVerifier returns a note verifier for the verifier key vkey.
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("parsing log verifier key: %w", err)
	}
	return v, nil
}

// Verify checks that raw is a checkpoint signed by the log key v, whose
// origin line equals the key name, and returns the parsed checkpoint and note.
// Signatures by other keys are ignored here; see Policy for witness
// cosignatures.
func Verify(raw []byte, v note.Verifier) (*fmtlog.Checkpoint, *note.Note, error) {
	cp, _, n, err := fmtlog.ParseCheckpoint(raw, v.Name(), v)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return cp, n, nil
}

// OriginID is the path element under which a witness serves the latest
// checkpoint it cosigned for a log: the lower-case hex SHA-256 of the
// origin line (C2SP tlog-witness, and the monitoring reads of witnesses).
func OriginID(origin string) string {
	h := sha256.Sum256([]byte(origin))
	return hex.EncodeToString(h[:])
}

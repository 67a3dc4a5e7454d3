// Package signature is the format of an electronic signature in an
// LLMAuditTrail log: the statement a signer signs, its canonical bytes, and
// the checks a third party makes with nothing but plain Ed25519, the log's
// key and receipts (docs/signatures.md).
//
// A statement covers the log's origin, the signed record's index and leaf
// hash, the meaning and reason, the signer's id and printed name, the time
// and a fresh nonce (21 CFR 11.50, 11.70). The signature is Ed25519 over
// Message(statement): the domain line "llmaudittrail/signature/v1\n" and the
// statement's canonical JSON.
package signature

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Domain is the first line of every signed message.
const Domain = "llmaudittrail/signature/v1\n"

// Meanings a signature may carry (21 CFR 11.50(a)(3)).
var Meanings = []string{"reviewed", "approved", "responsible", "authored", "rejected"}

// MaxReason caps a statement's reason.
const MaxReason = 1024

// Statement is what a signer signs. Field order is the canonical order.
type Statement struct {
	// Origin is the log's origin: a statement signs a record of one log.
	Origin string `json:"origin"`
	// Index and LeafHash (hex) name the signed record.
	Index    uint64 `json:"index"`
	LeafHash string `json:"leaf_hash"`
	// Meaning is one of Meanings; Reason is free text, may be empty.
	Meaning string `json:"meaning"`
	Reason  string `json:"reason,omitempty"`
	// Tenant, Signer and PrintedName identify who signs (the printed name
	// as enrolled).
	Tenant      string `json:"tenant"`
	Signer      string `json:"signer"`
	PrintedName string `json:"printed_name"`
	// KeyID is the hex SHA-256 of the signer's public key, so that a
	// statement names the enrolled key it was made with.
	KeyID string `json:"key_id"`
	// Time is when it was signed (UTC, event.TimeFormat).
	Time string `json:"time"`
	// Nonce (hex, 16 bytes) makes every statement unique: a statement
	// appearing twice in a log is a replay.
	Nonce string `json:"nonce"`
}

// KeyID returns the key id of an Ed25519 public key: hex SHA-256 of the
// 32 key bytes.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:])
}

// Marshal returns the canonical encoding of s: compact JSON, fields in
// struct order, no HTML escaping, no trailing newline.
func (s *Statement) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Message returns the bytes the signer signs: Domain and the canonical
// statement.
func (s *Statement) Message() ([]byte, error) {
	j, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	return append([]byte(Domain), j...), nil
}

// ErrInvalid is wrapped by every error of Check and Verify.
var ErrInvalid = errors.New("invalid signature")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Check checks that s is well formed.
func (s *Statement) Check() error {
	switch {
	case s.Origin == "":
		return invalid("statement has no origin")
	case len(s.LeafHash) != 64 || !isHex(s.LeafHash):
		return invalid("leaf_hash must be 64 hex digits")
	case !slices.Contains(Meanings, s.Meaning):
		return invalid("meaning %q: want one of %v", event.Clip(s.Meaning, 40), Meanings)
	case len(s.Reason) > MaxReason:
		return invalid("reason longer than %d bytes", MaxReason)
	case !event.ValidID(s.Tenant) || !event.ValidID(s.Signer):
		return invalid("tenant and signer must be valid ids")
	case s.PrintedName == "" || len(s.PrintedName) > 256:
		return invalid("printed_name must be 1-256 bytes")
	case len(s.KeyID) != 64 || !isHex(s.KeyID):
		return invalid("key_id must be 64 hex digits")
	case len(s.Nonce) != 32 || !isHex(s.Nonce):
		return invalid("nonce must be 32 hex digits")
	}
	if _, err := time.Parse(event.TimeFormat, s.Time); err != nil {
		return invalid("time %q is not in the leaf time format", event.Clip(s.Time, 40))
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// Verify checks sig (64 bytes) over s with the public key pub, and that pub
// is the key s names.
func Verify(pub ed25519.PublicKey, s *Statement, sig []byte) error {
	if err := s.Check(); err != nil {
		return err
	}
	if len(pub) != ed25519.PublicKeySize {
		return invalid("public key of %d bytes", len(pub))
	}
	if s.KeyID != KeyID(pub) {
		return invalid("the statement names key %s, not the key %s it is checked with", s.KeyID[:16], KeyID(pub)[:16])
	}
	m, err := s.Message()
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, m, sig) {
		return invalid("the Ed25519 signature does not verify")
	}
	return nil
}

// ParseStatement decodes a statement strictly (unknown fields and trailing
// data are errors).
func ParseStatement(data []byte) (*Statement, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Statement
	if err := dec.Decode(&s); err != nil {
		return nil, invalid("decoding statement: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("trailing data after statement")
	}
	return &s, nil
}

// Attribute names of the events that carry signatures and enrolments.
const (
	AttrSigner      = "signer.id"
	AttrPrintedName = "signer.printed_name"
	AttrPublicKey   = "signer.public_key" // standard base64 of the Ed25519 key
	AttrKeyID       = "signer.key_id"
	AttrVerifiedBy  = "signer.identity_verified_by"
	AttrStatement   = "signature.statement" // the canonical statement, as a string
	AttrSignature   = "signature.value"     // standard base64 of the Ed25519 signature
	AttrIndex       = "signature.index"
	AttrMeaning     = "signature.meaning"
	// AttrComponents says which components the signer used:
	// "signer+secret" (the first signing of a session) or "secret" (a later
	// one); AttrSession names the signing session by a digest.
	AttrComponents = "signature.components"
	AttrSession    = "signature.session"
	// AttrFailure and AttrTokenID: why a signature attempt failed, and
	// with which token (signature.failed).
	AttrFailure = "signature.failure"
	AttrTokenID = "signature.token_id"
	// AttrEnrolledByToken: the token that enrolled the signer.
	AttrEnrolledByToken = "signer.enrolled_by_token"
	// AttrLockedReason and AttrRevokeReason: why a signer was locked or
	// revoked.
	AttrLockedReason = "signer.locked_reason"
	AttrRevokeReason = "signer.revoke_reason"
)

// Event kinds of signer enrollment and signatures (all appended by the
// server only).
const (
	KindEnrolled   = "signer.enrolled"
	KindKeyRotated = "signer.key_rotated"
	KindRevoked    = "signer.revoked"
	KindLocked     = "signer.locked"
	KindUnlocked   = "signer.unlocked"
	KindFailed     = "signature.failed"
)

// PublicKeyFromLeaf reads the signer id and public key that an enrollment
// or rotation leaf carries.
func PublicKeyFromLeaf(l *event.Leaf) (signer, printedName string, pub ed25519.PublicKey, err error) {
	if l.Kind != KindEnrolled && l.Kind != KindKeyRotated {
		return "", "", nil, invalid("leaf of kind %s does not enroll a key", l.Kind)
	}
	signer, _ = l.Attributes[AttrSigner].(string)
	printedName, _ = l.Attributes[AttrPrintedName].(string)
	b64, _ := l.Attributes[AttrPublicKey].(string)
	pub, err = base64.StdEncoding.DecodeString(b64)
	if err != nil || len(pub) != ed25519.PublicKeySize || signer == "" {
		return "", "", nil, invalid("leaf %s carries no signer and Ed25519 public key", l.ID)
	}
	return signer, printedName, ed25519.PublicKey(pub), nil
}

// FromLeaf reads the statement and signature a human.signature leaf
// carries, unverified.
func FromLeaf(l *event.Leaf) (*Statement, []byte, error) {
	if l.Kind != event.KindHumanSignature {
		return nil, nil, invalid("leaf of kind %s is not a signature", l.Kind)
	}
	st, _ := l.Attributes[AttrStatement].(string)
	s, err := ParseStatement([]byte(st))
	if err != nil {
		return nil, nil, err
	}
	b64, _ := l.Attributes[AttrSignature].(string)
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, nil, invalid("leaf %s carries no Ed25519 signature", l.ID)
	}
	return s, sig, nil
}

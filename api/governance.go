package api

import "encoding/json"

// Electronic signatures, legal holds and erasures (docs/signatures.md).
// The server appends every event these requests cause; the answers carry
// it. The server decodes each request strictly: exactly its keys, each
// once.

// Enrollment is the body of POST /v1/signers (admin scope): a new signer
// of the token's tenant.
type Enrollment struct {
	ID          string `json:"id"`
	PrintedName string `json:"printed_name"`
	Secret      string `json:"secret"`
	// IdentityVerifiedBy names who verified the signer's identity before
	// enrollment (21 CFR 11.100(b)).
	IdentityVerifiedBy string `json:"identity_verified_by"`
}

// Signer describes an enrolled signer.
type Signer struct {
	ID          string `json:"id"`
	PrintedName string `json:"printed_name"`
	PublicKey   string `json:"public_key"` // standard base64 Ed25519
	KeyID       string `json:"key_id"`     // hex SHA-256 of the key
}

// SignerResponse answers POST /v1/signers (201) and a key rotation.
type SignerResponse struct {
	Signer Signer `json:"signer"`
	// PublicKey repeats Signer.PublicKey.
	PublicKey string        `json:"public_key,omitempty"`
	Event     EventResponse `json:"event"`
}

// SignerEvent answers a revocation or an unlock.
type SignerEvent struct {
	Event EventResponse `json:"event"`
}

// RotateRequest is the body of POST /v1/signers/{id}/rotate: the signer's
// current secret, and the one its new key is sealed under.
type RotateRequest struct {
	NewSecret string `json:"new_secret"`
	Secret    string `json:"secret"`
}

// RevokeRequest is the body of POST /v1/signers/{id}/revoke.
type RevokeRequest struct {
	Reason string `json:"reason"`
}

// SignRequest is the body of POST /v1/signatures: sign the record at
// Index, whose leaf hash is LeafHash, with a meaning. Outside a signing
// session every component is given (Signer, with a token bound to it, and
// Secret); inside one (the SigningSession of an earlier answer, same
// token) the Secret suffices (21 CFR 11.200(a)(1)).
type SignRequest struct {
	Signer         string `json:"signer,omitempty"`
	Secret         string `json:"secret"`
	Index          uint64 `json:"index"`
	LeafHash       string `json:"leaf_hash"`
	Meaning        string `json:"meaning"`
	Reason         string `json:"reason,omitempty"`
	SigningSession string `json:"signing_session,omitempty"`
}

// SignatureResponse answers POST /v1/signatures (201).
type SignatureResponse struct {
	// Event is the human.signature event appended.
	Event EventResponse `json:"event"`
	// Statement is the signed statement as an object (signature.Statement);
	// StatementText is its canonical text, the bytes signed after the
	// domain line.
	Statement     json.RawMessage `json:"statement"`
	StatementText string          `json:"statement_text"`
	Signature     string          `json:"signature"` // standard base64 Ed25519
	// SigningSession continues the signer's continuous session.
	SigningSession string `json:"signing_session"`
}

// Target names what a hold or an erasure covers: one session, or one data
// subject (its value or its pseudonym).
type Target struct {
	Session string `json:"session,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// HoldRequest is the body of POST /v1/holds (admin or privacy scope).
type HoldRequest struct {
	Target
	Reason string `json:"reason"`
}

// Hold is a legal hold on a session or a data subject: nothing it covers
// can be erased until it is released.
type Hold struct {
	ID       string `json:"id"`
	Tenant   string `json:"tenant"`
	Session  string `json:"session,omitempty"`
	Subject  string `json:"subject,omitempty"` // pseudonym
	Reason   string `json:"reason"`
	PlacedAt string `json:"placed_at"`
}

// HoldResponse answers POST /v1/holds (201) and DELETE /v1/holds/{id}.
type HoldResponse struct {
	Hold  Hold          `json:"hold"`
	Event EventResponse `json:"event"`
}

// ErasureRequest is the body of POST /v1/erasures (admin or privacy
// scope): erase a session's or a subject's data.
type ErasureRequest struct {
	Target
	// LegalBasis is required, an id such as gdpr-art17-1a.
	LegalBasis string `json:"legal_basis"`
	Reason     string `json:"reason,omitempty"`
	// OverrideReason erases inside the retention floor (never through a
	// legal hold); the erasure event records it and the monitor alerts.
	OverrideReason string `json:"override_reason,omitempty"`
}

// ErasureResponse answers POST /v1/erasures (201).
type ErasureResponse struct {
	Sessions []string `json:"sessions"`
	Subject  string   `json:"subject,omitempty"` // pseudonym
	Payloads int      `json:"payloads"`
	Override bool     `json:"override"`
	// Forgotten: the vault's write-ahead log was truncated too, so that no
	// earlier page of the erased data is left in any file.
	Forgotten bool          `json:"forgotten"`
	Event     EventResponse `json:"event"`
}

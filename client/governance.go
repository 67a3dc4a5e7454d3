package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// Electronic signatures, legal holds and erasures (docs/signatures.md).
// The server appends every event these calls cause; the answers carry it.

// Enrollment is the body of POST /v1/signers (admin scope).
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

// Enroll enrolls a signer of the token's tenant; the answer carries the
// public key and the signer.enrolled event.
func (c *Client) Enroll(ctx context.Context, e Enrollment) (*SignerResponse, error) {
	var r SignerResponse
	if err := c.do(ctx, http.MethodPost, "/v1/signers", nil, e, http.StatusCreated, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RotateKey gives the signer a new key pair under newSecret (a sign token
// bound to the signer, and the current secret).
func (c *Client) RotateKey(ctx context.Context, signer, secret, newSecret string) (*SignerResponse, error) {
	var r SignerResponse
	body := map[string]string{"secret": secret, "new_secret": newSecret}
	if err := c.do(ctx, http.MethodPost, "/v1/signers/"+url.PathEscape(signer)+"/rotate", nil, body, http.StatusOK, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RevokeSigner revokes the signer's key for good (admin scope).
func (c *Client) RevokeSigner(ctx context.Context, signer, reason string) (*SignerEvent, error) {
	var r SignerEvent
	if err := c.do(ctx, http.MethodPost, "/v1/signers/"+url.PathEscape(signer)+"/revoke", nil, map[string]string{"reason": reason}, http.StatusOK, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// UnlockSigner lifts a lock-out (admin scope).
func (c *Client) UnlockSigner(ctx context.Context, signer string) (*SignerEvent, error) {
	var r SignerEvent
	if err := c.do(ctx, http.MethodPost, "/v1/signers/"+url.PathEscape(signer)+"/unlock", nil, map[string]string{}, http.StatusOK, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// SignRequest is the body of POST /v1/signatures. Outside a signing
// session it names the Signer and gives the Secret; inside one (the
// SigningSession of an earlier answer, same token) the Secret suffices.
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

// Sign signs a record (a token of sign scope bound to the signer). With
// WaitForCheckpoint the event comes back with a receipt.
func (c *Client) Sign(ctx context.Context, req SignRequest, opts ...AppendOption) (*SignatureResponse, error) {
	q := appendQuery(opts)
	var r SignatureResponse
	if err := c.do(ctx, http.MethodPost, "/v1/signatures", q, req, http.StatusCreated, &r); err != nil {
		return nil, err
	}
	if r.Event.Index <= req.Index {
		return nil, fmt.Errorf("%w: signature event %d does not come after the record %d", errNoAnswer, r.Event.Index, req.Index)
	}
	return &r, nil
}

// SignatureExport returns the export of the signature event at index (the
// JSON that signature.VerifyExport and monitor verify-signature check
// offline), as the server sent it.
func (c *Client) SignatureExport(ctx context.Context, index uint64) ([]byte, error) {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/v1/signatures/"+strconv.FormatUint(index, 10), nil, nil, http.StatusOK, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// Target names what a hold or an erasure covers: one session, or one data
// subject (its value or its pseudonym).
type Target struct {
	Session string `json:"session,omitempty"`
	Subject string `json:"subject,omitempty"`
}

// Hold is a legal hold.
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

// PlaceHold puts a legal hold on a session or subject (admin or privacy
// scope); nothing it covers can be erased until it is released.
func (c *Client) PlaceHold(ctx context.Context, t Target, reason string) (*HoldResponse, error) {
	body := struct {
		Target
		Reason string `json:"reason"`
	}{t, reason}
	var r HoldResponse
	if err := c.do(ctx, http.MethodPost, "/v1/holds", nil, body, http.StatusCreated, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ReleaseHold ends a legal hold.
func (c *Client) ReleaseHold(ctx context.Context, id string) (*HoldResponse, error) {
	var r HoldResponse
	if err := c.do(ctx, http.MethodDelete, "/v1/holds/"+url.PathEscape(id), nil, nil, http.StatusOK, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ErasureRequest is the body of POST /v1/erasures.
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

// Erase erases a session's or a subject's data (admin or privacy scope).
// A retention floor or a legal hold refuses it with 409 (Code
// "retention_floor" or "legal_hold"; see ErrConflict).
func (c *Client) Erase(ctx context.Context, req ErasureRequest) (*ErasureResponse, error) {
	var r ErasureResponse
	if err := c.do(ctx, http.MethodPost, "/v1/erasures", nil, req, http.StatusCreated, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

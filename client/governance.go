package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/llmaudittrail/llmaudittrail/api"
)

// Electronic signatures, legal holds and erasures (docs/signatures.md).
// The server appends every event these calls cause; the answers carry it.

// Enroll enrolls a signer of the token's tenant (admin scope); the answer
// carries the public key and the signer.enrolled event.
func (c *Client) Enroll(ctx context.Context, e api.Enrollment) (*api.SignerResponse, error) {
	var r api.SignerResponse
	if err := c.do(ctx, http.MethodPost, "/v1/signers", nil, e, http.StatusCreated, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RotateKey gives the signer a new key pair under newSecret (a sign token
// bound to the signer, and the current secret).
func (c *Client) RotateKey(ctx context.Context, signer, secret, newSecret string) (*api.SignerResponse, error) {
	var r api.SignerResponse
	body := api.RotateRequest{Secret: secret, NewSecret: newSecret}
	if err := c.do(ctx, http.MethodPost, "/v1/signers/"+url.PathEscape(signer)+"/rotate", nil, body, http.StatusOK, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RevokeSigner revokes the signer's key for good (admin scope).
func (c *Client) RevokeSigner(ctx context.Context, signer, reason string) (*api.SignerEvent, error) {
	var r api.SignerEvent
	if err := c.do(ctx, http.MethodPost, "/v1/signers/"+url.PathEscape(signer)+"/revoke", nil, api.RevokeRequest{Reason: reason}, http.StatusOK, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// UnlockSigner lifts a lock-out (admin scope).
func (c *Client) UnlockSigner(ctx context.Context, signer string) (*api.SignerEvent, error) {
	var r api.SignerEvent
	if err := c.do(ctx, http.MethodPost, "/v1/signers/"+url.PathEscape(signer)+"/unlock", nil, map[string]string{}, http.StatusOK, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Sign signs a record (a token of sign scope bound to the signer). With
// WaitForCheckpoint the event comes back with a receipt.
func (c *Client) Sign(ctx context.Context, req api.SignRequest, opts ...AppendOption) (*api.SignatureResponse, error) {
	q, _ := appendQuery(opts)
	q.Del("tenant") // a signature is in its record's tenant
	var r api.SignatureResponse
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

// PlaceHold puts a legal hold on a session or subject (admin or privacy
// scope); nothing it covers can be erased until it is released.
func (c *Client) PlaceHold(ctx context.Context, t api.Target, reason string) (*api.HoldResponse, error) {
	var r api.HoldResponse
	if err := c.do(ctx, http.MethodPost, "/v1/holds", nil, api.HoldRequest{Target: t, Reason: reason}, http.StatusCreated, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ReleaseHold ends a legal hold.
func (c *Client) ReleaseHold(ctx context.Context, id string) (*api.HoldResponse, error) {
	var r api.HoldResponse
	if err := c.do(ctx, http.MethodDelete, "/v1/holds/"+url.PathEscape(id), nil, nil, http.StatusOK, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Erase erases a session's or a subject's data (admin or privacy scope).
// A retention floor or a legal hold refuses it with 409 (Code
// "retention_floor" or "legal_hold"; see ErrConflict).
func (c *Client) Erase(ctx context.Context, req api.ErasureRequest) (*api.ErasureResponse, error) {
	var r api.ErasureResponse
	if err := c.do(ctx, http.MethodPost, "/v1/erasures", nil, req, http.StatusCreated, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

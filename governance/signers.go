package governance

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/signature"
	"github.com/llmaudittrail/llmaudittrail/signer"
)

// ErrNoSigners: the Clerk was configured without a signer store.
var ErrNoSigners = errors.New("electronic signatures are not configured")

// The lifecycle of a signer: enrollment, key rotation, revocation and
// lock-out, each recorded in the signer's session (event.SignerSession)
// with the kinds of package signature, so that anyone verifies a signature
// from the log alone.

// Enroll enrolls a signer of the reader's tenant with a new key pair and
// appends signer.enrolled, which carries the public key, the printed name
// and who verified the identity. An id is never enrolled twice
// (signer.ErrExists).
func (c *Clerk) Enroll(ctx context.Context, r auditlog.Reader, e api.Enrollment) (*signer.Signer, event.Appended, error) {
	if c.cfg.Signers == nil {
		return nil, event.Appended{}, ErrNoSigners
	}
	if !event.ValidID(e.IdentityVerifiedBy) {
		return nil, event.Appended{}, fmt.Errorf("%w: identity_verified_by must name who verified the signer's identity", event.ErrInvalidEvent)
	}
	sg, err := c.cfg.Signers.Enroll(ctx, r.Tenant, e.ID, e.PrintedName, e.Secret)
	if err != nil {
		return nil, event.Appended{}, err
	}
	a, err := c.record(ctx, r.Tenant, r, &event.Request{
		Session: event.SignerSession(sg.ID), Kind: signature.KindEnrolled, Actor: event.Actor{Type: "human", ID: e.IdentityVerifiedBy},
		Attributes: strAttrs(signature.AttrSigner, sg.ID, signature.AttrPrintedName, sg.PrintedName,
			signature.AttrPublicKey, base64.StdEncoding.EncodeToString(sg.Public), signature.AttrKeyID, sg.KeyID,
			signature.AttrVerifiedBy, e.IdentityVerifiedBy, signature.AttrEnrolledByToken, r.TokenID),
	})
	return sg, a, err
}

// RotateSigner gives a signer a new key pair under a new secret and
// appends signer.key_rotated with the new public key. The token must be the
// signer's (bound to it) or the tenant's admin with the old secret.
func (c *Clerk) RotateSigner(ctx context.Context, r auditlog.Reader, id, secret, newSecret string) (*signer.Signer, event.Appended, error) {
	if c.cfg.Signers == nil {
		return nil, event.Appended{}, ErrNoSigners
	}
	sg, err := c.cfg.Signers.Rotate(ctx, r.Tenant, id, secret, newSecret)
	if errors.Is(err, signer.ErrWrongSecret) {
		c.signFailure(ctx, r, id, "wrong_secret")
	}
	if err != nil {
		return nil, event.Appended{}, err
	}
	a, err := c.record(ctx, r.Tenant, r, &event.Request{
		Session: event.SignerSession(id), Kind: signature.KindKeyRotated, Actor: event.Actor{Type: "human", ID: id},
		Attributes: strAttrs(signature.AttrSigner, id, signature.AttrPrintedName, sg.PrintedName,
			signature.AttrPublicKey, base64.StdEncoding.EncodeToString(sg.Public), signature.AttrKeyID, sg.KeyID),
	})
	return sg, a, err
}

// RevokeSigner revokes a signer's key for good (a lost credential,
// 11.300(c)) and appends signer.revoked.
func (c *Clerk) RevokeSigner(ctx context.Context, r auditlog.Reader, id, reason string) (event.Appended, error) {
	if c.cfg.Signers == nil {
		return event.Appended{}, ErrNoSigners
	}
	if err := c.cfg.Signers.Revoke(ctx, r.Tenant, id); err != nil {
		return event.Appended{}, err
	}
	return c.record(ctx, r.Tenant, r, &event.Request{
		Session: event.SignerSession(id), Kind: signature.KindRevoked, Actor: r.Actor(),
		Attributes: strAttrs(signature.AttrSigner, id, signature.AttrRevokeReason, event.Clip(reason, 1024)),
	})
}

// UnlockSigner lifts a lock-out and appends signer.unlocked.
func (c *Clerk) UnlockSigner(ctx context.Context, r auditlog.Reader, id string) (event.Appended, error) {
	if c.cfg.Signers == nil {
		return event.Appended{}, ErrNoSigners
	}
	if err := c.cfg.Signers.Unlock(ctx, r.Tenant, id); err != nil {
		return event.Appended{}, err
	}
	return c.record(ctx, r.Tenant, r, &event.Request{
		Session: event.SignerSession(id), Kind: signature.KindUnlocked, Actor: r.Actor(),
		Attributes: strAttrs(signature.AttrSigner, id),
	})
}

// signFailure appends signature.failed and counts the failure; when it
// locks the signer, it appends signer.locked too (11.300(d)).
func (c *Clerk) signFailure(ctx context.Context, r auditlog.Reader, id, reason string) {
	if _, err := c.record(ctx, r.Tenant, r, &event.Request{
		Session: event.SignerSession(id), Kind: signature.KindFailed, Actor: event.ServerActor,
		Attributes: strAttrs(signature.AttrSigner, id, signature.AttrFailure, reason, signature.AttrTokenID, r.TokenID),
	}); err != nil {
		c.logger.Error("recording a failed signature attempt", "error", err)
	}
	if reason != "wrong_secret" {
		return
	}
	locked, err := c.cfg.Signers.Failure(ctx, r.Tenant, id)
	if err != nil {
		c.logger.Error("counting a failed signature attempt", "error", err)
		return
	}
	if locked {
		if _, err := c.record(ctx, r.Tenant, r, &event.Request{
			Session: event.SignerSession(id), Kind: signature.KindLocked, Actor: event.ServerActor,
			Attributes: strAttrs(signature.AttrSigner, id, signature.AttrLockedReason, "too many failed attempts"),
		}); err != nil {
			c.logger.Error("recording a lock-out", "error", err)
		}
	}
}

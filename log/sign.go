package log

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/signature"
	"github.com/llmaudittrail/llmaudittrail/signer"
)

// Outcomes of signing.
var (
	// ErrNoSigners: the log was opened without a signer store.
	ErrNoSigners = errors.New("electronic signatures are not configured")
	// ErrNotBound: the token may not act for the signer.
	ErrNotBound = errors.New("the token is not bound to the signer")
	// ErrLeafMismatch: the leaf hash named is not the record's.
	ErrLeafMismatch = errors.New("the leaf hash does not match the record")
	// ErrAlreadySigned: the signer already signed the record with that
	// meaning; a second signature would be a replay.
	ErrAlreadySigned = errors.New("the signer already signed this record with this meaning")
)

// Values of signature.components.
const (
	ComponentsAll    = "signer+secret" // identification (a token bound to the signer) and secret
	ComponentsSecret = "secret"        // the secret, within a continuous signing session
)

// signerSession is the session of a signer's lifecycle events.
func signerSession(id string) string { return event.SignerSession(id) }

func strAttrs(kv ...string) map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			m[kv[i]] = jsonString(kv[i+1])
		}
	}
	return m
}

func (l *Log) serverEvent(ctx context.Context, tenant string, r Reader, ev *event.Request) (event.Appended, error) {
	if err := l.stampPerson(ctx, tenant, r, ev); err != nil {
		return event.Appended{}, fmt.Errorf("recording %s: %w", ev.Kind, err)
	}
	res, err := l.Append(ctx, tenant, event.Writer{Token: r.TokenID, Via: event.ViaServer}, []*event.Request{ev})
	if err != nil {
		return event.Appended{}, fmt.Errorf("recording %s: %w", ev.Kind, err)
	}
	return res[0], nil
}

var serverActor = event.ServerActor

// tokenActor is the actor of an event the reader causes: its token, or,
// for a person signed in, their sign-in (stampPerson adds who they are).
func tokenActor(r Reader) event.Actor {
	if r.Person != nil {
		return event.Actor{Type: "human", ID: r.TokenID}
	}
	return event.Actor{Type: "human", ID: "token." + r.TokenID}
}

// Enrollment is a new signer.
type Enrollment struct {
	ID, PrintedName, Secret string
	// VerifiedBy names who verified the signer's identity (11.100(b)).
	VerifiedBy string
}

// Enroll enrolls a signer of the reader's tenant with a new key pair and
// appends signer.enrolled, which carries the public key, the printed name
// and who verified the identity. An id is never enrolled twice
// (signer.ErrExists).
func (l *Log) Enroll(ctx context.Context, r Reader, e Enrollment) (*signer.Signer, event.Appended, error) {
	if l.cfg.Signers == nil {
		return nil, event.Appended{}, ErrNoSigners
	}
	if !event.ValidID(e.VerifiedBy) {
		return nil, event.Appended{}, fmt.Errorf("%w: identity_verified_by must name who verified the signer's identity", event.ErrInvalidEvent)
	}
	sg, err := l.cfg.Signers.Enroll(ctx, r.Tenant, e.ID, e.PrintedName, e.Secret)
	if err != nil {
		return nil, event.Appended{}, err
	}
	a, err := l.serverEvent(ctx, r.Tenant, r, &event.Request{
		Session: signerSession(sg.ID), Kind: signature.KindEnrolled, Actor: event.Actor{Type: "human", ID: e.VerifiedBy},
		Attributes: strAttrs(signature.AttrSigner, sg.ID, signature.AttrPrintedName, sg.PrintedName,
			signature.AttrPublicKey, base64.StdEncoding.EncodeToString(sg.Public), signature.AttrKeyID, sg.KeyID,
			signature.AttrVerifiedBy, e.VerifiedBy, "signer.enrolled_by_token", r.TokenID),
	})
	return sg, a, err
}

// RotateSigner gives a signer a new key pair under a new secret and
// appends signer.key_rotated with the new public key. The token must be the
// signer's (bound to it) or the tenant's admin with the old secret.
func (l *Log) RotateSigner(ctx context.Context, r Reader, id, secret, newSecret string) (*signer.Signer, event.Appended, error) {
	if l.cfg.Signers == nil {
		return nil, event.Appended{}, ErrNoSigners
	}
	sg, err := l.cfg.Signers.Rotate(ctx, r.Tenant, id, secret, newSecret)
	if errors.Is(err, signer.ErrWrongSecret) {
		l.signFailure(ctx, r, id, "wrong_secret")
	}
	if err != nil {
		return nil, event.Appended{}, err
	}
	a, err := l.serverEvent(ctx, r.Tenant, r, &event.Request{
		Session: signerSession(id), Kind: signature.KindKeyRotated, Actor: event.Actor{Type: "human", ID: id},
		Attributes: strAttrs(signature.AttrSigner, id, signature.AttrPrintedName, sg.PrintedName,
			signature.AttrPublicKey, base64.StdEncoding.EncodeToString(sg.Public), signature.AttrKeyID, sg.KeyID),
	})
	return sg, a, err
}

// RevokeSigner revokes a signer's key for good (a lost credential,
// 11.300(c)) and appends signer.revoked.
func (l *Log) RevokeSigner(ctx context.Context, r Reader, id, reason string) (event.Appended, error) {
	if l.cfg.Signers == nil {
		return event.Appended{}, ErrNoSigners
	}
	if err := l.cfg.Signers.Revoke(ctx, r.Tenant, id); err != nil {
		return event.Appended{}, err
	}
	return l.serverEvent(ctx, r.Tenant, r, &event.Request{
		Session: signerSession(id), Kind: signature.KindRevoked, Actor: tokenActor(r),
		Attributes: strAttrs(signature.AttrSigner, id, "signer.revoke_reason", event.Clip(reason, 1024)),
	})
}

// UnlockSigner lifts a lock-out and appends signer.unlocked.
func (l *Log) UnlockSigner(ctx context.Context, r Reader, id string) (event.Appended, error) {
	if l.cfg.Signers == nil {
		return event.Appended{}, ErrNoSigners
	}
	if err := l.cfg.Signers.Unlock(ctx, r.Tenant, id); err != nil {
		return event.Appended{}, err
	}
	return l.serverEvent(ctx, r.Tenant, r, &event.Request{
		Session: signerSession(id), Kind: signature.KindUnlocked, Actor: tokenActor(r),
		Attributes: strAttrs(signature.AttrSigner, id),
	})
}

// signFailure appends signature.failed and counts the failure; when it
// locks the signer, it appends signer.locked too (11.300(d)).
func (l *Log) signFailure(ctx context.Context, r Reader, id, reason string) {
	if _, err := l.serverEvent(ctx, r.Tenant, r, &event.Request{
		Session: signerSession(id), Kind: signature.KindFailed, Actor: serverActor,
		Attributes: strAttrs(signature.AttrSigner, id, "signature.failure", reason, "signature.token_id", r.TokenID),
	}); err != nil {
		l.logger.Error("recording a failed signature attempt", "error", err)
	}
	if reason != "wrong_secret" {
		return
	}
	locked, err := l.cfg.Signers.Failure(ctx, r.Tenant, id)
	if err != nil {
		l.logger.Error("counting a failed signature attempt", "error", err)
		return
	}
	if locked {
		if _, err := l.serverEvent(ctx, r.Tenant, r, &event.Request{
			Session: signerSession(id), Kind: signature.KindLocked, Actor: serverActor,
			Attributes: strAttrs(signature.AttrSigner, id, "signer.locked_reason", "too many failed attempts"),
		}); err != nil {
			l.logger.Error("recording a lock-out", "error", err)
		}
	}
}

// SignRequest asks to sign a record. Outside a signing session every
// component is given (Signer, with a token bound to it, and Secret); inside
// one (SigningSession, from an earlier signing of the same token), the
// Secret suffices (21 CFR 11.200(a)(1)).
type SignRequest struct {
	Signer         string
	SigningSession string
	Secret         string
	Index          uint64
	LeafHash       string
	Meaning        string
	Reason         string
}

// Signed is a signature made and appended.
type Signed struct {
	Event     event.Appended
	Statement *signature.Statement
	// StatementBytes is the canonical statement; Signature the Ed25519
	// signature over signature.Domain and it.
	StatementBytes []byte
	Signature      []byte
	// SigningSession continues the signer's session.
	SigningSession string
}

// Sign signs the record at req.Index for the signer and appends a
// human.signature event, in the record's session, that carries the
// statement and the signature. A failed attempt appends signature.failed;
// too many lock the signer (signer.ErrLocked). Errors: signer.ErrNotFound,
// signer.ErrSession, ErrNotBound, signer.ErrRevoked, signer.ErrLocked,
// signer.ErrWrongSecret, ErrNotFound (no such record in the tenant),
// ErrLeafMismatch, ErrAlreadySigned.
func (l *Log) Sign(ctx context.Context, r Reader, req SignRequest) (*Signed, error) {
	if l.cfg.Signers == nil {
		return nil, ErrNoSigners
	}
	st := l.cfg.Signers
	id := req.Signer
	if req.SigningSession != "" {
		tenant, sid, err := st.Session(ctx, req.SigningSession, r.TokenID)
		if err != nil {
			return nil, err
		}
		if tenant != r.Tenant || (id != "" && id != sid) {
			return nil, signer.ErrSession
		}
		id = sid
	}
	if id == "" {
		return nil, fmt.Errorf("%w: name the signer (or continue a signing session)", event.ErrInvalidEvent)
	}
	if !slices.Contains(r.Actors, id) {
		// An attempt to sign as someone else (11.300(d)): recorded, not
		// counted against the signer.
		l.signFailure(ctx, r, id, "not_bound")
		return nil, ErrNotBound
	}
	if !slices.Contains(signature.Meanings, req.Meaning) {
		return nil, fmt.Errorf("%w: meaning %q: want one of %v", event.ErrInvalidEvent, event.Clip(req.Meaning, 40), signature.Meanings)
	}
	if len(req.Reason) > signature.MaxReason {
		return nil, fmt.Errorf("%w: reason longer than %d bytes", event.ErrInvalidEvent, signature.MaxReason)
	}
	priv, sg, err := st.Unseal(ctx, r.Tenant, id, req.Secret)
	switch {
	case errors.Is(err, signer.ErrWrongSecret):
		l.signFailure(ctx, r, id, "wrong_secret")
		return nil, err
	case errors.Is(err, signer.ErrRevoked):
		l.signFailure(ctx, r, id, "revoked")
		return nil, err
	case errors.Is(err, signer.ErrLocked):
		l.signFailure(ctx, r, id, "locked")
		return nil, err
	case err != nil:
		return nil, err
	}
	// The record: in the signer's tenant, with the leaf hash named.
	size, ok, err := l.sizeCovering(ctx, req.Index)
	if err != nil {
		return nil, err
	}
	if !ok {
		l.signFailure(ctx, r, id, "unknown_record")
		return nil, fmt.Errorf("%w: no entry %d", ErrNotFound, req.Index)
	}
	data, err := l.ReadLeaf(ctx, req.Index, size)
	if err != nil {
		return nil, err
	}
	head, err := event.ParseHead(data)
	if err != nil || head.Tenant != r.Tenant {
		l.signFailure(ctx, r, id, "unknown_record")
		return nil, fmt.Errorf("%w: no entry %d in tenant %s", ErrNotFound, req.Index, r.Tenant)
	}
	lh := hex.EncodeToString(event.LeafHash(data))
	if req.LeafHash != lh {
		l.signFailure(ctx, r, id, "leaf_mismatch")
		return nil, fmt.Errorf("%w: entry %d has leaf hash %s", ErrLeafMismatch, req.Index, lh)
	}
	// Signings are serialised (in every instance), so that one signer's
	// signature of a record with a meaning is made once.
	unlock, err := l.lock(ctx, "log.sign")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if at, ok, err := st.Signed(ctx, r.Tenant, id, req.Index, req.Meaning); err != nil {
		return nil, err
	} else if ok {
		l.signFailure(ctx, r, id, "already_signed")
		return nil, fmt.Errorf("%w (event %d)", ErrAlreadySigned, at)
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	s := &signature.Statement{
		Origin: l.origin, Index: req.Index, LeafHash: lh, Meaning: req.Meaning, Reason: req.Reason,
		Tenant: r.Tenant, Signer: id, PrintedName: sg.PrintedName, KeyID: sg.KeyID,
		Time: time.Now().UTC().Format(event.TimeFormat), Nonce: hex.EncodeToString(nonce),
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	msg, err := s.Message()
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(priv, msg)
	canon, _ := s.Marshal()
	// The components used (21 CFR 11.200(a)(1)): the first signing of a
	// session all of them, later ones the secret. The event names the
	// session by a digest, never by its id, which is a credential.
	sess, components := req.SigningSession, ComponentsSecret
	if sess == "" {
		if sess, err = st.StartSession(ctx, r.Tenant, id, r.TokenID); err != nil {
			return nil, err
		}
		components = ComponentsAll
	}
	sessDigest := sha256.Sum256([]byte("llmaudittrail/signing-session\x00" + sess))
	a, err := l.serverEvent(ctx, r.Tenant, r, &event.Request{
		Session: head.Session, Kind: signature.KindSignature, Actor: event.Actor{Type: "human", ID: id},
		Attributes: map[string]json.RawMessage{
			signature.AttrStatement:   jsonString(string(canon)),
			signature.AttrSignature:   jsonString(base64.StdEncoding.EncodeToString(sig)),
			signature.AttrSigner:      jsonString(id),
			signature.AttrPrintedName: jsonString(sg.PrintedName),
			signature.AttrMeaning:     jsonString(req.Meaning),
			signature.AttrIndex:       json.RawMessage(strconv.FormatUint(req.Index, 10)),
			signature.AttrComponents:  jsonString(components),
			signature.AttrSession:     jsonString(hex.EncodeToString(sessDigest[:8])),
		},
	})
	if err != nil {
		return nil, err
	}
	if err := st.RecordSignature(ctx, r.Tenant, id, req.Index, req.Meaning, a.Index); err != nil {
		return nil, err
	}
	return &Signed{Event: a, Statement: s, StatementBytes: canon, Signature: sig, SigningSession: sess}, nil
}

// ExportSignature returns the signature event at index with the receipts a
// third party needs to check it offline (signature.VerifyExport): the
// enrollment (or rotation) event of the key it was made with, the signature
// event and the signed record, each against the latest checkpoint.
func (l *Log) ExportSignature(ctx context.Context, r Reader, index uint64) (*signature.Export, error) {
	ev, err := l.Entry(ctx, index, 0)
	if err != nil {
		return nil, err
	}
	leaf, err := event.ParseLeaf(ev.Leaf)
	if err != nil || leaf.Kind != signature.KindSignature || (leaf.Tenant != r.Tenant && !r.AllTenants) {
		return nil, fmt.Errorf("%w: no signature at %d in tenant %s", ErrNotFound, index, r.Tenant)
	}
	st, sig, err := signature.FromLeaf(leaf)
	if err != nil {
		return nil, err
	}
	canon, _ := st.Marshal()
	if err := l.WaitIndexed(ctx); err != nil {
		return nil, err
	}
	entries, err := l.index.Session(ctx, leaf.Tenant, signerSession(st.Signer), 0, 10000)
	if err != nil {
		return nil, err
	}
	var enr *event.Leaf
	var enrIndex uint64
	for _, e := range entries {
		if (e.Kind != signature.KindEnrolled && e.Kind != signature.KindKeyRotated) || e.Index > index {
			continue
		}
		size, err := l.reader.IntegratedSize(ctx)
		if err != nil {
			return nil, err
		}
		d, err := l.ReadLeaf(ctx, e.Index, size)
		if err != nil {
			return nil, err
		}
		el, err := event.ParseLeaf(d)
		if err != nil {
			continue
		}
		if kid, _ := el.Attributes[signature.AttrKeyID].(string); kid == st.KeyID {
			enr, enrIndex = el, e.Index
		}
	}
	if enr == nil {
		return nil, fmt.Errorf("the enrollment of key %s of signer %s is not in the log", st.KeyID, st.Signer)
	}
	er, err := l.Entry(ctx, enrIndex, 0)
	if err != nil {
		return nil, err
	}
	rr, err := l.Entry(ctx, st.Index, 0)
	if err != nil {
		return nil, err
	}
	return &signature.Export{Statement: string(canon), Signature: base64.StdEncoding.EncodeToString(sig), Enrollment: er, Event: ev, Record: rr}, nil
}

package governance

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
	"strings"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/signature"
	"github.com/llmaudittrail/llmaudittrail/signer"
)

// Outcomes of signing.
var (
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

// signLock serialises signings (in every instance), so that one signer's
// signature of a record with a meaning is made once.
const signLock = "log.sign"

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
// too many lock the signer (signer.ErrLocked). The leaf hash is compared
// in lower case. Errors: ErrNoSigners, signer.ErrNotFound,
// signer.ErrSession, ErrNotBound, signer.ErrRevoked, signer.ErrLocked,
// signer.ErrWrongSecret, log.ErrNotFound (no such record in the tenant),
// ErrLeafMismatch, ErrAlreadySigned.
func (c *Clerk) Sign(ctx context.Context, r auditlog.Reader, req api.SignRequest) (*Signed, error) {
	if c.cfg.Signers == nil {
		return nil, ErrNoSigners
	}
	st := c.cfg.Signers
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
		c.signFailure(ctx, r, id, "not_bound")
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
		c.signFailure(ctx, r, id, "wrong_secret")
		return nil, err
	case errors.Is(err, signer.ErrRevoked):
		c.signFailure(ctx, r, id, "revoked")
		return nil, err
	case errors.Is(err, signer.ErrLocked):
		c.signFailure(ctx, r, id, "locked")
		return nil, err
	case err != nil:
		return nil, err
	}
	// The record: in the signer's tenant, with the leaf hash named.
	data, err := c.log.Leaf(ctx, req.Index)
	if errors.Is(err, auditlog.ErrNotFound) {
		c.signFailure(ctx, r, id, "unknown_record")
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	head, err := event.ParseHead(data)
	if err != nil || head.Tenant != r.Tenant {
		c.signFailure(ctx, r, id, "unknown_record")
		return nil, fmt.Errorf("%w: no entry %d in tenant %s", auditlog.ErrNotFound, req.Index, r.Tenant)
	}
	lh := hex.EncodeToString(event.LeafHash(data))
	if strings.ToLower(req.LeafHash) != lh {
		c.signFailure(ctx, r, id, "leaf_mismatch")
		return nil, fmt.Errorf("%w: entry %d has leaf hash %s", ErrLeafMismatch, req.Index, lh)
	}
	// Signings are serialised (in every instance), so that one signer's
	// signature of a record with a meaning is made once.
	unlock, err := c.log.Lock(ctx, signLock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if at, ok, err := st.Signed(ctx, r.Tenant, id, req.Index, req.Meaning); err != nil {
		return nil, err
	} else if ok {
		c.signFailure(ctx, r, id, "already_signed")
		return nil, fmt.Errorf("%w (event %d)", ErrAlreadySigned, at)
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	s := &signature.Statement{
		Origin: c.log.Origin(), Index: req.Index, LeafHash: lh, Meaning: req.Meaning, Reason: req.Reason,
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
	a, err := c.record(ctx, r.Tenant, r, &event.Request{
		Session: head.Session, Kind: event.KindHumanSignature, Actor: event.Actor{Type: "human", ID: id},
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
func (c *Clerk) ExportSignature(ctx context.Context, r auditlog.Reader, index uint64) (*signature.Export, error) {
	ev, err := c.log.Entry(ctx, index, 0)
	if err != nil {
		return nil, err
	}
	leaf, err := event.ParseLeaf(ev.Leaf)
	if err != nil || leaf.Kind != event.KindHumanSignature || (leaf.Tenant != r.Tenant && !r.AllTenants) {
		return nil, fmt.Errorf("%w: no signature event at %d in tenant %s (an export is addressed by the index of the human.signature event, event.index in the answer of POST /v1/signatures, not by the signed record's)", auditlog.ErrNotFound, index, r.Tenant)
	}
	st, sig, err := signature.FromLeaf(leaf)
	if err != nil {
		return nil, err
	}
	canon, _ := st.Marshal()
	if err := c.log.WaitIndexed(ctx); err != nil {
		return nil, err
	}
	entries, err := c.log.Index().Session(ctx, leaf.Tenant, event.SignerSession(st.Signer), 0, 10000)
	if err != nil {
		return nil, err
	}
	var enr *event.Leaf
	var enrIndex uint64
	for _, e := range entries {
		if (e.Kind != signature.KindEnrolled && e.Kind != signature.KindKeyRotated) || e.Index > index {
			continue
		}
		size, err := c.log.Reader().IntegratedSize(ctx)
		if err != nil {
			return nil, err
		}
		d, err := c.log.ReadLeaf(ctx, e.Index, size)
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
	er, err := c.log.Entry(ctx, enrIndex, 0)
	if err != nil {
		return nil, err
	}
	rr, err := c.log.Entry(ctx, st.Index, 0)
	if err != nil {
		return nil, err
	}
	return &signature.Export{Statement: string(canon), Signature: base64.StdEncoding.EncodeToString(sig), Enrollment: er, Event: ev, Record: rr}, nil
}

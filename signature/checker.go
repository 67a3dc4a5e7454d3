package signature

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	tclient "github.com/transparency-dev/tessera/client"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Problem codes of the Checker: what is wrong with an enrollment or a
// signature in the log.
const (
	ProblemMalformed   = "malformed"    // the event does not carry what its kind needs
	ProblemOrigin      = "origin"       // the statement signs a record of another log
	ProblemSigner      = "signer"       // statement and event disagree on tenant or signer
	ProblemOrder       = "order"        // the signed record does not come before the signature
	ProblemReplay      = "replay"       // the statement appeared before
	ProblemNotEnrolled = "not_enrolled" // no key of the signer enrolled before the signature
	ProblemRevoked     = "revoked"      // the signer was revoked before the signature
	ProblemWrongKey    = "wrong_key"    // made with another key than the one enrolled then
	ProblemName        = "printed_name" // the printed name is not the enrolled one
	ProblemSignature   = "bad_signature"
	ProblemReenrolled  = "reenrolled" // a signer id enrolled a second time (11.100)
	ProblemKeyReused   = "key_reused" // one key enrolled for two signers (11.100)
	ProblemRecord      = "record"     // the signed record is not the log's entry at its index (11.70)
)

// Problem is one thing wrong, at the entry Index.
type Problem struct {
	Index   uint64
	Code    string
	Message string
}

// Checker verifies, as a reader goes through a log in order, every
// human.signature against the key enrolled in the log at that time, and
// every enrollment against those before it. CheckRecords then proves that
// each signed record is the leaf its statement names.
type Checker struct {
	origin  string
	keys    map[string]*signerKeys // tenant + "\x00" + signer id
	owners  map[string]string      // key id -> tenant + "\x00" + signer id
	nonces  map[string]uint64      // statement nonce -> index of its first appearance
	targets []target
	count   int
}

type signerKeys struct {
	keys    []enrolledKey
	revoked *uint64
}

type enrolledKey struct {
	id   string
	pub  ed25519.PublicKey
	from uint64 // index of the enrollment or rotation event
	name string
}

type target struct {
	sigIndex, index uint64
	leafHash        []byte
}

// NewChecker returns a checker for the log with origin.
func NewChecker(origin string) *Checker {
	return &Checker{origin: origin, keys: map[string]*signerKeys{}, owners: map[string]string{}, nonces: map[string]uint64{}}
}

// Wants reports whether an entry of kind matters to the checker.
func (c *Checker) Wants(kind string) bool {
	switch kind {
	case KindEnrolled, KindKeyRotated, KindRevoked, event.KindHumanSignature:
		return true
	}
	return false
}

// Signatures counts the signatures seen.
func (c *Checker) Signatures() int { return c.count }

// See reads the entry at index, which must be the next one of those Wants
// selects; it returns the problem it has, or nil.
func (c *Checker) See(index uint64, l *event.Leaf) *Problem {
	bad := func(code, format string, args ...any) *Problem {
		return &Problem{Index: index, Code: code, Message: fmt.Sprintf(format, args...)}
	}
	key := l.Tenant + "\x00"
	switch l.Kind {
	case KindEnrolled, KindKeyRotated:
		id, name, pub, err := PublicKeyFromLeaf(l)
		if err != nil {
			return bad(ProblemMalformed, "%s event %d: %v", l.Kind, index, err)
		}
		sk := c.keys[key+id]
		if sk == nil {
			sk = &signerKeys{}
			c.keys[key+id] = sk
		}
		if l.Kind == KindEnrolled && len(sk.keys) > 0 {
			return bad(ProblemReenrolled, "signer %s/%s enrolled a second time at %d (first at %d): a signer id is never reused", l.Tenant, id, index, sk.keys[0].from)
		}
		kid := KeyID(pub)
		if owner, ok := c.owners[kid]; ok && owner != key+id {
			return bad(ProblemKeyReused, "key %s enrolled at %d for %s/%s is already another signer's", kid[:16], index, l.Tenant, id)
		}
		c.owners[kid] = key + id
		sk.keys = append(sk.keys, enrolledKey{id: kid, pub: pub, from: index, name: name})
	case KindRevoked:
		id, _ := l.Attributes[AttrSigner].(string)
		if sk := c.keys[key+id]; sk != nil && sk.revoked == nil {
			i := index
			sk.revoked = &i
		}
	case event.KindHumanSignature:
		c.count++
		s, sig, err := FromLeaf(l)
		if err != nil {
			return bad(ProblemMalformed, "signature event %d: %v", index, err)
		}
		switch {
		case s.Origin != c.origin:
			return bad(ProblemOrigin, "signature event %d signs a record of log %q", index, s.Origin)
		case s.Tenant != l.Tenant || s.Signer != l.Actor.ID:
			return bad(ProblemSigner, "signature event %d: its statement is of %s/%s, the event of %s/%s", index, s.Tenant, s.Signer, l.Tenant, l.Actor.ID)
		case s.Index >= index:
			return bad(ProblemOrder, "signature event %d signs record %d, which does not come before it", index, s.Index)
		}
		if first, dup := c.nonces[s.Nonce]; dup {
			return bad(ProblemReplay, "signature event %d replays the statement of signature event %d", index, first)
		}
		c.nonces[s.Nonce] = index
		sk := c.keys[key+s.Signer]
		if sk == nil {
			return bad(ProblemNotEnrolled, "signature event %d: signer %s/%s is not enrolled before it", index, l.Tenant, s.Signer)
		}
		if sk.revoked != nil && *sk.revoked < index {
			return bad(ProblemRevoked, "signature event %d: signer %s/%s was revoked at %d", index, l.Tenant, s.Signer, *sk.revoked)
		}
		var k *enrolledKey
		for i := range sk.keys {
			if sk.keys[i].from < index {
				k = &sk.keys[i] // the latest enrolled before the signature
			}
		}
		switch {
		case k == nil:
			return bad(ProblemNotEnrolled, "signature event %d: signer %s/%s has no key enrolled before it", index, l.Tenant, s.Signer)
		case k.id != s.KeyID:
			return bad(ProblemWrongKey, "signature event %d is made with key %s, not the key %s enrolled at %d", index, s.KeyID[:16], k.id[:16], k.from)
		case k.name != s.PrintedName:
			return bad(ProblemName, "signature event %d: printed name %q, enrolled %q", index, s.PrintedName, k.name)
		}
		if err := Verify(k.pub, s, sig); err != nil {
			return bad(ProblemSignature, "signature event %d: %v", index, err)
		}
		lh, _ := hex.DecodeString(s.LeafHash)
		c.targets = append(c.targets, target{sigIndex: index, index: s.Index, leafHash: lh})
	}
	return nil
}

// CheckRecords proves, with inclusion proofs built from the tiles of a
// verified tree of size and root, that each signed record seen is the leaf
// its statement names (21 CFR 11.70).
func (c *Checker) CheckRecords(ctx context.Context, size uint64, root []byte, tiles tclient.TileFetcherFunc) ([]Problem, error) {
	if len(c.targets) == 0 {
		return nil, nil
	}
	pb, err := tclient.NewProofBuilder(ctx, size, tiles)
	if err != nil {
		return nil, err
	}
	var out []Problem
	for _, t := range c.targets {
		p, err := pb.InclusionProof(ctx, t.index)
		if err != nil {
			return nil, err
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, t.index, size, t.leafHash, p, root); err != nil {
			out = append(out, Problem{Index: t.sigIndex, Code: ProblemRecord,
				Message: fmt.Sprintf("signature event %d signs a record %d with leaf hash %x, which is not the log's entry %d", t.sigIndex, t.index, t.leafHash, t.index)})
		}
	}
	return out, nil
}

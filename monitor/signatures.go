package monitor

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	tclient "github.com/transparency-dev/tessera/client"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/signature"
)

// RuleSignature: a human.signature in the log does not verify: a bad
// Ed25519 signature, a key that was not enrolled (or was revoked) when it
// signed, a statement for another log, tenant or signer, a record that is
// not the one at the statement's index, or a statement that appears twice.
const RuleSignature = "signature.invalid"

// sigChecker verifies, as a full audit reads the log in order, every
// human.signature against the key enrolled in the log at that time.
type sigChecker struct {
	origin string
	keys   map[string]*signerKeys // tenant + "\x00" + signer id
	nonces map[string]uint64      // statement nonce -> index of its first appearance
	// targets are the records the signatures name, checked against the
	// tree after the scan.
	targets []sigTarget
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

type sigTarget struct {
	sigIndex, index uint64
	leafHash        []byte
}

func newSigChecker(origin string) *sigChecker {
	return &sigChecker{origin: origin, keys: map[string]*signerKeys{}, nonces: map[string]uint64{}}
}

// wants reports whether an entry of kind matters to the checker.
func (c *sigChecker) wants(kind string) bool {
	switch kind {
	case signature.KindEnrolled, signature.KindKeyRotated, signature.KindRevoked, signature.KindSignature:
		return true
	}
	return false
}

// see reads one entry; it returns a finding's message or "".
func (c *sigChecker) see(index uint64, data []byte) string {
	l, err := event.ParseLeaf(data)
	if err != nil {
		return ""
	}
	key := l.Tenant + "\x00"
	switch l.Kind {
	case signature.KindEnrolled, signature.KindKeyRotated:
		id, name, pub, err := signature.PublicKeyFromLeaf(l)
		if err != nil {
			return fmt.Sprintf("%s event %d: %v", l.Kind, index, err)
		}
		sk := c.keys[key+id]
		if sk == nil {
			sk = &signerKeys{}
			c.keys[key+id] = sk
		}
		if l.Kind == signature.KindEnrolled && len(sk.keys) > 0 {
			return fmt.Sprintf("signer %s/%s enrolled a second time at %d (first at %d): a signer id is never reused", l.Tenant, id, index, sk.keys[0].from)
		}
		sk.keys = append(sk.keys, enrolledKey{id: signature.KeyID(pub), pub: pub, from: index, name: name})
	case signature.KindRevoked:
		id, _ := l.Attributes[signature.AttrSigner].(string)
		if sk := c.keys[key+id]; sk != nil && sk.revoked == nil {
			i := index
			sk.revoked = &i
		}
	case signature.KindSignature:
		c.count++
		s, sig, err := signature.FromLeaf(l)
		if err != nil {
			return fmt.Sprintf("signature event %d: %v", index, err)
		}
		switch {
		case s.Origin != c.origin:
			return fmt.Sprintf("signature event %d signs a record of log %q", index, s.Origin)
		case s.Tenant != l.Tenant || s.Signer != l.Actor.ID:
			return fmt.Sprintf("signature event %d: its statement is of %s/%s, the event of %s/%s", index, s.Tenant, s.Signer, l.Tenant, l.Actor.ID)
		case s.Index >= index:
			return fmt.Sprintf("signature event %d signs record %d, which does not come before it", index, s.Index)
		}
		if first, dup := c.nonces[s.Nonce]; dup {
			return fmt.Sprintf("signature event %d replays the statement of signature event %d", index, first)
		}
		c.nonces[s.Nonce] = index
		sk := c.keys[key+s.Signer]
		if sk == nil {
			return fmt.Sprintf("signature event %d: signer %s/%s is not enrolled before it", index, l.Tenant, s.Signer)
		}
		if sk.revoked != nil && *sk.revoked < index {
			return fmt.Sprintf("signature event %d: signer %s/%s was revoked at %d", index, l.Tenant, s.Signer, *sk.revoked)
		}
		var k *enrolledKey
		for i := range sk.keys {
			if sk.keys[i].from < index {
				k = &sk.keys[i] // the latest enrolled before the signature
			}
		}
		switch {
		case k == nil:
			return fmt.Sprintf("signature event %d: signer %s/%s has no key enrolled before it", index, l.Tenant, s.Signer)
		case k.id != s.KeyID:
			return fmt.Sprintf("signature event %d is made with key %s, not the key %s enrolled at %d", index, s.KeyID[:16], k.id[:16], k.from)
		case k.name != s.PrintedName:
			return fmt.Sprintf("signature event %d: printed name %q, enrolled %q", index, s.PrintedName, k.name)
		}
		if err := signature.Verify(k.pub, s, sig); err != nil {
			return fmt.Sprintf("signature event %d: %v", index, err)
		}
		lh, _ := hex.DecodeString(s.LeafHash)
		c.targets = append(c.targets, sigTarget{sigIndex: index, index: s.Index, leafHash: lh})
	}
	return ""
}

// checkTargets proves that each signed record is the leaf its statement
// names, with inclusion proofs built from the verified tree's tiles.
func (c *sigChecker) checkTargets(ctx context.Context, size uint64, root []byte, tiles tclient.TileFetcherFunc) ([]Alert, error) {
	if len(c.targets) == 0 {
		return nil, nil
	}
	pb, err := tclient.NewProofBuilder(ctx, size, tiles)
	if err != nil {
		return nil, err
	}
	var out []Alert
	for _, t := range c.targets {
		p, err := pb.InclusionProof(ctx, t.index)
		if err != nil {
			return nil, err
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, t.index, size, t.leafHash, p, root); err != nil {
			i := t.sigIndex
			out = append(out, Alert{Rule: RuleSignature, Severity: "critical", Source: SourceIntegrity, Index: &i,
				Message: fmt.Sprintf("signature event %d signs a record %d with leaf hash %x, which is not the log's entry %d", i, t.index, t.leafHash, t.index)})
		}
	}
	return out, nil
}

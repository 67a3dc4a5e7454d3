package console

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// The console verifies what it shows itself, in its backend, with the
// log's key and witness policy it was given: the server's word is never
// taken for a checkpoint, an inclusion or a chain.

// cosigner is one witness of the policy and what it said of a checkpoint.
type cosigner struct {
	Name     string
	Cosigned bool
	Time     time.Time // the cosignature's time stamp, if it cosigned
}

// cpState is a checkpoint as the console verified it.
type cpState struct {
	Raw    string
	Origin string
	Size   uint64
	Root   string // hex
	// Signed: the log's signature verifies. Err says what failed.
	Signed bool
	Err    string
	// Witnessed: a witness policy is configured; QuorumMet: the
	// checkpoint carries its quorum.
	Witnessed bool
	QuorumMet bool
	Cosigners []cosigner
	// Newest is the newest cosignature's time (zero without one).
	Newest time.Time
}

// OK reports whether the checkpoint verifies, quorum included.
func (s cpState) OK() bool { return s.Signed && (!s.Witnessed || s.QuorumMet) }

// CosignedBy names the witnesses that cosigned.
func (s cpState) CosignedBy() []string {
	var out []string
	for _, c := range s.Cosigners {
		if c.Cosigned {
			out = append(out, c.Name)
		}
	}
	return out
}

// Summary says in a line what the checkpoint is and who vouches for it.
func (s cpState) Summary() string {
	switch {
	case !s.Signed:
		return "the checkpoint does not verify: " + s.Err
	case !s.Witnessed:
		return fmt.Sprintf("checkpoint %d signed by the log (no witness policy configured)", s.Size)
	case !s.QuorumMet:
		return fmt.Sprintf("checkpoint %d lacks the witness quorum (cosigned by %s)", s.Size, orNobody(s.CosignedBy()))
	}
	return fmt.Sprintf("checkpoint %d cosigned by %s", s.Size, and(s.CosignedBy()))
}

func orNobody(names []string) string {
	if len(names) == 0 {
		return "no witness"
	}
	return and(names)
}

// inspect verifies a checkpoint note and reads its cosignatures.
func (c *Console) inspect(raw []byte) cpState {
	st := cpState{Raw: string(raw), Witnessed: c.cfg.Policy != nil}
	cp, _, err := checkpoint.Verify(raw, c.cfg.Key)
	if err != nil {
		st.Err = err.Error()
		return st
	}
	st.Signed, st.Origin, st.Size, st.Root = true, cp.Origin, cp.Size, hex.EncodeToString(cp.Hash)
	if c.cfg.Policy == nil {
		return st
	}
	st.QuorumMet = c.cfg.Policy.Satisfied(raw)
	for _, w := range c.cfg.Policy.Witnesses() {
		cs := cosigner{Name: w.Name}
		if n, err := note.Open(raw, note.VerifierList(w.Verifier)); err == nil && len(n.Sigs) == 1 {
			cs.Cosigned = true
			if t, err := fnote.CoSigV1Timestamp(n.Sigs[0]); err == nil {
				cs.Time = t.UTC()
				if t.After(st.Newest) {
					st.Newest = t.UTC()
				}
			}
		}
		st.Cosigners = append(st.Cosigners, cs)
	}
	return st
}

// badge is the verification state of one event, as the pages show it.
type badge struct {
	OK bool
	// Detail says what was proved ("included under checkpoint 42,
	// cosigned by a and b; chain intact") or, failing, Reasons why not.
	Detail  string
	Reasons []string
}

// Label is the badge's word.
func (b badge) Label() string {
	if b.OK {
		return "verified"
	}
	return "failed"
}

// verifiedEntry is one entry read through the client and verified here.
type verifiedEntry struct {
	Index    uint64
	Receipt  *api.Receipt
	Leaf     *event.Leaf
	LeafHash string
	CP       cpState
	Included bool
	// Chain: "intact", "first" (seq 0, no prev), or empty when it
	// could not be checked; a broken link is a reason in Badge.
	Chain string
	// Prev is the verified previous event of the session (nil for seq 0
	// or when it could not be read).
	PrevIndex *uint64
	Badge     badge
}

// errNotVisible: the entry is not one the user may read.
var errNotVisible = errors.New("no such entry for this token")

// verifyEntry reads the entry at index with an inclusion proof to the
// latest checkpoint, verifies the checkpoint (signature, witnesses) and the
// proof, and, with chain, the link to the session's previous event (itself
// read and verified).
func (c *Console) verifyEntry(ctx context.Context, log *client.Client, index uint64, chain bool) (*verifiedEntry, error) {
	r, err := log.Entry(ctx, index, 0)
	if errors.Is(err, client.ErrNotPublished) {
		return nil, fmt.Errorf("entry %d is not covered by a published checkpoint yet; try again in a moment", index)
	}
	if errors.Is(err, client.ErrNotFound) {
		return nil, errNotVisible
	}
	if err != nil {
		return nil, err
	}
	v := &verifiedEntry{Index: index, Receipt: r, LeafHash: hex.EncodeToString(event.LeafHash(r.Leaf)), CP: c.inspect([]byte(r.Checkpoint))}
	c.observe(v.CP)
	var reasons []string
	if _, err := api.NewReceiptVerifier(c.cfg.Key, c.cfg.Policy).Verify(r); err != nil {
		reasons = append(reasons, "inclusion: "+err.Error())
	} else {
		v.Included = true
	}
	l, err := event.ParseLeaf(r.Leaf)
	if err != nil {
		reasons = append(reasons, "leaf: the entry is not an audit event: "+err.Error())
	}
	v.Leaf = l
	if l != nil && chain {
		v.Chain, reasons = c.checkLink(ctx, log, v, reasons)
	}
	v.Badge = badge{OK: len(reasons) == 0, Reasons: reasons}
	if v.Badge.OK {
		v.Badge.Detail = fmt.Sprintf("included under %s", v.CP.Summary())
		if v.Chain != "" {
			v.Badge.Detail += "; chain " + v.Chain
		}
	}
	return v, nil
}

// checkLink checks that the entry's prev is the leaf hash of its
// session's previous event, read from the log and verified.
func (c *Console) checkLink(ctx context.Context, log *client.Client, v *verifiedEntry, reasons []string) (string, []string) {
	l := v.Leaf
	if l.Seq == 0 {
		if l.Prev != "" {
			return "", append(reasons, "chain: the session's first event names a previous event")
		}
		return "intact (the session's first event)", reasons
	}
	page, err := log.Session(ctx, l.Session, client.SessionQuery{Tenant: l.Tenant, FromSeq: l.Seq - 1, Limit: 1})
	if err != nil || len(page.Events) == 0 || page.Events[0].Seq != l.Seq-1 {
		return "", append(reasons, fmt.Sprintf("chain: the session's event seq %d is not in the log's listing", l.Seq-1))
	}
	prevIdx := page.Events[0].Index
	if prevIdx >= v.Index {
		return "", append(reasons, fmt.Sprintf("order: the previous event (entry %d) comes after this one", prevIdx))
	}
	pr, err := log.Entry(ctx, prevIdx, 0)
	if err != nil {
		return "", append(reasons, fmt.Sprintf("chain: reading the previous event (entry %d): %v", prevIdx, err))
	}
	if _, err := api.NewReceiptVerifier(c.cfg.Key, c.cfg.Policy).Verify(pr); err != nil {
		return "", append(reasons, fmt.Sprintf("chain: the previous event (entry %d) does not verify: %v", prevIdx, err))
	}
	pl, err := event.ParseHead(pr.Leaf)
	if err != nil || pl.Tenant != l.Tenant || pl.Session != l.Session || pl.Seq != l.Seq-1 {
		return "", append(reasons, fmt.Sprintf("chain: entry %d is not the session's event seq %d", prevIdx, l.Seq-1))
	}
	v.PrevIndex = &prevIdx
	if got := hex.EncodeToString(event.LeafHash(pr.Leaf)); got != l.Prev {
		return "", append(reasons, fmt.Sprintf("chain: prev is not the previous event's leaf hash (expected %s, found %s)", short(got), short(l.Prev)))
	}
	return "intact", reasons
}

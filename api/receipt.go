package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	fmtlog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
	"github.com/llmaudittrail/llmaudittrail/timestamp"
)

// Receipt errors. Each is wrapped by VerifyReceipt / ReceiptVerifier.Verify.
var (
	// ErrReceiptMalformed: the receipt is not the JSON the log returns.
	ErrReceiptMalformed = errors.New("malformed receipt")
	// ErrReceiptCheckpoint: the receipt's checkpoint does not verify with
	// the log key (or lacks the policy's witness quorum).
	ErrReceiptCheckpoint = errors.New("receipt checkpoint does not verify")
	// ErrReceiptLeafHash: leaf_hash is not the hash of leaf.
	ErrReceiptLeafHash = errors.New("receipt leaf hash does not match its leaf")
	// ErrReceiptInclusion: the inclusion proof does not lead from the leaf
	// to the checkpoint's root.
	ErrReceiptInclusion = errors.New("receipt inclusion proof does not verify")
)

// Receipt is an offline-verifiable proof that a leaf is in the log: the
// leaf, its index, an inclusion proof and a checkpoint (with whatever
// witness cosignatures the log's policy requires) that the proof leads to.
// The log returns one for a write with ?wait=checkpoint and from
// GET /v1/entries/{index}. Verify it with a ReceiptVerifier.
//
// TlogProof is the same proof as a C2SP tlog-proof (c2sp.org/tlog-proof@v1,
// the leaf as its extra data, see MarshalTlogProof): a file that tools
// which do not know this JSON verify. The log sets it on every receipt
// whose checkpoint is for its tree size; a verifier checks that it says
// what the other fields say. Other evidence about the same checkpoint (a
// timestamp token, say) belongs beside it in this JSON, not in the
// tlog-proof text, whose form C2SP fixes.
type Receipt struct {
	Index uint64 `json:"index"`
	Leaf  []byte `json:"leaf"` // standard base64 in JSON
	// Envelope is, on a log of leaf version 3, the entry the log holds for
	// Leaf (which is then the event's body): the inclusion proof is the
	// envelope's, and the envelope commits to LeafHash. Absent on a
	// version 2 log.
	Envelope       []byte   `json:"envelope,omitempty"`
	LeafHash       string   `json:"leaf_hash"` // hex
	TreeSize       uint64   `json:"tree_size"`
	InclusionProof [][]byte `json:"inclusion_proof"` // standard base64 each
	Checkpoint     string   `json:"checkpoint"`      // signed note text
	// Timestamps, when the log has timestamp authorities and one has
	// stamped a checkpoint that covers the entry, are the tokens on the
	// first such checkpoint, each with the entry's inclusion proof at its
	// size: the entry existed no later than the token's time, by an
	// authority that is not the operator (VerifyTimestamps).
	Timestamps []Timestamp `json:"timestamps,omitempty"`
	TlogProof  string      `json:"tlog_proof,omitempty"`
}

// receiptKeys are a receipt's keys, exactly, each once.
var receiptKeys = &strictjson.Object{Keys: map[string]*strictjson.Object{
	"index": nil, "leaf": nil, "envelope": nil, "leaf_hash": nil, "tree_size": nil, "inclusion_proof": nil, "checkpoint": nil, "tlog_proof": nil,
	"timestamps": timestampKeys,
}}

// timestampKeys are a Timestamp's keys.
var timestampKeys = &strictjson.Object{Keys: map[string]*strictjson.Object{
	"tsa": nil, "tree_size": nil, "checkpoint": nil, "token": nil, "time": nil, "event_index": nil, "inclusion_proof": nil, "consistency_proof": nil,
}}

// MaxReceiptBytes caps a receipt read from outside.
const MaxReceiptBytes = 1 << 20

// ParseReceipt decodes a receipt strictly. It also accepts a write
// response ({"index":..., "receipt": {...}}) and takes its receipt, and a
// tlog-proof (see ParseTlogProof). The result is unverified.
func ParseReceipt(data []byte) (*Receipt, error) {
	if len(data) > MaxReceiptBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrReceiptMalformed, MaxReceiptBytes)
	}
	if IsTlogProof(data) {
		return ParseTlogProof(data)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReceiptMalformed, err)
	}
	if inner, ok := probe["receipt"]; ok {
		data = inner
	} else if _, ok := probe["checkpoint"]; !ok {
		return nil, fmt.Errorf("%w: no checkpoint (a write response without ?wait=checkpoint has no receipt)", ErrReceiptMalformed)
	}
	if err := strictjson.Check(data, receiptKeys); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReceiptMalformed, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Receipt
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReceiptMalformed, err)
	}
	if len(r.Leaf) == 0 || r.Checkpoint == "" || r.TreeSize == 0 {
		return nil, fmt.Errorf("%w: leaf, tree_size and checkpoint are required", ErrReceiptMalformed)
	}
	return &r, nil
}

// VerifiedReceipt is what a receipt proves.
type VerifiedReceipt struct {
	Index      uint64
	LeafHash   []byte
	Leaf       []byte
	Envelope   []byte // the log's entry on a log of leaf version 3
	Checkpoint *fmtlog.Checkpoint
}

// Event decodes the verified leaf as an audit event.
func (v *VerifiedReceipt) Event() (*event.Leaf, error) { return event.ParseLeaf(v.Leaf) }

// ReceiptVerifier verifies receipts against a log key and, optionally, a
// witness policy. It remembers checkpoints it verified, so that a batch of
// receipts against the same checkpoint costs one signature check. It is
// safe for concurrent use.
type ReceiptVerifier struct {
	logKey note.Verifier
	policy *checkpoint.Policy

	mu    sync.Mutex
	cache map[string]*fmtlog.Checkpoint
}

// NewReceiptVerifier returns a verifier for receipts of the log with key
// logKey; policy may be nil.
func NewReceiptVerifier(logKey note.Verifier, policy *checkpoint.Policy) *ReceiptVerifier {
	return &ReceiptVerifier{logKey: logKey, policy: policy, cache: map[string]*fmtlog.Checkpoint{}}
}

func (v *ReceiptVerifier) checkpoint(raw string) (*fmtlog.Checkpoint, error) {
	v.mu.Lock()
	cp, ok := v.cache[raw]
	v.mu.Unlock()
	if ok {
		return cp, nil
	}
	cp, err := VerifyCheckpoint([]byte(raw), v.logKey, v.policy)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReceiptCheckpoint, err)
	}
	v.mu.Lock()
	if len(v.cache) > 1024 {
		clear(v.cache)
	}
	v.cache[raw] = cp
	v.mu.Unlock()
	return cp, nil
}

// Verify checks a receipt: the checkpoint's signatures, that leaf_hash is
// the leaf's RFC 6962 hash, and that the inclusion proof leads from it at
// index to the checkpoint's root. tree_size must be the checkpoint's size,
// and tlog_proof, if present, must be the same index, leaf, proof and
// checkpoint.
func (v *ReceiptVerifier) Verify(r *Receipt) (*VerifiedReceipt, error) {
	cp, err := v.checkpoint(r.Checkpoint)
	if err != nil {
		return nil, err
	}
	if r.TreeSize != cp.Size {
		return nil, fmt.Errorf("%w: tree_size %d, but the checkpoint is for size %d", ErrReceiptInclusion, r.TreeSize, cp.Size)
	}
	if r.Leaf == nil && r.Envelope != nil {
		return v.verifyEnvelopeOnly(r, cp)
	}
	lh := event.LeafHash(r.Leaf)
	if got, err := hex.DecodeString(r.LeafHash); err != nil || !bytes.Equal(got, lh) {
		return nil, fmt.Errorf("%w: leaf hashes to %x", ErrReceiptLeafHash, lh)
	}
	mh := lh
	if r.Envelope != nil {
		if _, err := event.OpenEnvelope(r.Envelope, r.Leaf, nil); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrReceiptLeafHash, err)
		}
		mh = event.LeafHash(r.Envelope)
	}
	if err := verifyInclusion(r.Index, cp.Size, mh, r.InclusionProof, cp.Hash); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReceiptInclusion, err)
	}
	if r.TlogProof != "" {
		if err := r.sameAsTlogProof(); err != nil {
			return nil, err
		}
	}
	return &VerifiedReceipt{Index: r.Index, LeafHash: lh, Leaf: r.Leaf, Envelope: r.Envelope, Checkpoint: cp}, nil
}

// verifyEnvelopeOnly verifies a receipt of a log of leaf version 3 that
// carries the envelope without its body (a bare tlog-proof): the envelope
// is at the index under the checkpoint, and LeafHash is the body hash it
// names. What the body says is proven only by a body that hashes to it.
func (v *ReceiptVerifier) verifyEnvelopeOnly(r *Receipt, cp *fmtlog.Checkpoint) (*VerifiedReceipt, error) {
	e, err := event.ParseEnvelope(r.Envelope)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReceiptLeafHash, err)
	}
	if got, err := hex.DecodeString(r.LeafHash); err != nil || !bytes.Equal(got, e.Body[:]) {
		return nil, fmt.Errorf("%w: the envelope names body %x", ErrReceiptLeafHash, e.Body)
	}
	if err := verifyInclusion(r.Index, cp.Size, event.LeafHash(r.Envelope), r.InclusionProof, cp.Hash); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReceiptInclusion, err)
	}
	if r.TlogProof != "" {
		if err := r.sameAsTlogProof(); err != nil {
			return nil, err
		}
	}
	return &VerifiedReceipt{Index: r.Index, LeafHash: e.Body[:], Envelope: r.Envelope, Checkpoint: cp}, nil
}

// ErrReceiptTimestamp: a timestamp a receipt carries does not verify:
// its checkpoint, the entry's inclusion in it, or the token (see
// package timestamp's errors, which it wraps as well).
var ErrReceiptTimestamp = errors.New("receipt timestamp does not verify")

// VerifiedTimestamp is what a verified timestamp of a receipt proves: the
// entry is in Checkpoint, which existed no later than Stamp.Time.
type VerifiedTimestamp struct {
	TSA        string
	Checkpoint *fmtlog.Checkpoint
	Stamp      *timestamp.Stamp
}

// VerifyTimestamps checks every timestamp r carries, after Verify: its
// checkpoint verifies (log key, and policy if any), the leaf (on a log of
// leaf version 3 or 4, the envelope: the log's entry) is at r's index in
// it (the timestamp's inclusion proof), and the token stamps
// that checkpoint's bytes and verifies with tv (the TSAs' roots). A receipt
// without timestamps gives none and no error.
func (v *ReceiptVerifier) VerifyTimestamps(r *Receipt, tv *timestamp.Verifier) ([]VerifiedTimestamp, error) {
	var out []VerifiedTimestamp
	lh := event.LeafHash(r.Leaf)
	if r.Envelope != nil {
		// Leaf version 3 and 4: the log's entry is the envelope.
		lh = event.LeafHash(r.Envelope)
	}
	for i, ts := range r.Timestamps {
		cp, err := v.checkpoint(ts.Checkpoint)
		if err != nil {
			return nil, fmt.Errorf("%w: timestamp %d: %v", ErrReceiptTimestamp, i, err)
		}
		if ts.TreeSize != cp.Size {
			return nil, fmt.Errorf("%w: timestamp %d: tree_size %d, but its checkpoint is for size %d", ErrReceiptTimestamp, i, ts.TreeSize, cp.Size)
		}
		if err := verifyInclusion(r.Index, cp.Size, lh, ts.InclusionProof, cp.Hash); err != nil {
			return nil, fmt.Errorf("%w: timestamp %d: inclusion: %v", ErrReceiptTimestamp, i, err)
		}
		st, err := tv.Verify(ts.Token, []byte(ts.Checkpoint))
		if err != nil {
			return nil, fmt.Errorf("%w: timestamp %d (%s): %w", ErrReceiptTimestamp, i, ts.TSA, err)
		}
		out = append(out, VerifiedTimestamp{TSA: ts.TSA, Checkpoint: cp, Stamp: st})
	}
	return out, nil
}

// VerifyReceipt parses and verifies one receipt (see ReceiptVerifier).
func VerifyReceipt(data []byte, logKey note.Verifier, policy *checkpoint.Policy) (*VerifiedReceipt, error) {
	r, err := ParseReceipt(data)
	if err != nil {
		return nil, err
	}
	return NewReceiptVerifier(logKey, policy).Verify(r)
}

// verifyInclusion is RFC 9162 section 2.1.3.2 without allocations: the
// root computed from leafHash at index and the proof must equal root. It
// agrees with proof.VerifyInclusion (see TestVerifyInclusionMatchesMerkle)
// at a fraction of the cost.
func verifyInclusion(index, size uint64, leafHash []byte, path [][]byte, root []byte) error {
	if index >= size {
		return fmt.Errorf("index %d is beyond the tree size %d", index, size)
	}
	if len(leafHash) != sha256.Size {
		return errors.New("bad leaf hash size")
	}
	var buf [1 + 2*sha256.Size]byte
	buf[0] = 1 // RFC 6962 node prefix
	r := [sha256.Size]byte(leafHash)
	fn, sn := index, size-1
	for _, p := range path {
		if len(p) != sha256.Size {
			return errors.New("bad proof hash size")
		}
		if sn == 0 {
			return errors.New("proof is too long")
		}
		if fn&1 == 1 || fn == sn {
			copy(buf[1:], p)
			copy(buf[1+sha256.Size:], r[:])
			r = sha256.Sum256(buf[:])
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			copy(buf[1:], r[:])
			copy(buf[1+sha256.Size:], p)
			r = sha256.Sum256(buf[:])
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return errors.New("proof is too short")
	}
	if !bytes.Equal(r[:], root) {
		return fmt.Errorf("calculated root %x, checkpoint root %x", r, root)
	}
	return nil
}

// VerifyCheckpoint verifies a checkpoint with the log key and, if policy is
// not nil, the policy's witness quorum.
func VerifyCheckpoint(raw []byte, logKey note.Verifier, policy *checkpoint.Policy) (*fmtlog.Checkpoint, error) {
	if policy != nil {
		return policy.Verify(raw, logKey)
	}
	cp, _, err := checkpoint.Verify(raw, logKey)
	return cp, err
}

// VerifyInclusion checks that leafHash is at index in the tree of size
// whose root is root (RFC 9162 section 2.1.3.2). It agrees with
// transparency-dev/merkle's proof.VerifyInclusion without allocating.
func VerifyInclusion(index, size uint64, leafHash []byte, path [][]byte, root []byte) error {
	return verifyInclusion(index, size, leafHash, path, root)
}

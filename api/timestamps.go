package api

import (
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/timestamp"
)

// Timestamp is an RFC 3161 time-stamp token on one of the log's published
// checkpoints, by a timestamp authority (TSA) that is not the operator:
// the checkpoint, and every entry it covers, existed no later than Time.
// Verify it with timestamp.Verifier (the TSA's roots) against
// []byte(Checkpoint), or with openssl ts -verify -token_in (see
// docs/verifying.md).
type Timestamp struct {
	// TSA is the authority's URL.
	TSA string `json:"tsa"`
	// TreeSize is the checkpoint's size.
	TreeSize uint64 `json:"tree_size"`
	// Checkpoint is the checkpoint as published (the signed note, every
	// signature line included): the message imprint is its SHA-256.
	Checkpoint string `json:"checkpoint"`
	// Token is the DER TimeStampToken (standard base64 in JSON).
	Token []byte `json:"token"`
	// Time is the token's genTime, as the log verified it.
	Time time.Time `json:"time"`
	// EventIndex is the index of the timestamp.issued event that carries
	// the token, once the log has it.
	EventIndex *uint64 `json:"event_index,omitempty"`
	// InclusionProof, on a token a receipt carries, leads from the
	// receipt's leaf to the root of Checkpoint (standard base64 each).
	InclusionProof [][]byte `json:"inclusion_proof,omitempty"`
	// ConsistencyProof, on a token a report carries, leads from the
	// report's checkpoint (its size and root) to Checkpoint.
	ConsistencyProof [][]byte `json:"consistency_proof,omitempty"`
}

// Timestamps is the answer of GET /v1/timestamps: the tokens on one
// checkpoint, one per TSA (none when no token answers the query).
type Timestamps struct {
	Timestamps []Timestamp `json:"timestamps"`
}

// VerifyTreeTimestamps checks the timestamps a report carries for its
// tree of size and root (a verified checkpoint's): each checkpoint
// verifies (log key, and policy if any), the consistency proof leads from
// size and root to it, and the token stamps its bytes and verifies with tv
// (the TSAs' roots). Errors wrap ErrReceiptTimestamp.
func VerifyTreeTimestamps(size uint64, root []byte, ts []Timestamp, logKey note.Verifier, policy *checkpoint.Policy, tv *timestamp.Verifier) ([]VerifiedTimestamp, error) {
	var out []VerifiedTimestamp
	for i, t := range ts {
		cp, err := VerifyCheckpoint([]byte(t.Checkpoint), logKey, policy)
		if err != nil {
			return nil, fmt.Errorf("%w: timestamp %d: %v", ErrReceiptTimestamp, i, err)
		}
		if t.TreeSize != cp.Size || cp.Size < size {
			return nil, fmt.Errorf("%w: timestamp %d: tree_size %d, checkpoint size %d, report size %d", ErrReceiptTimestamp, i, t.TreeSize, cp.Size, size)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size, cp.Size, t.ConsistencyProof, root, cp.Hash); err != nil {
			return nil, fmt.Errorf("%w: timestamp %d: consistency: %v", ErrReceiptTimestamp, i, err)
		}
		st, err := tv.Verify(t.Token, []byte(t.Checkpoint))
		if err != nil {
			return nil, fmt.Errorf("%w: timestamp %d (%s): %w", ErrReceiptTimestamp, i, t.TSA, err)
		}
		out = append(out, VerifiedTimestamp{TSA: t.TSA, Checkpoint: cp, Stamp: st})
	}
	return out, nil
}

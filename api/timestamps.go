package api

import "time"

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
}

// Timestamps is the answer of GET /v1/timestamps: the tokens on one
// checkpoint, one per TSA (none when no token answers the query).
type Timestamps struct {
	Timestamps []Timestamp `json:"timestamps"`
}

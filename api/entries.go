package api

import (
	"encoding/json"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Reads of entries, proofs, sessions, payloads and pseudonyms. A receipt
// (GET /v1/entries/{index}) is in receipt.go.

// ConsistencyResponse is the body of GET /v1/proof/consistency.
type ConsistencyResponse struct {
	From  uint64   `json:"from"`
	To    uint64   `json:"to"`
	Proof [][]byte `json:"proof"`
}

// SessionEntry is one event of a session as the session index knows it.
type SessionEntry struct {
	Index    uint64 `json:"index"`
	Seq      uint64 `json:"seq"`
	Kind     string `json:"kind"`
	ID       string `json:"id"`
	LeafHash string `json:"leaf_hash"`
}

// SessionPage is the body of GET /v1/sessions/{id}.
type SessionPage struct {
	Tenant  string         `json:"tenant"`
	Session string         `json:"session"`
	Events  []SessionEntry `json:"events"`
}

// PayloadResponse is the body of GET /v1/events/{index}/payload: what an
// auditor needs to check the leaf's commitment, and the access.read event
// that recorded the read.
type PayloadResponse struct {
	Index         uint64 `json:"index"`
	ID            string `json:"id"`
	Leaf          string `json:"leaf"` // standard base64
	MediaType     string `json:"media_type"`
	Size          int    `json:"size"`
	PayloadBase64 string `json:"payload_base64"`
	// Payload repeats a JSON payload as JSON (compacted), for reading; the
	// commitment is over PayloadBase64's bytes.
	Payload    json.RawMessage   `json:"payload,omitempty"`
	Salt       string            `json:"salt"` // hex
	Commitment *event.Commitment `json:"commitment"`
	// Pseudonyms resolves the pseudonyms in the leaf (subject,
	// on_behalf_of) that are not erased.
	Pseudonyms map[string]string `json:"pseudonyms,omitempty"`
	Access     EventResponse     `json:"access"` // the access.read event
}

// PseudonymResponse is the body of GET /v1/pseudonyms/{pseudonym}.
type PseudonymResponse struct {
	Tenant    string        `json:"tenant"`
	Pseudonym string        `json:"pseudonym"`
	Value     string        `json:"value"`
	Access    EventResponse `json:"access"` // the access.resolve event
}

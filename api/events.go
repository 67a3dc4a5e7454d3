package api

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Values of the wait query of a write (POST /v1/events, /v1/events:batch,
// /v1/signatures).
const (
	// WaitDurable answers as soon as the events are durable, before they
	// have an index.
	WaitDurable = "durable"
	// WaitIndex (the default) answers once the events are sequenced.
	WaitIndex = "index"
	// WaitCheckpoint answers once a published checkpoint covers the
	// events, with a receipt for each.
	WaitCheckpoint = "checkpoint"
)

// EventResponse is the server's answer for one written event (the body of
// POST /v1/events, one element of POST /v1/events:batch).
type EventResponse struct {
	ID string `json:"id"`
	// Index is the entry's index in the log, if Indexed. On the wire
	// "index" is absent when the write asked only for durability
	// (?wait=durable).
	Index    uint64 `json:"index"`
	Indexed  bool   `json:"-"`
	Seq      uint64 `json:"seq"`
	Session  string `json:"session"`
	Leaf     string `json:"leaf"`      // standard base64 of the exact leaf bytes
	LeafHash string `json:"leaf_hash"` // hex RFC 6962 leaf hash
	// Envelope is, on a log of leaf version 3, standard base64 of the
	// entry the log holds for the event (docs/leaf-format.md); the writer
	// checks its tenant tag with the tenant key.
	Envelope string   `json:"envelope,omitempty"`
	Receipt  *Receipt `json:"receipt,omitempty"`
	// ReceiptError says why no receipt came back; the event is appended all
	// the same, and must not be sent again.
	ReceiptError string `json:"receipt_error,omitempty"`
}

// NewEventResponse is the answer for a.
func NewEventResponse(a event.Appended) EventResponse {
	r := EventResponse{ID: a.ID, Seq: a.Seq, Session: a.Session,
		Leaf: base64.StdEncoding.EncodeToString(a.Leaf), LeafHash: hex.EncodeToString(a.LeafHash)}
	if a.Envelope != nil {
		r.Envelope = base64.StdEncoding.EncodeToString(a.Envelope)
	}
	if a.Indexed {
		r.Index, r.Indexed = a.Index, true
	}
	return r
}

// eventResponseJSON is EventResponse as sent: index only if indexed.
type eventResponseJSON struct {
	plainEventResponse
	Index *uint64 `json:"index,omitempty"`
}

type plainEventResponse EventResponse

// MarshalJSON writes "index" only when the event has one.
func (r EventResponse) MarshalJSON() ([]byte, error) {
	w := eventResponseJSON{plainEventResponse: plainEventResponse(r)}
	if r.Indexed {
		w.Index = &r.Index
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads "index" when present (Indexed).
func (r *EventResponse) UnmarshalJSON(b []byte) error {
	var w eventResponseJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = EventResponse(w.plainEventResponse)
	if w.Index != nil {
		r.Index, r.Indexed = *w.Index, true
	}
	return nil
}

// BatchResponse is the body of POST /v1/events:batch.
type BatchResponse struct {
	Events []EventResponse `json:"events"`
}

// EventStatus is the body of GET /v1/events/{id}: where an acknowledged
// event stands.
type EventStatus struct {
	ID      string `json:"id"`
	Tenant  string `json:"tenant"`
	Session string `json:"session"`
	// Status is StatusDurable (in the journal, not yet sequenced) or
	// StatusSequenced (in the log at Index).
	Status string  `json:"status"`
	Index  *uint64 `json:"index,omitempty"`
}

// Values of EventStatus.Status.
const (
	StatusDurable   = "durable"
	StatusSequenced = "sequenced"
)

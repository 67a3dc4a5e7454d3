package api

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"

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
	Envelope string `json:"envelope,omitempty"`
	// FieldSalt is, on a log of leaf version 4, standard base64 of the
	// body's field salt, with which the writer checks the envelope's
	// field commitment (event.CheckFields).
	FieldSalt string   `json:"field_salt,omitempty"`
	Receipt   *Receipt `json:"receipt,omitempty"`
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
	if a.FieldSalt != nil {
		r.FieldSalt = base64.StdEncoding.EncodeToString(a.FieldSalt)
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
func (r EventResponse) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil) }

// AppendJSON appends the JSON of r to b: the bytes MarshalJSON returns,
// written field by field (encoding/json through MarshalJSON builds the
// value by reflection, then scans the result again to compact it, which
// was a twentieth of the server's CPU per event). The receipt, when there
// is one, is encoded by encoding/json.
func (r EventResponse) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = event.AppendMarshaledString(b, r.ID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"session":`...)
	b = event.AppendMarshaledString(b, r.Session)
	b = append(b, `,"leaf":`...)
	b = event.AppendMarshaledString(b, r.Leaf)
	b = append(b, `,"leaf_hash":`...)
	b = event.AppendMarshaledString(b, r.LeafHash)
	if r.Envelope != "" {
		b = append(b, `,"envelope":`...)
		b = event.AppendMarshaledString(b, r.Envelope)
	}
	if r.FieldSalt != "" {
		b = append(b, `,"field_salt":`...)
		b = event.AppendMarshaledString(b, r.FieldSalt)
	}
	if r.Receipt != nil {
		rb, err := json.Marshal(r.Receipt)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"receipt":`...)
		b = append(b, rb...)
	}
	if r.ReceiptError != "" {
		b = append(b, `,"receipt_error":`...)
		b = event.AppendMarshaledString(b, r.ReceiptError)
	}
	if r.Indexed {
		b = append(b, `,"index":`...)
		b = strconv.AppendUint(b, r.Index, 10)
	}
	return append(b, '}'), nil
}

// AppendJSON appends the JSON of r to b, as encoding/json writes it.
func (r BatchResponse) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"events":`...)
	if r.Events == nil {
		return append(b, "null}"...), nil
	}
	b = append(b, '[')
	for i, e := range r.Events {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = e.AppendJSON(b); err != nil {
			return nil, err
		}
	}
	return append(b, "]}"...), nil
}

// UnmarshalJSON reads "index" when present (Indexed).
func (r *EventResponse) UnmarshalJSON(b []byte) error {
	v, err := ParseEventResponse(b)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// ParseEventResponse decodes the body of POST /v1/events as UnmarshalJSON
// does: the common shape without encoding/json (fastEventResponse), the
// rest in one pass of it (json.Unmarshal into an EventResponse checks the
// whole body, then UnmarshalJSON checks its part again).
func ParseEventResponse(b []byte) (EventResponse, error) {
	if r, ok := fastEventResponse(b); ok {
		return r, nil
	}
	return decodeEventResponse(b)
}

// decodeEventResponse is ParseEventResponse with encoding/json alone.
func decodeEventResponse(b []byte) (EventResponse, error) {
	var w eventResponseJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return EventResponse{}, err
	}
	r := EventResponse(w.plainEventResponse)
	if w.Index != nil {
		r.Index, r.Indexed = *w.Index, true
	}
	return r, nil
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

package client

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Statuses of one event's payload in GET /v1/sessions/{id}/payloads.
const (
	PayloadOK        = "ok"         // disclosed; it opens the leaf's commitment
	PayloadNone      = "no_payload" // the leaf commits to no payload
	PayloadErased    = "erased"     // erased with the session's data key
	PayloadMissing   = "missing"    // committed to, but not in the vault
	PayloadIntegrity = "integrity"  // the vault's payload does not open the commitment
)

// SessionPayloadEntry is one event of GET /v1/sessions/{id}/payloads.
type SessionPayloadEntry struct {
	Index         uint64 `json:"index"`
	Seq           uint64 `json:"seq"`
	Leaf          string `json:"leaf"` // standard base64
	Status        string `json:"status"`
	MediaType     string `json:"media_type,omitempty"`
	PayloadBase64 string `json:"payload_base64,omitempty"`
	Salt          string `json:"salt,omitempty"` // hex
}

// SessionPayloadsResponse is the body of GET /v1/sessions/{id}/payloads.
type SessionPayloadsResponse struct {
	Tenant  string                `json:"tenant"`
	Session string                `json:"session"`
	Events  []SessionPayloadEntry `json:"events"`
	// NextSeq, when present, is the from_seq of the next page.
	NextSeq *uint64       `json:"next_seq,omitempty"`
	Access  EventResponse `json:"access"` // the one access.read event of this page
}

// SessionPayload is one event of a session disclosure, decoded; Payload
// is set only when Status is PayloadOK and the payload opened the
// commitment of the leaf sent with it (Err says otherwise).
type SessionPayload struct {
	Index     uint64
	Seq       uint64
	Leaf      []byte
	LeafHash  []byte
	ID        string            // the leaf's event id
	Commit    *event.Commitment // the leaf's payload commitment
	Status    string
	MediaType string
	Payload   []byte
	Salt      []byte
	Err       error
}

// SessionDisclosure is a page of a session's payloads.
type SessionDisclosure struct {
	Tenant, Session string
	Events          []SessionPayload
	NextSeq         *uint64
	Access          event.Appended
}

// SessionPayloads discloses the payloads of a page of a session's events
// (audit scope) with one request, which the server records as one
// access.read event naming the indices. Each payload is checked against
// the commitment of the leaf sent with it; that leaf is the log's only if
// its hash matches a verified entry.
func (c *Client) SessionPayloads(ctx context.Context, id string, sq SessionQuery) (*SessionDisclosure, error) {
	var r SessionPayloadsResponse
	if err := c.do(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id)+"/payloads", sq.values(), nil, http.StatusOK, &r); err != nil {
		return nil, err
	}
	if r.Session != id {
		return nil, fmt.Errorf("%w: asked for session %s, got %s", errNoAnswer, id, r.Session)
	}
	acc, err := r.Access.Appended()
	if err != nil {
		return nil, fmt.Errorf("access event: %w", err)
	}
	d := &SessionDisclosure{Tenant: r.Tenant, Session: r.Session, NextSeq: r.NextSeq, Access: acc}
	for _, e := range r.Events {
		d.Events = append(d.Events, e.decode())
	}
	return d, nil
}

func (e SessionPayloadEntry) decode() SessionPayload {
	p := SessionPayload{Index: e.Index, Seq: e.Seq, Status: e.Status, MediaType: e.MediaType}
	leaf, err := base64.StdEncoding.DecodeString(e.Leaf)
	if err != nil {
		p.Err = fmt.Errorf("leaf is not base64: %w", err)
		return p
	}
	p.Leaf, p.LeafHash = leaf, event.LeafHash(leaf)
	if p.ID, p.Commit, err = event.LeafPayload(leaf); err != nil {
		p.Err = err
		return p
	}
	if e.Status != PayloadOK {
		return p
	}
	payload, err1 := base64.StdEncoding.DecodeString(e.PayloadBase64)
	salt, err2 := hex.DecodeString(e.Salt)
	switch {
	case err1 != nil || err2 != nil:
		p.Err = fmt.Errorf("payload or salt badly encoded")
	case !event.CheckCommitment(p.Commit, salt, payload):
		p.Err = fmt.Errorf("entry %d: %w", e.Index, ErrCommitment)
	default:
		p.Payload, p.Salt = payload, salt
	}
	return p
}

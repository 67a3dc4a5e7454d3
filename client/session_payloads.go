package client

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// SessionPayload is one event of a session disclosure, decoded; Payload
// is set only when Status is api.PayloadOK and the payload opened the
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
// its hash matches a verified entry. A payload that does not open the
// commitment (its HMAC, or its field commitment "sd") is left out, with
// Err ErrCommitment.
func (c *Client) SessionPayloads(ctx context.Context, id string, sq SessionQuery) (*SessionDisclosure, error) {
	var r api.SessionPayloadsResponse
	if err := c.do(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id)+"/payloads", sq.values(), nil, http.StatusOK, &r); err != nil {
		return nil, err
	}
	if r.Session != id {
		return nil, fmt.Errorf("%w: asked for session %s, got %s", errNoAnswer, id, r.Session)
	}
	acc, err := appended(r.Access, nil)
	if err != nil {
		return nil, fmt.Errorf("access event: %w", err)
	}
	d := &SessionDisclosure{Tenant: r.Tenant, Session: r.Session, NextSeq: r.NextSeq, Access: acc}
	for _, e := range r.Events {
		d.Events = append(d.Events, decodePayload(e))
	}
	return d, nil
}

// decodePayload decodes e and checks its payload against its leaf.
func decodePayload(e api.SessionPayloadEntry) SessionPayload {
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
	if e.Status != api.PayloadOK {
		return p
	}
	payload, err1 := base64.StdEncoding.DecodeString(e.PayloadBase64)
	salt, err2 := hex.DecodeString(e.Salt)
	switch {
	case err1 != nil || err2 != nil:
		p.Err = fmt.Errorf("payload or salt badly encoded")
	case !opens(p.Commit, salt, payload):
		p.Err = fmt.Errorf("entry %d: %w", e.Index, ErrCommitment)
	default:
		p.Payload, p.Salt = payload, salt
	}
	return p
}

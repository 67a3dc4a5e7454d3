package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Written is a write's verified outcome.
type Written struct {
	event.Appended
	// Receipt is set with WaitForCheckpoint; verify it with an
	// api.ReceiptVerifier. Its leaf and index are checked to be this event's.
	Receipt *api.Receipt
	// ReceiptError says why a receipt asked for did not come back; the
	// event is in the log all the same.
	ReceiptError string
}

// AppendOption configures Append.
type AppendOption func(*appendOptions)

type appendOptions struct{ wait, tenant string }

// InTenant makes Append write the events in tenant (?tenant=), which
// only a global token may name for a tenant other than its own, and only
// for monitor.alert events (ErrForbidden otherwise); the answer is checked
// to hold the events in that tenant (ErrOtherTenant). The leaf's writer is
// the token, whatever the tenant. Sign ignores it.
func InTenant(tenant string) AppendOption { return func(o *appendOptions) { o.tenant = tenant } }

// WaitForCheckpoint asks the server to answer only once a published
// checkpoint (with the witness cosignatures its policy requires) covers the
// events, with a receipt for each (?wait=checkpoint).
func WaitForCheckpoint() AppendOption { return func(o *appendOptions) { o.wait = api.WaitCheckpoint } }

// WaitForDurability asks the server to answer as soon as the events are
// durable, before they have an index (?wait=durable): Written.Indexed is
// false, and Client.Event answers the index once the log has sequenced the
// event. This is the fastest acknowledgement; an event acknowledged so is
// never lost.
func WaitForDurability() AppendOption { return func(o *appendOptions) { o.wait = api.WaitDurable } }

// appendQuery applies opts and returns the query they ask for, and the
// tenant they name ("": the token's).
func appendQuery(opts []AppendOption) (url.Values, string) {
	var o appendOptions
	for _, f := range opts {
		f(&o)
	}
	q := url.Values{}
	if o.wait != "" {
		q.Set("wait", o.wait)
	}
	if o.tenant != "" {
		q.Set("tenant", o.tenant)
	}
	return q, o.tenant
}

// Append writes events: one with POST /v1/events, several with POST
// /v1/events:batch (all or nothing; events of one session are chained in the
// order given). It needs a token with the write scope. Each answer is checked:
// the leaf hashes to the leaf hash given, parses, and is the event sent (kind,
// session, and the id and seq the answer names).
func (c *Client) Append(ctx context.Context, evs []*event.Request, opts ...AppendOption) ([]Written, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	q, tenant := appendQuery(opts)
	var out []api.EventResponse
	if len(evs) == 1 {
		var raw []byte
		if err := c.do(ctx, http.MethodPost, "/v1/events", q, evs[0], http.StatusCreated, &raw); err != nil {
			return nil, err
		}
		one, err := api.ParseEventResponse(raw)
		if err != nil {
			return nil, fmt.Errorf("decoding the log server's answer: %w", err)
		}
		out = []api.EventResponse{one}
	} else {
		var many api.BatchResponse
		if err := c.do(ctx, http.MethodPost, "/v1/events:batch", q, event.Requests(evs), http.StatusCreated, &many); err != nil {
			return nil, err
		}
		out = many.Events
	}
	if len(out) != len(evs) {
		return nil, fmt.Errorf("%w: %d results for %d events", errNoAnswer, len(out), len(evs))
	}
	res := make([]Written, len(out))
	for i, r := range out {
		a, err := appended(r, c.tenantKey)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		l, err := event.ParseHead(a.Leaf)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		if l.Kind != evs[i].Kind || l.Session != evs[i].Session || l.ID != r.ID || l.Seq != r.Seq {
			return nil, fmt.Errorf("event %d: %w", i, ErrWrongLeaf)
		}
		if tenant != "" && l.Tenant != tenant {
			return nil, fmt.Errorf("event %d: %w: in %s, not %s", i, ErrOtherTenant, event.Clip(l.Tenant, 64), tenant)
		}
		if r.Receipt != nil && (!a.Indexed || r.Receipt.Index != a.Index || !bytes.Equal(r.Receipt.Leaf, a.Leaf) || !bytes.Equal(r.Receipt.Envelope, a.Envelope)) {
			return nil, fmt.Errorf("event %d: the receipt is for another leaf", i)
		}
		res[i] = Written{Appended: a, Receipt: r.Receipt, ReceiptError: r.ReceiptError}
	}
	return res, nil
}

// ErrWrongLeaf: the server answered a leaf that is not the event sent, or
// whose leaf hash is not its hash.
var ErrWrongLeaf = errors.New("the log server answered a leaf that is not the event sent")

// ErrOtherTenant: the server wrote the events (they are in the log) in
// another tenant than InTenant named: a server that does not know
// ?tenant= on writes writes in the token's tenant.
var ErrOtherTenant = errors.New("the log server wrote the events in another tenant than asked")

// ErrWrongTag: on a log of leaf version 3, the write answer's envelope
// does not carry the tag of the client's tenant key (WithTenantKey), or
// the answer has no envelope: the log would hold the event where the
// tenant's auditor does not look for it.
var ErrWrongTag = event.ErrWrongTag

// appended decodes r and checks that its leaf hashes to its leaf hash,
// and an envelope, if any, commits to the leaf; with a tenant key, that
// there is an envelope and that it carries the key's tag.
func appended(r api.EventResponse, key *event.TenantKey) (event.Appended, error) {
	leaf, err := base64.StdEncoding.DecodeString(r.Leaf)
	if err != nil {
		return event.Appended{}, fmt.Errorf("leaf is not base64: %w", err)
	}
	lh := event.LeafHash(leaf)
	if hex.EncodeToString(lh) != r.LeafHash {
		return event.Appended{}, fmt.Errorf("%w: leaf_hash does not match the leaf", ErrWrongLeaf)
	}
	var env, salt []byte
	switch {
	case r.Envelope != "":
		if env, err = base64.StdEncoding.DecodeString(r.Envelope); err != nil {
			return event.Appended{}, fmt.Errorf("envelope is not base64: %w", err)
		}
		e, err := event.OpenEnvelope(env, leaf, key)
		if errors.Is(err, event.ErrWrongTag) {
			return event.Appended{}, fmt.Errorf("%w (event %s)", ErrWrongTag, r.ID)
		} else if err != nil {
			return event.Appended{}, fmt.Errorf("%w: %v", ErrWrongLeaf, err)
		}
		if e.HasFields {
			// Leaf version 4: the envelope's field commitment, from which
			// the body's fields are disclosed, must be the body's.
			if salt, err = base64.StdEncoding.DecodeString(r.FieldSalt); err != nil {
				return event.Appended{}, fmt.Errorf("field_salt is not base64: %w", err)
			}
			if err := event.CheckFields(&e, leaf, salt); err != nil {
				return event.Appended{}, fmt.Errorf("%w: event %s: %v", ErrWrongLeaf, r.ID, err)
			}
		}
	case key != nil:
		return event.Appended{}, fmt.Errorf("%w: the answer for event %s has no envelope", ErrWrongTag, r.ID)
	}
	a := event.Appended{ID: r.ID, Seq: r.Seq, Session: r.Session, Leaf: leaf, LeafHash: lh, Envelope: env, FieldSalt: salt}
	a.Index, a.Indexed = r.Index, r.Indexed
	return a, nil
}

// Event says where the event with id stands (a token with the read scope
// that sees its tenant); ErrNotFound if no acknowledged event has that id.
func (c *Client) Event(ctx context.Context, id string) (*api.EventStatus, error) {
	if !event.ValidID(id) {
		return nil, fmt.Errorf("%q is not an event id", event.Clip(id, 64))
	}
	var st api.EventStatus
	if err := c.do(ctx, http.MethodGet, "/v1/events/"+id, nil, nil, http.StatusOK, &st); err != nil {
		return nil, err
	}
	if st.ID != id || (st.Status == api.StatusSequenced) != (st.Index != nil) {
		return nil, fmt.Errorf("%w: status of another event, or a status without its index", errNoAnswer)
	}
	return &st, nil
}

// WaitIndexed asks for the index of an event acknowledged at durability
// until the log has sequenced it (or ctx ends), every poll.
func (c *Client) WaitIndexed(ctx context.Context, id string, poll time.Duration) (uint64, error) {
	for {
		st, err := c.Event(ctx, id)
		if err != nil {
			return 0, err
		}
		if st.Index != nil {
			return *st.Index, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(poll):
		}
	}
}

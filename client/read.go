package client

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/api"
	fieldsd "github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Entry returns the leaf at index with an inclusion proof to the latest
// published checkpoint, or to the tree size asked for (size > 0). The
// receipt is unverified: check it with an api.ReceiptVerifier.
func (c *Client) Entry(ctx context.Context, index, size uint64) (*api.Receipt, error) {
	q := url.Values{}
	if size > 0 {
		q.Set("size", strconv.FormatUint(size, 10))
	}
	var r api.Receipt
	if err := c.do(ctx, http.MethodGet, "/v1/entries/"+strconv.FormatUint(index, 10), q, nil, http.StatusOK, &r); err != nil {
		return nil, err
	}
	if r.Index != index {
		return nil, fmt.Errorf("%w: asked for entry %d, got %d", errNoAnswer, index, r.Index)
	}
	return &r, nil
}

// EntryProof returns the leaf at index with its inclusion proof to the
// latest published checkpoint as a c2sp.org/tlog-proof@v1 text, the leaf as
// its extra data (GET /v1/entries/{index}/proof), and the same proof parsed
// as a receipt. Both are unverified: check the receipt with an
// api.ReceiptVerifier; the text is what to store (as a .tlog-proof file) or
// hand to a tool that verifies tlog-proofs.
func (c *Client) EntryProof(ctx context.Context, index uint64) ([]byte, *api.Receipt, error) {
	var raw []byte
	if err := c.do(ctx, http.MethodGet, "/v1/entries/"+strconv.FormatUint(index, 10)+"/proof", nil, nil, http.StatusOK, &raw); err != nil {
		return nil, nil, err
	}
	r, err := api.ParseTlogProof(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errNoAnswer, err)
	}
	if r.Index != index {
		return nil, nil, fmt.Errorf("%w: asked for entry %d, got %d", errNoAnswer, index, r.Index)
	}
	return raw, r, nil
}

// Consistency returns a consistency proof between tree sizes from and to
// (0 < from <= to), unverified: check it with proof.VerifyConsistency
// against two verified checkpoints.
func (c *Client) Consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}, "to": {strconv.FormatUint(to, 10)}}
	var r api.ConsistencyResponse
	if err := c.do(ctx, http.MethodGet, "/v1/proof/consistency", q, nil, http.StatusOK, &r); err != nil {
		return nil, err
	}
	if r.From != from || r.To != to {
		return nil, fmt.Errorf("%w: asked for %d..%d, got %d..%d", errNoAnswer, from, to, r.From, r.To)
	}
	return r.Proof, nil
}

// SessionQuery selects part of a session.
type SessionQuery struct {
	// Tenant, for a log-wide token, names the tenant (default: the token's).
	Tenant string
	// FromSeq is the first seq listed.
	FromSeq uint64
	// Limit caps the events listed (server default and maximum 1,000).
	Limit int
}

func (sq SessionQuery) values() url.Values {
	q := url.Values{}
	if sq.Tenant != "" {
		q.Set("tenant", sq.Tenant)
	}
	if sq.FromSeq > 0 {
		q.Set("from_seq", strconv.FormatUint(sq.FromSeq, 10))
	}
	if sq.Limit > 0 {
		q.Set("limit", strconv.Itoa(sq.Limit))
	}
	return q
}

// Session lists a session's events in seq order with their log indices
// (read scope). The listing comes from the server's index, unverified:
// verify each entry (Entry) against a checkpoint, and the seq and prev
// chain, before relying on it.
func (c *Client) Session(ctx context.Context, id string, sq SessionQuery) (*api.SessionPage, error) {
	var p api.SessionPage
	if err := c.do(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id), sq.values(), nil, http.StatusOK, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Pseudonym resolves a pseudonym of the token's tenant (or of tenant, for a
// global token; "" for the token's own) to the value it stands for (audit
// scope). The read is itself logged, as an access.resolve event. An erased
// pseudonym answers ErrErased.
func (c *Client) Pseudonym(ctx context.Context, tenant, pseudonym string) (*api.PseudonymResponse, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	var r api.PseudonymResponse
	if err := c.do(ctx, http.MethodGet, "/v1/pseudonyms/"+url.PathEscape(pseudonym), q, nil, http.StatusOK, &r); err != nil {
		return nil, err
	}
	if r.Pseudonym != pseudonym {
		return nil, fmt.Errorf("%w: asked for %s, got %s", errNoAnswer, pseudonym, r.Pseudonym)
	}
	return &r, nil
}

// Disclosure is a disclosed payload whose commitment was checked against
// the leaf the server sent with it.
type Disclosure struct {
	Index     uint64
	Leaf      []byte
	LeafHash  []byte
	Event     *event.Leaf
	MediaType string
	Payload   []byte
	Salt      []byte
	// Pseudonyms resolves the leaf's pseudonyms (those not erased).
	Pseudonyms map[string]string
	// Access is the access.read event the server appended for this read.
	Access event.Appended
}

// Payload discloses the payload of the entry at index (audit scope; the
// read is itself appended to the log as an access.read event before the
// server answers). The payload and salt are checked to open the commitment
// in the leaf the server sent; that leaf is the log's only if its hash
// matches a verified entry (compare LeafHash with a verified receipt).
func (c *Client) Payload(ctx context.Context, index uint64) (*Disclosure, error) {
	var r api.PayloadResponse
	if err := c.do(ctx, http.MethodGet, "/v1/events/"+strconv.FormatUint(index, 10)+"/payload", nil, nil, http.StatusOK, &r); err != nil {
		return nil, err
	}
	return disclosure(&r, index)
}

// ErrCommitment: a disclosed payload does not open its leaf's commitment
// (the HMAC, or the field commitment "sd" of a JSON payload).
var ErrCommitment = fmt.Errorf("disclosed payload does not match its commitment")

// opens reports whether payload and salt open c: its HMAC, and its field
// commitment "sd" (in the version "sd_v" names) when it has one. Every
// reader of whole payloads checks both (Payload, SessionPayloads,
// ExportSession), so that the fields disclosed one by one are those of
// the payload committed whole.
func opens(c *event.Commitment, salt, payload []byte) bool {
	return event.CheckCommitment(c, salt, payload) && fieldsd.Opens(c.SD, c.SDVersion(), salt, payload)
}

// disclosure decodes r, the answer for the entry at index, and checks it.
func disclosure(r *api.PayloadResponse, index uint64) (*Disclosure, error) {
	if r.Index != index {
		return nil, fmt.Errorf("%w: asked for entry %d, got %d", errNoAnswer, index, r.Index)
	}
	leaf, err := base64.StdEncoding.DecodeString(r.Leaf)
	if err != nil {
		return nil, fmt.Errorf("leaf is not base64: %w", err)
	}
	l, err := event.ParseLeaf(leaf)
	if err != nil {
		return nil, err
	}
	payload, err := base64.StdEncoding.DecodeString(r.PayloadBase64)
	if err != nil {
		return nil, fmt.Errorf("payload is not base64: %w", err)
	}
	salt, err := hex.DecodeString(r.Salt)
	if err != nil {
		return nil, fmt.Errorf("salt is not hex: %w", err)
	}
	if !opens(l.Payload, salt, payload) {
		return nil, fmt.Errorf("entry %d: %w", index, ErrCommitment)
	}
	acc, err := appended(r.Access, nil)
	if err != nil {
		return nil, fmt.Errorf("access event: %w", err)
	}
	return &Disclosure{Index: index, Leaf: leaf, LeafHash: event.LeafHash(leaf), Event: l, MediaType: r.MediaType,
		Payload: payload, Salt: salt, Pseudonyms: r.Pseudonyms, Access: acc}, nil
}

// Fields asks for the fields of the payload of the entry at index
// (GET /v1/events/{index}/disclosure): field patterns such as model, usage,
// tools[*].name. The answer is unverified: check it with
// api.ReceiptVerifier.VerifyDisclosure, which checks the receipt and every
// disclosure, before using it. The log records the read as an access.read
// event that names the fields.
func (c *Client) Fields(ctx context.Context, index uint64, fields []string) (*api.DisclosureResponse, error) {
	return c.FieldsOf(ctx, index, fields, nil)
}

// FieldsOf is Fields with, on a log of leaf version 4, fields of the
// event's body too (?body=: kind, attributes["gen_ai.request.model"]);
// either list may be empty, not both.
func (c *Client) FieldsOf(ctx context.Context, index uint64, fields, body []string) (*api.DisclosureResponse, error) {
	var r api.DisclosureResponse
	q := url.Values{}
	if len(fields) > 0 {
		q.Set("fields", strings.Join(fields, ","))
	}
	if len(body) > 0 {
		q.Set("body", strings.Join(body, ","))
	}
	if err := c.do(ctx, http.MethodGet, "/v1/events/"+strconv.FormatUint(index, 10)+"/disclosure", q, nil, http.StatusOK, &r); err != nil {
		return nil, err
	}
	if r.Index != index {
		return nil, fmt.Errorf("%w: asked for entry %d, got %d", errNoAnswer, index, r.Index)
	}
	return &r, nil
}

// TimestampQuery selects the checkpoint whose time-stamp tokens
// Timestamps returns: the checkpoint of tree size Size, or the first
// time-stamped checkpoint that covers the entry Covering (a pointer: 0 is
// an index), or, with neither, the latest time-stamped checkpoint.
type TimestampQuery struct {
	Size     uint64
	Covering *uint64
}

// Timestamps returns the RFC 3161 tokens on one checkpoint, one per
// timestamp authority (GET /v1/timestamps), unverified: check each with a
// timestamp.Verifier against []byte(Checkpoint), and the checkpoint with
// the log key.
func (c *Client) Timestamps(ctx context.Context, tq TimestampQuery) ([]api.Timestamp, error) {
	q := url.Values{}
	if tq.Size > 0 {
		q.Set("size", strconv.FormatUint(tq.Size, 10))
	}
	if tq.Covering != nil {
		q.Set("covering", strconv.FormatUint(*tq.Covering, 10))
	}
	var r api.Timestamps
	if err := c.do(ctx, http.MethodGet, "/v1/timestamps", q, nil, http.StatusOK, &r); err != nil {
		return nil, err
	}
	return r.Timestamps, nil
}

package log

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// Outcomes of field disclosures.
var (
	// ErrNoFieldCommitment: the entry's payload has no field-level
	// commitment (it is not a JSON object, or was written before there
	// were any): it is disclosed whole only (Disclose).
	ErrNoFieldCommitment = errors.New("the entry's payload has no field-level commitment")
	// ErrNoField: none of the fields asked for is in the payload (or the
	// body).
	ErrNoField = errors.New("none of the fields is in the payload or the body")
	// ErrNoBodyCommitment: body fields were asked of a log whose entries
	// do not commit to them (leaf versions 2 and 3).
	ErrNoBodyCommitment = errors.New("the log's entries have no field-level commitment to their bodies")
)

// fieldCommitment sets the "sd" of c, the commitment to payload under
// salt, to the root hash of its disclosures (disclosure.Current, with
// decoys: "sd_v" 2), or leaves it empty when the payload has none.
func (l *Log) fieldCommitment(c *event.Commitment, salt, payload []byte, mediaType string) {
	if !disclosure.Disclosable(mediaType) {
		return
	}
	h, err := disclosure.Commitment(salt, payload)
	if err != nil {
		return
	}
	c.SD, c.SDV = h, disclosure.Current
	if f := l.sdForTest.Load(); f != nil {
		(*f)(c, salt, payload)
	}
}

// SetFieldCommitmentForTest has the log pass every field commitment it
// makes through f before it writes the leaf: a test writes leaves whose
// "sd" does not match their payload (as a dishonest operator would), or
// of version 1. Tests only.
func (l *Log) SetFieldCommitmentForTest(f func(c *event.Commitment, salt, payload []byte)) {
	l.sdForTest.Store(&f)
}

// FieldDisclosure is a chosen set of a payload's fields, and on a log of
// leaf version 4 of the body's, disclosed to a reader: a receipt for the
// entry (its leaf, or on version 4 its envelope only, an inclusion proof
// and the checkpoint), the roots' digests, the disclosures, and the
// access.read event that recorded the disclosure.
type FieldDisclosure struct {
	Index   uint64
	Event   *event.Leaf
	Receipt *api.Receipt
	// SD is the payload root's digest list: it hashes to
	// Event.Payload.SD. Empty when no payload field was asked for.
	SD          []string
	Disclosures []string
	// Unmatched are the fields asked for that are not in the payload.
	Unmatched []string
	// BodySD is, on a log of leaf version 4, the body root's digest
	// list: it hashes to the envelope's field commitment. BodyDisclosures
	// are the body fields asked for (BodyUnmatched those not in it) and
	// those without which the rest does not verify: the event's id, and
	// with payload fields its payload's "sd" and "sd_v".
	BodySD          []string
	BodyDisclosures []string
	BodyUnmatched   []string
	Access          event.Appended
}

// Fields of a body that a disclosure of a log of leaf version 4 always
// carries: the event's id, and with payload fields the payload's field
// commitment, from which they verify.
var (
	bodyFieldID = mustField("id")
	bodyFieldSD = []disclosure.Field{mustField("payload.sd"), mustField("payload.sd_v")}
)

func mustField(s string) disclosure.Field {
	f, err := disclosure.ParseField(s)
	if err != nil {
		panic(err)
	}
	return f
}

// DiscloseFields discloses fields of the payload of the entry at index,
// and on a log of leaf version 4 fields of its body: the disclosures of
// every field a pattern matches, with their ancestors and descendants.
// It decides on the leaf it serves (the receipt's leaf, or on version 4
// the body its envelope commits to): an entry of another tenant is
// ErrNotFound unless the reader may read all tenants. It checks the
// vault's payload against the leaf (the commitment and the field
// commitment), on version 4 the body's field tree against the envelope,
// waits for a published checkpoint to cover the entry, and appends an
// access.read event that names the fields durably before it returns:
// fields are never shown without the log saying who saw which. An erased
// payload is ErrErased: its salts went with it. On version 4 the answer
// does not carry the body: only the body fields disclosed.
func (l *Log) DiscloseFields(ctx context.Context, r Reader, index uint64, fields, body []disclosure.Field) (*FieldDisclosure, error) {
	if len(fields) == 0 && len(body) == 0 {
		return nil, fmt.Errorf("%w: no field named", disclosure.ErrBadField)
	}
	v4 := l.LeafVersion() == event.LeafVersionFields
	if len(body) > 0 && !v4 {
		return nil, fmt.Errorf("%w (the log is of leaf version %d; body fields are committed from version 4)", ErrNoBodyCommitment, l.LeafVersion())
	}
	out := &FieldDisclosure{Index: index}
	var data []byte
	var leaf *event.Leaf
	var err error
	if len(fields) > 0 {
		var rec vault.Record
		data, leaf, rec, err = l.payloadOf(ctx, r, index, func(leaf *event.Leaf) error {
			if leaf.Payload.SD == "" {
				return fmt.Errorf("entry %d: %w", index, ErrNoFieldCommitment)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		tree, err := disclosure.BuildVersion(leaf.Payload.SDVersion(), rec.Salt, rec.Payload)
		if err != nil || tree.Hash() != leaf.Payload.SD {
			return nil, fmt.Errorf("entry %d: the field commitment: %w", index, ErrIntegrity)
		}
		out.SD = tree.SD
		out.Disclosures, out.Unmatched = tree.Select(fields)
	} else if data, leaf, err = l.eventOf(ctx, r, index); err != nil {
		return nil, err
	}
	out.Event = leaf
	if v4 {
		if err := l.discloseBody(out, data, len(fields) > 0, body); err != nil {
			return nil, fmt.Errorf("entry %d: %w", index, err)
		}
	}
	if len(out.Disclosures) == 0 && len(out.BodyUnmatched) == len(body) {
		return nil, fmt.Errorf("entry %d: %w", index, ErrNoField)
	}
	// The receipt proves that the leaf decided on is the entry at index.
	rc, err := l.WaitReceipt(ctx, index, data)
	if err != nil {
		return nil, err
	}
	if v4 {
		// The envelope, not the body: what the body says is disclosed
		// field by field.
		rc.Leaf = nil
	}
	out.Receipt = rc
	extra := map[string]json.RawMessage{}
	if len(fields) > 0 {
		extra[event.AttrAccessFields] = fieldNames(fields)
	}
	if len(body) > 0 {
		extra[event.AttrAccessBodyFields] = fieldNames(body)
	}
	if out.Access, err = l.recordRead(ctx, r, index, leaf, extra); err != nil {
		return nil, err
	}
	return out, nil
}

// discloseBody sets d's body disclosures: the body's field tree, and the
// fields asked for with those that every disclosure carries. The tree is
// not checked against an envelope here: the envelope is a function of the
// same body and salt, so comparing the two would prove nothing. What binds
// the disclosures to the log is the receipt made after, whose envelope's
// fields the verifier hashes body_sd against.
func (l *Log) discloseBody(d *FieldDisclosure, body []byte, payload bool, asked []disclosure.Field) error {
	tree, err := disclosure.Build(l.sealer.FieldSalt(body), body)
	if err != nil {
		return fmt.Errorf("the body's field commitment: %w: %v", ErrIntegrity, err)
	}
	d.BodySD = tree.SD
	always := []disclosure.Field{bodyFieldID}
	if payload {
		always = append(always, bodyFieldSD...)
	}
	d.BodyDisclosures, _ = tree.Select(append(always, asked...))
	if len(asked) > 0 {
		_, d.BodyUnmatched = tree.Select(asked)
	}
	return nil
}

func fieldNames(fields []disclosure.Field) json.RawMessage {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.String()
	}
	list, _ := json.Marshal(names)
	return list
}

package log

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Outcomes of field disclosures.
var (
	// ErrNoFieldCommitment: the entry's payload has no field-level
	// commitment (it is not a JSON object, or was written before there
	// were any): it is disclosed whole only (Disclose).
	ErrNoFieldCommitment = errors.New("the entry's payload has no field-level commitment")
	// ErrNoField: none of the fields asked for is in the payload.
	ErrNoField = errors.New("none of the fields is in the payload")
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

// FieldDisclosure is a chosen set of a payload's fields disclosed to a
// reader: a receipt for the entry (its leaf, an inclusion proof and the
// checkpoint), the root's digests, the disclosures, and the access.read
// event that recorded the disclosure.
type FieldDisclosure struct {
	Index   uint64
	Event   *event.Leaf
	Receipt *api.Receipt
	// SD is the root's digest list: it hashes to Event.Payload.SD.
	SD          []string
	Disclosures []string
	// Unmatched are the fields asked for that are not in the payload.
	Unmatched []string
	Access    event.Appended
}

// DiscloseFields discloses the fields of the payload of the entry at index:
// the disclosures of every field a pattern matches, with their ancestors
// and descendants. It decides on the leaf it serves (the receipt's leaf):
// an entry of another tenant is ErrNotFound unless the reader may read all
// tenants. It checks the vault's payload against the leaf (the commitment
// and the field commitment), waits for a published checkpoint to cover the
// entry, and appends an access.read event that names the fields durably
// before it returns: fields are never shown without the log saying who
// saw which. An erased payload is ErrErased: its salts went with it.
func (l *Log) DiscloseFields(ctx context.Context, r Reader, index uint64, fields []disclosure.Field) (*FieldDisclosure, error) {
	if len(fields) == 0 {
		return nil, fmt.Errorf("%w: no field named", disclosure.ErrBadField)
	}
	data, leaf, rec, err := l.payloadOf(ctx, r, index, func(leaf *event.Leaf) error {
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
	ds, unmatched := tree.Select(fields)
	if len(ds) == 0 {
		return nil, fmt.Errorf("entry %d: %w", index, ErrNoField)
	}
	// The receipt proves that the leaf decided on is the entry at index.
	rc, err := l.WaitReceipt(ctx, index, data)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.String()
	}
	list, _ := json.Marshal(names)
	a, err := l.recordRead(ctx, r, index, leaf, map[string]json.RawMessage{event.AttrAccessFields: list})
	if err != nil {
		return nil, err
	}
	return &FieldDisclosure{Index: index, Event: leaf, Receipt: rc, SD: tree.SD, Disclosures: ds, Unmatched: unmatched, Access: a}, nil
}

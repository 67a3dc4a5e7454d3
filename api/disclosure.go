package api

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// DisclosureResponse is the body of GET /v1/events/{index}/disclosure: the
// chosen fields of an entry's payload (and, on a log of leaf version 4, of
// its body), and what verifies them against the log offline: a receipt
// for the entry, the root's digest list, which hashes to the "sd" of the
// leaf's payload commitment, and the disclosures (docs/disclosure.md).
// On a log of leaf version 4 the receipt carries the envelope, not the
// body: the body's digest list hashes to the envelope's field commitment,
// and the body's disclosures (always its id, and with payload fields its
// payload's "sd") are what the answer shows of the event. Saved as it
// comes, it is what `monitor verify-disclosure` reads.
type DisclosureResponse struct {
	Index uint64 `json:"index"`
	ID    string `json:"id"`
	// Fields are the payload fields asked for; Unmatched those not in the
	// payload.
	Fields    []string `json:"fields"`
	Unmatched []string `json:"unmatched,omitempty"`
	// SDAlg is disclosure.Alg; SD the root's "_sd" list, sorted.
	SDAlg       string   `json:"sd_alg"`
	SD          []string `json:"sd"`
	Disclosures []string `json:"disclosures"` // base64url, SD-JWT's form
	// Body are the body fields asked for (leaf version 4), BodyUnmatched
	// those not in the body; BodySD the body root's "_sd" list, sorted;
	// BodyDisclosures the body's disclosures.
	Body            []string `json:"body,omitempty"`
	BodyUnmatched   []string `json:"body_unmatched,omitempty"`
	BodySD          []string `json:"body_sd,omitempty"`
	BodyDisclosures []string `json:"body_disclosures,omitempty"`
	Receipt         *Receipt `json:"receipt"`
	// Access is the access.read event that recorded the disclosure; it
	// is not part of what verifies.
	Access EventResponse `json:"access"`
}

// Disclosure verification errors (VerifyDisclosure), besides the
// receipt's and package disclosure's, which it wraps.
var (
	// ErrDisclosureMalformed: the answer is not the JSON the log returns.
	ErrDisclosureMalformed = errors.New("malformed disclosure answer")
	// ErrDisclosureEntry: the receipt is for another entry than the
	// answer names, or the entry's payload has no field commitment.
	ErrDisclosureEntry = errors.New("disclosure does not match its entry")
)

// MaxDisclosureBytes caps a disclosure answer read from outside.
const MaxDisclosureBytes = 64 << 20

// ParseDisclosure decodes a disclosure answer strictly (no unknown or
// repeated keys). The result is unverified.
func ParseDisclosure(data []byte) (*DisclosureResponse, error) {
	if len(data) > MaxDisclosureBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrDisclosureMalformed, MaxDisclosureBytes)
	}
	var d DisclosureResponse
	if err := strictjson.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDisclosureMalformed, err)
	}
	if d.Receipt == nil || d.SDAlg == "" {
		return nil, fmt.Errorf("%w: receipt and sd_alg are required", ErrDisclosureMalformed)
	}
	return &d, nil
}

// VerifiedDisclosure is what a disclosure answer proves: the entry (in the
// log, by its receipt) and the fields of its payload and body.
type VerifiedDisclosure struct {
	Receipt *VerifiedReceipt
	// Event is the entry's event when the receipt carries it (leaf
	// versions 2 and 3); nil on version 4, where Body has what is shown.
	Event *event.Leaf
	// ID is the event's id: the leaf's, or on version 4 the body's
	// disclosed "id".
	ID string
	// Fields are the payload's fields (none disclosed: no field).
	Fields *disclosure.Verified
	// Body are the body's fields disclosed (leaf version 4), nil before.
	Body *disclosure.Verified
}

// VerifyDisclosure checks a disclosure answer: the receipt (checkpoint
// signatures and witness quorum, inclusion of the leaf at the index), that
// the leaf is the entry named with a field commitment, that the digest
// list hashes to it, and that every disclosure is reached from the list
// (disclosure.Verify). Nothing in d is trusted that is not checked.
func (v *ReceiptVerifier) VerifyDisclosure(d *DisclosureResponse) (*VerifiedDisclosure, error) {
	if d.Receipt == nil {
		return nil, fmt.Errorf("%w: no receipt", ErrDisclosureMalformed)
	}
	vr, err := v.Verify(d.Receipt)
	if err != nil {
		return nil, err
	}
	if vr.Index != d.Index {
		return nil, fmt.Errorf("%w: the receipt is for entry %d, the answer names %d", ErrDisclosureEntry, vr.Index, d.Index)
	}
	if d.SDAlg != disclosure.Alg {
		return nil, fmt.Errorf("%w: sd_alg %q, want %q", ErrDisclosureMalformed, event.Clip(d.SDAlg, 40), disclosure.Alg)
	}
	out := &VerifiedDisclosure{Receipt: vr, Fields: &disclosure.Verified{Claims: map[string]any{}}}
	var sd string // the payload's field commitment
	if vr.Leaf == nil {
		if sd, err = v.verifyBody(d, vr, out); err != nil {
			return nil, err
		}
	} else {
		if len(d.BodySD) > 0 || len(d.BodyDisclosures) > 0 {
			return nil, fmt.Errorf("%w: body disclosures beside the whole body", ErrDisclosureMalformed)
		}
		l, err := vr.Event()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDisclosureEntry, err)
		}
		out.Event, out.ID = l, l.ID
		if l.Payload != nil {
			sd = l.Payload.SD
		}
	}
	if out.ID != d.ID {
		return nil, fmt.Errorf("%w: entry %d is event %s, the answer names %s", ErrDisclosureEntry, d.Index, out.ID, event.Clip(d.ID, 40))
	}
	if len(d.SD) == 0 && len(d.Disclosures) == 0 && out.Body != nil {
		return out, nil // body fields only
	}
	if sd == "" {
		return nil, fmt.Errorf("%w: entry %d has no field commitment", ErrDisclosureEntry, d.Index)
	}
	if out.Fields, err = disclosure.Verify(sd, d.SD, d.Disclosures); err != nil {
		return nil, err
	}
	return out, nil
}

// verifyBody checks the body disclosures of an answer of a log of leaf
// version 4 against the receipt's envelope, and returns the payload's
// field commitment they disclose ("" when they disclose none).
func (v *ReceiptVerifier) verifyBody(d *DisclosureResponse, vr *VerifiedReceipt, out *VerifiedDisclosure) (string, error) {
	e, err := event.ParseEnvelope(vr.Envelope)
	if err != nil || !e.HasFields {
		return "", fmt.Errorf("%w: the receipt has neither the event nor an envelope of leaf version 4", ErrDisclosureEntry)
	}
	b, err := disclosure.Verify(hex.EncodeToString(e.Fields[:]), d.BodySD, d.BodyDisclosures)
	if err != nil {
		return "", fmt.Errorf("the body's fields: %w", err)
	}
	out.Body = b
	id, _ := b.Claims["id"].(string)
	if id == "" {
		return "", fmt.Errorf("%w: the body's id is not disclosed", ErrDisclosureEntry)
	}
	out.ID = id
	p, _ := b.Claims["payload"].(map[string]any)
	sd, _ := p["sd"].(string)
	return sd, nil
}

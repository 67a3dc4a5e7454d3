package api

import (
	"errors"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// DisclosureResponse is the body of GET /v1/events/{index}/disclosure: the
// chosen fields of an entry's payload, and what verifies them against the
// log offline: a receipt for the entry, the root's digest list, which
// hashes to the "sd" of the leaf's payload commitment, and the
// disclosures (docs/disclosure.md). Saved as it comes, it is what
// `monitor verify-disclosure` reads.
type DisclosureResponse struct {
	Index uint64 `json:"index"`
	ID    string `json:"id"`
	// Fields are the fields asked for; Unmatched those not in the payload.
	Fields    []string `json:"fields"`
	Unmatched []string `json:"unmatched,omitempty"`
	// SDAlg is disclosure.Alg; SD the root's "_sd" list, sorted.
	SDAlg       string   `json:"sd_alg"`
	SD          []string `json:"sd"`
	Disclosures []string `json:"disclosures"` // base64url, SD-JWT's form
	Receipt     *Receipt `json:"receipt"`
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
// log, by its receipt) and the fields of its payload.
type VerifiedDisclosure struct {
	Receipt *VerifiedReceipt
	Event   *event.Leaf
	Fields  *disclosure.Verified
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
	l, err := vr.Event()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDisclosureEntry, err)
	}
	if l.ID != d.ID {
		return nil, fmt.Errorf("%w: entry %d is event %s, the answer names %s", ErrDisclosureEntry, d.Index, l.ID, event.Clip(d.ID, 40))
	}
	if l.Payload == nil || l.Payload.SD == "" {
		return nil, fmt.Errorf("%w: entry %d has no field commitment", ErrDisclosureEntry, d.Index)
	}
	if d.SDAlg != disclosure.Alg {
		return nil, fmt.Errorf("%w: sd_alg %q, want %q", ErrDisclosureMalformed, event.Clip(d.SDAlg, 40), disclosure.Alg)
	}
	f, err := disclosure.Verify(l.Payload.SD, d.SD, d.Disclosures)
	if err != nil {
		return nil, err
	}
	return &VerifiedDisclosure{Receipt: vr, Event: l, Fields: f}, nil
}

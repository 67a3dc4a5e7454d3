package log

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	tapi "github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// SessionPayload is one event of a session disclosure: the leaf, and its
// payload when Status is api.PayloadOK (never bytes that fail the commitment).
type SessionPayload struct {
	Index  uint64
	Seq    uint64
	Leaf   []byte
	ID     string            // the leaf's event id
	Commit *event.Commitment // the leaf's payload commitment, nil if none
	Status string
	Record vault.Record
}

// SessionDisclosure is a page of a session's payloads and the one
// access.read event that recorded their disclosure.
type SessionDisclosure struct {
	Events []SessionPayload
	// NextSeq, when not zero, is the seq to ask for next: the page stopped
	// at the event limit or at maxBytes.
	NextSeq uint64
	Access  event.Appended
}

// DiscloseSession discloses the payloads of up to limit events of a
// tenant's session from fromSeq, stopping before the payloads exceed
// maxBytes (a page holds at least one event). One access.read event,
// naming the session and seq range disclosed (its payload lists every
// index), is appended durably before anything is returned, as Disclose does for one payload. Events whose
// payload is erased, missing or fails its commitment are listed with that
// status and no payload. An unknown session is ErrNotFound.
func (l *Log) DiscloseSession(ctx context.Context, r Reader, tenant, session string, fromSeq uint64, limit int, maxBytes int) (*SessionDisclosure, error) {
	if tenant != r.Tenant && !r.AllTenants {
		return nil, fmt.Errorf("%w: no session %s in tenant %s", ErrNotFound, session, r.Tenant)
	}
	entries, err := l.Session(ctx, tenant, session, fromSeq, limit+1)
	if err != nil {
		return nil, err
	}
	size, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return nil, err
	}
	d := &SessionDisclosure{}
	page := entries
	if len(page) > limit {
		d.NextSeq = page[limit].Seq
		page = page[:limit]
	}
	// Leaves, one entry bundle read per bundle.
	var bundle *tapi.EntryBundle
	bundleIdx := ^uint64(0)
	var ids []string
	for _, en := range page {
		if bi := en.Index / layout.EntryBundleWidth; bi != bundleIdx {
			if bundle, err = l.readBundle(ctx, bi, size); err != nil {
				return nil, err
			}
			bundleIdx = bi
		}
		i := en.Index % layout.EntryBundleWidth
		if en.Index >= size || i >= uint64(len(bundle.Entries)) {
			return nil, fmt.Errorf("entry %d of session %s is not in the tree of size %d", en.Index, session, size)
		}
		data := bundle.Entries[i]
		id, commit, err := event.LeafPayload(data)
		if err != nil {
			return nil, fmt.Errorf("entry %d of session %s is not an audit event: %w", en.Index, session, err)
		}
		d.Events = append(d.Events, SessionPayload{Index: en.Index, Seq: en.Seq, Leaf: data, ID: id, Commit: commit, Status: api.PayloadNone})
		if commit != nil {
			ids = append(ids, id)
		}
	}
	// Payloads, 500 to a query.
	found, failed, err := l.vault.GetMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	var indices []uint64
	total := 0
	for i := range d.Events {
		p := &d.Events[i]
		if p.Commit == nil {
			continue
		}
		rec, ok := found[p.ID]
		switch ferr := failed[p.ID]; {
		case errors.Is(ferr, vault.ErrErased):
			p.Status = api.PayloadErased
		case ferr != nil: // it does not decrypt: altered in the vault
			p.Status = api.PayloadIntegrity
		case !ok:
			p.Status = api.PayloadMissing
		case !event.CheckCommitment(p.Commit, rec.Salt, rec.Payload):
			p.Status = api.PayloadIntegrity
		case total+len(rec.Payload) > maxBytes && i > 0:
			// The page is full: it ends before this event.
			d.NextSeq, d.Events = p.Seq, d.Events[:i]
		default:
			total += len(rec.Payload)
			p.Status, p.Record = api.PayloadOK, rec
			indices = append(indices, p.Index)
		}
		if i >= len(d.Events) {
			break
		}
	}
	// The events disclosed are named by the session and the seq range the
	// page covers (a leaf holds at most 64 array items); the payload lists
	// every index.
	if indices == nil {
		indices = []uint64{}
	}
	list, _ := json.Marshal(map[string]any{"indices": indices})
	seqTo := fromSeq
	if n := len(d.Events); n > 0 {
		seqTo = d.Events[n-1].Seq
	}
	acc := &event.Request{
		Session: event.AccessSession(r.TokenID),
		Kind:    event.KindAccessRead,
		Actor:   r.Actor(),
		Attributes: map[string]json.RawMessage{
			event.AttrAccessSession: jsonString(session),
			event.AttrAccessSeqFrom: json.RawMessage(strconv.FormatUint(fromSeq, 10)),
			event.AttrAccessSeqTo:   json.RawMessage(strconv.FormatUint(seqTo, 10)),
			event.AttrAccessCount:   json.RawMessage(strconv.Itoa(len(indices))),
			event.AttrAccessTokenID: jsonString(r.TokenID),
		},
		Payload: list,
	}
	a, err := l.serverEvent(ctx, tenant, r, acc)
	if err != nil {
		return nil, err
	}
	d.Access = a
	return d, nil
}

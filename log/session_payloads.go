package log

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// SessionPayload is one event of a session disclosure: the leaf, and its
// payload when Status is client.PayloadOK (never bytes that fail the commitment).
type SessionPayload struct {
	Index  uint64
	Seq    uint64
	Leaf   []byte
	Event  *event.Leaf
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
// maxBytes (a page holds at least one event). One access.read event naming
// every index disclosed (access.indices) is appended durably before
// anything is returned, as Disclose does for one payload. Events whose
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
	var indices []uint64
	total := 0
page:
	for i, en := range entries {
		if i == limit {
			d.NextSeq = en.Seq
			break
		}
		data, err := l.ReadLeaf(ctx, en.Index, size)
		if err != nil {
			return nil, err
		}
		leaf, err := event.ParseLeaf(data)
		if err != nil {
			return nil, fmt.Errorf("entry %d of session %s is not an audit event: %w", en.Index, session, err)
		}
		p := SessionPayload{Index: en.Index, Seq: en.Seq, Leaf: data, Event: leaf, Status: client.PayloadNone}
		if leaf.Payload != nil {
			rec, err := l.vault.Get(ctx, leaf.ID)
			switch {
			case errors.Is(err, vault.ErrErased):
				p.Status = client.PayloadErased
			case errors.Is(err, vault.ErrNotFound):
				p.Status = client.PayloadMissing
			case err != nil:
				return nil, err
			case !event.CheckCommitment(leaf.Payload, rec.Salt, rec.Payload):
				p.Status = client.PayloadIntegrity
			default:
				if total+len(rec.Payload) > maxBytes && len(d.Events) > 0 {
					d.NextSeq = en.Seq
					break page
				}
				total += len(rec.Payload)
				p.Status, p.Record = client.PayloadOK, rec
				indices = append(indices, en.Index)
			}
		}
		d.Events = append(d.Events, p)
	}
	idx, _ := json.Marshal(indices)
	if indices == nil {
		idx = []byte("[]")
	}
	acc := &event.Request{
		Session: "access." + r.TokenID,
		Kind:    "access.read",
		Actor:   event.Actor{Type: "human", ID: "token." + r.TokenID},
		Attributes: map[string]json.RawMessage{
			"access.indices":  idx,
			"access.count":    json.RawMessage(strconv.Itoa(len(indices))),
			"access.session":  jsonString(session),
			"access.token_id": jsonString(r.TokenID),
		},
	}
	res, err := l.Append(ctx, tenant, event.Writer{Token: r.TokenID, Via: event.ViaServer}, []*event.Request{acc})
	if err != nil {
		return nil, fmt.Errorf("recording access.read: %w", err)
	}
	d.Access = res[0]
	return d, nil
}

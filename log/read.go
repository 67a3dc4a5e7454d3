package log

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/identity"
	"github.com/llmaudittrail/llmaudittrail/journal"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// Outcomes of reads.
var (
	// ErrNotFound: no such entry or session, or none the reader may see.
	ErrNotFound = errors.New("not found")
	// ErrNoPayload: the entry has no payload.
	ErrNoPayload = errors.New("the entry has no payload")
	// ErrErased: the payload was erased.
	ErrErased = vault.ErrErased
	// ErrIntegrity: the vault's payload does not open the leaf's commitment.
	ErrIntegrity = errors.New("integrity failure: vault payload does not match its commitment")
)

// Reader is who reads, or acts through the server: the token's public id,
// its tenant, and whether it may read every tenant.
type Reader struct {
	TokenID    string
	Tenant     string
	AllTenants bool
	// Actors are the actor ids the token is bound to (the signer a sign
	// token acts for).
	Actors []string
	// Person, if set, is the person signed in through an identity
	// provider who reads (TokenID is then their sign-in's id), and Role
	// the role their mapping gave them: every event they cause names
	// them (person.go).
	Person *identity.Person
	Role   string
}

// Actor is the actor of the events a reader's requests cause (access.read,
// access.resolve, holds, erasures, revocations): the token, as a human.
func (r Reader) Actor() event.Actor {
	if r.Person != nil {
		// A person signed in: their sign-in; AppendAs names who they are.
		return event.Actor{Type: "human", ID: r.TokenID}
	}
	return event.Actor{Type: "human", ID: "token." + r.TokenID}
}

// Writer is the writer of the events the server appends on a reader's
// behalf: the reader's token, via the server.
func (r Reader) Writer() event.Writer { return event.Writer{Token: r.TokenID, Via: event.ViaServer} }

// Session lists up to limit events of a tenant's session with seq >=
// fromSeq, in order. It first waits (DefaultSessionWait at most) until the
// index covers every write to the session acknowledged so far
// (waitSession), so a writer always sees its own events. An unknown session
// is ErrNotFound.
func (l *Log) Session(ctx context.Context, tenant, session string, fromSeq uint64, limit int) ([]api.SessionEntry, error) {
	if err := l.waitSession(ctx, tenant, session); err != nil {
		return nil, err
	}
	evs, err := l.index.Session(ctx, tenant, session, fromSeq, limit)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 && fromSeq == 0 {
		return nil, ErrNotFound
	}
	if evs == nil {
		evs = []api.SessionEntry{}
	}
	return evs, nil
}

// waitSession waits (DefaultSessionWait at most) until the index covers
// every acknowledged event of a tenant's session. A journal shared by
// instances keeps the sessions' heads, stored with their records: when the
// index's last event of the session is at the head, none of it is in
// flight, and the read need not wait for the rest of the journal (other
// sessions' writes, or what an instance that stopped left for the next
// holder of the sequencer lease). Otherwise it waits as WaitIndexed does.
func (l *Log) waitSession(ctx context.Context, tenant, session string) error {
	if hs, ok := l.journal.(journal.HeadStore); ok {
		next, prev, err := hs.Head(ctx, tenant, session)
		if err != nil {
			return l.unavailable(ctx, err)
		}
		at, err := l.indexAtHead(ctx, sessionKey{tenant, session}, chainHead{next, prev})
		if err != nil {
			return l.unavailable(ctx, err)
		}
		if at {
			return nil
		}
	}
	return l.WaitIndexed(ctx)
}

// indexAtHead reports whether the session index holds the session's
// events up to its head h: its last event there is the head's (seq and
// leaf hash), or the session has none (h.next 0).
func (l *Log) indexAtHead(ctx context.Context, k sessionKey, h chainHead) (bool, error) {
	if h.next == 0 {
		return true, nil
	}
	seq, hash, ok, err := l.index.Head(ctx, k.tenant, k.session)
	if err != nil {
		return false, err
	}
	return ok && seq+1 == h.next && bytes.Equal(hash, h.prev), nil
}

// Leaf returns the leaf at index as soon as it is sequenced, waiting
// (DefaultSessionWait at most) for it to be integrated, ahead of any
// checkpoint: an index never sequenced is ErrNotFound.
func (l *Log) Leaf(ctx context.Context, index uint64) ([]byte, error) {
	size, ok, err := l.sizeCovering(ctx, index)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no entry %d", ErrNotFound, index)
	}
	return l.ReadLeaf(ctx, index, size)
}

// Disclosure is a payload disclosed to a reader, and the access.read event
// that recorded the disclosure.
type Disclosure struct {
	Index  uint64
	Leaf   []byte
	Event  *event.Leaf
	Record vault.Record
	// Pseudonyms resolves the leaf's subject and on_behalf_of pseudonyms,
	// those not erased.
	Pseudonyms map[string]string
	Access     event.Appended
}

// Disclose returns the payload of the entry at index, with the salt that
// opens its commitment, after checking the commitment and appending an
// access.read event durably: a payload is never shown without the log
// saying who saw it. An entry of another tenant is ErrNotFound unless the
// reader may read all tenants.
func (l *Log) Disclose(ctx context.Context, r Reader, index uint64) (*Disclosure, error) {
	data, leaf, rec, err := l.payloadOf(ctx, r, index, nil)
	if err != nil {
		return nil, err
	}
	a, err := l.recordRead(ctx, r, index, leaf, nil)
	if err != nil {
		return nil, err
	}
	d := &Disclosure{Index: index, Leaf: data, Event: leaf, Record: rec, Access: a}
	for _, ps := range []string{leaf.Subject, leaf.Actor.OnBehalfOf} {
		if ps == "" {
			continue
		}
		if v, err := l.vault.Resolve(ctx, leaf.Tenant, ps); err == nil {
			if d.Pseudonyms == nil {
				d.Pseudonyms = map[string]string{}
			}
			d.Pseudonyms[ps] = v
		}
	}
	return d, nil
}

// payloadOf reads the entry at index for r and its payload from the vault,
// checked against the leaf's commitment: an entry of another tenant is
// ErrNotFound unless r may read all tenants; check, if set, refuses the
// leaf before the vault is read.
func (l *Log) payloadOf(ctx context.Context, r Reader, index uint64, check func(*event.Leaf) error) ([]byte, *event.Leaf, vault.Record, error) {
	data, leaf, err := l.eventOf(ctx, r, index)
	if err != nil {
		return nil, nil, vault.Record{}, err
	}
	if leaf.Payload == nil {
		return nil, nil, vault.Record{}, fmt.Errorf("%w: entry %d", ErrNoPayload, index)
	}
	if check != nil {
		if err := check(leaf); err != nil {
			return nil, nil, vault.Record{}, err
		}
	}
	rec, err := l.vault.Get(ctx, leaf.ID)
	switch {
	case errors.Is(err, vault.ErrErased):
		return nil, nil, vault.Record{}, fmt.Errorf("the payload of entry %d: %w", index, ErrErased)
	case errors.Is(err, vault.ErrNotFound):
		return nil, nil, vault.Record{}, fmt.Errorf("%w: the payload of entry %d is not in the vault", ErrNotFound, index)
	case err != nil:
		return nil, nil, vault.Record{}, err
	}
	if !event.CheckCommitment(leaf.Payload, rec.Salt, rec.Payload) {
		return nil, nil, vault.Record{}, fmt.Errorf("entry %d: %w", index, ErrIntegrity)
	}
	return data, leaf, rec, nil
}

// eventOf reads the entry at index for r: an entry of another tenant is
// ErrNotFound unless r may read all tenants.
func (l *Log) eventOf(ctx context.Context, r Reader, index uint64) ([]byte, *event.Leaf, error) {
	data, err := l.Leaf(ctx, index)
	if err != nil {
		return nil, nil, err
	}
	leaf, err := event.ParseLeaf(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: entry %d is not an audit event", ErrNotFound, index)
	}
	if leaf.Tenant != r.Tenant && !r.AllTenants {
		return nil, nil, fmt.Errorf("%w: no entry %d in tenant %s", ErrNotFound, index, r.Tenant)
	}
	return data, leaf, nil
}

// recordRead appends, durably, the access.read event of r's read of the
// payload of leaf at index, with the extra attributes given.
func (l *Log) recordRead(ctx context.Context, r Reader, index uint64, leaf *event.Leaf, extra map[string]json.RawMessage) (event.Appended, error) {
	attrs := map[string]json.RawMessage{
		event.AttrAccessIndex:   json.RawMessage(strconv.FormatUint(index, 10)),
		event.AttrAccessEventID: jsonString(leaf.ID),
		event.AttrAccessSession: jsonString(leaf.Session),
		event.AttrAccessTokenID: jsonString(r.TokenID),
	}
	for k, v := range extra {
		attrs[k] = v
	}
	return l.serverEvent(ctx, leaf.Tenant, r, &event.Request{
		Session: event.AccessSession(r.TokenID), Kind: event.KindAccessRead, Actor: r.Actor(), Attributes: attrs,
	})
}

// Resolve returns the value a pseudonym of tenant stands for, after
// appending an access.resolve event durably, as Disclose does for payloads.
// An erased pseudonym is ErrErased; an unknown one, or a tenant the reader
// may not see, ErrNotFound.
func (l *Log) Resolve(ctx context.Context, r Reader, tenant, pseudonym string) (string, event.Appended, error) {
	if tenant != r.Tenant && !r.AllTenants {
		return "", event.Appended{}, fmt.Errorf("%w: no pseudonym %s in tenant %s", ErrNotFound, pseudonym, r.Tenant)
	}
	v, err := l.vault.Resolve(ctx, tenant, pseudonym)
	switch {
	case errors.Is(err, vault.ErrNotFound):
		return "", event.Appended{}, fmt.Errorf("%w: no pseudonym %s in tenant %s", ErrNotFound, pseudonym, tenant)
	case errors.Is(err, vault.ErrErased):
		return "", event.Appended{}, fmt.Errorf("pseudonym %s: %w", pseudonym, ErrErased)
	case err != nil:
		return "", event.Appended{}, err
	}
	acc := &event.Request{
		Session: event.AccessSession(r.TokenID),
		Kind:    event.KindAccessResolve,
		Actor:   r.Actor(),
		Attributes: map[string]json.RawMessage{
			event.AttrAccessPseudonym: jsonString(pseudonym),
			event.AttrAccessTokenID:   jsonString(r.TokenID),
		},
	}
	a, err := l.serverEvent(ctx, tenant, r, acc)
	if err != nil {
		return "", event.Appended{}, err
	}
	return v, a, nil
}

// Pseudonym returns the pseudonym that stands for value in tenant, without
// making one: ErrNotFound when value has none (it never appeared in a
// leaf, or its mapping was erased). A live pseudonym given as value stands
// for itself.
func (l *Log) Pseudonym(ctx context.Context, tenant, value string) (string, error) {
	ps, err := l.vault.Lookup(ctx, tenant, value)
	if errors.Is(err, vault.ErrNotFound) {
		return "", fmt.Errorf("%w: no such subject in tenant %s", ErrNotFound, tenant)
	}
	return ps, err
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

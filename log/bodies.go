package log

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/vault"
	tapi "github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
)

// ErrBodyMissing is returned when an entry of a log of leaf version 3 has
// no stored body (its envelope commits to a body the vault does not hold).
var ErrBodyMissing = errors.New("no body is stored for the envelope")

// bodyReader is the log's reader as the engine sees it on a log of leaf
// version 3: entry bundles hold the events' bodies in place of their
// envelopes, each checked against its envelope, so that the session index,
// session reads and recovery read events as on a version 2 log. Tiles and
// the checkpoint are the log's own.
type bodyReader struct {
	storageReader
	vault *vault.Vault
}

func (r bodyReader) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	raw, err := r.storageReader.ReadEntryBundle(ctx, index, p)
	if err != nil {
		return nil, err
	}
	var b tapi.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("parsing entry bundle %d: %w", index, err)
	}
	var hashes [][sha256.Size]byte
	envs := make([]*event.Envelope, len(b.Entries))
	for i, e := range b.Entries {
		if !event.IsEnvelope(e) {
			continue
		}
		env, err := event.ParseEnvelope(e)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", index*256+uint64(i), err)
		}
		envs[i] = &env
		hashes = append(hashes, env.Body)
	}
	if len(hashes) == 0 {
		return raw, nil
	}
	bodies, err := r.vault.Bodies(ctx, hashes)
	if err != nil {
		return nil, storageErr(err)
	}
	out := make([]byte, 0, len(raw)*4)
	for i, e := range b.Entries {
		if env := envs[i]; env != nil {
			body, ok := bodies[env.Body]
			if !ok {
				return nil, fmt.Errorf("entry %d: %w", index*256+uint64(i), ErrBodyMissing)
			}
			e = body
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
		out = append(out, e...)
	}
	return out, nil
}

// entry returns the data the log appends for the event body: the body
// itself, or on a log of leaf version 3 or 4 its envelope.
func (l *Log) entry(tenant string, body []byte) []byte {
	if l.sealer == nil {
		return body
	}
	e := l.sealer.Seal(tenant, body)
	return e.Marshal()
}

// sealedEntry is entry for an append: the envelope made for the write's
// answer is kept (keep) until the sequencer takes it (take), so that a
// body is sealed once, not twice (a version 4 envelope's field tree is
// most of what the envelope costs). The key is the body's leaf hash and
// Seal is a function of the body alone (its tenant is in it), so an
// envelope found is the one Seal would make. Bounded: a full cache is
// emptied, and a miss seals again. hash may be nil (it is computed).
func (l *Log) sealedEntry(tenant string, body []byte, hash []byte, keep bool) []byte {
	if l.sealer == nil {
		return body
	}
	if hash == nil {
		hash = event.LeafHash(body)
	}
	var k [32]byte
	copy(k[:], hash)
	l.sealedMu.Lock()
	env, ok := l.sealed[k]
	if ok && !keep {
		delete(l.sealed, k)
	}
	l.sealedMu.Unlock()
	if ok {
		return env
	}
	env = l.entry(tenant, body)
	if keep {
		l.sealedMu.Lock()
		if l.sealed == nil || len(l.sealed) >= maxSealed {
			l.sealed = make(map[[32]byte][]byte)
		}
		l.sealed[k] = env
		l.sealedMu.Unlock()
	}
	return env
}

// maxSealed bounds the envelopes kept between a write's answer and the
// sequencer (about 300 bytes each).
const maxSealed = 1 << 16

// envelopeOf returns the envelope of a body read from the engine's
// reader (nil on a version 2 log).
func (l *Log) envelopeOf(body []byte) ([]byte, error) {
	if l.sealer == nil {
		return nil, nil
	}
	h, err := event.ParseHead(body)
	if err != nil {
		return nil, err
	}
	return l.entry(h.Tenant, body), nil
}

// LeafVersion is the version of the entries the log appends: 2, 3
// (event.LeafVersionEnvelope) or 4 (event.LeafVersionFields).
func (l *Log) LeafVersion() int {
	if l.sealer != nil {
		return l.sealer.Version()
	}
	return event.LeafVersion
}

// FieldSalt returns the field salt of a body of a log of leaf version 4
// (event.EnvelopeSealer.FieldSalt): what, with the body, opens its
// envelope's field commitment. It is nil on a log of another version.
func (l *Log) FieldSalt(body []byte) []byte {
	if l.sealer == nil {
		return nil
	}
	return l.sealer.FieldSalt(body)
}

// TenantKey returns the key with which tenant recognises its entries on a
// log of leaf version 3 (ok is false on another log).
func (l *Log) TenantKey(tenant string) (k event.TenantKey, ok bool) {
	if l.sealer == nil {
		return k, false
	}
	return l.sealer.TenantKey(tenant), true
}

// Bodies returns the bodies of the entries [start, end) of a tree of size
// entries that tenant may read (every tenant's when tenant is ""): its
// own events and the log-wide records (event.LogWide), each
// with its index: the events of a log of any leaf version, as the log
// holds them (version 2) or checked against their envelopes (version 3).
func (l *Log) Bodies(ctx context.Context, tenant string, start, end, size uint64) ([]Body, error) {
	if end > size || start > end {
		return nil, ErrNotPublished
	}
	var out []Body
	for i := start; i < end; {
		bi := i / 256
		b, err := l.readBundle(ctx, bi, size)
		if err != nil {
			return nil, err
		}
		for ; i < end && i/256 == bi; i++ {
			j := i % 256
			if j >= uint64(len(b.Entries)) {
				return nil, fmt.Errorf("entry bundle %d has no entry %d", bi, j)
			}
			body := b.Entries[j]
			if tenant != "" && !readable(tenant, body) {
				continue
			}
			out = append(out, Body{Index: i, Body: body})
		}
	}
	return out, nil
}

// readable reports whether tenant may read body: an event of its own, or
// a log-wide record. Which bodies are log-wide is decided from the body
// itself (event.BodyLogWide), the same predicate that chose the log-wide
// key for its envelope, so the vault keeps no mark of its own.
func readable(tenant string, body []byte) bool {
	h, err := event.ParseHead(body)
	return err == nil && (h.Tenant == tenant || event.BodyLogWide(body))
}

// Body is an event's body at its index.
type Body struct {
	Index uint64
	Body  []byte
}

// checkLeafVersion refuses to append entries of one leaf version to a log
// whose first entry is of another: a log is of version 3 (or 4) from its
// first entry or never, so that a mirror of its bundles holds no event in
// clear, and a log of envelopes keeps their version.
func checkLeafVersion(ctx context.Context, r storageReader, sealer *event.EnvelopeSealer) error {
	envelopes := sealer != nil
	size, err := r.IntegratedSize(ctx)
	if err != nil || size == 0 {
		return nil // an empty (or not yet readable) log takes any version
	}
	raw, err := r.ReadEntryBundle(ctx, 0, layout.PartialTileSize(0, 0, size))
	if err != nil {
		return fmt.Errorf("reading the log's first entry: %w", err)
	}
	var b tapi.EntryBundle
	if err := b.UnmarshalText(raw); err != nil || len(b.Entries) == 0 {
		return fmt.Errorf("reading the log's first entry: %v", err)
	}
	first := event.IsEnvelope(b.Entries[0])
	if !first {
		if envelopes {
			return fmt.Errorf("%w: the log's entries are events (version 1 or 2); it cannot switch to version %d", ErrLeafVersion, sealer.Version())
		}
		return nil
	}
	e, err := event.ParseEnvelope(b.Entries[0])
	if err != nil {
		return fmt.Errorf("reading the log's first entry: %w", err)
	}
	if !envelopes || e.Version() != sealer.Version() {
		return fmt.Errorf("%w: the log's entries are of version %d; start it with leaf version %d", ErrLeafVersion, e.Version(), e.Version())
	}
	return nil
}

// ErrNoEnvelopes: the log's entries are events (leaf version 2); it has
// no tenant keys.
var ErrNoEnvelopes = errors.New("the log's leaf version has no envelopes or tenant keys (it is 2; see --leaf-version)")

// TenantKeys are the keys a tenant recognises its entries with on a log of
// leaf version 3: its own, and the log-wide key of the log-wide records
// (event.LogWide) that every tenant reads.
type TenantKeys struct {
	Tenant, Log event.TenantKey
}

// ReadTenantKey returns tenant's keys for reader r, recording the read in
// the log (an access.tenant_key event of the tenant) before the keys are
// returned. A reader of another tenant gets ErrNotFound.
func (l *Log) ReadTenantKey(ctx context.Context, r Reader, tenant string) (TenantKeys, event.Appended, error) {
	if tenant != r.Tenant && !r.AllTenants {
		return TenantKeys{}, event.Appended{}, fmt.Errorf("%w: tenant %s", ErrNotFound, tenant)
	}
	k, ok := l.TenantKey(tenant)
	if !ok {
		return TenantKeys{}, event.Appended{}, ErrNoEnvelopes
	}
	acc := &event.Request{
		Session: event.AccessSession(r.TokenID),
		Kind:    event.KindTenantKeyRead,
		Actor:   r.Actor(),
		Attributes: map[string]json.RawMessage{
			event.AttrAccessTokenID: jsonString(r.TokenID),
		},
	}
	a, err := l.serverEvent(ctx, tenant, r, acc)
	if err != nil {
		return TenantKeys{}, event.Appended{}, err
	}
	return TenantKeys{Tenant: k, Log: l.sealer.LogKey()}, a, nil
}

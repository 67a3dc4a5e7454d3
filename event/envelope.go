package event

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
)

// LeafVersionEnvelope is leaf version 3 (docs/leaf-format.md "Version 3:
// envelopes"): the log's entry is an Envelope, which commits to the event
// (its body, a version 2 leaf) without showing it. The body is kept and
// served apart from the log's entry bundles, to those who may read it.
const LeafVersionEnvelope = 3

// Sizes of an envelope's fields, in bytes.
const (
	NonceSize     = 16
	TagSize       = 32
	TenantKeySize = 32
)

// EnvelopeSize is the size of every envelope's encoding: all are equal,
// so an entry's size says nothing of its event.
const EnvelopeSize = len(`{"v":3,"nonce":"","tag":"","body":""}`) + 2*(NonceSize+TagSize+sha256.Size)

// ErrEnvelope is returned by ParseEnvelope for data that is not exactly an
// envelope's encoding.
var ErrEnvelope = errors.New("not a version 3 envelope")

// Envelope is a version 3 log entry: a per-entry nonce, the tenant tag
// HMAC-SHA256(tenant key, nonce) and the leaf hash of the event's body,
// LeafHash(body) (the value the body's session chain links with "prev").
type Envelope struct {
	Nonce [NonceSize]byte
	Tag   [TagSize]byte
	Body  [sha256.Size]byte
}

// Marshal returns the envelope's canonical encoding, EnvelopeSize bytes:
// {"v":3,"nonce":"<32 hex>","tag":"<64 hex>","body":"<64 hex>"}.
func (e *Envelope) Marshal() []byte {
	b := make([]byte, 0, EnvelopeSize)
	b = append(b, `{"v":3,"nonce":"`...)
	b = hex.AppendEncode(b, e.Nonce[:])
	b = append(b, `","tag":"`...)
	b = hex.AppendEncode(b, e.Tag[:])
	b = append(b, `","body":"`...)
	b = hex.AppendEncode(b, e.Body[:])
	return append(b, `"}`...)
}

// IsEnvelope reports whether entry data is of version 3 (it begins as an
// envelope does); ParseEnvelope checks the rest.
func IsEnvelope(data []byte) bool { return bytes.HasPrefix(data, []byte(`{"v":3,`)) }

// ParseEnvelope decodes an envelope. Only the exact canonical encoding
// (Marshal's, lower-case hex) is accepted, so that an entry has one form.
func ParseEnvelope(data []byte) (Envelope, error) {
	var e Envelope
	if len(data) != EnvelopeSize {
		return e, fmt.Errorf("%w: %d bytes, want %d", ErrEnvelope, len(data), EnvelopeSize)
	}
	p := data
	field := func(prefix string, dst []byte) bool {
		if !bytes.HasPrefix(p, []byte(prefix)) {
			return false
		}
		p = p[len(prefix):]
		n := 2 * len(dst)
		h := p[:n]
		if _, err := hex.Decode(dst, h); err != nil || !bytes.Equal(h, hex.AppendEncode(nil, dst)) {
			return false
		}
		p = p[n:]
		return true
	}
	if !field(`{"v":3,"nonce":"`, e.Nonce[:]) || !field(`","tag":"`, e.Tag[:]) || !field(`","body":"`, e.Body[:]) || string(p) != `"}` {
		return Envelope{}, ErrEnvelope
	}
	return e, nil
}

// TenantKey is the key a tenant recognises its entries with: the tag of
// its entries is HMAC-SHA256(key, nonce). Its holder learns which entries
// are its tenant's, nothing of others'.
type TenantKey [TenantKeySize]byte

// Tag returns HMAC-SHA256(k, nonce).
func (k TenantKey) Tag(nonce []byte) [TagSize]byte {
	m := hmac.New(sha256.New, k[:])
	m.Write(nonce)
	var t [TagSize]byte
	m.Sum(t[:0])
	return t
}

// Recognises reports whether e carries k's tag.
func (k TenantKey) Recognises(e *Envelope) bool {
	t := k.Tag(e.Nonce[:])
	return hmac.Equal(t[:], e.Tag[:])
}

// String is the key in hex, its form in files and answers.
func (k TenantKey) String() string { return hex.EncodeToString(k[:]) }

// ParseTenantKey reads a tenant key written in hex (64 digits; surrounding
// white space is ignored).
func ParseTenantKey(s string) (TenantKey, error) {
	var k TenantKey
	b, err := hex.DecodeString(string(bytes.TrimSpace([]byte(s))))
	if err != nil || len(b) != TenantKeySize {
		return k, fmt.Errorf("a tenant key is %d hex digits", 2*TenantKeySize)
	}
	copy(k[:], b)
	return k, nil
}

// Labels of the keys an EnvelopeSealer derives from its secret.
const (
	envelopeNonceLabel = "llmaudittrail envelope nonce v1"
	envelopeTenantRoot = "llmaudittrail tenant key v1"
	envelopeLogLabel   = "llmaudittrail log-wide key v1"
)

// EnvelopeSealer makes the envelopes of a log from one secret of the
// server's: the nonce of an envelope is the first NonceSize bytes of
// HMAC-SHA256(nonce key, body), with nonce key = HMAC-SHA256(secret,
// "llmaudittrail envelope nonce v1"), so that an envelope is a function
// of its body (an entry appended again after a crash is the same entry),
// and a tenant's key is HMAC-SHA256(secret, "llmaudittrail tenant key v1"
// || 0x00 || tenant). The log-wide records (LogWide) are tagged with the
// log-wide key, HMAC-SHA256(secret, "llmaudittrail log-wide key v1"),
// which every tenant is given, instead of their tenant's. Bodies differ
// (each holds a random event id), so nonces do not repeat and link
// nothing.
type EnvelopeSealer struct {
	nonceKey []byte
	secret   []byte
	logKey   TenantKey

	mu   sync.Mutex
	keys map[string]TenantKey // a cache, bounded by maxCachedTenantKeys
}

const maxCachedTenantKeys = 4096

// NewEnvelopeSealer returns the sealer of secret (at least 32 bytes).
func NewEnvelopeSealer(secret []byte) (*EnvelopeSealer, error) {
	if len(secret) < 32 {
		return nil, errors.New("an envelope secret has at least 32 bytes")
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(envelopeNonceLabel))
	s := &EnvelopeSealer{nonceKey: m.Sum(nil), secret: bytes.Clone(secret), keys: map[string]TenantKey{}}
	m = hmac.New(sha256.New, secret)
	m.Write([]byte(envelopeLogLabel))
	m.Sum(s.logKey[:0])
	return s, nil
}

// LogKey returns the log-wide key: the tag of the log-wide records
// (LogWide), which every tenant recognises.
func (s *EnvelopeSealer) LogKey() TenantKey { return s.logKey }

// TenantKey returns tenant's key.
func (s *EnvelopeSealer) TenantKey(tenant string) TenantKey {
	s.mu.Lock()
	k, ok := s.keys[tenant]
	s.mu.Unlock()
	if ok {
		return k
	}
	k = s.deriveTenantKey(tenant)
	s.mu.Lock()
	if len(s.keys) >= maxCachedTenantKeys {
		clear(s.keys)
	}
	s.keys[tenant] = k
	s.mu.Unlock()
	return k
}

func (s *EnvelopeSealer) deriveTenantKey(tenant string) TenantKey {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(envelopeTenantRoot))
	m.Write([]byte{0})
	m.Write([]byte(tenant))
	var k TenantKey
	m.Sum(k[:0])
	return k
}

// Seal returns the envelope of body, an event of tenant: tagged with the
// tenant's key, or with the log-wide key when body is a log-wide record
// (BodyLogWide).
func (s *EnvelopeSealer) Seal(tenant string, body []byte) Envelope {
	var e Envelope
	m := hmac.New(sha256.New, s.nonceKey)
	m.Write(body)
	copy(e.Nonce[:], m.Sum(nil))
	if BodyLogWide(body) {
		e.Tag = s.logKey.Tag(e.Nonce[:])
	} else {
		e.Tag = s.TenantKey(tenant).Tag(e.Nonce[:])
	}
	copy(e.Body[:], LeafHash(body))
	return e
}

// OpenEnvelope checks that body is the event entry data commits to, and
// returns the envelope: data must be an envelope whose body hash is
// LeafHash(body). With a key, the envelope must also carry its tag.
func OpenEnvelope(data, body []byte, key *TenantKey) (Envelope, error) {
	e, err := ParseEnvelope(data)
	if err != nil {
		return e, err
	}
	if !bytes.Equal(e.Body[:], LeafHash(body)) {
		return e, ErrBodyMismatch
	}
	if key != nil && !key.Recognises(&e) {
		return e, ErrWrongTag
	}
	return e, nil
}

// Errors of OpenEnvelope.
var (
	// ErrBodyMismatch: the body is not the one the envelope commits to.
	ErrBodyMismatch = errors.New("the body does not hash to the envelope's body hash")
	// ErrWrongTag: the envelope does not carry the tenant key's tag.
	ErrWrongTag = errors.New("the envelope's tag is not the tenant's")
)

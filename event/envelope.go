package event

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/llmaudittrail/llmaudittrail/disclosure"
)

// LeafVersionEnvelope is leaf version 3 (docs/leaf-format.md "Version 3:
// envelopes"): the log's entry is an Envelope, which commits to the event
// (its body, a version 2 leaf) without showing it. The body is kept and
// served apart from the log's entry bundles, to those who may read it.
const LeafVersionEnvelope = 3

// LeafVersionFields is leaf version 4 (docs/leaf-format.md "Version 4:
// body fields"): an envelope of version 3 that also commits to each field
// of the body on its own (Envelope.Fields), so that chosen fields of a
// body (its kind, an attribute) are disclosed and verified without the
// rest of it.
const LeafVersionFields = 4

// IsEnvelopeVersion reports whether a log of leaf version v appends
// envelopes (versions 3 and 4).
func IsEnvelopeVersion(v int) bool { return v == LeafVersionEnvelope || v == LeafVersionFields }

// Sizes of an envelope's fields, in bytes.
const (
	NonceSize     = 16
	TagSize       = 32
	TenantKeySize = 32
)

// EnvelopeSize is the size of every version 3 envelope's encoding: all
// are equal, so an entry's size says nothing of its event.
const EnvelopeSize = len(`{"v":3,"nonce":"","tag":"","body":""}`) + 2*(NonceSize+TagSize+sha256.Size)

// EnvelopeSizeFields is the size of every version 4 envelope's encoding.
const EnvelopeSizeFields = len(`{"v":4,"nonce":"","tag":"","body":"","fields":""}`) + 2*(NonceSize+TagSize+2*sha256.Size)

// ErrEnvelope is returned by ParseEnvelope for data that is not exactly an
// envelope's encoding.
var ErrEnvelope = errors.New("not a version 3 or 4 envelope")

// Envelope is a log entry of version 3 or 4: a per-entry nonce, the tenant
// tag HMAC-SHA256(tenant key, nonce) and the leaf hash of the event's
// body, LeafHash(body) (the value the body's session chain links with
// "prev"); in version 4 (HasFields) also the body's field commitment.
type Envelope struct {
	Nonce [NonceSize]byte
	Tag   [TagSize]byte
	Body  [sha256.Size]byte
	// Fields, when HasFields (version 4), is the root hash of the body's
	// field tree (BodyFields): SHA-256 of the SD-JWT root object of the
	// body's disclosures, salted with the body's field salt.
	Fields    [sha256.Size]byte
	HasFields bool
}

// Version is the envelope's leaf version: 3, or 4 with Fields.
func (e *Envelope) Version() int {
	if e.HasFields {
		return LeafVersionFields
	}
	return LeafVersionEnvelope
}

// Marshal returns the envelope's canonical encoding, EnvelopeSize bytes:
// {"v":3,"nonce":"<32 hex>","tag":"<64 hex>","body":"<64 hex>"}, or in
// version 4 EnvelopeSizeFields bytes, with ,"fields":"<64 hex>" before
// the closing brace.
func (e *Envelope) Marshal() []byte {
	b := make([]byte, 0, EnvelopeSizeFields)
	if e.HasFields {
		b = append(b, `{"v":4,"nonce":"`...)
	} else {
		b = append(b, `{"v":3,"nonce":"`...)
	}
	b = hex.AppendEncode(b, e.Nonce[:])
	b = append(b, `","tag":"`...)
	b = hex.AppendEncode(b, e.Tag[:])
	b = append(b, `","body":"`...)
	b = hex.AppendEncode(b, e.Body[:])
	if e.HasFields {
		b = append(b, `","fields":"`...)
		b = hex.AppendEncode(b, e.Fields[:])
	}
	return append(b, `"}`...)
}

// IsEnvelope reports whether entry data is of version 3 or 4 (it begins
// as an envelope does); ParseEnvelope checks the rest.
func IsEnvelope(data []byte) bool {
	return bytes.HasPrefix(data, []byte(`{"v":3,`)) || bytes.HasPrefix(data, []byte(`{"v":4,`))
}

// ParseEnvelope decodes an envelope of version 3 or 4. Only the exact
// canonical encoding (Marshal's, lower-case hex) is accepted, so that an
// entry has one form.
func ParseEnvelope(data []byte) (Envelope, error) {
	var e Envelope
	head := `{"v":3,"nonce":"`
	switch len(data) {
	case EnvelopeSize:
	case EnvelopeSizeFields:
		head, e.HasFields = `{"v":4,"nonce":"`, true
	default:
		return e, fmt.Errorf("%w: %d bytes, want %d or %d", ErrEnvelope, len(data), EnvelopeSize, EnvelopeSizeFields)
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
	if !field(head, e.Nonce[:]) || !field(`","tag":"`, e.Tag[:]) || !field(`","body":"`, e.Body[:]) ||
		(e.HasFields && !field(`","fields":"`, e.Fields[:])) || string(p) != `"}` {
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
	bodyFieldsLabel    = "llmaudittrail body fields v1"
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
//
// A sealer of version 4 (NewEnvelopeSealerVersion) also commits to the
// body's fields: the body's field salt is HMAC-SHA256(fields key, body),
// with fields key = HMAC-SHA256(secret, "llmaudittrail body fields v1"),
// and Envelope.Fields is BodyFields(salt, body).
type EnvelopeSealer struct {
	nonceKey  []byte
	fieldsKey []byte // nil: version 3
	secret    []byte
	logKey    TenantKey

	mu   sync.Mutex
	keys map[string]TenantKey // a cache, bounded by maxCachedTenantKeys
}

const maxCachedTenantKeys = 4096

// NewEnvelopeSealer returns the sealer of secret (at least 32 bytes) of
// version 3 envelopes.
func NewEnvelopeSealer(secret []byte) (*EnvelopeSealer, error) {
	return NewEnvelopeSealerVersion(secret, LeafVersionEnvelope)
}

// NewEnvelopeSealerVersion returns the sealer of secret (at least 32
// bytes) of envelopes of leaf version v: 3 or 4 (LeafVersionFields).
func NewEnvelopeSealerVersion(secret []byte, v int) (*EnvelopeSealer, error) {
	if len(secret) < 32 {
		return nil, errors.New("an envelope secret has at least 32 bytes")
	}
	if !IsEnvelopeVersion(v) {
		return nil, fmt.Errorf("leaf version %d has no envelopes", v)
	}
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	s := &EnvelopeSealer{nonceKey: derive(envelopeNonceLabel), secret: bytes.Clone(secret), keys: map[string]TenantKey{}}
	copy(s.logKey[:], derive(envelopeLogLabel))
	if v == LeafVersionFields {
		s.fieldsKey = derive(bodyFieldsLabel)
	}
	return s, nil
}

// Version is the leaf version of the envelopes s seals: 3 or 4.
func (s *EnvelopeSealer) Version() int {
	if s.fieldsKey != nil {
		return LeafVersionFields
	}
	return LeafVersionEnvelope
}

// FieldSalt returns the field salt of body (version 4): the salt from
// which the body's disclosures are derived (BodyFields). It is nil for a
// sealer of version 3.
func (s *EnvelopeSealer) FieldSalt(body []byte) []byte {
	if s.fieldsKey == nil {
		return nil
	}
	m := hmac.New(sha256.New, s.fieldsKey)
	m.Write(body)
	return m.Sum(nil)
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
// (BodyLogWide). In version 4 it commits to the body's fields. Every
// body the log writes has a field tree (Prepare refuses the attribute
// names the tree reserves); a body that has none (not a JSON object with
// distinct keys, or a member named _sd or _sd_alg) would get the zero
// root, which no tree hashes to, so that every reader's check fails on
// it rather than passing.
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
	if s.fieldsKey != nil {
		e.HasFields = true
		if root, err := BodyFields(s.FieldSalt(body), body); err == nil {
			e.Fields = root
		}
	}
	return e
}

// BodyFields is the root hash of body's field tree with salt: every
// member of the body and every member or element within it down to
// disclosure.MaxDepth is a disclosure, as a JSON payload's fields are
// (docs/disclosure.md, version 2, with decoys), and the root hash is the
// SHA-256 of the tree's root object.
func BodyFields(salt, body []byte) ([sha256.Size]byte, error) {
	var root [sha256.Size]byte
	h, err := disclosure.Commitment(salt, body)
	if err != nil {
		return root, err
	}
	_, err = hex.Decode(root[:], []byte(h))
	return root, err
}

// CheckFields checks that e commits to the fields of body with salt, the
// body's field salt: nil for an envelope of version 3, which has none, and
// ErrFieldsMismatch when the tree of body and salt hashes to another root.
func CheckFields(e *Envelope, body, salt []byte) error {
	if !e.HasFields {
		return nil
	}
	root, err := BodyFields(salt, body)
	if err != nil || !hmac.Equal(root[:], e.Fields[:]) {
		return ErrFieldsMismatch
	}
	return nil
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
	// ErrFieldsMismatch: the body and its field salt do not hash to the
	// envelope's field commitment (version 4).
	ErrFieldsMismatch = errors.New("the body's field tree does not hash to the envelope's field commitment")
)

// Package event is the leaf format of an LLMAuditTrail log: the audit event
// a client posts (Request), its validation, the canonical leaf the log
// stores (Leaf), the RFC 6962 leaf hash and the payload commitment. It is
// the format alone: it imports nothing of Tessera's storage and no SQL, so
// that agents, auditors and the server share it at no cost.
//
// The format is specified field by field in docs/leaf-format.md, with a
// test vector in testdata/leaf-vector.json.
package event

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/transparency-dev/merkle/rfc6962"
)

// LeafVersion is the value of the "v" field of the leaves this package
// writes: version 2 of docs/leaf-format.md, which adds the server-set
// writer and the subject pseudonym to version 1. ParseLeaf reads both
// versions, so logs begun with version 1 keep verifying.
const LeafVersion = 2

// LeafVersion1 is the first leaf format: no writer, no subject.
const LeafVersion1 = 1

// TimeFormat is the fixed-width UTC time format of the leaf's "time" field.
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// Input limits. A leaf is kept far below Tessera's 65,535-byte entry limit.
const (
	MaxLeafSize        = 16 << 10
	MaxIDLength        = 128
	MaxAttributes      = 64
	MaxAttrKeyLength   = 128
	MaxAttrValueLength = 4096
	MaxAttrArrayLength = 64
)

// CommitmentAlg is the only payload commitment algorithm.
const CommitmentAlg = "hmac-sha256"

// Actor is who caused an event.
type Actor struct {
	Type       string `json:"type"`                   // agent, human or system
	ID         string `json:"id"`                     // stable identifier of the actor
	OnBehalfOf string `json:"on_behalf_of,omitempty"` // the principal the actor acts for
}

// Commitment is the leaf's hiding commitment to a payload kept in the vault:
// HMAC-SHA256 keyed with a fresh 32-byte salt, over the payload bytes.
type Commitment struct {
	Alg       string `json:"alg"` // CommitmentAlg
	Digest    string `json:"digest"`
	Size      int    `json:"size"`
	MediaType string `json:"media_type"`
	// SD, for a JSON object payload, commits to each of its fields on
	// its own: the hex SHA-256 of the SD-JWT root object of its
	// disclosures (package disclosure, docs/disclosure.md), whose salts
	// derive from the same salt. Omitted when the payload has no
	// field-level commitment.
	SD string `json:"sd,omitempty"`
	// SDV is the version of SD's construction: 2 (decoy digests pad every
	// list, disclosure.V2); omitted for version 1 (no decoys), which the
	// leaves written before there were versions have.
	SDV int `json:"sd_v,omitempty"`
}

// SDVersion is c's field commitment version: disclosure.V1 (1) when sd_v
// is absent.
func (c *Commitment) SDVersion() int {
	if c.SDV == 0 {
		return 1
	}
	return c.SDV
}

// Ways an event reaches the log (Writer.Via).
const (
	ViaAPI    = "api"    // posted to the event API by the writing token
	ViaProxy  = "proxy"  // observed by the server on the capture proxy
	ViaServer = "server" // written by the server itself (disclosures, signatures, ...)
	ViaOTLP   = "otlp"   // reported by the agent as OpenTelemetry spans or log records (POST /v1/traces, /v1/logs)
)

// Writer says who wrote an event and how it arrived. The server sets it
// from the authenticated token; a client that sends it is refused.
type Writer struct {
	// Token is the writing (or, for server events, the causing) token's
	// public id, never its name or secret.
	Token string `json:"token"`
	// Via is ViaAPI, ViaProxy, ViaServer or ViaOTLP.
	Via string `json:"via"`
}

// Leaf is one audit event as stored in the log. Its canonical encoding
// (Marshal) is the exact entry data appended to the log; field order is the
// order below. Subject and Writer exist from version 2 on; a version-1 leaf
// has neither.
type Leaf struct {
	V       int    `json:"v"`
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Time    string `json:"time"`
	Tenant  string `json:"tenant"`
	Session string `json:"session"`
	Seq     uint64 `json:"seq"`
	Prev    string `json:"prev,omitempty"`
	Actor   Actor  `json:"actor"`
	// Subject is the pseudonym of the data subject the event is about.
	Subject    string      `json:"subject,omitempty"`
	Writer     *Writer     `json:"writer,omitempty"`
	Attributes Attributes  `json:"attributes,omitempty"`
	Payload    *Commitment `json:"payload,omitempty"`
	Corrects   *uint64     `json:"corrects,omitempty"`
}

// Marshal returns the canonical encoding of l: compact JSON, fields in
// struct order, attribute keys sorted, no HTML escaping, no trailing newline.
// It is what encoding/json writes for l (with SetEscapeHTML(false)), written
// field by field (leaf_marshal.go).
func (l *Leaf) Marshal() ([]byte, error) { return l.appendJSON(make([]byte, 0, 768)) }

// marshalReflect is Marshal through encoding/json: the definition that
// appendJSON follows byte for byte (FuzzLeafMarshal).
func (l *Leaf) marshalReflect() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// ParseLeaf decodes leaf data strictly: unknown fields, trailing data, a
// version other than 1 or 2, a version-1 leaf with a writer or subject and a
// version-2 leaf without a writer are errors. It does not check that data is
// in canonical form; use IsCanonical for that. The result is only as
// trustworthy as data: verify its inclusion first.
func ParseLeaf(data []byte) (*Leaf, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("leaf is not valid UTF-8")
	}
	l, ok := scanLeaf(data) // the leaves this log writes, without encoding/json
	if !ok {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		dec.UseNumber()
		l = &Leaf{}
		if err := dec.Decode(l); err != nil {
			return nil, fmt.Errorf("decoding leaf: %w", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, errors.New("trailing data after leaf")
		}
	}
	switch {
	case l.V != LeafVersion && l.V != LeafVersion1:
		return nil, fmt.Errorf("unsupported leaf version %d", l.V)
	case l.V == LeafVersion1 && (l.Writer != nil || l.Subject != ""):
		return nil, errors.New("a version 1 leaf has no writer or subject")
	case l.V == LeafVersion && (l.Writer == nil || l.Writer.Token == "" || !validVia[l.Writer.Via]):
		return nil, errors.New("a version 2 leaf needs a writer with a token and a via of api, proxy, server or otlp")
	case l.Payload != nil && l.Payload.SD != "" && !lowerHex(l.Payload.SD, 64):
		return nil, errors.New("the payload commitment's sd is not 64 lower-case hex digits")
	case l.Payload != nil && l.Payload.SDV != 0 && (l.Payload.SDV != 2 || l.Payload.SD == ""):
		return nil, errors.New("the payload commitment's sd_v is not 2 beside an sd (version 1 has no sd_v)")
	}
	return l, nil
}

func lowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

var validVia = map[string]bool{ViaAPI: true, ViaProxy: true, ViaServer: true, ViaOTLP: true}

// IsCanonical reports whether data is exactly the canonical encoding of the
// leaf it decodes to.
func IsCanonical(data []byte) bool {
	l, err := ParseLeaf(data)
	if err != nil {
		return false
	}
	c, err := l.Marshal()
	return err == nil && bytes.Equal(c, data)
}

// LeafHash returns the RFC 6962 leaf hash of leaf data, SHA-256(0x00 || data).
func LeafHash(data []byte) []byte {
	return rfc6962.DefaultHasher.HashLeaf(data)
}

// Commit computes the payload commitment digest HMAC-SHA256(salt, payload).
func Commit(salt, payload []byte) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write(payload)
	return m.Sum(nil)
}

// NewCommitment returns the commitment to payload under salt.
func NewCommitment(salt, payload []byte, mediaType string) *Commitment {
	return &Commitment{Alg: CommitmentAlg, Digest: hex.EncodeToString(Commit(salt, payload)), Size: len(payload), MediaType: mediaType}
}

// CheckCommitment reports whether payload and salt open the commitment c.
func CheckCommitment(c *Commitment, salt, payload []byte) bool {
	if c == nil || c.Alg != CommitmentAlg || c.Size != len(payload) {
		return false
	}
	want, err := hex.DecodeString(c.Digest)
	if err != nil {
		return false
	}
	return hmac.Equal(want, Commit(salt, payload))
}

// Appended is an event as the log appended it: where it is and the exact
// leaf bytes, so that nobody needs to re-canonicalise anything.
type Appended struct {
	ID string
	// Index is the entry's index in the log, once Indexed; an event
	// acknowledged at durability has none yet.
	Index    uint64
	Indexed  bool
	Seq      uint64
	Session  string
	Leaf     []byte
	LeafHash []byte // LeafHash(Leaf)
	// Envelope is the entry the log holds for the event on a log of leaf
	// version 3 (LeafVersionEnvelope); nil on a version 2 log, where the
	// entry is Leaf.
	Envelope []byte
	// FieldSalt is, on a log of leaf version 4, the salt of the body's
	// field commitment (EnvelopeSealer.FieldSalt): with Leaf, it opens
	// the envelope's Fields (CheckFields).
	FieldSalt []byte
}

// LeafPayload reads only a leaf's id and payload commitment (nil if it has
// none), without decoding the rest: for reading payloads of leaves that
// are checked elsewhere (ParseLeaf decodes and checks everything).
func LeafPayload(data []byte) (id string, c *Commitment, err error) {
	if utf8.Valid(data) {
		// The leaves this log writes, without encoding/json: scanLeaf
		// gives what encoding/json decodes for every leaf it accepts.
		if l, ok := scanLeaf(data); ok {
			if l.ID == "" {
				return "", nil, errors.New("leaf has no id")
			}
			return l.ID, l.Payload, nil
		}
	}
	return leafPayloadJSON(data)
}

// leafPayloadJSON is LeafPayload by encoding/json.
func leafPayloadJSON(data []byte) (id string, c *Commitment, err error) {
	var l struct {
		ID      string      `json:"id"`
		Payload *Commitment `json:"payload"`
	}
	if err := json.Unmarshal(data, &l); err != nil {
		return "", nil, fmt.Errorf("decoding leaf: %w", err)
	}
	if l.ID == "" {
		return "", nil, errors.New("leaf has no id")
	}
	return l.ID, l.Payload, nil
}

// ValidVia reports whether via is one of the ways an event reaches the log
// (ViaAPI, ViaProxy, ViaServer, ViaOTLP).
func ValidVia(via string) bool { return validVia[via] }

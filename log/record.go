package log

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/vault"
)

// A journal record holds one event as the engine acknowledged it: the exact
// leaf bytes and, if the event has a payload, the payload sealed for the
// vault (never in clear). Encoding, all lengths as uvarints:
//
//	0x01 (version)
//	len(leaf) leaf
//	0x00 (no payload) | 0x01 id tenant session media_type size nonce box wrapped_key
//
// with each string and byte field as its length then its bytes.
const recordV1 = 0x01

type record struct {
	leaf   []byte
	sealed *vault.Sealed
}

func (r record) encode() []byte {
	n := 16 + len(r.leaf)
	if s := r.sealed; s != nil {
		n += 64 + len(s.ID) + len(s.Tenant) + len(s.Session) + len(s.MediaType) + len(s.Nonce) + len(s.Box) + len(s.WrappedKey)
	}
	b := make([]byte, 0, n)
	b = append(b, recordV1)
	b = appendBytes(b, r.leaf)
	if s := r.sealed; s == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		for _, f := range []string{s.ID, s.Tenant, s.Session, s.MediaType} {
			b = appendBytes(b, []byte(f))
		}
		b = binary.AppendUvarint(b, uint64(s.Size))
		for _, f := range [][]byte{s.Nonce, s.Box, s.WrappedKey} {
			b = appendBytes(b, f)
		}
	}
	return b
}

func appendBytes(b, f []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(f))), f...)
}

var errRecord = errors.New("malformed journal record")

func decodeRecord(b []byte) (record, error) {
	d := decoder{b: b}
	if v := d.byte(); v != recordV1 {
		return record{}, fmt.Errorf("%w: version %d", errRecord, v)
	}
	r := record{leaf: d.bytes()}
	switch d.byte() {
	case 0:
	case 1:
		s := &vault.Sealed{ID: string(d.bytes()), Tenant: string(d.bytes()), Session: string(d.bytes()), MediaType: string(d.bytes())}
		s.Size = int(d.uvarint())
		s.Nonce, s.Box, s.WrappedKey = d.bytes(), d.bytes(), d.bytes()
		r.sealed = s
	default:
		d.err = errRecord
	}
	if d.err != nil || len(d.b) != 0 {
		return record{}, fmt.Errorf("%w (%v, %d bytes left)", errRecord, d.err, len(d.b))
	}
	return r, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errRecord
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errRecord
		return nil
	}
	f := d.b[:n:n]
	d.b = d.b[n:]
	return f
}

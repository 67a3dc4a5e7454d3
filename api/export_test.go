package api

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// An event frame carries the envelope of a log of leaf version 3 (197
// bytes, a uint8 length) and of version 4 (273 bytes, the byte 0 and a
// uint16 length), and ParseExportEvent reads back what appendEvent wrote;
// a version 2 frame has no envelope field. A long envelope's form with a
// length that fits a uint8, or cut short, does not decode.
func TestExportEventEnvelope(t *testing.T) {
	for _, n := range []int{-1, 1, 197, 255, 256, 273} {
		ev := ExportEvent{Index: 7, Leaf: []byte(`{"v":2}`), Status: PayloadOK, MediaType: "text/plain", Salt: []byte("salt"), Payload: []byte("payload")}
		if n >= 0 {
			ev.Envelope = bytes.Repeat([]byte{'e'}, n)
		}
		b := appendEvent(nil, &ev)
		got, err := ParseExportEvent(b)
		if err != nil {
			t.Fatalf("envelope of %d bytes: %v", n, err)
		}
		if got.Index != ev.Index || !bytes.Equal(got.Leaf, ev.Leaf) || got.Status != ev.Status || got.MediaType != ev.MediaType ||
			!bytes.Equal(got.Salt, ev.Salt) || !bytes.Equal(got.Payload, ev.Payload) || !bytes.Equal(got.Envelope, ev.Envelope) || (n < 0) != (got.Envelope == nil) {
			t.Errorf("envelope of %d bytes: read back %+v", n, got)
		}
		if n > 0 {
			if _, err := ParseExportEvent(b[:len(b)-1]); !errors.Is(err, errFrame) {
				t.Errorf("envelope of %d bytes, cut short: %v, want errFrame", n, err)
			}
		}
	}
	ev := ExportEvent{Index: 7, Leaf: []byte(`{"v":2}`)}
	b := appendEvent(nil, &ev)
	for _, tail := range [][]byte{{0}, {0, 0}, binary.BigEndian.AppendUint16([]byte{0}, 255), binary.BigEndian.AppendUint16([]byte{0}, 0)} {
		long := append(bytes.Clone(b), tail...)
		if n := len(tail); n == 3 {
			long = append(long, bytes.Repeat([]byte{'e'}, int(binary.BigEndian.Uint16(tail[1:])))...)
		}
		if got, err := ParseExportEvent(long); !errors.Is(err, errFrame) {
			t.Errorf("envelope field %x: %+v, %v; want errFrame", tail, got, err)
		}
	}
}

// FuzzParseExportEvent: a frame body that decodes is the one encoding of
// what it decodes to (appendEvent writes it back byte for byte), so that an
// envelope has one form in a frame, short or long.
func FuzzParseExportEvent(f *testing.F) {
	for _, n := range []int{-1, 197, 273} {
		ev := ExportEvent{Index: 3, Leaf: []byte(`{"v":2}`), Status: PayloadOK, Salt: []byte("s"), Payload: []byte("p")}
		if n >= 0 {
			ev.Envelope = bytes.Repeat([]byte{'e'}, n)
		}
		f.Add(appendEvent(nil, &ev))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := ParseExportEvent(body)
		if err != nil {
			return
		}
		if again := appendEvent(nil, &ev); !bytes.Equal(again, body) {
			t.Fatalf("ParseExportEvent(%x) = %+v, which encodes as %x", body, ev, again)
		}
	})
}

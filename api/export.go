package api

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The session export stream (GET /v1/sessions/{id}/export), specified in
// docs/event-api.md. The engine writes it (ExportEncoder); the client reads
// it (ExportDecoder) and verifies it whole before it returns any of it. It
// is a sequence of frames, each a type byte, a big-endian uint32 body
// length and the body:
//
//	'H' header   JSON ExportHeader, first and once
//	'N' nodes    32-byte hashes: the compact range of the entries between
//	             the previous event (or index 0) and the next event (or the
//	             tree size), left to right, as compact.RangeNodes lists them;
//	             present only where that range is not empty
//	'E' event    binary ExportEvent (see appendEvent)
//	'T' end      JSON ExportEnd, last
//	'X' error    JSON ErrorBody: the server failed after the header; the
//	             export is incomplete and must not be used
//
// The leaves, in log order, with the node frames between them, are every
// leaf of the tree of the header's checkpoint either as its own hash or
// inside a node: folding them left to right (a compact range from 0) gives
// the checkpoint's root, which proves every event included at once.

// MaxExportEvents caps the events of one export; a longer session is read
// in several, from the NextSeq of the one before.
const MaxExportEvents = 1_000_000

// ExportFormat is the value of ExportHeader.Format.
const ExportFormat = "llmaudittrail-export/1"

// ExportMediaType is the Content-Type of an export stream.
const ExportMediaType = "application/vnd.llmaudittrail.export"

// Frame types of the export stream.
const (
	FrameHeader = 'H'
	FrameNodes  = 'N'
	FrameEvent  = 'E'
	FrameEnd    = 'T'
	FrameError  = 'X'
)

// Caps on frames read: an event holds a leaf (event.MaxLeafSize) and one
// payload, which the server accepted in a request body (the event cap is
// client.MaxResponseBytes, the client's cap on any answer).
const (
	maxHeaderFrame = 1 << 20
	maxNodesFrame  = 128 * 32
	maxEventFrame  = 64 << 20
	maxEndFrame    = 64 << 10
)

// ExportHeader is the first frame of an export.
type ExportHeader struct {
	Format  string `json:"format"` // ExportFormat
	Tenant  string `json:"tenant"`
	Session string `json:"session"`
	// FromSeq is the seq asked for; the events are the session's from it,
	// in order, whose entries are in the checkpoint's tree.
	FromSeq uint64 `json:"from_seq"`
	// Events is the number of event frames that follow; ToSeq the seq of
	// the last (absent when there are none).
	Events uint64  `json:"events"`
	ToSeq  *uint64 `json:"to_seq,omitempty"`
	// NextSeq, when present, is the seq of the session's first event after
	// this export (not yet in the checkpoint's tree, or beyond the cap).
	NextSeq *uint64 `json:"next_seq,omitempty"`
	// TreeSize and Checkpoint (the signed note, with its cosignatures) are
	// what every event is proved included in.
	TreeSize   uint64 `json:"tree_size"`
	Checkpoint string `json:"checkpoint"`
	// Payloads: the events carry payloads and salts (audit scope), whose
	// disclosure the log recorded first as the one Access event.
	Payloads bool           `json:"payloads"`
	Access   *EventResponse `json:"access,omitempty"`
}

// ExportEnd is the last frame of an export.
type ExportEnd struct {
	Events uint64 `json:"events"` // event frames sent
}

// ExportEvent is one event frame: the entry at Index, and with payloads
// its status (PayloadOK, ...) and, when PayloadOK, the media type, salt
// and payload as the vault holds them.
type ExportEvent struct {
	Index     uint64
	Leaf      []byte
	Status    string
	MediaType string
	Salt      []byte
	Payload   []byte
	// Envelope is, on a log of leaf version 3 or 4, the entry at Index
	// (Leaf is then the event's body, which the envelope commits to).
	Envelope []byte
}

// ExportEncoder writes an export stream. The server's side; it buffers, and
// Flush sends what is buffered (and flushes w if it is an http.Flusher, or
// has Flush() error).
type ExportEncoder struct {
	w   *bufio.Writer
	dst io.Writer
	buf []byte
}

// NewExportEncoder returns an encoder writing to w.
func NewExportEncoder(w io.Writer) *ExportEncoder {
	return &ExportEncoder{w: bufio.NewWriterSize(w, 64<<10), dst: w}
}

func (e *ExportEncoder) frame(typ byte, body []byte) error {
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(body)))
	if _, err := e.w.Write(h[:]); err != nil {
		return err
	}
	_, err := e.w.Write(body)
	return err
}

func (e *ExportEncoder) json(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return e.frame(typ, b)
}

// Header writes the header frame.
func (e *ExportEncoder) Header(h *ExportHeader) error { return e.json(FrameHeader, h) }

// Nodes writes a node frame (nothing for no hashes).
func (e *ExportEncoder) Nodes(hashes [][]byte) error {
	if len(hashes) == 0 {
		return nil
	}
	e.buf = e.buf[:0]
	for _, h := range hashes {
		e.buf = append(e.buf, h...)
	}
	return e.frame(FrameNodes, e.buf)
}

// Event writes an event frame.
func (e *ExportEncoder) Event(ev *ExportEvent) error {
	if len(ev.Status) > 255 || len(ev.MediaType) > 255 || len(ev.Salt) > 255 || len(ev.Envelope) > 65535 {
		return errors.New("export: status, media type or salt longer than 255 bytes, or envelope longer than 65535")
	}
	e.buf = appendEvent(e.buf[:0], ev)
	return e.frame(FrameEvent, e.buf)
}

// End writes the end frame.
func (e *ExportEncoder) End(t ExportEnd) error { return e.json(FrameEnd, t) }

// Error writes an error frame: the export stops incomplete.
func (e *ExportEncoder) Error(code, message string) error {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, message
	return e.json(FrameError, b)
}

// Flush sends what is buffered.
func (e *ExportEncoder) Flush() error {
	if err := e.w.Flush(); err != nil {
		return err
	}
	switch f := e.dst.(type) {
	case interface{ Flush() error }:
		return f.Flush()
	case interface{ Flush() }:
		f.Flush()
	}
	return nil
}

// appendEvent encodes an event frame's body: index (uint64), leaf (uint32
// length, bytes), status, media type and salt (each a uint8 length and
// bytes), payload (uint32 length, bytes), and on a log of leaf version 3
// or 4 the envelope: a uint8 length and bytes, or, for an envelope longer
// than 255 bytes (version 4's are 273), the byte 0, a uint16 length and
// bytes; integers big-endian. Without payloads the status, media type,
// salt and payload are empty.
func appendEvent(b []byte, ev *ExportEvent) []byte {
	b = binary.BigEndian.AppendUint64(b, ev.Index)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ev.Leaf)))
	b = append(b, ev.Leaf...)
	for _, s := range [][]byte{[]byte(ev.Status), []byte(ev.MediaType), ev.Salt} {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(ev.Payload)))
	b = append(b, ev.Payload...)
	switch n := len(ev.Envelope); {
	case ev.Envelope == nil:
		// Leaf version 2: no envelope, so that its frame is as before.
	case n > 0 && n <= 255:
		b = append(b, byte(n)) // leaf version 3
	default:
		b = append(b, 0) // longer (leaf version 4): a uint16 length
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	}
	b = append(b, ev.Envelope...)
	return b
}

// errFrame: a frame that does not decode.
var errFrame = errors.New("bad frame")

// ParseExportEvent decodes an event frame's body, unverified. The slices
// alias body.
func ParseExportEvent(body []byte) (ExportEvent, error) {
	var ev ExportEvent
	p := body
	take := func(n int) ([]byte, bool) {
		if n > len(p) {
			return nil, false
		}
		if n == 0 {
			return nil, true
		}
		b := p[:n:n]
		p = p[n:]
		return b, true
	}
	u32 := func() (int, bool) {
		b, ok := take(4)
		if !ok {
			return 0, false
		}
		return int(binary.BigEndian.Uint32(b)), true
	}
	short := func() ([]byte, bool) {
		b, ok := take(1)
		if !ok {
			return nil, false
		}
		return take(int(b[0]))
	}
	b, ok := take(8)
	if !ok {
		return ev, fmt.Errorf("%w: event frame of %d bytes", errFrame, len(body))
	}
	ev.Index = binary.BigEndian.Uint64(b)
	n, ok := u32()
	if ok {
		ev.Leaf, ok = take(n)
	}
	var status, media []byte
	if ok {
		status, ok = short()
	}
	if ok {
		media, ok = short()
	}
	if ok {
		ev.Salt, ok = short()
	}
	if ok {
		n, ok = u32()
	}
	if ok {
		ev.Payload, ok = take(n)
	}
	if ok && len(p) > 0 {
		ev.Envelope, ok = short()
		if ok && len(ev.Envelope) == 0 {
			// An envelope longer than 255 bytes: a uint16 length.
			var l []byte
			if l, ok = take(2); ok {
				n := int(binary.BigEndian.Uint16(l))
				ev.Envelope, ok = take(n)
				ok = ok && n > 255
			}
		}
	}
	if !ok || len(p) != 0 {
		return ev, fmt.Errorf("%w: event frame of %d bytes does not decode", errFrame, len(body))
	}
	ev.Status, ev.MediaType = string(status), string(media)
	return ev, nil
}

// ExportDecoder reads the frames of an export stream, unverified, each
// capped by its type.
type ExportDecoder struct {
	r *bufio.Reader
}

// NewExportDecoder returns a decoder reading from r.
func NewExportDecoder(r io.Reader) *ExportDecoder {
	return &ExportDecoder{r: bufio.NewReaderSize(r, 256<<10)}
}

// Trailing reports whether anything follows the frames read (after the end
// frame, nothing may).
func (x *ExportDecoder) Trailing() bool {
	_, err := x.r.ReadByte()
	return err != io.EOF
}

// Next reads one frame; io.ErrUnexpectedEOF if the stream ends inside one
// (io.EOF exactly at a frame boundary).
func (x *ExportDecoder) Next() (typ byte, body []byte, err error) {
	var h [5]byte
	if _, err := io.ReadFull(x.r, h[:]); err != nil {
		return 0, nil, err
	}
	typ = h[0]
	n := int64(binary.BigEndian.Uint32(h[1:]))
	var limit int64
	switch typ {
	case FrameHeader, FrameError:
		limit = maxHeaderFrame
	case FrameNodes:
		limit = maxNodesFrame
	case FrameEvent:
		limit = maxEventFrame
	case FrameEnd:
		limit = maxEndFrame
	default:
		return 0, nil, fmt.Errorf("%w: unknown frame type 0x%02x", errFrame, typ)
	}
	if n > limit {
		return 0, nil, fmt.Errorf("%w: frame %q of %d bytes exceeds %d", errFrame, typ, n, limit)
	}
	body = make([]byte, n)
	if _, err := io.ReadFull(x.r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return typ, body, nil
}

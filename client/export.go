package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Session export: GET /v1/sessions/{id}/export, one request that streams a
// session's leaves with what proves them included and, for the audit
// scope, their payloads (api/export.go has the stream).

// Outcomes of ExportSession. Each means the export must not be used: no
// part of it is returned.
var (
	// ErrExportMalformed: the answer is not a whole, well-formed export of
	// the session asked for (cut short, a frame that does not decode,
	// events out of log order, counts that disagree).
	ErrExportMalformed = errors.New("the session export is malformed")
	// ErrExportCheckpoint: the export's checkpoint does not verify with the
	// log key (or lacks the policy's witness quorum).
	ErrExportCheckpoint = errors.New("the session export's checkpoint does not verify")
	// ErrExportInclusion: the leaves and nodes sent do not lead to the
	// checkpoint's root: some leaf, or some node, is not the log's.
	ErrExportInclusion = errors.New("the session export does not prove its events included in its checkpoint")
)

// ErrChain marks an ExportedEvent.ChainErr: the event's seq or prev does
// not follow the event before it.
var ErrChain = errors.New("the session's hash chain is broken")

// ExportQuery selects a session export.
type ExportQuery struct {
	// Tenant, for a global token, names another tenant ("" is the
	// token's).
	Tenant string
	// FromSeq is the first seq exported.
	FromSeq uint64
	// Payloads discloses the payloads and salts (audit scope); the server
	// records the export as one access.read event before it sends any.
	Payloads bool
}

func (q ExportQuery) values() url.Values {
	v := url.Values{}
	if q.Tenant != "" {
		v.Set("tenant", q.Tenant)
	}
	if q.FromSeq != 0 {
		v.Set("from_seq", strconv.FormatUint(q.FromSeq, 10))
	}
	if q.Payloads {
		v.Set("payloads", "true")
	}
	return v
}

// SessionExport is an export whose every event was proved included under
// its checkpoint, which verified. Per-event findings (a leaf of another
// session, a broken chain, a payload that does not open its commitment)
// are on the events; Verified says whether there are none.
type SessionExport struct {
	Tenant, Session string
	Checkpoint      []byte
	Size            uint64
	Root            []byte
	FromSeq         uint64
	Events          []ExportedEvent
	// NextSeq, when set, is the seq of the session's first event after
	// these (not yet in the checkpoint's tree, or beyond api.MaxExportEvents).
	NextSeq *uint64
	// Payloads: payloads were disclosed, and Access is the access.read
	// event that recorded it.
	Payloads bool
	Access   *event.Appended
}

// Verified reports whether every event passed every check.
func (s *SessionExport) Verified() bool {
	for i := range s.Events {
		if e := &s.Events[i]; e.LeafErr != nil || e.ChainErr != nil || e.PayloadErr != nil {
			return false
		}
	}
	return true
}

// ExportedEvent is one event of a verified export: the leaf at Index
// (included in the checkpoint's tree), parsed; with payloads, the
// server's status and, when it is api.PayloadOK and the payload opens the
// leaf's commitment, the payload and salt.
type ExportedEvent struct {
	Index    uint64
	Leaf     []byte
	LeafHash []byte
	// Event is the parsed leaf (nil if it does not parse: LeafErr says
	// why; LeafErr is also set for a leaf of another tenant or session).
	Event   *event.Leaf
	LeafErr error
	// ChainErr (ErrChain) says how seq or prev does not follow the event
	// before (for the first, when seq is not FromSeq, or prev is not empty
	// at seq 0).
	ChainErr  error
	Status    string
	MediaType string
	Payload   []byte
	Salt      []byte
	// PayloadErr (ErrCommitment) says how the payload disagrees with the
	// leaf; Payload and Salt are then nil.
	PayloadErr error
}

// exportIdle bounds the time an export stream may go without a byte.
const exportIdle = DefaultTimeout

// ExportSession reads a session with one request and verifies it before
// returning any of it: the checkpoint with logKey (and policy, if not
// nil), every leaf included in its tree (the leaves and the node hashes
// between them fold to its root), and per event that the leaf is an event
// of the session, that seq and prev follow the event before, and that a
// disclosed payload opens the leaf's commitment. A failure of the first
// two, or a stream that is not a whole export, is an error
// (ErrExportMalformed, ErrExportCheckpoint, ErrExportInclusion); per-event
// findings are on the events. The request has no overall timeout (the
// stream may be long); it fails when no byte arrives for DefaultTimeout.
func (c *Client) ExportSession(ctx context.Context, id string, q ExportQuery, logKey note.Verifier, policy *checkpoint.Policy) (*SessionExport, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint("/v1/sessions/"+url.PathEscape(id)+"/export", q.values()), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", api.ExportMediaType)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.hc
	hc.Timeout = 0 // the idle timer below bounds the stream
	idle := time.AfterFunc(exportIdle, func() { cancel(fmt.Errorf("no data from the log server for %s", exportIdle)) })
	defer idle.Stop()
	resp, err := hc.Do(req)
	if err != nil {
		return nil, exportErr(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, decodeError(resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != api.ExportMediaType {
		return nil, fmt.Errorf("%w: Content-Type %q, want %s", ErrExportMalformed, event.Clip(ct, 64), api.ExportMediaType)
	}
	v := &exportVerifier{id: id, q: q, logKey: logKey, policy: policy}
	x := api.NewExportDecoder(idleReader{r: resp.Body, t: idle})
	s, err := v.read(x)
	if err != nil {
		return nil, exportErr(ctx, err)
	}
	return s, nil
}

// exportErr says why the stream stopped: the idle timer's cause, or err.
func exportErr(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return fmt.Errorf("reading the session export: %w", c)
	}
	return err
}

// idleReader restarts the idle timer on every read that returns data.
type idleReader struct {
	r io.Reader
	t *time.Timer
}

func (r idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(exportIdle)
	}
	return n, err
}

// exportVerifier reads and verifies one export stream.
type exportVerifier struct {
	id     string
	q      ExportQuery
	logKey note.Verifier
	policy *checkpoint.Policy
}

// exportBatch is how many events a worker checks at a time.
const exportBatch = 256

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrExportMalformed, fmt.Sprintf(format, args...))
}

func (v *exportVerifier) read(x *api.ExportDecoder) (*SessionExport, error) {
	typ, body, err := x.Next()
	if err != nil || typ != api.FrameHeader {
		return nil, malformed("no header frame (%v)", err)
	}
	var h api.ExportHeader
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, malformed("header: %v", err)
	}
	switch {
	case h.Format != api.ExportFormat:
		return nil, malformed("format %q, want %s", event.Clip(h.Format, 64), api.ExportFormat)
	case h.Session != v.id || (v.q.Tenant != "" && h.Tenant != v.q.Tenant) || h.Tenant == "":
		return nil, malformed("asked for session %s/%s, got %s/%s", v.q.Tenant, v.id, event.Clip(h.Tenant, 128), event.Clip(h.Session, 128))
	case h.FromSeq != v.q.FromSeq || h.Payloads != v.q.Payloads:
		return nil, malformed("asked from seq %d with payloads %v, got from seq %d with payloads %v", v.q.FromSeq, v.q.Payloads, h.FromSeq, h.Payloads)
	case h.Events > api.MaxExportEvents:
		return nil, malformed("%d events, more than %d", h.Events, api.MaxExportEvents)
	case (h.Events == 0) != (h.ToSeq == nil):
		return nil, malformed("to_seq and events disagree")
	}
	cp, err := api.VerifyCheckpoint([]byte(h.Checkpoint), v.logKey, v.policy)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrExportCheckpoint, err)
	}
	if cp.Size != h.TreeSize {
		return nil, malformed("tree_size %d, but the checkpoint is for size %d", h.TreeSize, cp.Size)
	}
	s := &SessionExport{Tenant: h.Tenant, Session: h.Session, Checkpoint: []byte(h.Checkpoint), Size: cp.Size, Root: cp.Hash,
		FromSeq: h.FromSeq, NextSeq: h.NextSeq, Payloads: h.Payloads}
	if h.Payloads {
		if h.Access == nil {
			return nil, malformed("payloads without the access.read event that recorded them")
		}
		acc, err := appended(*h.Access, nil)
		if err != nil {
			return nil, malformed("access event: %v", err)
		}
		s.Access = &acc
	}

	// Every leaf and node, folded left to right, must give the root.
	// Leaves are parsed and payloads checked by workers meanwhile.
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	rng := rf.NewEmptyRange(0)
	var pending [][]byte
	fold := func(end uint64) error {
		if end == rng.End() {
			if pending != nil {
				return malformed("nodes for an empty range at %d", end)
			}
			return nil
		}
		gap, err := rf.NewRange(rng.End(), end, pending)
		if err != nil {
			return malformed("nodes of entries [%d, %d): %v", rng.End(), end, err)
		}
		pending = nil
		return rng.AppendRange(gap, nil)
	}
	work := make(chan []ExportedEvent)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for b := range work {
				for i := range b {
					b[i].check(h.Tenant, h.Session, h.Payloads)
				}
			}
		})
	}
	var batches [][]ExportedEvent
	batch := make([]ExportedEvent, 0, exportBatch)
	stop := func() {
		if len(batch) > 0 {
			work <- batch
			batches = append(batches, batch)
		}
		close(work)
		wg.Wait()
	}
	n := uint64(0)
	for {
		typ, body, err := x.Next()
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			stop()
			return nil, malformed("after %d events: %v", n, err)
		}
		switch typ {
		case api.FrameNodes:
			if pending != nil || len(body) == 0 || len(body)%sha256.Size != 0 {
				stop()
				return nil, malformed("a node frame of %d bytes", len(body))
			}
			pending = make([][]byte, len(body)/sha256.Size)
			for i := range pending {
				pending[i] = body[i*sha256.Size : (i+1)*sha256.Size : (i+1)*sha256.Size]
			}
		case api.FrameEvent:
			ev, err := api.ParseExportEvent(body)
			if err == nil && (ev.Index < rng.End() || ev.Index >= cp.Size) {
				err = fmt.Errorf("entry %d after entry %d in a tree of %d", ev.Index, rng.End(), cp.Size)
			}
			if err == nil && n >= h.Events {
				err = fmt.Errorf("more than the %d events of the header", h.Events)
			}
			if err == nil && !h.Payloads && (ev.Status != "" || ev.MediaType != "" || len(ev.Salt) > 0 || len(ev.Payload) > 0) {
				err = errors.New("payload fields in an export without payloads")
			}
			if err != nil {
				stop()
				return nil, malformed("%v", err)
			}
			if err := fold(ev.Index); err != nil {
				stop()
				return nil, err
			}
			lh := event.LeafHash(ev.Leaf)
			mh := lh // the tree's leaf: the envelope's on a log of leaf version 3
			if ev.Envelope != nil {
				if _, err := event.OpenEnvelope(ev.Envelope, ev.Leaf, nil); err != nil {
					stop()
					return nil, malformed("entry %d: %v", ev.Index, err)
				}
				mh = event.LeafHash(ev.Envelope)
			}
			rng.Append(mh, nil)
			n++
			batch = append(batch, ExportedEvent{Index: ev.Index, Leaf: ev.Leaf, LeafHash: lh,
				Status: ev.Status, MediaType: ev.MediaType, Payload: ev.Payload, Salt: ev.Salt})
			if len(batch) == exportBatch {
				work <- batch
				batches = append(batches, batch)
				batch = make([]ExportedEvent, 0, exportBatch)
			}
		case api.FrameEnd:
			stop()
			var end api.ExportEnd
			if err := json.Unmarshal(body, &end); err != nil {
				return nil, malformed("end frame: %v", err)
			}
			if end.Events != n || n != h.Events {
				return nil, malformed("%d events sent, the header said %d, the end %d", n, h.Events, end.Events)
			}
			if err := fold(cp.Size); err != nil {
				return nil, err
			}
			if x.Trailing() {
				return nil, malformed("data after the end frame")
			}
			root, err := rng.GetRootHash(nil)
			if err != nil || !bytes.Equal(root, cp.Hash) {
				return nil, fmt.Errorf("%w: the leaves and nodes fold to %x, the checkpoint's root is %x", ErrExportInclusion, root, cp.Hash)
			}
			s.Events = make([]ExportedEvent, 0, n)
			for _, b := range batches {
				s.Events = append(s.Events, b...)
			}
			if n > 0 && s.Events[n-1].Event != nil && s.Events[n-1].Event.Seq != *h.ToSeq && s.Events[n-1].LeafErr == nil {
				return nil, malformed("the last event is seq %d, the header said %d", s.Events[n-1].Event.Seq, *h.ToSeq)
			}
			s.chain()
			return s, nil
		case api.FrameError:
			stop()
			var e api.ErrorBody
			json.Unmarshal(body, &e)
			status := http.StatusInternalServerError
			switch e.Error.Code {
			case "unavailable", "overloaded", "timeout":
				status = http.StatusServiceUnavailable
			}
			return nil, fmt.Errorf("the session export stopped after %d events: %w", n, &Error{StatusCode: status, Code: event.Clip(e.Error.Code, 64), Message: event.Clip(e.Error.Message, 512)})
		default:
			stop()
			return nil, malformed("a header frame inside the stream")
		}
	}
}

// check parses the leaf and checks it and the payload against each other.
func (e *ExportedEvent) check(tenant, session string, payloads bool) {
	leaf, err := event.ParseLeaf(e.Leaf)
	if err != nil {
		e.LeafErr = err
	} else if e.Event = leaf; leaf.Tenant != tenant || leaf.Session != session {
		e.LeafErr = fmt.Errorf("the entry belongs to session %s/%s", event.Clip(leaf.Tenant, 128), event.Clip(leaf.Session, 128))
	}
	if !payloads {
		return
	}
	var commit *event.Commitment
	if leaf != nil {
		commit = leaf.Payload
	}
	switch {
	case e.Status == api.PayloadOK && leaf == nil:
		e.PayloadErr = fmt.Errorf("entry %d: a payload for a leaf that does not parse: %w", e.Index, ErrCommitment)
	case e.Status == api.PayloadOK && !opens(commit, e.Salt, e.Payload):
		e.PayloadErr = fmt.Errorf("entry %d: %w", e.Index, ErrCommitment)
	case e.Status != api.PayloadOK && (len(e.Payload) > 0 || len(e.Salt) > 0):
		e.PayloadErr = fmt.Errorf("entry %d: payload bytes with status %q", e.Index, event.Clip(e.Status, 32))
	case e.Status == api.PayloadNone && commit != nil:
		e.PayloadErr = fmt.Errorf("entry %d: status %s, but the leaf commits to a payload", e.Index, api.PayloadNone)
	}
	if e.PayloadErr != nil {
		e.Payload, e.Salt = nil, nil
	}
}

// chain checks seq and prev from event to event.
func (s *SessionExport) chain() {
	var prev *ExportedEvent
	for i := range s.Events {
		e := &s.Events[i]
		l := e.Event
		if l == nil {
			prev = nil
			continue
		}
		switch {
		case prev == nil && i == 0 && l.Seq != s.FromSeq:
			e.ChainErr = fmt.Errorf("%w: the export begins at seq %d, not at %d", ErrChain, l.Seq, s.FromSeq)
		case prev != nil && l.Seq != prev.Event.Seq+1:
			e.ChainErr = fmt.Errorf("%w: seq %d follows seq %d", ErrChain, l.Seq, prev.Event.Seq)
		case prev != nil && l.Prev != hex.EncodeToString(prev.LeafHash):
			e.ChainErr = fmt.Errorf("%w: prev is not the leaf hash of seq %d", ErrChain, prev.Event.Seq)
		case l.Seq == 0 && l.Prev != "":
			e.ChainErr = fmt.Errorf("%w: seq 0 has a prev", ErrChain)
		}
		prev = e
	}
}

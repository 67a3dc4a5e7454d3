package log

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	tapi "github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// ExportQuery selects a session export.
type ExportQuery struct {
	Tenant, Session string
	FromSeq         uint64
	// Payloads discloses payloads and salts, recorded first as one
	// access.read event.
	Payloads bool
}

// Export limits: an export reads the session a group at a time, a few
// groups ahead of the one it writes, so that what it holds does not grow
// with the session.
const (
	// exportChunk is how many events are listed from the index at a time.
	exportChunk = 1024
	// exportGroupEvents and exportGroupBytes bound a group: the events
	// whose payloads are read from the vault at once (by the sizes the
	// leaves commit to; one payload may exceed it).
	exportGroupEvents = 256
	exportGroupBytes  = 4 << 20
	// exportAhead is how many groups are read ahead of the one written,
	// exportReaders how many of them are read from the vault at once.
	exportAhead   = 4
	exportReaders = 2
)

// ExportSession streams a tenant's session from fromSeq as an export
// (api/export.go, docs/event-api.md): a header naming a
// checkpoint, then the session's events in the checkpoint's tree in log
// order (at most api.MaxExportEvents), each preceded by the hashes of
// the subtrees between it and the event before, so that the reader folds
// them all to the checkpoint's root; with q.Payloads each event's payload
// and salt, as DiscloseSession gives them, after one access.read event
// naming the session, the seq range and the tree size is appended durably.
//
// It first waits (DefaultSessionWait at most) for the index to cover
// every acknowledged write and for a checkpoint to cover the session's last
// event; events a checkpoint does not cover yet are left out (the header's
// next_seq names the first). An unknown session, or one of a tenant the
// reader may not see, is ErrNotFound.
//
// begin is called once, when nothing can fail but the stream itself: it
// returns the encoder the export is written to (the header first). An
// error returned before begin was called is the answer's; one after it
// happened in the stream, which the caller ends with an error frame.
func (l *Log) ExportSession(ctx context.Context, r Reader, q ExportQuery, begin func() (*api.ExportEncoder, error)) error {
	if q.Tenant != r.Tenant && !r.AllTenants {
		return fmt.Errorf("%w: no session %s in tenant %s", ErrNotFound, q.Session, r.Tenant)
	}
	if err := l.waitSession(ctx, q.Tenant, q.Session); err != nil {
		return err
	}
	last, _, ok, err := l.index.SessionLast(ctx, q.Tenant, q.Session)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: no session %s in tenant %s", ErrNotFound, q.Session, q.Tenant)
	}
	cp, raw, err := l.checkpointCovering(ctx, last)
	if err != nil {
		return err
	}
	sp, err := l.index.SessionSpan(ctx, q.Tenant, q.Session, q.FromSeq, cp.Size, api.MaxExportEvents)
	if err != nil {
		return err
	}
	h := &api.ExportHeader{Format: api.ExportFormat, Tenant: q.Tenant, Session: q.Session, FromSeq: q.FromSeq,
		Events: sp.Count, NextSeq: sp.Next, TreeSize: cp.Size, Checkpoint: string(raw), Payloads: q.Payloads}
	if sp.Count > 0 {
		h.ToSeq = &sp.LastSeq
	}
	if q.Payloads {
		acc, err := l.recordExport(ctx, r, q, h)
		if err != nil {
			return err
		}
		resp := api.NewEventResponse(acc)
		h.Access = &resp
	}
	enc, err := begin()
	if err != nil {
		return err
	}
	x := &exportStream{l: l, q: q, h: h, cp: cp, enc: enc,
		nodes: tileNodes{r: l.reader, size: cp.Size, tiles: map[uint64]cachedTile{}},
		rf:    &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}}
	return x.run(ctx)
}

// checkpointCovering returns a published checkpoint that covers index, if
// one is published within DefaultSessionWait, else the latest.
func (l *Log) checkpointCovering(ctx context.Context, index uint64) (*fmtlog.Checkpoint, []byte, error) {
	wctx, cancel := context.WithTimeout(ctx, DefaultSessionWait)
	_, raw, err := l.awaiter.Await(wctx, func() (tessera.Index, error) { return tessera.Index{Index: index}, nil })
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return l.Checkpoint(ctx)
	}
	cp, err := l.verify(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("own checkpoint does not verify: %w", err)
	}
	return cp, raw, nil
}

// recordExport appends the access.read event of an export with payloads:
// the session, the seq range and the tree size name exactly the events
// whose payloads may be disclosed.
func (l *Log) recordExport(ctx context.Context, r Reader, q ExportQuery, h *api.ExportHeader) (event.Appended, error) {
	seqTo := q.FromSeq
	if h.ToSeq != nil {
		seqTo = *h.ToSeq
	}
	acc := &event.Request{
		Session: event.AccessSession(r.TokenID),
		Kind:    event.KindAccessRead,
		Actor:   r.Actor(),
		Attributes: map[string]json.RawMessage{
			event.AttrAccessSession:  jsonString(q.Session),
			event.AttrAccessSeqFrom:  json.RawMessage(strconv.FormatUint(q.FromSeq, 10)),
			event.AttrAccessSeqTo:    json.RawMessage(strconv.FormatUint(seqTo, 10)),
			event.AttrAccessCount:    json.RawMessage(strconv.FormatUint(h.Events, 10)),
			event.AttrAccessTreeSize: json.RawMessage(strconv.FormatUint(h.TreeSize, 10)),
			event.AttrAccessExport:   json.RawMessage("true"),
			event.AttrAccessTokenID:  jsonString(r.TokenID),
		},
	}
	a, err := l.serverEvent(ctx, q.Tenant, r, acc)
	if err != nil {
		return event.Appended{}, err
	}
	return a, nil
}

// exportStream writes one export.
type exportStream struct {
	l   *Log
	q   ExportQuery
	h   *api.ExportHeader
	cp  *fmtlog.Checkpoint
	enc *api.ExportEncoder

	nodes tileNodes
	// rf and rng fold what is sent, to check it against the checkpoint's
	// root before the end frame: never send a proof not checked here.
	rf  *compact.RangeFactory
	rng *compact.Range

	bundle    *tapi.EntryBundle
	bundleIdx uint64
}

// exportGroup is a group of events on its way from the storage to the
// stream: listed, their leaves read, their payloads being read.
type exportGroup struct {
	entries []api.SessionEntry
	evs     []api.ExportEvent
	commits []*event.Commitment // with payloads
	ready   chan error          // the payloads are read (buffered)
}

// run writes the export: the header, each group as it is ready (read by
// produce meanwhile), the nodes after the last event, and, once what was
// sent folds to the checkpoint's root, the end.
func (x *exportStream) run(ctx context.Context) error {
	if err := x.enc.Header(x.h); err != nil {
		return err
	}
	x.rng = x.rf.NewEmptyRange(0)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	groups := make(chan *exportGroup, exportAhead)
	produced := make(chan error, 1)
	go func() { produced <- x.produce(ctx, groups) }()
	stop := func(err error) error {
		cancel()
		for range groups {
		}
		<-produced
		return err
	}
	sent := uint64(0)
	for g := range groups {
		if err := <-g.ready; err != nil {
			return stop(err)
		}
		if err := x.send(ctx, g); err != nil {
			return stop(err)
		}
		if err := x.enc.Flush(); err != nil {
			return stop(err)
		}
		sent += uint64(len(g.evs))
	}
	if err := <-produced; err != nil {
		return err
	}
	if sent != x.h.Events {
		return fmt.Errorf("sent %d events of session %s, not the %d of the header", sent, x.q.Session, x.h.Events)
	}
	if err := x.gap(ctx, x.cp.Size); err != nil {
		return err
	}
	root, err := x.rng.GetRootHash(nil)
	if err != nil || !bytes.Equal(root, x.cp.Hash) {
		return fmt.Errorf("the export of session %s folds to root %x, not the checkpoint's %x (%v)", x.q.Session, root, x.cp.Hash, err)
	}
	if err := x.enc.End(api.ExportEnd{Events: sent}); err != nil {
		return err
	}
	return x.enc.Flush()
}

// produce lists the export's events from the index a chunk at a time,
// reads their leaves, and hands them out in groups, in order, each with
// its payloads being read (exportReaders groups at once).
func (x *exportStream) produce(ctx context.Context, out chan<- *exportGroup) (err error) {
	readers := make(chan struct{}, exportReaders)
	var wg sync.WaitGroup
	defer close(out)
	defer wg.Wait()
	from, listed := x.q.FromSeq, uint64(0)
	x.bundleIdx = ^uint64(0)
	for listed < x.h.Events {
		entries, err := x.l.index.Session(ctx, x.q.Tenant, x.q.Session, from, int(min(exportChunk, x.h.Events-listed)))
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			return fmt.Errorf("the index lists %d events of session %s from seq %d, not %d", listed, x.q.Session, x.q.FromSeq, x.h.Events)
		}
		evs := make([]api.ExportEvent, len(entries))
		var commits []*event.Commitment
		if x.q.Payloads {
			commits = make([]*event.Commitment, len(entries))
		}
		for i, en := range entries {
			if en.Index >= x.cp.Size || en.Seq > *x.h.ToSeq {
				return fmt.Errorf("the index lists entry %d (seq %d) of session %s beyond the export (tree size %d, to seq %d)", en.Index, en.Seq, x.q.Session, x.cp.Size, *x.h.ToSeq)
			}
			evs[i].Index = en.Index
			if evs[i].Leaf, err = x.leaf(ctx, en.Index); err != nil {
				return err
			}
			if x.q.Payloads {
				if commits[i], err = leafCommitment(evs[i].Leaf); err != nil {
					return fmt.Errorf("entry %d of session %s is not an audit event: %w", en.Index, x.q.Session, err)
				}
			}
		}
		for start := 0; start < len(entries); {
			end, n := start, 0
			for ; end < len(entries) && end-start < exportGroupEvents && (end == start || n < exportGroupBytes); end++ {
				if commits != nil && commits[end] != nil {
					n += max(commits[end].Size, 0)
				}
			}
			g := &exportGroup{entries: entries[start:end], evs: evs[start:end], ready: make(chan error, 1)}
			if commits == nil {
				g.ready <- nil
			} else {
				g.commits = commits[start:end]
				select {
				case readers <- struct{}{}:
				case <-ctx.Done():
					return ctx.Err()
				}
				wg.Go(func() {
					defer func() { <-readers }()
					g.ready <- x.payloads(ctx, g)
				})
			}
			select {
			case out <- g:
			case <-ctx.Done():
				return ctx.Err()
			}
			start = end
		}
		listed += uint64(len(entries))
		from = entries[len(entries)-1].Seq + 1
	}
	return nil
}

// send writes a group's events, each after the nodes before it.
func (x *exportStream) send(ctx context.Context, g *exportGroup) error {
	for i := range g.evs {
		e := &g.evs[i]
		if err := x.gap(ctx, e.Index); err != nil {
			return err
		}
		lh := event.LeafHash(e.Leaf)
		if hex.EncodeToString(lh) != g.entries[i].LeafHash {
			return fmt.Errorf("entry %d is not the event the index lists (seq %d of session %s)", e.Index, g.entries[i].Seq, x.q.Session)
		}
		env, err := x.l.envelopeOf(e.Leaf)
		if err != nil {
			return err
		}
		if env != nil {
			// Leaf version 3: the tree holds the envelope.
			e.Envelope, lh = env, event.LeafHash(env)
		}
		if err := x.rng.Append(lh, nil); err != nil {
			return err
		}
		if err := x.enc.Event(e); err != nil {
			return err
		}
		*e = api.ExportEvent{} // drop the payload
	}
	return nil
}

// payloads reads a group's payloads and sets their status as
// DiscloseSession does: never bytes that fail the commitment.
func (x *exportStream) payloads(ctx context.Context, g *exportGroup) error {
	var ids []string
	for i, c := range g.commits {
		if c != nil {
			ids = append(ids, g.entries[i].ID)
		}
	}
	found, failed, err := x.l.vault.GetMany(ctx, ids)
	if err != nil {
		return err
	}
	for i := range g.evs {
		e, c := &g.evs[i], g.commits[i]
		if c == nil {
			e.Status = api.PayloadNone
			continue
		}
		id := g.entries[i].ID
		rec, ok := found[id]
		switch ferr := failed[id]; {
		case errors.Is(ferr, vault.ErrErased):
			e.Status = api.PayloadErased
		case ferr != nil: // it does not decrypt: altered in the vault
			e.Status = api.PayloadIntegrity
		case !ok:
			e.Status = api.PayloadMissing
		case !event.CheckCommitment(c, rec.Salt, rec.Payload):
			e.Status = api.PayloadIntegrity
		default:
			e.Status, e.MediaType, e.Salt, e.Payload = api.PayloadOK, rec.MediaType, rec.Salt, rec.Payload
		}
	}
	return nil
}

// gap sends, and folds, the nodes of the entries between the last one
// sent and end.
func (x *exportStream) gap(ctx context.Context, end uint64) error {
	begin := x.rng.End()
	if end == begin {
		return nil
	}
	hs, err := x.nodes.hashes(ctx, begin, end)
	if err != nil {
		return err
	}
	r, err := x.rf.NewRange(begin, end, hs)
	if err != nil {
		return err
	}
	if err := x.rng.AppendRange(r, nil); err != nil {
		return err
	}
	return x.enc.Nodes(hs)
}

// leaf returns the entry at index, reading each entry bundle once.
func (x *exportStream) leaf(ctx context.Context, index uint64) ([]byte, error) {
	bi := index / layout.EntryBundleWidth
	if x.bundle == nil || x.bundleIdx != bi {
		w := layout.PartialTileSize(0, bi, x.cp.Size)
		raw, err := readGrown(ctx, x.l.reader, w, func(p uint8) ([]byte, error) { return x.l.reader.ReadEntryBundle(ctx, bi, p) },
			func(size uint64) uint8 { return layout.PartialTileSize(0, bi, size) })
		if err != nil {
			return nil, fmt.Errorf("reading entry bundle %d: %w", bi, err)
		}
		var b tapi.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return nil, fmt.Errorf("parsing entry bundle %d: %w", bi, err)
		}
		x.bundle, x.bundleIdx = &b, bi
	}
	i := index % layout.EntryBundleWidth
	if i >= uint64(len(x.bundle.Entries)) {
		return nil, fmt.Errorf("entry bundle %d has no entry %d", bi, i)
	}
	return x.bundle.Entries[i], nil
}

// readGrown reads a tile or bundle of the checkpoint's tree at partial
// width w; if it is gone because the log grew (a partial one is removed
// once the full one exists), it reads the full one, or the one at the
// width of the log's size now. Each holds the same hashes or entries first.
func readGrown(ctx context.Context, r tessera.LogReader, w uint8, read func(p uint8) ([]byte, error), width func(size uint64) uint8) ([]byte, error) {
	b, err := read(w)
	if !errors.Is(err, os.ErrNotExist) || w == 0 {
		return b, err
	}
	if b, err = read(0); !errors.Is(err, os.ErrNotExist) {
		return b, err
	}
	size, err := r.IntegratedSize(ctx)
	if err != nil {
		return nil, err
	}
	return read(width(size))
}

// tileNodes reads the hashes of perfect subtrees of a tree from its hash
// tiles, keeping the last tile read at each tile level (an export reads
// them left to right).
type tileNodes struct {
	r     tessera.LogReader
	size  uint64
	tiles map[uint64]cachedTile
}

type cachedTile struct {
	index  uint64
	hashes []byte
}

// hashes returns the hashes of the compact range [begin, end), left to
// right (compact.RangeNodes).
func (t *tileNodes) hashes(ctx context.Context, begin, end uint64) ([][]byte, error) {
	ids := compact.RangeNodes(begin, end, nil)
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := t.node(ctx, id)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

// node returns the hash of a perfect subtree: a tile at level L holds the
// nodes of tree level 8L, and a node of level 8L+r is the root of 2^r of
// them.
func (t *tileNodes) node(ctx context.Context, id compact.NodeID) ([]byte, error) {
	level, r := uint64(id.Level/8), id.Level%8
	first := id.Index << r
	ti, off, n := first/layout.TileWidth, first%layout.TileWidth, uint64(1)<<r
	tile, err := t.tile(ctx, level, ti)
	if err != nil {
		return nil, err
	}
	if (off+n)*32 > uint64(len(tile)) {
		return nil, fmt.Errorf("tile %d/%d has %d hashes: node %d/%d is not in it", level, ti, len(tile)/32, id.Level, id.Index)
	}
	hs := make([][]byte, n)
	for i := range hs {
		hs[i] = tile[(off+uint64(i))*32 : (off+uint64(i)+1)*32]
	}
	for len(hs) > 1 {
		for i := range len(hs) / 2 {
			hs[i] = rfc6962.DefaultHasher.HashChildren(hs[2*i], hs[2*i+1])
		}
		hs = hs[:len(hs)/2]
	}
	return hs[0], nil
}

func (t *tileNodes) tile(ctx context.Context, level, index uint64) ([]byte, error) {
	if c, ok := t.tiles[level]; ok && c.index == index {
		return c.hashes, nil
	}
	w := layout.PartialTileSize(level, index, t.size)
	b, err := readGrown(ctx, t.r, w, func(p uint8) ([]byte, error) { return t.r.ReadTile(ctx, level, index, p) },
		func(size uint64) uint8 { return layout.PartialTileSize(level, index, size) })
	if err != nil {
		return nil, fmt.Errorf("reading tile %d/%d: %w", level, index, err)
	}
	t.tiles[level] = cachedTile{index: index, hashes: b}
	return b, nil
}

// payloadMember is how a canonical leaf (Leaf.Marshal) introduces its
// payload commitment: its last member but corrects. No attribute value is
// an object, so nothing else in a leaf reads so.
var payloadMember = []byte(`,"payload":{`)

// leafCommitment returns a leaf's payload commitment (nil if none). A
// canonical leaf is read by its position, faster than decoding it; any
// other is decoded. It is the server's choice of what to read and send;
// the reader of an export checks every payload against its own parse of
// the leaf.
func leafCommitment(data []byte) (*event.Commitment, error) {
	if !bytes.Contains(data, []byte(`"payload"`)) && bytes.HasPrefix(data, []byte(`{"v":`)) {
		return nil, nil
	}
	if i := bytes.LastIndex(data, payloadMember); i >= 0 {
		if c, ok := scanCommitment(data[i+len(payloadMember)-1:]); ok {
			return c, nil
		}
	}
	_, c, err := event.LeafPayload(data)
	return c, err
}

// scanCommitment reads a commitment in canonical form (with its field
// commitment, sd and sd_v, if any), and what may follow it in a canonical
// leaf (the end, or corrects and the end).
func scanCommitment(p []byte) (*event.Commitment, bool) {
	lit := func(s string) bool {
		var ok bool
		p, ok = bytes.CutPrefix(p, []byte(s))
		return ok
	}
	str := func() (string, bool) {
		i := bytes.IndexByte(p, '"')
		if i < 0 || bytes.IndexByte(p[:i], '\\') >= 0 {
			return "", false
		}
		s := string(p[:i])
		p = p[i+1:]
		return s, true
	}
	num := func() (uint64, bool) {
		i := 0
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		n, err := strconv.ParseUint(string(p[:i]), 10, 63)
		if err != nil || (i > 1 && p[0] == '0') {
			return 0, false
		}
		p = p[i:]
		return n, true
	}
	var c event.Commitment
	var ok bool
	if !lit(`{"alg":"`) {
		return nil, false
	}
	if c.Alg, ok = str(); !ok || !lit(`,"digest":"`) {
		return nil, false
	}
	if c.Digest, ok = str(); !ok || !lit(`,"size":`) {
		return nil, false
	}
	size, ok := num()
	if !ok || size > 1<<40 || !lit(`,"media_type":"`) {
		return nil, false
	}
	c.Size = int(size)
	if c.MediaType, ok = str(); !ok {
		return nil, false
	}
	if lit(`,"sd":"`) {
		if c.SD, ok = str(); !ok || c.SD == "" {
			return nil, false
		}
		if lit(`,"sd_v":`) {
			v, ok := num()
			if !ok || v == 0 || v > 1<<20 {
				return nil, false
			}
			c.SDV = int(v)
		}
	}
	if !lit(`}`) {
		return nil, false
	}
	if lit(`}`) {
		return &c, len(p) == 0
	}
	if !lit(`,"corrects":`) {
		return nil, false
	}
	if _, ok := num(); !ok || !lit(`}`) || len(p) != 0 {
		return nil, false
	}
	return &c, true
}

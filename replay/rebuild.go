// Package replay rebuilds a session from the log as an auditor sees it
// (every event proved included under a verified checkpoint, the session's
// seq and prev chain, each payload against its commitment), shows it as a
// decision timeline, and re-executes an agent against it: a handler that
// answers the agent's provider requests from the recorded responses and
// reports the first request that departs from the record.
//
// It is a consumer of the log: it reads only through client.
package replay

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	tapi "github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Source is the log a session is rebuilt from.
type Source struct {
	Log *client.Client
	// Key verifies the log's checkpoints.
	Key note.Verifier
	// Policy, if set, is the witness policy the checkpoint must meet.
	Policy *checkpoint.Policy
	Logger *slog.Logger
	// NoExport rebuilds from the session listing, the entry bundles (or
	// entries) and the payload pages, as Rebuild does when the server has
	// no session export or its export does not verify, instead of from
	// one export stream.
	NoExport bool
}

// Query names a session.
type Query struct {
	// Tenant, for a global token, names the tenant ("" is the token's).
	Tenant  string
	Session string
	// Payloads discloses the session's payloads (audit scope): in the
	// export, recorded as one access.read event; read by pages (NoExport),
	// one request and one access.read event per page of up to 1,000
	// events.
	Payloads bool
}

// How a session was read (Session.Via).
const (
	ViaExport = "export" // one export stream (GET /v1/sessions/{id}/export)
	ViaPages  = "pages"  // the listing, entry bundles or entries, payload pages
)

// Checks that a rebuild makes; a Problem names the one that failed.
const (
	CheckCheckpoint = "checkpoint" // the checkpoint verifies (signature, witness policy)
	CheckListing    = "listing"    // the server's session listing agrees with the log
	CheckInclusion  = "inclusion"  // the event is in the tree of the checkpoint
	CheckLeaf       = "leaf"       // the leaf is a well-formed event of this session
	CheckOrder      = "order"      // events are listed in log order
	CheckSeq        = "seq"        // seq follows the previous event's
	CheckChain      = "chain"      // prev is the previous event's leaf hash
	CheckPayload    = "payload"    // the payload opens the leaf's commitment
)

// Problem is one failed check: which event, which check, expected and
// found.
type Problem struct {
	Index    *uint64 `json:"index,omitempty"`
	Seq      *uint64 `json:"seq,omitempty"`
	Check    string  `json:"check"`
	Expected string  `json:"expected,omitempty"`
	Found    string  `json:"found,omitempty"`
	Message  string  `json:"message"`
}

func (p Problem) String() string {
	at := ""
	if p.Index != nil {
		at = fmt.Sprintf("entry %d", *p.Index)
	}
	if p.Seq != nil {
		at += fmt.Sprintf(" (seq %d)", *p.Seq)
	}
	s := fmt.Sprintf("%s: %s: %s", at, p.Check, p.Message)
	if p.Expected != "" || p.Found != "" {
		s += fmt.Sprintf(" (expected %s, found %s)", p.Expected, p.Found)
	}
	return s
}

// Payload statuses beyond the server's (api.PayloadOK, ...).
const (
	PayloadNotRead  = "not_read"  // payloads were not asked for
	PayloadRejected = "rejected"  // disclosed, but it failed a check here
	PayloadNotShown = "not_shown" // the server listed no payload for the event
)

// Event is one verified (or not) event of a session.
type Event struct {
	Index    uint64
	Seq      uint64
	Data     []byte // the leaf as the log holds it
	LeafHash []byte
	Leaf     *event.Leaf // nil if the leaf does not parse
	Time     time.Time
	// Included: proved in the checkpoint's tree.
	Included bool
	// Chained: seq and prev follow the previous event.
	Chained       bool
	PayloadStatus string
	MediaType     string
	Payload       []byte
	Problems      []Problem
}

// Verified reports whether every check of the event passed.
func (e *Event) Verified() bool { return len(e.Problems) == 0 }

// Session is a rebuilt session.
type Session struct {
	Tenant string
	ID     string
	// Checkpoint the events are proved against.
	Size       uint64
	Root       []byte
	Checkpoint []byte
	Events     []*Event
	// Problems are every failed check, in order (also kept per event).
	Problems []Problem
	// Access are the indices of the access.read events that recorded the
	// payload disclosures.
	Access []uint64
	// Via says how the session was read: ViaExport or ViaPages.
	Via string
}

// Verified reports whether every check passed.
func (s *Session) Verified() bool { return len(s.Problems) == 0 }

func (s *Session) problem(e *Event, check, expected, found, format string, args ...any) {
	p := Problem{Check: check, Expected: expected, Found: found, Message: fmt.Sprintf(format, args...)}
	if e != nil {
		i, q := e.Index, e.Seq
		p.Index, p.Seq = &i, &q
		e.Problems = append(e.Problems, p)
	}
	s.Problems = append(s.Problems, p)
}

// ErrSession: the session cannot be rebuilt at all (unknown, not
// readable, or the log cannot be read); problems with its events are
// listed in Session.Problems instead.
var ErrSession = errors.New("cannot rebuild the session")

// maxEvents caps the events of one rebuilt session.
const maxEvents = 1_000_000

// Rebuild reads a session and verifies every event: the leaf proved
// included under a checkpoint that verifies (and meets the policy), seq
// contiguous from 0, prev the previous leaf hash, and with q.Payloads each
// payload against its commitment. What fails is listed, never repaired.
//
// It reads the session's export (one request, ViaExport). If the server
// has none, or the export is not whole, it reads by pages (ViaPages: the
// listing, whose leaf hashes are checked too, and the payload pages). An
// export that does not verify (its checkpoint, or its events' inclusion)
// is itself a problem: it is listed, and the session is read by pages,
// which says which entry fails.
func Rebuild(ctx context.Context, src Source, q Query) (*Session, error) {
	if src.Logger == nil {
		src.Logger = slog.New(slog.DiscardHandler)
	}
	if src.NoExport {
		return rebuildPages(ctx, src, q)
	}
	s, err := rebuildExport(ctx, src, q)
	var ae *client.Error
	switch {
	case err == nil:
		return s, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, client.ErrExportCheckpoint), errors.Is(err, client.ErrExportInclusion):
		check := CheckInclusion
		if errors.Is(err, client.ErrExportCheckpoint) {
			check = CheckCheckpoint
		}
		src.Logger.Warn("the session export does not verify; reading the session by pages", "session", q.Session, "error", err)
		p := Problem{Check: check, Message: fmt.Sprintf("the session export does not verify (%v); the session was read by pages", err)}
		s, err := rebuildPages(ctx, src, q)
		if err != nil {
			return nil, err
		}
		s.Problems = append([]Problem{p}, s.Problems...)
		return s, nil
	case errors.As(err, &ae) && ae.Code != "unexpected" && ae.StatusCode < 500:
		// The server's answer about the session (not found, forbidden, a
		// bad query): reading by pages would get the same.
		return nil, fmt.Errorf("%w: %w", ErrSession, err)
	}
	src.Logger.Warn("no usable session export; reading the session by pages", "session", q.Session, "error", err)
	return rebuildPages(ctx, src, q)
}

// rebuildExport rebuilds a session from its export, which the client has
// verified whole (checkpoint, inclusion of every event, each payload
// against the leaf it came with) before handing it over.
func rebuildExport(ctx context.Context, src Source, q Query) (*Session, error) {
	x, err := src.Log.ExportSession(ctx, q.Session, client.ExportQuery{Tenant: q.Tenant, Payloads: q.Payloads}, src.Key, src.Policy)
	if err != nil {
		return nil, err
	}
	s := &Session{Tenant: x.Tenant, ID: x.Session, Size: x.Size, Root: x.Root, Checkpoint: x.Checkpoint, Via: ViaExport}
	if x.Access != nil {
		s.Access = []uint64{x.Access.Index}
	}
	at := make(map[uint64]int, len(x.Events)) // seq -> position in the export
	for i := range x.Events {
		if l := x.Events[i].Event; l != nil {
			if _, ok := at[l.Seq]; !ok {
				at[l.Seq] = i
			}
		}
	}
	var prev *Event
	for pos := range x.Events {
		xe := &x.Events[pos]
		e := &Event{Index: xe.Index, Data: xe.Leaf, LeafHash: xe.LeafHash, Included: true, PayloadStatus: PayloadNotRead}
		if xe.Event != nil {
			e.Seq = xe.Event.Seq
		}
		s.Events = append(s.Events, e)
		var err error
		if xe.Event == nil {
			err = xe.LeafErr
		}
		s.checkLeaf(e, xe.Event, err, x.Tenant, nil, prev, func(seq uint64) bool { p, ok := at[seq]; return ok && p > pos })
		if q.Payloads && e.Leaf != nil {
			s.exportPayload(e, xe)
		}
		prev = e
	}
	if x.NextSeq != nil && len(x.Events) < api.MaxExportEvents {
		s.problem(nil, CheckInclusion, "", "", "the session's events from seq %d are not in the checkpoint's tree (size %d)", *x.NextSeq, x.Size)
	}
	return s, nil
}

// exportPayload takes an exported event's payload.
func (s *Session) exportPayload(e *Event, xe *client.ExportedEvent) {
	e.PayloadStatus = xe.Status
	switch {
	case xe.PayloadErr != nil:
		e.PayloadStatus = PayloadRejected
		s.problem(e, CheckPayload, "", "", "%v", xe.PayloadErr)
	case xe.Status == api.PayloadOK:
		e.Payload, e.MediaType = xe.Payload, xe.MediaType
	case xe.Status == api.PayloadMissing:
		s.problem(e, CheckPayload, "the payload committed to", "nothing", "the vault does not have the payload")
	case xe.Status == api.PayloadIntegrity:
		s.problem(e, CheckPayload, "a payload that opens the commitment", "another", "the vault's payload does not open the leaf's commitment")
	}
}

// rebuildPages rebuilds a session from its listing, the entry bundles (or
// entries with their proofs) and the payload pages.
func rebuildPages(ctx context.Context, src Source, q Query) (*Session, error) {
	tiles := src.Log.Tiles()
	s := &Session{ID: q.Session, Via: ViaPages}
	listing, err := list(ctx, src.Log, q)
	if err != nil {
		return nil, err
	}
	if len(listing) > 0 {
		s.Tenant = listing[0].tenant
	}
	// A checkpoint that covers every listed event (the log publishes
	// checkpoints every second or so).
	var cpRaw []byte
	var size uint64
	var root []byte
	maxIndex := uint64(0)
	for _, l := range listing {
		maxIndex = max(maxIndex, l.Index)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := tiles.ReadCheckpoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: reading the checkpoint: %v", ErrSession, err)
		}
		var cpSize uint64
		var cpRoot []byte
		if src.Policy != nil {
			cp, err := src.Policy.Verify(raw, src.Key)
			if err != nil {
				s.problem(nil, CheckCheckpoint, "", "", "%v", err)
				return s, nil
			}
			cpSize, cpRoot = cp.Size, cp.Hash
		} else {
			cp, _, err := checkpoint.Verify(raw, src.Key)
			if err != nil {
				s.problem(nil, CheckCheckpoint, "", "", "%v", err)
				return s, nil
			}
			cpSize, cpRoot = cp.Size, cp.Hash
		}
		cpRaw, size, root = raw, cpSize, cpRoot
		if len(listing) == 0 || maxIndex < size || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.Checkpoint, s.Size, s.Root = cpRaw, size, root

	var payloads map[uint64]client.SessionPayload
	if q.Payloads {
		if payloads, s.Access, err = disclose(ctx, src.Log, q); err != nil {
			return nil, err
		}
	}

	pb, err := tclient.NewProofBuilder(ctx, size, tileFetcher(tiles, size))
	if err != nil {
		return nil, fmt.Errorf("%w: proof builder: %v", ErrSession, err)
	}
	bundles := &bundleCache{t: tiles, log: src.Log, size: size}
	listedAt := make(map[uint64]int, len(listing)) // seq -> position in the listing
	for i, l := range listing {
		listedAt[l.Seq] = i
	}
	var prev *Event
	for pos, l := range listing {
		e := &Event{Index: l.Index, Seq: l.Seq, PayloadStatus: PayloadNotRead}
		s.Events = append(s.Events, e)
		s.verifyEvent(ctx, e, l, prev, pb, bundles, size, root, func(seq uint64) bool { p, ok := listedAt[seq]; return ok && p > pos })
		if q.Payloads && e.Leaf != nil {
			s.verifyPayload(e, payloads)
		}
		prev = e
	}
	return s, nil
}

type listed struct {
	api.SessionEntry
	tenant string
}

// list reads the server's listing of the session, every page.
func list(ctx context.Context, c *client.Client, q Query) ([]listed, error) {
	var out []listed
	var from uint64
	for {
		p, err := c.Session(ctx, q.Session, client.SessionQuery{Tenant: q.Tenant, FromSeq: from, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSession, err)
		}
		for _, e := range p.Events {
			out = append(out, listed{SessionEntry: e, tenant: p.Tenant})
		}
		if len(p.Events) < 1000 || len(out) >= maxEvents {
			return out, nil
		}
		from = p.Events[len(p.Events)-1].Seq + 1
	}
}

// disclose reads every page of the session's payloads.
func disclose(ctx context.Context, c *client.Client, q Query) (map[uint64]client.SessionPayload, []uint64, error) {
	out := map[uint64]client.SessionPayload{}
	var access []uint64
	var from uint64
	for {
		d, err := c.SessionPayloads(ctx, q.Session, client.SessionQuery{Tenant: q.Tenant, FromSeq: from})
		if err != nil {
			return nil, nil, fmt.Errorf("%w: disclosing payloads: %w", ErrSession, err)
		}
		access = append(access, d.Access.Index)
		for _, p := range d.Events {
			out[p.Index] = p
		}
		if d.NextSeq == nil || len(out) >= maxEvents {
			return out, access, nil
		}
		from = *d.NextSeq
	}
}

// listedLater reports whether an event of the seq given is listed after
// the one being verified.
func (s *Session) verifyEvent(ctx context.Context, e *Event, l listed, prev *Event, pb *tclient.ProofBuilder, bundles *bundleCache, size uint64, root []byte,
	listedLater func(seq uint64) bool) {
	if l.Index >= size {
		s.problem(e, CheckInclusion, fmt.Sprintf("an index below %d", size), fmt.Sprint(l.Index), "the listed entry is not in the checkpoint's tree")
		return
	}
	data, err := bundles.leaf(ctx, l.Index)
	if err != nil {
		s.problem(e, CheckInclusion, "", "", "reading the entry: %v", err)
		return
	}
	e.Data, e.LeafHash = data, event.LeafHash(data)
	treeLeaf := e.LeafHash
	if env := bundles.envelope(l.Index); env != nil {
		// Leaf version 3: the tree holds the envelope, which commits to
		// the body read beside it.
		if _, err := event.OpenEnvelope(env, data, nil); err != nil {
			s.problem(e, CheckInclusion, "", "", "the entry's body: %v", err)
			return
		}
		treeLeaf = event.LeafHash(env)
	}
	if err := bundles.included(ctx, pb, l.Index, treeLeaf, root); err != nil {
		s.problem(e, CheckInclusion, "", "", "the entry does not prove included in the checkpoint's tree: %v", err)
	} else {
		e.Included = true
	}
	if got := hex.EncodeToString(e.LeafHash); got != l.LeafHash {
		s.problem(e, CheckListing, l.LeafHash, got, "the listing's leaf hash is not the log's")
	}
	leaf, err := event.ParseLeaf(data)
	s.checkLeaf(e, leaf, err, l.tenant, &l, prev, listedLater)
}

// checkLeaf checks a parsed leaf (err: why it did not parse) against the
// session, the listing that named it (nil: none, an export) and the event
// before it: seq and prev.
func (s *Session) checkLeaf(e *Event, leaf *event.Leaf, err error, tenant string, l *listed, prev *Event, listedLater func(seq uint64) bool) {
	if err != nil {
		s.problem(e, CheckLeaf, "", "", "the entry is not an audit event: %v", err)
		return
	}
	e.Leaf = leaf
	e.Time, _ = time.Parse(event.TimeFormat, leaf.Time)
	if leaf.Session != s.ID || leaf.Tenant != tenant {
		s.problem(e, CheckLeaf, tenant+"/"+s.ID, leaf.Tenant+"/"+leaf.Session, "the entry belongs to another session")
	}
	if l != nil && (leaf.Seq != l.Seq || leaf.Kind != l.Kind || leaf.ID != l.ID) {
		s.problem(e, CheckListing, fmt.Sprintf("seq %d %s %s", l.Seq, l.Kind, l.ID), fmt.Sprintf("seq %d %s %s", leaf.Seq, leaf.Kind, leaf.ID),
			"the listing does not describe the log's entry")
	}
	e.Seq = leaf.Seq
	e.Chained = true
	switch {
	case prev == nil && leaf.Seq != 0:
		e.Chained = false
		s.problem(e, CheckSeq, "0", fmt.Sprint(leaf.Seq), "the session's first event is missing: it does not begin at seq 0")
	case prev != nil && prev.Index >= e.Index:
		e.Chained = false
		s.problem(e, CheckOrder, fmt.Sprintf("an index after %d", prev.Index), fmt.Sprint(e.Index), "listed after an event that comes later in the log")
	case prev != nil && prev.Leaf != nil && leaf.Seq > prev.Seq+1 && listedLater(prev.Seq+1):
		e.Chained = false
		s.problem(e, CheckOrder, fmt.Sprintf("seq %d", prev.Seq+1), fmt.Sprintf("seq %d", leaf.Seq), "listed before seq %d, which is listed after it", prev.Seq+1)
	case prev != nil && prev.Leaf != nil && leaf.Seq != prev.Seq+1:
		e.Chained = false
		what := "events are missing before it"
		if leaf.Seq <= prev.Seq {
			what = "it is out of order"
		} else if leaf.Seq == prev.Seq+2 {
			what = "an event is missing before it"
		}
		s.problem(e, CheckSeq, fmt.Sprint(prev.Seq+1), fmt.Sprint(leaf.Seq), "seq does not follow the previous event's: %s", what)
	}
	wantPrev := ""
	if prev != nil && prev.LeafHash != nil {
		wantPrev = hex.EncodeToString(prev.LeafHash)
	}
	if (prev != nil || leaf.Seq == 0) && leaf.Prev != wantPrev && (prev == nil || leaf.Seq == prev.Seq+1) {
		e.Chained = false
		s.problem(e, CheckChain, orNone(wantPrev), orNone(leaf.Prev), "prev is not the previous event's leaf hash")
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (s *Session) verifyPayload(e *Event, payloads map[uint64]client.SessionPayload) {
	p, ok := payloads[e.Index]
	if !ok {
		e.PayloadStatus = PayloadNotShown
		if e.Leaf.Payload != nil {
			s.problem(e, CheckPayload, "the payload", "nothing", "the server disclosed no payload for the event")
		}
		return
	}
	e.PayloadStatus = p.Status
	switch {
	case p.Err != nil:
		e.PayloadStatus = PayloadRejected
		s.problem(e, CheckPayload, "", "", "%v", p.Err)
	case hex.EncodeToString(p.LeafHash) != hex.EncodeToString(e.LeafHash):
		e.PayloadStatus = PayloadRejected
		s.problem(e, CheckPayload, hex.EncodeToString(e.LeafHash), hex.EncodeToString(p.LeafHash), "the payload was disclosed with another leaf than the log's")
	case p.Status == api.PayloadOK:
		e.Payload, e.MediaType = p.Payload, p.MediaType
	case p.Status == api.PayloadMissing:
		s.problem(e, CheckPayload, "the payload committed to", "nothing", "the vault does not have the payload")
	case p.Status == api.PayloadIntegrity:
		s.problem(e, CheckPayload, "a payload that opens the commitment", "another", "the vault's payload does not open the leaf's commitment")
	}
}

// bundleCache reads entry bundles once, and proves a full bundle's
// entries included all at once. A tenant's token may not read entry
// bundles (they hold every tenant's entries): then each entry is read with
// an inclusion proof to the checkpoint's size (GET /v1/entries/{index}),
// and that proof is verified against the checkpoint's root instead.
type bundleCache struct {
	t    *client.Tiles
	log  *client.Client
	size uint64
	idx  uint64
	b    *tapi.EntryBundle
	// subtree is the root of a full bundle's 256 leaves, and proven says
	// an inclusion proof tied it to the checkpoint's root.
	subtree []byte
	proven  bool
	// perEntry: entry bundles are forbidden to the token; proof is the
	// inclusion proof read with the entry at proofIndex.
	perEntry   bool
	proof      [][]byte
	proofIndex uint64
	// On a log of leaf version 3, the entries are envelopes: bodies holds
	// the events of the bundle read last (GET /v1/bodies), envs its
	// envelopes by index, env the envelope of the entry read per entry.
	bodies map[uint64][]byte
	envs   map[uint64][]byte
	env    []byte
}

// envelope is the envelope of the entry at index read last, on a log of
// leaf version 3 (nil on another).
func (c *bundleCache) envelope(index uint64) []byte {
	if c.perEntry {
		if c.proofIndex == index {
			return c.env
		}
		return nil
	}
	return c.envs[index]
}

func (c *bundleCache) leaf(ctx context.Context, index uint64) ([]byte, error) {
	if c.perEntry {
		return c.entry(ctx, index)
	}
	bi := index / layout.EntryBundleWidth
	if c.b == nil || c.idx != bi {
		w := layout.PartialTileSize(0, bi, c.size)
		raw, err := c.t.ReadEntryBundle(ctx, bi, w)
		if errors.Is(err, fs.ErrNotExist) && w > 0 {
			raw, err = c.t.ReadEntryBundle(ctx, bi, 0) // the log grew: the full bundle holds the entries
		}
		if errors.Is(err, client.ErrForbidden) && c.log != nil {
			c.perEntry = true
			return c.entry(ctx, index)
		}
		if err != nil {
			return nil, err
		}
		var b tapi.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return nil, err
		}
		c.b, c.idx, c.subtree, c.proven, c.bodies, c.envs = &b, bi, nil, false, nil, nil
		if len(b.Entries) > 0 && event.IsEnvelope(b.Entries[0]) && c.log != nil {
			first := bi * layout.EntryBundleWidth
			bs, err := c.log.Bodies(ctx, first, min(first+uint64(len(b.Entries)), c.size), c.size)
			if err != nil {
				return nil, fmt.Errorf("reading the bodies of entry bundle %d: %w", bi, err)
			}
			c.bodies, c.envs = make(map[uint64][]byte, len(bs.Entries)), make(map[uint64][]byte, len(b.Entries))
			for _, e := range bs.Entries {
				c.bodies[e.Index] = e.Body
			}
			for i, d := range b.Entries {
				c.envs[first+uint64(i)] = d
			}
		}
		if w == 0 && len(b.Entries) == layout.EntryBundleWidth {
			hs := make([][]byte, len(b.Entries))
			for i, d := range b.Entries {
				hs[i] = event.LeafHash(d)
			}
			c.subtree = subtreeRoot(hs)
		}
	}
	i := index % layout.EntryBundleWidth
	if i >= uint64(len(c.b.Entries)) {
		return nil, fmt.Errorf("entry bundle %d has %d entries", bi, len(c.b.Entries))
	}
	if c.envs != nil {
		body, ok := c.bodies[index]
		if !ok {
			return nil, fmt.Errorf("the log serves no body for entry %d", index)
		}
		return body, nil
	}
	return c.b.Entries[i], nil
}

// included proves the leaf at index (of the bundle read last) included in
// the tree of root. In a full bundle one inclusion proof does for all
// 256 entries: its first eight hashes climb the bundle's subtree, whose
// root is recomputed from every entry read.
func (c *bundleCache) included(ctx context.Context, pb *tclient.ProofBuilder, index uint64, leafHash, root []byte) error {
	if c.perEntry {
		if c.proof == nil || c.proofIndex != index {
			return fmt.Errorf("no inclusion proof was read for entry %d", index)
		}
		return proof.VerifyInclusion(rfc6962.DefaultHasher, index, c.size, leafHash, c.proof, root)
	}
	if c.proven {
		return nil
	}
	hs, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return err
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, c.size, leafHash, hs, root); err != nil {
		return err
	}
	if c.subtree != nil && len(hs) >= 8 {
		h := leafHash
		j := index % layout.EntryBundleWidth
		for level := range 8 {
			if j>>level&1 == 1 {
				h = rfc6962.DefaultHasher.HashChildren(hs[level], h)
			} else {
				h = rfc6962.DefaultHasher.HashChildren(h, hs[level])
			}
		}
		c.proven = string(h) == string(c.subtree)
	}
	return nil
}

// entry reads one entry with an inclusion proof to the checkpoint's size
// (unverified: included checks the proof).
func (c *bundleCache) entry(ctx context.Context, index uint64) ([]byte, error) {
	c.proof = nil
	r, err := c.log.Entry(ctx, index, c.size)
	if err != nil {
		return nil, err
	}
	if r.TreeSize != c.size {
		return nil, fmt.Errorf("asked for a proof to size %d, got one to %d", c.size, r.TreeSize)
	}
	c.proof, c.proofIndex, c.env = r.InclusionProof, index, r.Envelope
	if c.proof == nil {
		c.proof = [][]byte{}
	}
	return r.Leaf, nil
}

// subtreeRoot is the root of a perfect subtree over leaf hashes (a power
// of two of them).
func subtreeRoot(hs [][]byte) []byte {
	for len(hs) > 1 {
		next := make([][]byte, len(hs)/2)
		for i := range next {
			next[i] = rfc6962.DefaultHasher.HashChildren(hs[2*i], hs[2*i+1])
		}
		hs = next
	}
	return hs[0]
}

// tileFetcher reads tiles of the checkpoint's tree; a partial tile gone
// because the log grew is read in the newer tree (full, or at its width
// there) and holds the same hashes first.
func tileFetcher(t *client.Tiles, size uint64) tclient.TileFetcherFunc {
	return func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
		b, err := t.ReadTile(ctx, level, index, p)
		if !errors.Is(err, fs.ErrNotExist) || p == 0 {
			return b, err
		}
		if b, err = t.ReadTile(ctx, level, index, 0); !errors.Is(err, fs.ErrNotExist) {
			return b, err
		}
		raw, err := t.ReadCheckpoint(ctx)
		if err != nil {
			return nil, err
		}
		cp, err := parseSize(raw)
		if err != nil {
			return nil, err
		}
		return t.ReadTile(ctx, level, index, layout.PartialTileSize(level, index, cp))
	}
}

// parseSize reads the tree size of an (unverified) checkpoint: only to
// find where a tile lives; the hashes read are checked against the
// verified root.
func parseSize(raw []byte) (uint64, error) {
	var cp fmtlog.Checkpoint
	if _, err := cp.Unmarshal(raw); err != nil {
		return 0, err
	}
	return cp.Size, nil
}

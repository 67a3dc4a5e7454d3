package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"sync"

	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// finding is an integrity problem found while scanning.
type finding struct {
	rule    string
	index   *uint64 // entry index, when one entry is at fault
	key     string  // what makes the finding unique (for its ID)
	message string
	details map[string]any
}

func (f finding) at(origin string, size uint64) Finding {
	return Finding{
		ID: FindingID(origin, f.rule, f.key), Rule: f.rule, Severity: "critical", Index: f.index,
		Message: f.message, Source: SourceIntegrity, Origin: origin, TreeSize: size, Details: f.details,
	}
}

// Entry is one re-hashed entry. What it holds is proved only once the
// tree it was appended to has the root of a verified checkpoint.
type Entry struct {
	Index uint64
	Data  []byte // the entry as the log's bundle holds it
	Hash  []byte // its leaf hash
	// Body is, on a log of leaf version 3 scanned with WithBodies, the
	// event's body that the envelope Data commits to (checked); Leaf and
	// Head are then parsed from it.
	Body []byte
	// Leaf is the entry parsed as an audit event leaf (ScanOptions.Parse);
	// nil if it is not one, and Err says why.
	Leaf *event.Leaf
	Err  error
	// Head holds the chain fields alone (ScanOptions.Head), if HasHead;
	// Err says why not.
	Head    event.Head
	HasHead bool
}

// EventHash is the hash that the event's session chain links with: the
// body's on a log of leaf version 3 (Body set), else the leaf hash.
func (e *Entry) EventHash() []byte {
	if e.Body != nil {
		return event.LeafHash(e.Body)
	}
	return e.Hash
}

type bundleResult struct {
	index   uint64
	entries []Entry
	err     error
}

// Scanner re-hashes a range of a log's entries into a Tree and checks every
// tile the range touches.
type Scanner struct {
	src     Source
	origin  string
	workers int
	bodies  *client.Client
}

// WithBodies makes the scanner read, on a log of leaf version 3, the body
// of every envelope it parses (ScanOptions.Parse or Head) from c
// (GET /v1/bodies, with c's token: a global one reads every body), check
// it against the envelope and parse the event from it (Entry.Body). An
// envelope whose body c does not get, or whose body does not match, is an
// entry that does not parse (Entry.Err wraps ErrBodyMissing or
// event.ErrBodyMismatch). It returns s.
func (s *Scanner) WithBodies(c *client.Client) *Scanner {
	s.bodies = c
	return s
}

// ErrBodyMissing: the log did not serve the body of an envelope.
var ErrBodyMissing = errors.New("the log serves no body for the envelope")

// NewScanner returns a scanner of the log origin read from src.
func NewScanner(src Source, origin string) *Scanner {
	return &Scanner{src: src, origin: origin, workers: max(2, runtime.GOMAXPROCS(0)*2)}
}

// ScanOptions says what a scan does besides re-hashing.
type ScanOptions struct {
	Parse      bool // parse entries as audit event leaves (Entry.Leaf)
	Head       bool // read only the chain fields (Entry.Head)
	CheckTiles bool // compare every tile touched with the log's
}

// ScanResult is what a scan found.
type ScanResult struct {
	// Findings are the tiles that differ from the recomputed hashes
	// (RuleTileMismatch) and the entries already in the tree that the log
	// now serves differently (RuleEntryMismatch), at the scan's size.
	Findings []Finding
	// LeafMismatch holds entry indices whose data disagrees with the leaf
	// hash in the log's level-0 tile (RewrittenEntry), in no order.
	LeafMismatch []uint64
	Tiles        int // tiles compared
	Bundles      int // entry bundles read
}

// Scan appends entries [t.Size(), size) of a log of size logSize to t,
// calling visit for each in order (visit may keep the entry). It fetches
// bundles concurrently, and compares every tile that becomes full, and the
// final partial tiles, with what the log serves. Errors are fetch or
// context errors (transient) and those of visit; integrity problems are in
// the result. The entries are proved only once the caller has checked t's
// root against a verified checkpoint.
func (s *Scanner) Scan(ctx context.Context, t *Tree, size, logSize uint64, opts ScanOptions, visit func(Entry) error) (*ScanResult, error) {
	res := &ScanResult{}
	if size <= t.size {
		return res, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Tile checks run beside the scan.
	var (
		tmu   sync.Mutex
		terr  error
		twg   sync.WaitGroup
		tjobs = make(chan tileJob, 64)
	)
	for range max(1, s.workers/2) {
		twg.Go(func() {
			for j := range tjobs {
				f, mism, err := s.checkTile(ctx, j, logSize)
				tmu.Lock()
				if err != nil && terr == nil {
					terr = err
				}
				if f != nil {
					res.Findings = append(res.Findings, f.at(s.origin, size))
				}
				res.LeafMismatch = append(res.LeafMismatch, mism...)
				res.Tiles++
				tmu.Unlock()
			}
		})
	}
	sendTile := func(level, index uint64, hashes [][]byte, width int) {
		if !opts.CheckTiles {
			return
		}
		j := tileJob{level: level, index: index, width: width, want: make([]byte, 0, len(hashes)*hashSize)}
		for _, h := range hashes {
			j.want = append(j.want, h...)
		}
		select {
		case tjobs <- j:
		case <-ctx.Done():
		}
	}

	// Bundles are fetched by workers and consumed in order.
	start := t.size
	first, last := start/tileWidth, (size-1)/tileWidth
	queue := make(chan chan bundleResult, s.workers*2)
	jobs := make(chan struct {
		idx uint64
		out chan bundleResult
	})
	var fwg sync.WaitGroup
	for range s.workers {
		fwg.Go(func() {
			for j := range jobs {
				j.out <- s.fetchBundle(ctx, j.idx, start, size, logSize, opts)
			}
		})
	}
	go func() {
		defer close(queue)
		defer close(jobs)
		for b := first; b <= last; b++ {
			out := make(chan bundleResult, 1)
			select {
			case queue <- out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- struct {
				idx uint64
				out chan bundleResult
			}{b, out}:
			case <-ctx.Done():
				return
			}
		}
	}()

	var err error
	earlierChecked := false
	for out := range queue {
		var br bundleResult
		select {
		case br = <-out:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
		if br.err != nil {
			err = br.err
			break
		}
		res.Bundles++
		if !earlierChecked && opts.CheckTiles {
			// The first bundle repeats the entries of the tree's partial
			// level-0 tile, which were verified before: they must not
			// have changed.
			earlierChecked = true
			for _, f := range checkEarlier(br, t) {
				res.Findings = append(res.Findings, f.at(s.origin, size))
			}
		}
		for _, e := range br.entries {
			if e.Index < t.size {
				continue
			}
			t.append(e.Hash, func(level, index uint64, hashes [][]byte) { sendTile(level, index, hashes, 0) })
			if visit != nil {
				if err = visit(e); err != nil {
					break
				}
			}
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		t.partials(func(level, index uint64, hashes [][]byte) { sendTile(level, index, hashes, len(hashes)) })
	}
	if err != nil {
		cancel()
	}
	// Drain the bundle pipeline.
	for out := range queue {
		select {
		case <-out:
		case <-ctx.Done():
		}
	}
	fwg.Wait()
	close(tjobs)
	twg.Wait()
	if err != nil {
		return nil, err
	}
	if terr != nil {
		return nil, terr
	}
	return res, nil
}

// checkEarlier compares the entries of the first bundle that precede the
// tree's size with the verified leaf hashes the tree holds.
func checkEarlier(br bundleResult, t *Tree) []finding {
	var out []finding
	if len(t.levels) == 0 {
		return nil
	}
	base := br.index * tileWidth
	for _, e := range br.entries {
		if e.Index >= t.size {
			break
		}
		i := e.Index - base
		if i < uint64(len(t.levels[0])) && !bytes.Equal(t.levels[0][i], e.Hash) {
			idx := e.Index
			out = append(out, finding{
				rule: RuleEntryMismatch, index: &idx, key: fmt.Sprintf("entry/%d/%x", idx, e.Hash),
				message: fmt.Sprintf("entry %d was rewritten: its data now hashes to %x, the verified tree holds %x", idx, e.Hash, t.levels[0][i]),
				details: map[string]any{"bundle": br.index},
			})
		}
	}
	return out
}

// fetchBundle reads bundle idx as it is in a tree of logSize entries,
// hashes every entry below size and parses (if asked) those from start.
func (s *Scanner) fetchBundle(ctx context.Context, idx, start, size, logSize uint64, opts ScanOptions) bundleResult {
	br := bundleResult{index: idx}
	width := layout.PartialTileSize(0, idx, logSize)
	raw, err := s.src.ReadEntryBundle(ctx, idx, width)
	if err != nil {
		br.err = fmt.Errorf("reading entry bundle %d: %w", idx, err)
		return br
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		br.err = fmt.Errorf("parsing entry bundle %d: %w", idx, err)
		return br
	}
	want := uint64(tileWidth)
	if width > 0 {
		want = uint64(width)
	}
	if uint64(len(b.Entries)) < want {
		br.err = fmt.Errorf("entry bundle %d has %d entries, want %d", idx, len(b.Entries), want)
		return br
	}
	base := idx * tileWidth
	n := min(want, size-base)
	br.entries = make([]Entry, n)
	for i := range n {
		d := b.Entries[i]
		e := Entry{Index: base + i, Data: d, Hash: event.LeafHash(d)}
		if opts.Head && e.Index >= start {
			e.Head, e.Err = event.ParseHead(d)
			e.HasHead = e.Err == nil
		}
		if opts.Parse && e.Index >= start {
			e.Leaf, e.Err = event.ParseLeaf(d)
		}
		br.entries[i] = e
	}
	if s.bodies != nil && (opts.Parse || opts.Head) {
		if err := s.openBodies(ctx, br.entries, start, size, opts); err != nil {
			br.err = err
		}
	}
	return br
}

// openBodies replaces, in entries from start, each envelope's parse by its
// body's.
func (s *Scanner) openBodies(ctx context.Context, entries []Entry, start, size uint64, opts ScanOptions) error {
	first, found := uint64(0), false
	for _, e := range entries {
		if e.Index >= start && event.IsEnvelope(e.Data) {
			first, found = e.Index, true
			break
		}
	}
	if !found {
		return nil
	}
	last := entries[len(entries)-1].Index
	r, err := s.bodies.Bodies(ctx, first, last+1, size)
	if err != nil {
		return fmt.Errorf("reading the bodies of entries %d-%d: %w", first, last, err)
	}
	got := make(map[uint64][]byte, len(r.Entries))
	for _, b := range r.Entries {
		got[b.Index] = b.Body
	}
	for i := range entries {
		e := &entries[i]
		if e.Index < first || !event.IsEnvelope(e.Data) {
			continue
		}
		e.Leaf, e.Head, e.HasHead = nil, event.Head{}, false
		body, ok := got[e.Index]
		if !ok {
			e.Err = fmt.Errorf("entry %d: %w", e.Index, ErrBodyMissing)
			continue
		}
		if _, err := event.OpenEnvelope(e.Data, body, nil); err != nil {
			e.Err = fmt.Errorf("entry %d: %w", e.Index, err)
			continue
		}
		e.Body, e.Err = body, nil
		if opts.Head {
			e.Head, e.Err = event.ParseHead(body)
			e.HasHead = e.Err == nil
		}
		if opts.Parse {
			e.Leaf, e.Err = event.ParseLeaf(body)
		}
	}
	return nil
}

type tileJob struct {
	level, index uint64
	width        int // 0 for a full tile
	want         []byte
}

// checkTile fetches one tile and compares it with the recomputed hashes.
func (s *Scanner) checkTile(ctx context.Context, j tileJob, logSize uint64) (*finding, []uint64, error) {
	p := uint8(j.width)
	if j.width == tileWidth {
		p = 0
	}
	raw, err := s.src.ReadTile(ctx, j.level, j.index, p)
	if errors.Is(err, fs.ErrNotExist) && p != 0 {
		// Auditing an older tree: its partial tile may be gone; the tile
		// of the log's tree now begins with the same hashes.
		if pl := layout.PartialTileSize(j.level, j.index, logSize); pl != p {
			raw, err = s.src.ReadTile(ctx, j.level, j.index, pl)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading tile %d/%d: %w", j.level, j.index, err)
	}
	if len(raw) > len(j.want) {
		raw = raw[:len(j.want)] // a full tile served for a partial request
	}
	if bytes.Equal(raw, j.want) {
		return nil, nil, nil
	}
	var mism []uint64
	firstBad := -1
	for i := 0; i < len(j.want)/hashSize; i++ {
		lo, hi := i*hashSize, (i+1)*hashSize
		if hi > len(raw) || !bytes.Equal(raw[lo:hi], j.want[lo:hi]) {
			if firstBad < 0 {
				firstBad = i
			}
			if j.level == 0 {
				mism = append(mism, j.index*tileWidth+uint64(i))
			}
		}
	}
	path := layout.TilePath(j.level, j.index, p)
	return &finding{
		rule:    RuleTileMismatch,
		key:     fmt.Sprintf("tile/%s/%x", path, hashOf(raw)),
		message: fmt.Sprintf("tile %s differs from the hashes recomputed from the entries (first differing node %d of %d)", path, firstBad, len(j.want)/hashSize),
		details: map[string]any{"tile": path, "level": j.level, "tile_index": j.index, "node": firstBad, "served_bytes": len(raw)},
	}, mism, nil
}

func hashOf(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

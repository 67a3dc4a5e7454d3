package compliance

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"time"

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
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// Source is the log a report is computed from, and what verifies it.
type Source struct {
	// Log reads the log: its tlog-tiles (entry bundles need a global read
	// token) and, for the payload sample, GET /v1/events/{index}/payload
	// (audit scope).
	Log *client.Client
	Key note.Verifier
	// Policy, if set, is the witness policy the checkpoint must meet.
	Policy *checkpoint.Policy
	// At, if set, is the signed checkpoint to compute at; by default the
	// log's latest.
	At []byte
	// AtSize, if set and below the checkpoint's size, pins the report to
	// the log's first AtSize entries: their tree's root, read from the
	// tiles, is proved consistent with the checkpoint, which anchors it
	// (LogState.ProofToCheckpoint). 0: the checkpoint's size.
	AtSize uint64
	// TenantKey and LogWideKey, if set, compute the report of one tenant
	// of a log of leaf version 3 with that tenant's token (read scope), or
	// any: the entries whose envelopes carry the tenant's tag or the
	// log-wide tag (GET /v1/tenant-key's key and log_key) are read, each
	// body checked against its envelope (verify.Config.TenantKey), and the
	// report is the one a global token computes (the same entries:
	// event.LogWide). Unset, a report of one tenant on a log of leaf
	// version 3 reads them with Log's token (GET /v1/tenant-key, audit
	// scope; the read is logged).
	TenantKey, LogWideKey *event.TenantKey
	Progress              func(done, total uint64)
	Logger                *slog.Logger
}

// Query names a report.
type Query struct {
	Profile string
	Tenant  string // api.AllTenants for every tenant
	From    time.Time
	To      time.Time
}

// ErrQuery is wrapped by errors about the query.
var ErrQuery = errors.New("bad report query")

// Compute verifies the log at a checkpoint the way monitor verify does
// (every entry re-hashed into the root, every tile compared, the session
// chains, the signatures), and evaluates the profile's controls, with the
// parameters p, over the entries of the tenant in the period.
func Compute(ctx context.Context, src Source, q Query, p Params) (*Report, error) {
	return compute(ctx, src, q, &p)
}

// ComputeAsConfigured is Compute with the parameters the log records for
// the report's tenant at the report's tree (LogParams): those the server
// ran with, its profiles' and its compliance configuration's.
func ComputeAsConfigured(ctx context.Context, src Source, q Query) (*Report, error) {
	return compute(ctx, src, q, nil)
}

// compute is Compute, with the log's parameters if p is nil.
func compute(ctx context.Context, src Source, q Query, p *Params) (*Report, error) {
	prof, ok := profileByName(q.Profile)
	if !ok {
		return nil, fmt.Errorf("%w: no profile %q (there are %v)", ErrQuery, q.Profile, ProfileNames())
	}
	if !q.To.After(q.From) {
		return nil, fmt.Errorf("%w: the period must end after it begins", ErrQuery)
	}
	if src.TenantKey != nil && (q.Tenant == api.AllTenants || src.LogWideKey == nil) {
		return nil, fmt.Errorf("%w: a report computed with a tenant's key is of that tenant (not %q), and needs the log-wide key too", ErrQuery, q.Tenant)
	}
	if p != nil {
		if err := p.Check(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrQuery, err)
		}
	}
	if src.Logger == nil {
		src.Logger = slog.Default()
	}
	raw := src.At
	latestRaw, err := src.Log.Tiles().ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint: %w", err)
	}
	latest, _, err := checkpoint.Verify(latestRaw, src.Key)
	if err != nil {
		return nil, fmt.Errorf("the log's checkpoint does not verify: %w", err)
	}
	if raw == nil {
		raw = latestRaw
	}
	cp, _, err := checkpoint.Verify(raw, src.Key)
	if err != nil {
		return nil, fmt.Errorf("the report's checkpoint does not verify: %w", err)
	}
	if cp.Size > latest.Size {
		return nil, fmt.Errorf("the report's checkpoint (size %d) is larger than the log's (size %d)", cp.Size, latest.Size)
	}
	tiles := tileFetcher(src.Log.Tiles(), latest.Size)
	size, root := cp.Size, cp.Hash
	var pin [][]byte // the consistency proof from size to the checkpoint
	switch {
	case src.AtSize > cp.Size:
		return nil, fmt.Errorf("%w: the log's checkpoint is at size %d, below %d", ErrQuery, cp.Size, src.AtSize)
	case src.AtSize > 0 && src.AtSize < cp.Size:
		if size, root, pin, err = pinTree(ctx, src.AtSize, cp.Size, cp.Hash, latest.Size, tiles); err != nil {
			return nil, err
		}
	}
	if err := tenantKeys(ctx, &src, q, latest.Size); err != nil {
		return nil, err
	}
	if p == nil {
		lp, err := LogParams(ctx, src, q.Tenant, size)
		if err != nil {
			return nil, err
		}
		p = &lp
	}
	c := newCollector(q, *p, src.Key.Name(), size, root)
	c.floor = prof.Floor
	// The quorum is a control, not a precondition: without it the audit
	// still reads every entry.
	auditPolicy := src.Policy
	c.quorum = src.Policy != nil && src.Policy.Satisfied(raw)
	if !c.quorum {
		auditPolicy = nil
	}
	rep, err := verify.Audit(ctx, verify.Config{
		Log: src.Log, LogKey: src.Key, Policy: auditPolicy, At: raw, Visit: c.visit, Progress: src.Progress, Logger: src.Logger,
		TenantKey: src.TenantKey, LogWideKey: src.LogWideKey, Tenant: tenantOf(q, src),
	})
	if err != nil {
		return nil, err
	}
	if pin != nil {
		// What the audit found beyond the pinned tree is not the report's.
		rep.Findings = slices.DeleteFunc(slices.Clone(rep.Findings), func(f verify.Finding) bool { return f.Index != nil && *f.Index >= size })
	}
	c.audit = c.scopeFindings(rep)
	if err := c.finish(ctx, src.Log, tiles); err != nil {
		return nil, err
	}
	r := &Report{
		Version: ReportVersion, Profile: prof.Name, Title: prof.Title, Tenant: q.Tenant,
		From: q.From.UTC().Format(time.RFC3339), To: q.To.UTC().Format(time.RFC3339),
		Log: LogState{
			Origin: src.Key.Name(), Checkpoint: string(raw), CheckpointSHA256: Digest(raw), Size: size,
			Root: hex.EncodeToString(root), WitnessPolicy: describePolicy(src.Policy), Cosigned: cosigners(src.Policy, raw),
		},
		Range: Range{StartSize: c.startSize, StartRoot: hex.EncodeToString(c.startRoot), EndSize: size,
			EndRoot: hex.EncodeToString(root), ConsistencyProof: hexes(c.consistency)},
		Entries:    Entries{Total: size, InScope: c.inScope, InPeriod: c.inPeriod, ByKind: c.byKind},
		Parameters: *p,
		Signatures: c.manifestations,
	}
	for _, ctl := range prof.Controls {
		res := ctl.Eval(c)
		res.ID, res.Citation, res.Title = ctl.ID, ctl.Citation, ctl.Title
		switch res.Status {
		case Satisfied:
			r.Summary.Satisfied++
		case NotSatisfied:
			r.Summary.NotSatisfied++
		case NotApplicable:
			r.Summary.NotApplicable++
		}
		r.Controls = append(r.Controls, res)
	}
	if r.Signatures == nil {
		r.Signatures = []Manifestation{}
	}
	if pin != nil {
		r.Log.CheckpointSize, r.Log.ProofToCheckpoint = cp.Size, hexes(pin)
	}
	return r, nil
}

// pinTree reads the root of the log's first size entries from its tiles
// and proves it consistent with the checkpoint (cpSize, cpRoot): the tree
// a pinned report covers.
func pinTree(ctx context.Context, size, cpSize uint64, cpRoot []byte, latestSize uint64, tiles tclient.TileFetcherFunc) (uint64, []byte, [][]byte, error) {
	t, err := verify.TreeFromTiles(size, latestSize, func(level, index uint64, width uint8) ([]byte, error) {
		return tiles(ctx, level, index, width)
	})
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading the tree of size %d: %w", size, err)
	}
	root, err := t.Root()
	if err != nil {
		return 0, nil, nil, err
	}
	pb, err := tclient.NewProofBuilder(ctx, cpSize, tiles)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("building proofs: %w", err)
	}
	hs, err := pb.ConsistencyProof(ctx, size, cpSize)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("consistency proof %d to %d: %w", size, cpSize, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size, cpSize, hs, root, cpRoot); err != nil {
		return 0, nil, nil, fmt.Errorf("the log's tree of size %d is not consistent with its checkpoint of size %d: %w", size, cpSize, err)
	}
	if hs == nil {
		hs = [][]byte{}
	}
	return size, root, hs, nil
}

// offenses collects the entries that fail a control. It keeps the first
// MaxOffending it is given and counts the rest, so a log where every entry
// offends costs memory for MaxOffending of them, not for every entry.
// Offenses are added in index order, so the first MaxOffending of several
// lists joined and sorted by index are those of the lists in full.
type offenses struct {
	list []Offense
	n    int // all added, kept or not
}

func (o *offenses) add(x Offense) {
	o.n++
	if len(o.list) < MaxOffending {
		o.list = append(o.list, x)
	}
}

// join is every offense of parts, in order (kept lists concatenated,
// counts summed).
func join(parts ...offenses) offenses {
	var o offenses
	for _, p := range parts {
		o.list = append(o.list, p.list...)
		o.n += p.n
	}
	return o
}

// offending sets the evidence's offending entries (at most MaxOffending)
// and their count.
func (e *Evidence) offending(o offenses) {
	e.Offending, e.OffendingTotal = o.list[:min(len(o.list), MaxOffending):min(len(o.list), MaxOffending)], o.n
	if len(e.Offending) == 0 {
		e.Offending = nil
	}
}

func hexes(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h)
	}
	return out
}

func describePolicy(p *checkpoint.Policy) string {
	if p == nil {
		return ""
	}
	var names []string
	for _, w := range p.Witnesses() {
		names = append(names, w.Name)
	}
	q := "quorum none"
	if n := p.Quorum(); n != nil {
		q = describeNode(n)
	}
	return fmt.Sprintf("%s; witnesses %v", q, names)
}

func describeNode(n *checkpoint.Node) string {
	if n.Witness != nil {
		return n.Witness.Name
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d of (", n.N)
	for i, c := range n.Children {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(describeNode(c))
	}
	b.WriteString(")")
	return b.String()
}

func cosigners(p *checkpoint.Policy, raw []byte) []string {
	out := []string{}
	if p == nil {
		return out
	}
	for _, w := range p.Witnesses() {
		if o, err := note.Open(raw, note.VerifierList(w.Verifier)); err == nil && len(o.Sigs) == 1 {
			out = append(out, w.Name)
		}
	}
	return out
}

// tileFetcher reads tiles of an older tree too: a partial tile that is gone
// because the log grew is read at its width in the latest tree.
func tileFetcher(t *client.Tiles, latestSize uint64) tclient.TileFetcherFunc {
	return func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
		b, err := t.ReadTile(ctx, level, index, p)
		if errors.Is(err, fs.ErrNotExist) && p > 0 {
			if pl := layout.PartialTileSize(level, index, latestSize); pl != p {
				b, err = t.ReadTile(ctx, level, index, pl)
			}
		}
		return b, err
	}
}

// phase says where an entry's time falls against the period.
type phase int

const (
	before phase = iota
	during
	after
)

// entry is a verified entry the controls look at.
type entry struct {
	index  uint64
	hash   []byte
	leaf   *event.Leaf
	time   time.Time
	when   phase
	scoped bool // of the report's tenant
}

func (e *entry) offense(format string, args ...any) Offense {
	return Offense{Index: e.index, LeafHash: hex.EncodeToString(e.hash), Reason: fmt.Sprintf(format, args...)}
}

// tenantKeys gives src the keys of the report's tenant when it has none
// and the log is of leaf version 3: a report of one tenant classifies the
// entries by their envelopes' tags (the tenant's, the log-wide one) and
// reads only the bodies the tenant's own token is served, whoever computes
// it, so that its audit findings are those about the tree, the tenant's
// bodies, the log-wide records and the report's entries, never another
// tenant's (with a global token, an audit without the keys would find a
// body missing for any tenant and could not say whose). The keys are read
// with GET /v1/tenant-key (audit scope), which the log records as an
// access.tenant_key event of the tenant. A log of leaf version 2 (its
// first entry, read from the log's latest tree of size entries, is an
// event) has none: every entry is in clear.
func tenantKeys(ctx context.Context, src *Source, q Query, size uint64) error {
	if src.TenantKey != nil || q.Tenant == api.AllTenants || size == 0 {
		return nil
	}
	// A log is of leaf version 3 from its first entry or never (the server
	// refuses to switch), so the first entry says which.
	raw, err := src.Log.Tiles().ReadEntryBundle(ctx, 0, layout.PartialTileSize(0, 0, size))
	if err != nil {
		return fmt.Errorf("reading the log's first entry bundle: %w", err)
	}
	var b tapi.EntryBundle
	if err := b.UnmarshalText(raw); err != nil || len(b.Entries) == 0 {
		return fmt.Errorf("reading the log's first entry bundle: %v", err)
	}
	if !event.IsEnvelope(b.Entries[0]) {
		return nil // leaf version 2: every entry is in clear
	}
	r, err := src.Log.TenantKeys(ctx, q.Tenant)
	if err != nil {
		return fmt.Errorf("a report of tenant %s on a log of leaf version 3 reads the entries by the tenant's keys: reading them (GET /v1/tenant-key, audit scope): %w", q.Tenant, err)
	}
	k, err1 := event.ParseTenantKey(r.Key)
	lk, err2 := event.ParseTenantKey(r.LogKey)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("the tenant keys of %s: %w", q.Tenant, err)
	}
	src.TenantKey, src.LogWideKey = &k, &lk
	return nil
}

// tenantOf is the tenant a tenant audit checks bodies against.
func tenantOf(q Query, src Source) string {
	if src.TenantKey == nil {
		return ""
	}
	return q.Tenant
}

// visit is the audit's Visit: every entry, in order; those beyond the
// report's tree (pinned below the checkpoint) are not the report's. An
// entry is the report's when it is of the report's tenant or a log-wide
// record (event.LogWide): the entries a tenant's own token reads on a log
// of leaf version 3, so that the tenant computes the same report as a
// global token. Every entry, the report's or not, is a leaf of the
// period's range.
func (c *collector) visit(index uint64, data, hash []byte) error {
	if index >= c.size {
		return nil
	}
	e, err := c.entryOf(index, data, hash)
	if err != nil {
		return err
	}
	// The period's range begins before the first entry of the report at
	// or after From; the compact range holds the leaves before it.
	if !c.started {
		if e != nil && !e.time.Before(c.q.From) {
			c.started, c.startSize = true, index
			if c.startRoot, err = c.rng.GetRootHash(nil); err != nil {
				return err
			}
		} else if err := c.rng.Append(hash, nil); err != nil {
			return err
		}
	}
	if e == nil {
		return nil
	}
	c.mark(index)
	switch {
	case e.time.Before(c.q.From):
		e.when = before
	case e.time.Before(c.q.To):
		e.when = during
	default:
		e.when = after
	}
	c.see(e)
	return nil
}

// entryOf is the entry at index if it is the report's (nil if not, or if
// it cannot be read: the audit reports that).
func (c *collector) entryOf(index uint64, data, hash []byte) (*entry, error) {
	if data == nil {
		return nil, nil // not covered by a tenant's audit, or no body
	}
	h, err := event.ParseHead(data)
	if err != nil {
		return nil, nil // the audit reports it (log.malformed_entry)
	}
	t, err := time.Parse(event.TimeFormat, h.Time)
	if err != nil {
		return nil, nil
	}
	scoped := c.q.Tenant == api.AllTenants || h.Tenant == c.q.Tenant
	l, err := event.ParseLeaf(data)
	if err != nil || (!scoped && !event.LogWide(l)) {
		return nil, nil
	}
	return &entry{index: index, hash: hash, leaf: l, time: t, scoped: scoped}, nil
}

// mark notes that the entry at index is the report's.
func (c *collector) mark(index uint64) {
	if c.mine == nil {
		c.mine = make([]uint64, (c.size+63)/64)
	}
	c.mine[index/64] |= 1 << (index % 64)
}

func (c *collector) marked(index uint64) bool {
	return index < c.size && c.mine != nil && c.mine[index/64]&(1<<(index%64)) != 0
}

// scopeFindings keeps the audit's findings that are the report's: those
// about the whole tree, the integrity of the log, the bodies of a log of
// leaf version 3 (a tenant's report audits only the tenant's and the
// log-wide records' bodies: tenantKeys), and those about an entry of the
// report. A tenant's report is not told of the findings about other
// tenants' entries (its own token does not read them), whoever computes it.
func (c *collector) scopeFindings(rep *verify.Report) *verify.Report {
	if c.q.Tenant == api.AllTenants {
		return rep
	}
	out := *rep
	out.Findings = nil
	for _, f := range rep.Findings {
		switch {
		case f.Index == nil, integrityRules[f.Rule], bodyRules[f.Rule], c.marked(*f.Index):
			out.Findings = append(out.Findings, f)
		}
	}
	return &out
}

// bodyRules are the findings about the bodies of a log of leaf version 3.
var bodyRules = map[string]bool{verify.RuleBodyMissing: true, verify.RuleBodyMismatch: true, verify.RuleWrongTag: true}

// sample keeps the k entries whose scores are lowest: a sample that
// anyone recomputes from the checkpoint's root alone.
type sample struct {
	k     int
	items sampleHeap
}

type sampled struct {
	score [32]byte
	index uint64
	hash  []byte
}

type sampleHeap []sampled

func (h sampleHeap) Len() int           { return len(h) }
func (h sampleHeap) Less(i, j int) bool { return bytes.Compare(h[i].score[:], h[j].score[:]) > 0 } // max-heap
func (h sampleHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *sampleHeap) Push(x any)        { *h = append(*h, x.(sampled)) }
func (h *sampleHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (s *sample) offer(root []byte, what string, index uint64, hash []byte) {
	if s.k == 0 {
		return
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], index)
	score := sha256.Sum256(append(append([]byte("llmaudittrail/report-sample/"+what+"\x00"), root...), b[:]...))
	switch {
	case len(s.items) < s.k:
		heap.Push(&s.items, sampled{score, index, hash})
	case bytes.Compare(score[:], s.items[0].score[:]) < 0:
		s.items[0] = sampled{score, index, hash}
		heap.Fix(&s.items, 0)
	}
}

// sorted returns the sample in index order.
func (s *sample) sorted() []sampled {
	out := append([]sampled(nil), s.items...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].index < out[j-1].index; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// finish proves what the scan collected: the consistency of the period's
// range, the sampled inclusion proofs, the signed records, and reads back
// the sampled payloads.
func (c *collector) finish(ctx context.Context, log *client.Client, tiles tclient.TileFetcherFunc) error {
	if !c.started {
		c.startSize = c.size
		root, err := c.rng.GetRootHash(nil)
		if err != nil {
			return err
		}
		c.startRoot = root
	}
	if c.startSize == 0 {
		c.startRoot = rfc6962.DefaultHasher.EmptyRoot()
	}
	if !c.intact() {
		return nil // nothing is proved from a tree that does not verify
	}
	pb, err := tclient.NewProofBuilder(ctx, c.size, tiles)
	if err != nil {
		return fmt.Errorf("building proofs: %w", err)
	}
	if c.startSize > 0 && c.startSize < c.size {
		if c.consistency, err = pb.ConsistencyProof(ctx, c.startSize, c.size); err != nil {
			return fmt.Errorf("consistency proof: %w", err)
		}
		c.consistencyErr = proof.VerifyConsistency(rfc6962.DefaultHasher, c.startSize, c.size, c.consistency, c.startRoot, c.root)
	}
	if c.consistency == nil {
		c.consistency = [][]byte{}
	}
	for _, s := range c.inclusion.sorted() {
		hs, err := pb.InclusionProof(ctx, s.index)
		if err != nil {
			return fmt.Errorf("inclusion proof of %d: %w", s.index, err)
		}
		ip := InclusionProof{Index: s.index, LeafHash: hex.EncodeToString(s.hash), TreeSize: c.size, Hashes: hexes(hs)}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, s.index, c.size, s.hash, hs, c.root); err != nil {
			c.inclusionBad.add(Offense{Index: s.index, LeafHash: ip.LeafHash, Reason: "inclusion proof does not verify: " + err.Error()})
		}
		c.proofs = append(c.proofs, ip)
	}
	ps, err := c.sigs.CheckRecords(ctx, c.size, c.root, tiles)
	if err != nil {
		return fmt.Errorf("proving signed records: %w", err)
	}
	for _, pr := range ps {
		c.sigProblem(pr)
	}
	for _, s := range c.payloads.sorted() {
		c.readPayload(ctx, log, s)
	}
	return nil
}

// readPayload reads a sampled payload back: it must decrypt and open its
// commitment (client.Payload checks that), or have been erased by a logged
// erasure.
func (c *collector) readPayload(ctx context.Context, log *client.Client, s sampled) {
	o := Offense{Index: s.index, LeafHash: hex.EncodeToString(s.hash)}
	d, err := log.Payload(ctx, s.index)
	switch {
	case err == nil && d.Index == s.index:
		c.payloadOK++
	case errors.Is(err, client.ErrErased):
		if c.erasedSessions[c.payloadSession[s.index]] {
			c.payloadErased++
			return
		}
		o.Reason = "the payload is gone, and no erasure in the log covers its session"
		c.payloadBad.add(o)
	case errors.Is(err, client.ErrForbidden), errors.Is(err, client.ErrUnauthenticated):
		c.payloadUnread = "the payload sample needs a token with the audit scope: " + err.Error()
	default:
		o.Reason = "the payload cannot be read back: " + err.Error()
		c.payloadBad.add(o)
	}
}

// Package monitor follows an LLMAuditTrail log over its tlog-tiles read API
// and verifies it as it grows, with package verify's parts: every
// checkpoint's log signature and witness quorum, consistency with the last
// verified checkpoint, every entry re-hashed into the checkpoint root, every
// tile compared with the hashes recomputed from the entries, and what each
// witness says it cosigned. It runs declarative CEL rules (see ParseRules)
// over every verified entry and delivers alerts as JSON lines, to a webhook
// and back into the log.
//
// Progress is kept in a SQLite database: the verified position, the tree
// frontier, rule state and an outbox of alerts advance in one transaction,
// so after a crash the monitor resumes without skipping an entry or losing
// an alert. verify.Audit is the one-shot audit of a whole log.
package monitor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// Defaults of Config.
const (
	DefaultPoll             = time.Second
	DefaultUnreachableAfter = 2 * time.Minute
	DefaultQuorumAfter      = 5 * time.Minute
	DefaultWitnessLag       = time.Minute
	DefaultMaxBatch         = 1 << 16
	DefaultMaxPending       = 10_000
	DefaultInstance         = "default"
	DefaultStatusInterval   = 15 * time.Minute
)

// StartAtEnd as Config.Start makes a monitor without state start at the
// log's current size.
const StartAtEnd = -1

// Config configures a Monitor; the field comments are the reference. Zero
// values take the defaults above.
type Config struct {
	// Log is the log, read through its tlog-tiles API with the client's
	// token (a log-wide read token for a private log). Required.
	Log *client.Client
	// LogKey verifies the log's checkpoints. Required.
	LogKey note.Verifier
	// Policy, if set, is the witness policy: checkpoints without its quorum
	// are not used, and every witness with a URL is asked what it cosigned.
	Policy *checkpoint.Policy
	// Rules are evaluated over every verified entry (nil: integrity only).
	Rules *Rules
	// StateDir holds the state database (created 0700). Required.
	StateDir string
	// Start is where a monitor without state begins: an entry index, or
	// StartAtEnd. Ignored when state exists.
	Start int64
	// Webhook, if set, receives every alert as a JSON POST.
	Webhook string
	// AppendTo, if set, is a client of the log with a token that may append
	// monitor.alert events (monitor scope): every alert is appended to
	// the log as a monitor.alert event (except alerts about monitor.alert
	// entries, which would loop).
	AppendTo *client.Client
	// Instance names this monitor in appended alerts (session
	// "monitor.<Instance>"). Default "default".
	Instance string
	// StatusInterval: with AppendTo, a monitor.status event (what the
	// monitor verified, how many alerts it raised since the last one) is
	// appended this often, so the log shows that it was watched (EU AI Act
	// Art. 72). Default 15m; negative: never.
	StatusInterval time.Duration
	// Poll is how often the checkpoint is read. Default 1s.
	Poll time.Duration
	// UnreachableAfter: a health alert is raised when the log cannot be
	// read (or alerts cannot be delivered) for this long. Default 2m.
	UnreachableAfter time.Duration
	// QuorumAfter: a health alert is raised when the log's checkpoints
	// lack the witness quorum for this long. Default 5m.
	QuorumAfter time.Duration
	// MaxCheckpointAge: if positive, a health alert is raised when neither
	// the checkpoint nor its newest witness cosignature changed for this
	// long. Off by default: an idle, unwitnessed log does not republish.
	MaxCheckpointAge time.Duration
	// WitnessLag is how long a witness may have cosigned a larger tree than
	// the log serves before that counts as a split view. Default 1m.
	WitnessLag time.Duration
	// MaxBatch is the most entries held in memory at once; larger catch-ups
	// are verified in a first pass (32 bytes per entry) and evaluated in
	// chunks. Default 65,536.
	MaxBatch int
	// MaxPending bounds alerts waiting for the webhook or the log; beyond
	// it the monitor stops advancing until they are delivered. Default 10,000.
	MaxPending int
	// Export, if set, receives every verified entry before the monitor
	// records it as evaluated (cmd/monitor --otlp-export: as OTLP log
	// records); until it succeeds the monitor does not advance. Alerts
	// reach it as the log's monitor.alert entries (with AppendTo).
	Export ExportFunc
	// Stdout receives alerts as JSON lines. Default os.Stdout.
	Stdout io.Writer
	// HTTPClient is used for every request. Default: 30s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Monitor follows one log.
type Monitor struct {
	cfg    Config
	origin string
	src    verify.Source
	sc     *verify.Scanner
	st     *store
	en     *engine
	logger *slog.Logger

	pos   *position
	heads []head // recent verified heads, ascending by size

	outMu sync.Mutex
	wake  map[string]chan struct{}

	// status events: when the last went out, and the alerts raised by then
	raised       atomic.Int64
	lastStatus   time.Time
	statusRaised int64

	// health, touched only by the Run goroutine
	unreachableSince   time.Time
	unreachableAlerted bool
	quorumSince        time.Time
	quorumAlerted      bool
	lastRaw            []byte
	lastChange         time.Time
	staleAlerted       bool
	latestServed       uint64
	witnessAhead       map[string]time.Time
}

// New checks cfg and opens the state directory.
func New(cfg Config) (*Monitor, error) {
	if cfg.Log == nil || cfg.LogKey == nil || cfg.StateDir == "" {
		return nil, errors.New("monitor: Log, LogKey and StateDir are required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.UnreachableAfter <= 0 {
		cfg.UnreachableAfter = DefaultUnreachableAfter
	}
	if cfg.QuorumAfter <= 0 {
		cfg.QuorumAfter = DefaultQuorumAfter
	}
	if cfg.WitnessLag <= 0 {
		cfg.WitnessLag = DefaultWitnessLag
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Instance == "" {
		cfg.Instance = DefaultInstance
	}
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Start < StartAtEnd {
		return nil, fmt.Errorf("monitor: bad start index %d", cfg.Start)
	}
	src := cfg.Log.Tiles()
	st, err := openStore(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	m := &Monitor{
		cfg: cfg, origin: cfg.LogKey.Name(), src: src, sc: verify.NewScanner(src, cfg.LogKey.Name()).WithBodies(cfg.Log), st: st, logger: cfg.Logger,
		wake: map[string]chan struct{}{}, witnessAhead: map[string]time.Time{},
	}
	if m.pos, err = st.loadPosition(); err != nil {
		st.close()
		return nil, err
	}
	if m.pos != nil {
		if m.pos.Origin != m.origin {
			st.close()
			return nil, fmt.Errorf("state in %s belongs to log %q, not %q", cfg.StateDir, m.pos.Origin, m.origin)
		}
		if _, err := m.pos.tree(); err != nil {
			st.close()
			return nil, err
		}
	}
	if m.heads, err = st.loadHeads(1024); err != nil {
		st.close()
		return nil, err
	}
	fromStart := m.pos != nil && m.pos.FromStart
	m.en = newEngine(cfg.Rules, m.origin, fromStart, st, cfg.Logger)
	if _, err := st.preload(m.en, 100_000); err != nil {
		st.close()
		return nil, fmt.Errorf("loading rule state: %w", err)
	}
	return m, nil
}

// Close closes the state database.
func (m *Monitor) Close() error { return m.st.close() }

// Position reports the verified position: entries [0, pos) were evaluated,
// and size is the size of the last verified checkpoint.
func (m *Monitor) Position() (pos, size uint64) {
	if m.pos == nil {
		return 0, 0
	}
	return m.pos.Pos, m.pos.Size
}

// Run follows the log until ctx is done. It returns nil on cancellation
// and an error only when the monitor cannot go on (its state cannot be
// written). Transient read errors are retried; they are alerted only when
// they last longer than UnreachableAfter.
func (m *Monitor) Run(ctx context.Context) error {
	if err := m.redeliverStdout(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Every wake channel is made before a delivery loop reads m.wake.
	if m.cfg.Webhook != "" {
		m.wake[sinkWebhook] = make(chan struct{}, 1)
	}
	if m.cfg.AppendTo != nil {
		m.wake[sinkAppend] = make(chan struct{}, 1)
	}
	if m.cfg.Webhook != "" {
		wg.Go(func() {
			m.deliverLoop(ctx, sinkWebhook, func(ctx context.Context, a Alert) error {
				return postWebhook(ctx, m.cfg.HTTPClient, m.cfg.Webhook, a)
			})
		})
	}
	if m.cfg.AppendTo != nil {
		wg.Go(func() {
			m.deliverLoop(ctx, sinkAppend, func(ctx context.Context, a Alert) error {
				return appendAlert(ctx, m.cfg.AppendTo, m.cfg.Instance, a)
			})
		})
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := m.step(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errFatal):
			return err
		case err != nil:
			m.logger.Warn("reading the log failed; will retry", "error", err)
			if err := m.noteUnreachable(ctx, err); err != nil {
				return err
			}
		default:
			m.unreachableSince, m.unreachableAlerted = time.Time{}, false
			m.maybeStatus(ctx)
		}
		t.Reset(m.cfg.Poll)
	}
}

// errFatal wraps errors that stop Run: state that cannot be written.
var errFatal = errors.New("monitor cannot continue")

func fatal(err error) error { return fmt.Errorf("%w: %w", errFatal, err) }

// step reads the checkpoint once and does whatever it calls for.
func (m *Monitor) step(ctx context.Context) error {
	raw, err := m.src.ReadCheckpoint(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("the log has not published a checkpoint")
	}
	if err != nil {
		return err
	}
	now := time.Now()
	if !bytes.Equal(raw, m.lastRaw) {
		m.lastRaw, m.lastChange, m.staleAlerted = raw, now, false
	}
	cp, err := api.VerifyCheckpoint(raw, m.cfg.LogKey, m.cfg.Policy)
	switch {
	case errors.Is(err, checkpoint.ErrNoQuorum):
		if m.quorumSince.IsZero() {
			m.quorumSince = now
		}
		m.logger.Debug("checkpoint lacks the witness quorum", "since", m.quorumSince)
		if !m.quorumAlerted && now.Sub(m.quorumSince) >= m.cfg.QuorumAfter {
			m.quorumAlerted = true
			return m.raise(ctx, m.health(verify.RuleWitnessQuorum, "high", m.quorumSince,
				fmt.Sprintf("the log's checkpoints have lacked the witness quorum for %s", now.Sub(m.quorumSince).Round(time.Second))))
		}
		return nil
	case err != nil:
		return m.raise(ctx, Alert{
			ID: verify.FindingID(m.origin, verify.RuleCheckpointSignature, hex.EncodeToString(hashOf(raw))), Rule: verify.RuleCheckpointSignature,
			Severity: "critical", Source: SourceIntegrity, Origin: m.origin,
			Message: fmt.Sprintf("the log served a checkpoint that does not verify with its key: %v", err),
			Details: map[string]any{"checkpoint": string(raw)},
		})
	}
	m.quorumSince, m.quorumAlerted = time.Time{}, false
	m.latestServed = max(m.latestServed, cp.Size)
	if err := m.checkStale(ctx, raw, now); err != nil {
		return err
	}
	if m.pos == nil {
		if err := m.init(ctx, cp, raw); err != nil {
			return err
		}
	}
	switch {
	case m.pos == nil:
		return nil
	case m.pos.Checkpoint != nil && cp.Size < m.pos.Size:
		return m.raise(ctx, m.forkAlert(raw, cp, fmt.Sprintf("the log signed a checkpoint of size %d, smaller than the verified size %d", cp.Size, m.pos.Size)))
	case m.pos.Checkpoint != nil && cp.Size == m.pos.Size && !bytes.Equal(cp.Hash, m.pos.Root):
		return m.raise(ctx, m.forkAlert(raw, cp, fmt.Sprintf("the log signed two roots for size %d: %x (verified) and %x", cp.Size, m.pos.Root, cp.Hash)))
	case cp.Size > m.pos.Pos:
		if n, err := m.pendingDeliveries(ctx); err != nil {
			return fatal(err)
		} else if n > m.cfg.MaxPending {
			m.logger.Warn("too many alerts await delivery; not advancing", "pending", n)
			return nil
		}
		if err := m.advance(ctx, cp, raw); err != nil {
			return err
		}
	}
	return m.checkWitnesses(ctx)
}

func (m *Monitor) forkAlert(raw []byte, cp *fmtlog.Checkpoint, msg string) Alert {
	return Alert{
		ID: verify.FindingID(m.origin, verify.RuleFork, hex.EncodeToString(hashOf(raw))), Rule: verify.RuleFork, Severity: "critical",
		Source: SourceIntegrity, Origin: m.origin, Message: msg, TreeSize: cp.Size,
		Details: map[string]any{"checkpoint": string(raw), "verified_size": m.pos.Size, "verified_root": hex.EncodeToString(m.pos.Root)},
	}
}

// init creates the state of a monitor that has none, at Config.Start.
func (m *Monitor) init(ctx context.Context, cp *fmtlog.Checkpoint, raw []byte) error {
	start := uint64(m.cfg.Start)
	if m.cfg.Start == StartAtEnd || start > cp.Size {
		if m.cfg.Start != StartAtEnd {
			m.logger.Warn("start index is beyond the log's size; starting at its end", "start", m.cfg.Start, "size", cp.Size)
		}
		start = cp.Size
	}
	t, err := verify.TreeFromTiles(start, cp.Size, func(l, i uint64, w uint8) ([]byte, error) { return m.src.ReadTile(ctx, l, i, w) })
	if err != nil {
		return err
	}
	p := &position{Origin: m.origin, Pos: start, Levels: t.Levels(), FromStart: start == 0}
	var h *head
	if start == cp.Size {
		root, err := t.Root()
		if err != nil {
			return err
		}
		if !bytes.Equal(root, cp.Hash) {
			return m.raise(ctx, Alert{
				ID: verify.FindingID(m.origin, verify.RuleTileMismatch, "init/"+hex.EncodeToString(hashOf(raw))), Rule: verify.RuleTileMismatch,
				Severity: "critical", Source: SourceIntegrity, Origin: m.origin, TreeSize: cp.Size,
				Message: fmt.Sprintf("the log's tiles at size %d do not reproduce its checkpoint root; cannot start there", cp.Size),
			})
		}
		p.Checkpoint, p.Size, p.Root = raw, cp.Size, cp.Hash
		h = &head{Size: cp.Size, Root: cp.Hash, Observed: time.Now().UTC()}
	}
	m.en.fromStart = p.FromStart
	// What the log's compliance configuration set before the start.
	if err := m.loadConfigs(ctx, start); err != nil {
		return err
	}
	m.logger.Info("starting to follow the log", "origin", m.origin, "start", start, "size", cp.Size)
	return m.commit(ctx, commitSet{pos: p, head: h, writes: m.en.flush()}, nil)
}

// integration returns the evaluation context for entry index: the
// observation times of the verified heads around it (pending is a head
// about to be committed, larger than all others).
func (m *Monitor) integration(index uint64, pending *head) evalContext {
	var ec evalContext
	i := sort.Search(len(m.heads), func(i int) bool { return m.heads[i].Size > index })
	if i > 0 {
		t := m.heads[i-1].Observed
		ec.integratedAfter = &t
	}
	if i < len(m.heads) {
		t := m.heads[i].Observed
		ec.integratedBefore = &t
	} else if pending != nil && pending.Size > index {
		t := pending.Observed
		ec.integratedBefore = &t
	}
	return ec
}

// advance verifies the entries up to the checkpoint cp and evaluates them.
func (m *Monitor) advance(ctx context.Context, cp *fmtlog.Checkpoint, raw []byte) error {
	base, err := m.pos.tree()
	if err != nil {
		return fatal(err)
	}
	n := cp.Size - m.pos.Pos
	keep := n <= uint64(m.cfg.MaxBatch)
	var kept []verify.Entry
	var hashes [][]byte
	work := base.Clone()
	res, err := m.sc.Scan(ctx, work, cp.Size, cp.Size, verify.ScanOptions{Parse: keep, CheckTiles: true}, func(e verify.Entry) error {
		if keep {
			kept = append(kept, e)
		} else {
			hashes = append(hashes, e.Hash)
		}
		return nil
	})
	if err != nil {
		return err
	}
	root, err := work.Root()
	if err != nil {
		return fatal(err)
	}
	var proofErr error
	if m.pos.Checkpoint != nil && m.pos.Size > 0 && m.pos.Size < cp.Size {
		proofErr = m.servedConsistency(ctx, m.pos.Size, cp.Size, m.pos.Root, cp.Hash)
	}
	if !bytes.Equal(root, cp.Hash) {
		return m.raise(ctx, m.rootMismatch(raw, cp, root, res, proofErr)...)
	}
	var alerts []Alert
	for _, f := range res.Findings {
		alerts = append(alerts, alertOf(f))
	}
	if proofErr != nil {
		alerts = append(alerts, Alert{
			ID: verify.FindingID(m.origin, verify.RuleTileMismatch, fmt.Sprintf("consistency/%d/%d/%x", m.pos.Size, cp.Size, cp.Hash)), Rule: verify.RuleTileMismatch,
			Severity: "critical", Source: SourceIntegrity, Origin: m.origin, TreeSize: cp.Size,
			Message: fmt.Sprintf("the entries are consistent, but the consistency proof %d -> %d built from the log's tiles does not verify: %v", m.pos.Size, cp.Size, proofErr),
		})
	}
	h := &head{Size: cp.Size, Root: cp.Hash, Observed: time.Now().UTC()}
	if keep {
		if n > 0 && m.pos.Checkpoint == nil {
			m.logger.Info("verified the start position", "start", m.pos.Pos, "size", cp.Size)
		}
		for _, e := range kept {
			as, err := m.en.evaluate(e, m.integration(e.Index, h))
			if err != nil {
				return fatal(err)
			}
			for i := range as {
				as[i].TreeSize = cp.Size
			}
			alerts = append(alerts, as...)
		}
		if err := m.export(ctx, cp, raw, kept); err != nil {
			m.en = newEngine(m.cfg.Rules, m.origin, m.pos.FromStart, m.st, m.logger)
			return err
		}
		p := &position{Origin: m.origin, Checkpoint: raw, Size: cp.Size, Root: cp.Hash, Pos: cp.Size, Levels: work.Levels(), FromStart: m.pos.FromStart}
		return m.commit(ctx, commitSet{pos: p, writes: m.en.flush(), head: h}, alerts)
	}
	// Large catch-up: record the verified checkpoint, then evaluate in
	// chunks, checking that the entries read again are the verified ones.
	p := *m.pos
	p.Checkpoint, p.Size, p.Root = raw, cp.Size, cp.Hash
	if err := m.commit(ctx, commitSet{pos: &p, head: h}, alerts); err != nil {
		return err
	}
	m.logger.Info("verified a large range; evaluating it in chunks", "from", p.Pos, "to", cp.Size)
	first := p.Pos
	for m.pos.Pos < cp.Size {
		end := min(cp.Size, (m.pos.Pos/layout.TileWidth)*layout.TileWidth+uint64(m.cfg.MaxBatch))
		if end <= m.pos.Pos {
			end = min(cp.Size, m.pos.Pos+layout.TileWidth)
		}
		t, err := m.pos.tree()
		if err != nil {
			return fatal(err)
		}
		var chunk []Alert
		var read []verify.Entry
		var mismatch *Alert
		_, err = m.sc.Scan(ctx, t, end, cp.Size, verify.ScanOptions{Parse: true}, func(e verify.Entry) error {
			if !bytes.Equal(e.Hash, hashes[e.Index-first]) {
				idx := e.Index
				mismatch = &Alert{
					ID: verify.FindingID(m.origin, verify.RuleEntryMismatch, fmt.Sprintf("reread/%d/%x", idx, e.Hash)), Rule: verify.RuleEntryMismatch,
					Severity: "critical", Source: SourceIntegrity, Origin: m.origin, Index: &idx, TreeSize: cp.Size,
					Message: fmt.Sprintf("entry %d changed between two reads: the log serves different data for it", idx),
				}
				return errMismatch
			}
			as, err := m.en.evaluate(e, m.integration(e.Index, nil))
			if err != nil {
				return err
			}
			for i := range as {
				as[i].TreeSize = cp.Size
			}
			chunk = append(chunk, as...)
			if m.cfg.Export != nil {
				read = append(read, e)
			}
			return nil
		})
		if mismatch != nil {
			// Rule state may hold part of this chunk: start over from disk.
			m.en = newEngine(m.cfg.Rules, m.origin, m.pos.FromStart, m.st, m.logger)
			return m.raise(ctx, *mismatch)
		}
		if err != nil {
			m.en = newEngine(m.cfg.Rules, m.origin, m.pos.FromStart, m.st, m.logger)
			return err
		}
		if err := m.export(ctx, cp, raw, read); err != nil {
			m.en = newEngine(m.cfg.Rules, m.origin, m.pos.FromStart, m.st, m.logger)
			return err
		}
		np := *m.pos
		np.Pos, np.Levels = t.Size(), t.Levels()
		if err := m.commit(ctx, commitSet{pos: &np, writes: m.en.flush()}, chunk); err != nil {
			return err
		}
	}
	return nil
}

var errMismatch = errors.New("entry mismatch")

// rootMismatch explains why the entries do not reproduce cp's root.
func (m *Monitor) rootMismatch(raw []byte, cp *fmtlog.Checkpoint, root []byte, res *verify.ScanResult, proofErr error) []Alert {
	var alerts []Alert
	for _, f := range res.Findings {
		if f.Rule == verify.RuleEntryMismatch {
			alerts = append(alerts, alertOf(f))
		}
	}
	sort.Slice(res.LeafMismatch, func(i, j int) bool { return res.LeafMismatch[i] < res.LeafMismatch[j] })
	for i, idx := range res.LeafMismatch {
		if i == 100 {
			break
		}
		f := verify.RewrittenEntry(idx)
		f.ID, f.Origin, f.TreeSize = verify.FindingID(m.origin, f.Rule, fmt.Sprintf("tile/%d/%x", idx, cp.Hash)), m.origin, cp.Size
		alerts = append(alerts, alertOf(f))
	}
	if len(alerts) > 0 {
		return alerts
	}
	msg := verify.RootMismatch(cp.Size, cp.Hash, root).Message
	if m.pos.Checkpoint != nil {
		msg += fmt.Sprintf("; it is not consistent with the verified checkpoint of size %d", m.pos.Size)
		if proofErr != nil {
			msg += fmt.Sprintf(" (consistency proof: %v)", proofErr)
		}
	}
	return []Alert{m.forkAlert(raw, cp, msg)}
}

// tileFetcher adapts the source to Tessera's client.
func (m *Monitor) tileFetcher() tclient.TileFetcherFunc {
	return func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
		return m.src.ReadTile(ctx, level, index, p)
	}
}

// servedConsistency builds a consistency proof from the log's tiles with
// Tessera's client and verifies it.
func (m *Monitor) servedConsistency(ctx context.Context, from, to uint64, fromRoot, toRoot []byte) error {
	return verify.Consistency(ctx, m.tileFetcher(), from, to, fromRoot, toRoot)
}

func hashOf(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

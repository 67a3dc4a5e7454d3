// Package log is the audit engine: it turns audit events into canonical
// leaves, chains them per session, stores their payloads in the vault and
// appends the leaves to a Tessera log; it answers session reads from the
// session index and discloses payloads, recording each disclosure in the
// log before it is answered.
package log

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	tapi "github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/index"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/journal"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// Outcomes a caller acts on.
var (
	// ErrPushback: too many events are in flight; retry later (HTTP 503).
	ErrPushback = fmt.Errorf("log is overloaded: %w", tessera.ErrPushback)
	// ErrNotPublished: the index or size asked for is beyond the latest
	// published checkpoint.
	ErrNotPublished = errors.New("not covered by a published checkpoint yet")
	// ErrLeafVersion: New was asked for a leaf version other than the one
	// the log's entries have, or one it does not append.
	ErrLeafVersion = errors.New("leaf version")
	// ErrNoCheckpoint: the log has not published a checkpoint yet.
	ErrNoCheckpoint = errors.New("no checkpoint published yet")
	// ErrUnavailable: the database or the object store behind the log
	// cannot be reached; retry later (HTTP 503).
	ErrUnavailable = errors.New("the log's storage is unavailable")
	// ErrSequencerStopped: the sequencer met a journal record it cannot
	// read and stopped rather than skip it; events stay durable in the
	// journal, none gets an index until an operator looks (the server
	// logs the record's position).
	ErrSequencerStopped = errors.New("the sequencer stopped")
)

// Defaults of Config.
const (
	// DefaultBatchMaxAge is Tessera's batch age. The sequencer hands Tessera
	// a whole chunk of the journal at once, so a short age costs no batching:
	// 1 ms gave 20.6 ms time to index at 8 clients against 44 ms at 10 ms, and
	// more events/s at 512 clients (docs/performance.md).
	DefaultBatchMaxAge = time.Millisecond
	// DefaultSequenceLinger is how long the sequencer waits for a chunk of
	// the journal to fill while no one waits for an index (appends
	// acknowledged at durability only): one chunk of 10 ms instead of
	// several small ones costs less CPU per event in Tessera's batches, the
	// vault's and the index's commits (docs/performance.md).
	DefaultSequenceLinger = 10 * time.Millisecond
	// DefaultBatchMaxSize is Tessera's largest batch.
	DefaultBatchMaxSize = 1024
	// DefaultCheckpointInterval is how often a checkpoint is published (the
	// POSIX driver's minimum is 100 ms).
	DefaultCheckpointInterval = time.Second
	// DefaultCheckpointRepublish is how soon a log that has not grown
	// publishes its checkpoint again (Tessera's default is 10 minutes): a
	// witness added at a restart cosigns the existing checkpoint within a
	// minute, not at the next write.
	DefaultCheckpointRepublish = time.Minute
	// DefaultMaxInFlight bounds the events being appended at once.
	DefaultMaxInFlight = 16384
	// DefaultMaxSessionsCached bounds the session heads kept in memory.
	DefaultMaxSessionsCached = 100_000
	// DefaultIndexWait bounds how long a write through the API waits for
	// its index before it is answered without it (durable all the same).
	DefaultIndexWait = 5 * time.Second
	// DefaultSessionWait bounds how long a session read waits for the index
	// to cover every acknowledged write.
	DefaultSessionWait = 10 * time.Second
)

// Config configures a Log. Zero values take the documented defaults.
type Config struct {
	// Driver is the Tessera storage driver.
	Driver tessera.Driver
	// Signer signs checkpoints; its name is the log's origin.
	Signer note.Signer
	// Verifier is the verifier of Signer's key.
	Verifier note.Verifier
	// VerifyCheckpoint verifies a checkpoint before it is handed out in a
	// receipt or used for a proof. Default: the log signature only
	// (checkpoint.Verify with Verifier).
	VerifyCheckpoint func(raw []byte) (*fmtlog.Checkpoint, error)
	// Witnesses and WitnessOptions, if set, are passed to Tessera so that
	// every published checkpoint carries the cosignatures they require.
	Witnesses      *tessera.WitnessGroup
	WitnessOptions *tessera.WitnessOptions
	// Vault holds payloads (and, on a log of leaf version 3, the events'
	// bodies). Required.
	Vault *vault.Vault
	// LeafVersion is the version of the entries the log appends: 0 or 2
	// (event.LeafVersion: each entry is the event) or 3
	// (event.LeafVersionEnvelope: each entry is an envelope that commits
	// to the event, whose body the vault keeps; docs/leaf-format.md) or 4
	// (event.LeafVersionFields: the envelope also commits to each field of
	// the body). A log keeps the version of its first entry: New refuses another
	// (ErrLeafVersion).
	LeafVersion int
	// Journal opens the write-ahead journal, where an append is
	// acknowledged. Required.
	Journal journal.Opener
	// IndexDB opens the session index over the log's reader (index.Open
	// with a database, usually). Required.
	IndexDB IndexStore
	// BatchMaxAge bounds how long an Add waits for its batch
	// (DefaultBatchMaxAge).
	BatchMaxAge time.Duration
	// SequenceLinger is how long the sequencer waits for more of the
	// journal when it took less than a full chunk and no one waits for an
	// index (an append with WaitIndex, a read that waits for the journal
	// to be sequenced): a waiter ends the wait at once. 0 is
	// DefaultSequenceLinger; negative, no wait. Only a journal that can be
	// read without waiting (journal.File) is waited on.
	SequenceLinger time.Duration
	// BatchMaxSize is the maximum number of entries per batch
	// (DefaultBatchMaxSize).
	BatchMaxSize uint
	// CheckpointInterval is how often a checkpoint is published
	// (DefaultCheckpointInterval).
	CheckpointInterval time.Duration
	// CheckpointRepublish is how often the checkpoint of a log that has not
	// grown is published again, cosigned afresh (DefaultCheckpointRepublish;
	// at least CheckpointInterval).
	CheckpointRepublish time.Duration
	// MaxInFlight bounds events being appended at once; beyond it Append
	// returns ErrPushback (DefaultMaxInFlight).
	MaxInFlight int
	// IndexWait bounds how long a WaitIndexBounded append waits for its
	// events to be sequenced (DefaultIndexWait).
	IndexWait time.Duration
	// MaxSessionsCached bounds the in-memory session heads
	// (DefaultMaxSessionsCached).
	MaxSessionsCached int
	// CheckpointPoll is how often receipts look for a new checkpoint
	// (default 25 ms; on a bucket each look is a GET, and the AWS driver
	// publishes at most once a second).
	CheckpointPoll time.Duration
	// Locker takes the locks of Lock, which serialise signings, erasures
	// and the like; with several instances, the shared database's
	// (sqldb.DB). Default: locks of this process.
	Locker sqldb.Locker
	// Health, if set, says whether the storage can be reached; a failed
	// append is ErrUnavailable when it does not.
	Health func(context.Context) error
	// UnstickPublication, if set, is called every few seconds to reset the
	// driver's time of the last publication when it lies in the future (a
	// clock stepped back), which would otherwise stop checkpoints until the
	// clock caught up (backend.Backend.UnstickPublication).
	UnstickPublication func(context.Context) (bool, error)
	Logger             *slog.Logger

	// holdSequencer, if set, keeps the sequencer from starting until it
	// is closed; afterSequence, if set, is called after each chunk is
	// sequenced and before its records are released (tests).
	holdSequencer <-chan struct{}
	afterSequence func(ctx context.Context)
}

// IndexStore opens the session index once the log reader exists.
type IndexStore func(tessera.LogReader) (*index.Index, error)

// Log is the audit engine. It is safe for concurrent use.
type Log struct {
	cfg      Config
	origin   string
	appender *tessera.Appender
	shutdown func(context.Context) error
	reader   tessera.LogReader     // entries as events (bodies on a version 3 log)
	stored   tessera.LogReader     // entries as the log holds them
	sealer   *event.EnvelopeSealer // leaf versions 3 and 4 only
	sealedMu sync.Mutex
	sealed   map[[32]byte][]byte // envelopes of acknowledged bodies, until sequenced (sealedEntry)
	awaiter  *tessera.PublicationAwaiter
	index    *index.Index
	vault    *vault.Vault
	logger   *slog.Logger
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	inflight chan struct{}
	journal  journal.Store
	seq      *sequencer
	closing  atomic.Bool
	seqStop  context.CancelFunc
	stopped  chan struct{} // closed when the sequencer is stopped (Close)
	stopOnce sync.Once

	smu      sync.Mutex
	sessions map[sessionKey]*session

	// unlockedForTest appends to shared chains without locking them (the
	// test that shows the lock is needed).
	unlockedForTest bool
	// sdForTest: SetFieldCommitmentForTest.
	sdForTest atomic.Pointer[func(c *event.Commitment, salt, payload []byte)]
}

type sessionKey struct{ tenant, session string }

// session is the head of a session's hash chain.
type session struct {
	mu       sync.Mutex
	refs     int // guarded by Log.smu
	loaded   bool
	next     uint64 // seq of the next event
	prev     []byte // leaf hash of the last event
	appended bool   // this process appended to the session
	// pending counts events of the session durable and not yet sequenced;
	// lastIndex is the index of the last one sequenced.
	pending   atomic.Int64
	lastIndex atomic.Uint64
	// once holds the ids AppendOnce appended to the session in this
	// process, by seq, until the session index has them (once.go).
	once map[string]uint64
}

// New starts a log: the Tessera appender, the session index (caught up with
// the log before New returns) and its follower.
func New(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Driver == nil || cfg.Signer == nil || cfg.Verifier == nil || cfg.Vault == nil || cfg.IndexDB == nil || cfg.Journal == nil {
		return nil, errors.New("log: Driver, Signer, Verifier, Vault, IndexDB and Journal are required")
	}
	if cfg.BatchMaxAge == 0 {
		cfg.BatchMaxAge = DefaultBatchMaxAge
	}
	if cfg.BatchMaxSize == 0 {
		cfg.BatchMaxSize = DefaultBatchMaxSize
	}
	if cfg.SequenceLinger == 0 {
		cfg.SequenceLinger = DefaultSequenceLinger
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.CheckpointRepublish == 0 {
		cfg.CheckpointRepublish = DefaultCheckpointRepublish
	}
	cfg.CheckpointRepublish = max(cfg.CheckpointRepublish, cfg.CheckpointInterval)
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.IndexWait == 0 {
		cfg.IndexWait = DefaultIndexWait
	}
	if cfg.MaxSessionsCached == 0 {
		cfg.MaxSessionsCached = DefaultMaxSessionsCached
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Locker == nil {
		cfg.Locker = sqldb.NewLocker()
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(cfg.Signer).
		WithBatching(cfg.BatchMaxSize, cfg.BatchMaxAge).
		WithCheckpointInterval(cfg.CheckpointInterval).
		WithCheckpointRepublishInterval(cfg.CheckpointRepublish).
		// Tessera removes at most 100 obsolete partial bundles per run; at
		// the default one-minute interval that keeps up with only ~430
		// entries/s, so partial bundles pile up under load. Every 2 s keeps
		// up with 12,800 entries/s. It removes only the partials of full
		// bundles; on posix the storage also removes, after each
		// checkpoint, those of the newest bundle that no checkpoint needs
		// any more (backend/partials.go).
		WithGarbageCollectionInterval(2 * time.Second)
	if cfg.Witnesses != nil {
		opts = opts.WithWitnesses(*cfg.Witnesses, cfg.WitnessOptions)
	}
	ctx, cancel := context.WithCancel(ctx)
	appender, shutdown, tr, err := tessera.NewAppender(ctx, cfg.Driver, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("starting tessera appender: %w", err)
	}
	stored := storageReader{tr}
	var reader tessera.LogReader = stored
	var sealer *event.EnvelopeSealer
	switch cfg.LeafVersion {
	case 0, event.LeafVersion:
	case event.LeafVersionEnvelope, event.LeafVersionFields:
		if sealer, err = event.NewEnvelopeSealerVersion(cfg.Vault.EnvelopeSecret(), cfg.LeafVersion); err != nil {
			stopTessera(ctx, shutdown, cfg.Logger)
			cancel()
			return nil, err
		}
		reader = bodyReader{storageReader: stored, vault: cfg.Vault}
	default:
		stopTessera(ctx, shutdown, cfg.Logger)
		cancel()
		return nil, fmt.Errorf("%w: version %d is not one the log appends (2, 3 or 4)", ErrLeafVersion, cfg.LeafVersion)
	}
	if err := checkLeafVersion(ctx, stored, sealer); err != nil {
		stopTessera(ctx, shutdown, cfg.Logger)
		cancel()
		return nil, err
	}
	idx, err := cfg.IndexDB(reader)
	if err != nil {
		stopTessera(ctx, shutdown, cfg.Logger)
		cancel()
		return nil, err
	}
	l := &Log{
		cfg:      cfg,
		origin:   cfg.Signer.Name(),
		appender: appender,
		shutdown: shutdown,
		reader:   reader,
		stored:   stored,
		sealer:   sealer,
		awaiter:  tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, checkpointPoll(cfg)),
		index:    idx,
		vault:    cfg.Vault,
		logger:   cfg.Logger,
		cancel:   cancel,
		inflight: make(chan struct{}, cfg.MaxInFlight),
		sessions: make(map[sessionKey]*session),
		seq:      newSequencer(),
		stopped:  make(chan struct{}),
	}
	fail := func(err error) (*Log, error) {
		if l.seqStop != nil {
			l.seqStop()
		}
		l.wg.Wait()
		stopTessera(ctx, shutdown, l.logger)
		cancel()
		if l.journal != nil {
			l.journal.Close()
		}
		return nil, err
	}
	j, err := cfg.Journal()
	if err != nil {
		return fail(fmt.Errorf("opening the journal: %w", err))
	}
	l.journal = j
	seqCtx, seqStop := context.WithCancel(ctx)
	l.seqStop = seqStop
	l.runSequencer(seqCtx)
	// What the journal held goes into the log before appends are taken:
	// the session heads are read from the log.
	if rec := j.Recovered(); rec > 0 {
		l.logger.Info("putting the records the journal holds into the log", "records", j.Depth())
		if err := l.waitPosition(ctx, rec); err != nil {
			return fail(fmt.Errorf("recovering the journal: %w", err))
		}
		l.logger.Info("journal recovered")
	}
	if err := idx.CatchUp(ctx); err != nil {
		return fail(fmt.Errorf("catching up session index: %w", err))
	}
	l.wg.Go(func() { idx.Follow(ctx, 100*time.Millisecond) })
	if _, shared := j.(journal.HeadStore); shared {
		l.wg.Go(func() { l.resolveShared(ctx, 100*time.Millisecond) })
	}
	if cfg.UnstickPublication != nil {
		l.wg.Go(func() { l.guardPublication(ctx) })
	}
	return l, nil
}

// stopTessera shuts down an appender that New will not hand out: anything
// the sequencer added gets integrated, unless New's caller gave up (ctx
// ended: then, as after a crash, the next start finishes the work).
func stopTessera(ctx context.Context, shutdown func(context.Context) error, logger *slog.Logger) {
	if ctx.Err() != nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		logger.Warn("stopping the log after a failed start", "error", err)
	}
}

// checkpointPoll is how often receipts look for a new checkpoint.
func checkpointPoll(cfg Config) time.Duration {
	if cfg.CheckpointPoll > 0 {
		return cfg.CheckpointPoll
	}
	return 25 * time.Millisecond
}

// publicationGuard is how often guardPublication looks.
const publicationGuard = 5 * time.Second

// guardPublication keeps checkpoints publishing across a clock stepped
// back (Config.UnstickPublication).
func (l *Log) guardPublication(ctx context.Context) {
	t := time.NewTicker(publicationGuard)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ok, err := l.cfg.UnstickPublication(ctx); err != nil && ctx.Err() == nil {
			l.logger.Warn("checking the time of the last publication", "error", err)
		} else if ok {
			l.logger.Warn("the last checkpoint's publication time was in the future (the clock stepped back); reset it so that checkpoints publish again")
		}
	}
}

// Origin is the log's origin line (the checkpoint key name).
func (l *Log) Origin() string { return l.origin }

// Reader gives read access to the log's tiles, bundles and checkpoint, as
// the log holds them: on a log of leaf version 3 the bundles hold
// envelopes (Bodies reads the events).
func (l *Log) Reader() tessera.LogReader { return l.stored }

// Index is the session index.
func (l *Log) Index() *index.Index { return l.index }

// Close publishes a checkpoint covering every acknowledged entry (Tessera's
// shutdown), then stops background work. It does not close the vault.
//
// Appends that arrive once Close has begun fail with ErrClosed; Close
// waits (as long as ctx allows) for every acknowledged event to be
// sequenced. What it cannot sequence stays in the journal and goes into the
// log when the log is opened again.
//
// Close may be called more than once; the calls after the first return nil
// and do nothing (the checkpoint signer may be closed by then).
func (l *Log) Close(ctx context.Context) error {
	if l.closing.Swap(true) {
		return nil
	}
	werr := l.waitJournal(ctx)
	l.seqStop()
	l.stopOnce.Do(func() { close(l.stopped) })
	err := l.shutdown(ctx)
	l.cancel()
	l.wg.Wait()
	l.journal.Close()
	if werr != nil {
		l.logger.Warn("closing with events not yet sequenced; they stay in the journal for the next start", "error", werr)
	}
	return err
}

type pending struct {
	p    *event.Prepared
	key  sessionKey
	id   string
	leaf *event.Leaf
	data []byte
	hash []byte // event.LeafHash(data)
}

// Append validates, stores and appends events for tenant, written by w.
// Validation is all-or-nothing: one invalid event rejects the whole call
// (ErrInvalidEvent) and nothing is appended. Events of one session are
// chained in the order given. A subject and an actor's on_behalf_of are
// replaced by their pseudonyms (see vault.Pseudonym) before anything is
// written; an event that corrects another must name an existing entry of the
// same tenant. When Append returns without error, every event is durably in
// the log (sequenced and integrated) and its payload durably in the vault.
//
// Append does not check who may append which kind: the caller does
// (event.Permit), since the server appends reserved kinds itself. It does
// keep the server's sessions and actor to the server: an event written by
// a token (via api or proxy) in a reserved session, or as
// event.ServerActor, fails with event.ErrReservedSession and nothing is
// appended.
func (l *Log) Append(ctx context.Context, tenant string, w event.Writer, reqs []*event.Request) ([]event.Appended, error) {
	return l.AppendWait(ctx, tenant, w, reqs, WaitIndex)
}

// Wait says when AppendWait returns.
type Wait int

const (
	// WaitIndex: once every event is sequenced (Appended.Index is set).
	WaitIndex Wait = iota
	// WaitDurable: once every event and payload is durable in the journal;
	// the log sequences them behind (Appended.Indexed is false; Lookup
	// answers an event's index once it has one).
	WaitDurable
	// WaitIndexBounded: as WaitIndex, but for Config.IndexWait at most;
	// events not sequenced by then come back durable, without their index
	// (the write API answers 202).
	WaitIndexBounded
)

// AppendWait is Append, returning at durability or once sequenced.
func (l *Log) AppendWait(ctx context.Context, tenant string, w event.Writer, reqs []*event.Request, wait Wait) (out []event.Appended, err error) {
	defer func() { l.observeAppend(len(reqs), err) }()
	out, _, err = l.appendWait(ctx, tenant, w, reqs, nil, wait, l.cfg.IndexWait)
	return out, err
}

// AppendWithin is AppendWait with WaitIndexBounded, bounded by d instead of
// Config.IndexWait (a write that waits for a receipt waits as long for its
// index).
func (l *Log) AppendWithin(ctx context.Context, tenant string, w event.Writer, reqs []*event.Request, d time.Duration) (out []event.Appended, err error) {
	defer func() { l.observeAppend(len(reqs), err) }()
	out, _, err = l.appendWait(ctx, tenant, w, reqs, nil, WaitIndexBounded, d)
	return out, err
}

// appendWait appends reqs. With ids (AppendOnce), ids[i] is the id of
// reqs[i], and an event whose id the log already holds is left out and
// named in known.
func (l *Log) appendWait(ctx context.Context, tenant string, w event.Writer, reqs []*event.Request, ids []string, wait Wait, bound time.Duration) (_ []event.Appended, known []string, _ error) {
	out, err := l.appendWaitOnce(ctx, tenant, w, reqs, ids, &known, wait, bound)
	return out, known, err
}

func (l *Log) appendWaitOnce(ctx context.Context, tenant string, w event.Writer, reqs []*event.Request, ids []string, known *[]string, wait Wait, bound time.Duration) ([]event.Appended, error) {
	if !event.ValidID(tenant) {
		return nil, fmt.Errorf("%w: tenant %q is not a valid id", event.ErrInvalidEvent, tenant)
	}
	if w.Token == "" || !event.ValidVia(w.Via) {
		return nil, fmt.Errorf("log: a writer with a token and a via is required")
	}
	if ids != nil && len(ids) != len(reqs) {
		return nil, fmt.Errorf("log: %d ids for %d events", len(ids), len(reqs))
	}
	if l.closing.Load() {
		return nil, ErrClosed
	}
	if wait != WaitDurable {
		// Its events are waited for: the sequencer takes them at once.
		defer l.seq.urge()()
	}
	// A write that would be refused below is refused before its events
	// are prepared: at MaxInFlight, refusals come as fast as clients
	// retry, and each should cost little.
	if l.Busy(len(reqs)) {
		l.observePushback()
		return nil, ErrPushback
	}
	ps := make([]*pending, len(reqs))
	for i, r := range reqs {
		if w.Via != event.ViaServer {
			if err := event.PermitSession(r.Session, r.Actor); err != nil {
				if len(reqs) > 1 {
					return nil, fmt.Errorf("events[%d]: %w", i, err)
				}
				return nil, err
			}
		}
		p, err := event.Prepare(r)
		if err != nil {
			if len(reqs) > 1 {
				return nil, fmt.Errorf("events[%d]: %w", i, err)
			}
			return nil, err
		}
		id := event.NewID()
		if ids != nil {
			if id = ids[i]; !validEventID(id) {
				return nil, fmt.Errorf("log: event id %q is not 32 lower-case hex digits", event.Clip(id, 40))
			}
		}
		ps[i] = &pending{p: p, key: sessionKey{tenant, r.Session}, id: id}
		ps[i].leaf = &event.Leaf{
			V: event.LeafVersion, ID: ps[i].id, Kind: r.Kind, Tenant: tenant, Session: r.Session,
			Actor: r.Actor, Subject: r.Subject, Writer: &w, Attributes: p.Attributes, Corrects: r.Corrects,
		}
		// Size check with the widest values the server may assign.
		probe := *ps[i].leaf
		probe.Time, probe.Seq, probe.Prev = event.TimeFormat, math.MaxUint64, strings.Repeat("0", 64)
		if p.HasPayload {
			probe.Payload = &event.Commitment{Alg: event.CommitmentAlg, Digest: strings.Repeat("0", 64), Size: len(p.Payload), MediaType: p.MediaType}
			if disclosure.Disclosable(p.MediaType) {
				probe.Payload.SD, probe.Payload.SDV = strings.Repeat("0", 64), disclosure.Current
			}
		}
		if b, err := probe.Marshal(); err != nil {
			return nil, fmt.Errorf("%w: encoding leaf: %v", event.ErrInvalidEvent, err)
		} else if len(b) > event.MaxLeafSize {
			return nil, fmt.Errorf("%w: event leaf would be %d bytes, the limit is %d; move data into the payload", event.ErrInvalidEvent, len(b), event.MaxLeafSize)
		}
	}

	if err := l.checkCorrects(ctx, tenant, ps); err != nil {
		return nil, l.unavailable(ctx, err)
	}

	// Admission control: a place per event until it is sequenced.
	for i := range ps {
		select {
		case l.inflight <- struct{}{}:
		default:
			l.release(i)
			l.observePushback()
			return nil, ErrPushback
		}
	}
	held := len(ps)
	defer func() { l.release(held) }()

	// Personal data never reaches a leaf: pseudonyms, durable first.
	if err := l.pseudonymize(ctx, tenant, ps); err != nil {
		return nil, l.unavailable(ctx, err)
	}

	// Payloads are sealed now, go into the journal with their leaves, and
	// reach the vault's tables before their leaves reach the log.
	sealed := make(map[string]*vault.Sealed)
	var recs []vault.Record
	for _, pe := range ps {
		if !pe.p.HasPayload {
			continue
		}
		salt := make([]byte, 32)
		rand.Read(salt)
		pe.leaf.Payload = event.NewCommitment(salt, pe.p.Payload, pe.p.MediaType)
		l.fieldCommitment(pe.leaf.Payload, salt, pe.p.Payload, pe.p.MediaType)
		recs = append(recs, vault.Record{ID: pe.id, Tenant: tenant, Session: pe.leaf.Session, MediaType: pe.p.MediaType, Salt: salt, Payload: pe.p.Payload})
	}
	if len(recs) > 0 {
		ss, err := l.vault.Seal(ctx, recs...)
		if err != nil {
			return nil, l.unavailable(ctx, fmt.Errorf("sealing payloads: %w", err))
		}
		for i := range ss {
			sealed[ss[i].ID] = &ss[i]
		}
	}

	// Lock every session involved (in this process; a journal shared by
	// several instances checks their heads when it commits).
	keys := make([]sessionKey, 0, 1)
	for _, pe := range ps {
		if !slices.Contains(keys, pe.key) {
			keys = append(keys, pe.key)
		}
	}
	locked, err := l.lockChains(ctx, keys)
	if err != nil {
		return nil, l.unavailable(ctx, err)
	}
	unlocked := false
	defer func() {
		if !unlocked {
			locked.unlock()
		}
	}()

	if ids != nil {
		// Under the chain locks: the events the log holds already are left
		// out (once.go).
		var drop int
		if ps, drop, err = l.leaveOutKnown(ctx, locked, ps, known); err != nil {
			return nil, l.unavailable(ctx, err)
		}
		l.release(drop)
		held -= drop
		if len(ps) == 0 {
			return nil, nil
		}
	}
	_, shared := l.journal.(journal.HeadStore)
	ws := make([]*waiter, len(ps))
	at := time.Now()
	for i, pe := range ps {
		ws[i] = &waiter{id: pe.id, tenant: tenant, session: pe.key.session, at: at, done: make(chan struct{})}
		ws[i].slot.Store(true)
		if !shared {
			ws[i].sess = locked.sess[pe.key]
		}
	}
	// The places are the waiters' now: each is given back once, by the
	// sequencer answering the waiter (which, on a shared journal, may
	// find another instance's record of the same event while this append
	// is still trying) or by this append when it drops the waiter or
	// fails.
	held = 0
	committed := false
	defer func() {
		if !committed {
			for _, w := range ws {
				l.releaseSlot(w)
			}
		}
	}()
	var heads map[sessionKey]chainHead
	// chainOn chains every event on the heads head gives: its time, seq
	// and prev, its leaf and leaf hash, and its journal entry.
	chainOn := func(head func(sessionKey) chainHead) ([]*journal.Entry, error) {
		heads = make(map[sessionKey]chainHead, len(keys))
		for _, k := range keys {
			heads[k] = head(k)
		}
		now := time.Now().UTC().Format(event.TimeFormat)
		entries := make([]*journal.Entry, len(ps))
		for i, pe := range ps {
			h := heads[pe.key]
			pe.leaf.Time, pe.leaf.Seq, pe.leaf.Prev = now, h.next, ""
			if h.prev != nil {
				pe.leaf.Prev = hex.EncodeToString(h.prev)
			}
			data, err := pe.leaf.Marshal()
			if err != nil {
				return nil, err
			}
			hash := event.LeafHash(data)
			pe.data, pe.hash = data, hash
			rec := record{leaf: data, sealed: sealed[pe.id]}
			entries[i] = &journal.Entry{Data: rec.encode(), Tenant: pe.key.tenant, Session: pe.key.session,
				Seq: h.next, Prev: h.prev, Hash: hash, Tag: ws[i]}
			h.next, h.prev = h.next+1, hash
			heads[pe.key] = h
		}
		return entries, nil
	}
	chained, _ := l.journal.(chainedJournal)
	for try := 1; ; try++ {
		// Lost to other instances' groups: chained on the heads locked in
		// a transaction of its own, which cannot lose.
		lockFirst := try > groupHeadTries && chained != nil && ids == nil
		var entries []*journal.Entry
		if !lockFirst {
			var err error
			if entries, err = chainOn(locked.head); err != nil {
				return nil, err
			}
		}

		// Durable: the journal holds every leaf and sealed payload.
		for _, w := range ws {
			if w.sess != nil {
				w.sess.pending.Add(1)
			}
			l.seq.waiting.Store(w.id, w)
		}
		var err error
		if lockFirst {
			sessions := make([][2]string, len(keys))
			for i, k := range keys {
				sessions[i] = [2]string{k.tenant, k.session}
			}
			err = chained.AppendChained(ctx, sessions, func(given map[[2]string]journal.Head) ([]*journal.Entry, error) {
				return chainOn(func(k sessionKey) chainHead {
					h := given[[2]string{k.tenant, k.session}]
					return chainHead{h.Next, h.Prev}
				})
			})
		} else {
			err = l.journal.Append(ctx, entries)
		}
		if err == nil {
			break
		}
		for _, w := range ws {
			if w.sess != nil {
				w.sess.pending.Add(-1)
			}
			l.seq.waiting.Delete(w.id)
		}
		var moved *journal.HeadsMovedError
		if errors.As(err, &moved) && try < maxHeadTries {
			// Another instance appended to a session: chain again on its
			// head.
			if err := locked.reload(ctx, moved.Sessions); err != nil {
				return nil, l.unavailable(ctx, err)
			}
			if ids != nil {
				// Another instance may have appended one of these events.
				before := ws
				if ps, ws, _, err = l.leaveOutKnownAgain(ctx, locked, ps, ws, known); err != nil {
					ws = before
					return nil, l.unavailable(ctx, err)
				}
				for _, w := range before {
					if !slices.Contains(ws, w) {
						l.releaseSlot(w)
					}
				}
				if len(ps) == 0 {
					return nil, nil
				}
			}
			continue
		}
		if moved != nil {
			return nil, fmt.Errorf("%w: sessions moved by other instances %d times in a row", ErrPushback, try)
		}
		return nil, l.unavailable(ctx, storageErr(fmt.Errorf("writing the journal: %w", err)))
	}
	// The places in l.inflight are the sequencer's now.
	committed = true
	locked.commit(heads)
	if ids != nil {
		locked.remember(ps)
	}
	l.observeDurable(time.Since(at))

	out := make([]event.Appended, len(ps))
	for i, pe := range ps {
		out[i] = event.Appended{ID: pe.id, Seq: pe.leaf.Seq, Session: pe.leaf.Session, Leaf: pe.data, LeafHash: slices.Clone(pe.hash)}
		if l.sealer != nil {
			out[i].Envelope = l.sealedEntry(tenant, pe.data, pe.hash, true)
			out[i].FieldSalt = l.sealer.FieldSalt(pe.data)
		}
	}
	if wait == WaitDurable {
		return out, nil
	}
	locked.unlock()
	unlocked = true
	wctx := ctx
	if wait == WaitIndexBounded {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, bound)
		defer cancel()
	}
	for i, w := range ws {
		idx, err := l.waitIndex(wctx, w)
		if err != nil {
			if wait == WaitIndexBounded && ctx.Err() == nil {
				// Durable all the same: answered without the index.
				return out, nil
			}
			return nil, fmt.Errorf("waiting for the log to sequence acknowledged events: %w", err)
		}
		out[i].Index, out[i].Indexed = idx, true
	}
	return out, nil
}

// maxHeadTries bounds how often one append chains again on heads that
// other instances moved; after groupHeadTries, an append without ids of
// its own takes the journal's way that locks the heads first
// (chainedJournal), which other instances cannot move.
const (
	maxHeadTries   = 8
	groupHeadTries = 2
)

// chainedJournal is a journal shared by instances that can chain an
// append on heads it locks (journal.SQL).
type chainedJournal interface {
	AppendChained(ctx context.Context, sessions [][2]string, chain func(map[[2]string]journal.Head) ([]*journal.Entry, error)) error
}

// waitIndex waits until the event of w is sequenced and returns its index:
// told by this process's sequencer, or, when another instance sequences the
// journal, found in the session index (resolveShared).
func (l *Log) waitIndex(ctx context.Context, w *waiter) (uint64, error) {
	select {
	case <-w.done:
		return w.index, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-l.stopped:
		return 0, ErrClosed
	}
}

// sizeCovering returns the integrated size once it covers index, waiting
// (DefaultSessionWait at most) while the entry is sequenced but not yet
// integrated (Tessera's AWS driver integrates about once a second); ok is
// false when no entry index was sequenced.
func (l *Log) sizeCovering(ctx context.Context, index uint64) (size uint64, ok bool, err error) {
	if size, err = l.reader.IntegratedSize(ctx); err != nil || index < size {
		return size, err == nil, err
	}
	next, err := l.reader.NextIndex(ctx)
	if err != nil || index >= next {
		return size, false, err
	}
	wctx, cancel := context.WithTimeout(ctx, DefaultSessionWait)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-wctx.Done():
			return 0, false, fmt.Errorf("waiting for entry %d to be integrated: %w", index, wctx.Err())
		case <-t.C:
		}
		if size, err = l.reader.IntegratedSize(ctx); err != nil || index < size {
			return size, err == nil, err
		}
	}
}

// storageErr marks an error of the storage driver ErrUnavailable: the
// driver failed to read or write the log's storage (Tessera's drivers
// report their database and object store errors as text, so their cause
// cannot be told apart). A missing object and a cancelled request are
// left as they are.
func storageErr(err error) error {
	switch {
	case err == nil, errors.Is(err, os.ErrNotExist), errors.Is(err, ErrUnavailable),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// storageReader is the driver's log reader with its errors marked by
// storageErr.
type storageReader struct{ r tessera.LogReader }

func (s storageReader) ReadCheckpoint(ctx context.Context) ([]byte, error) {
	b, err := s.r.ReadCheckpoint(ctx)
	return b, storageErr(err)
}

func (s storageReader) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	b, err := s.r.ReadTile(ctx, level, index, p)
	return b, storageErr(err)
}

func (s storageReader) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	b, err := s.r.ReadEntryBundle(ctx, index, p)
	return b, storageErr(err)
}

func (s storageReader) NextIndex(ctx context.Context) (uint64, error) {
	n, err := s.r.NextIndex(ctx)
	return n, storageErr(err)
}

func (s storageReader) IntegratedSize(ctx context.Context) (uint64, error) {
	n, err := s.r.IntegratedSize(ctx)
	return n, storageErr(err)
}

// unavailable marks err ErrUnavailable when the storage cannot be reached,
// and a session held too long by another append ErrPushback.
func (l *Log) unavailable(ctx context.Context, err error) error {
	switch {
	case err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrPushback) || ctx.Err() != nil,
		errors.Is(err, event.ErrInvalidEvent), errors.Is(err, vault.ErrErased), errors.Is(err, ErrNotFound):
		return err
	case errors.Is(err, sqldb.ErrLockTimeout):
		return fmt.Errorf("%w: %v", ErrPushback, err)
	case sqldb.Unavailable(err):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	case l.cfg.Health != nil:
		hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if herr := l.cfg.Health(hctx); herr != nil {
			return fmt.Errorf("%w: %v (%v)", ErrUnavailable, err, herr)
		}
	}
	return err
}

// Lock takes the named lock name, which holds across every instance of
// the log (Config.Locker), waiting 30 s at most: the work that must not
// interleave over the log (signings, erasures and holds, records of
// retention floors and token changes) takes it. A lock not taken in time
// is ErrPushback; storage that cannot be reached, ErrUnavailable.
func (l *Log) Lock(ctx context.Context, name string) (unlock func(), err error) {
	lk, err := l.cfg.Locker.Lock(ctx, 30*time.Second, name)
	if err != nil {
		return nil, l.unavailable(ctx, err)
	}
	return lk.Unlock, nil
}

// checkCorrects checks that every correction names an existing entry of
// tenant.
func (l *Log) checkCorrects(ctx context.Context, tenant string, ps []*pending) error {
	for i, pe := range ps {
		c := pe.leaf.Corrects
		if c == nil {
			continue
		}
		bad := fmt.Errorf("%w: events[%d]: corrects %d: no such entry in tenant %s", event.ErrInvalidEvent, i, *c, tenant)
		size, ok, err := l.sizeCovering(ctx, *c)
		if err != nil {
			return err
		}
		if !ok {
			return bad
		}
		data, err := l.ReadLeaf(ctx, *c, size)
		if err != nil {
			return err
		}
		if h, err := event.ParseHead(data); err != nil || h.Tenant != tenant {
			return bad
		}
	}
	return nil
}

// pseudonymize replaces subjects and on-behalf-of values by their
// pseudonyms (the index finds the sessions each appears in, for erasures
// and holds).
func (l *Log) pseudonymize(ctx context.Context, tenant string, ps []*pending) error {
	for _, pe := range ps {
		for _, f := range []*string{&pe.leaf.Subject, &pe.leaf.Actor.OnBehalfOf} {
			if *f == "" {
				continue
			}
			p, err := l.vault.Pseudonym(ctx, tenant, *f)
			if err != nil {
				return fmt.Errorf("pseudonymizing: %w", err)
			}
			*f = p
		}
	}
	return nil
}

// Busy reports whether an append of n events would be refused with
// ErrPushback now: MaxInFlight events are in flight. A server asks before
// it reads and decodes a write, so that refusing one costs little; the
// append itself checks again as it takes its places.
func (l *Log) Busy(n int) bool { return len(l.inflight)+n > cap(l.inflight) }

// WaitRoom waits, for d at most, until n more events would not be refused
// for MaxInFlight (Busy(n) false) as sequencing frees places, and reports
// whether they would not. A writer that waits here rather than being
// refused at once does not come straight back with the same request:
// under overload the retries cost the server (and the clients) more CPU
// than the waits.
func (l *Log) WaitRoom(ctx context.Context, n int, d time.Duration) bool {
	if !l.Busy(n) {
		return true
	}
	if d <= 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return l.seq.wait(ctx, func() bool { return !l.Busy(n) }) == nil
}

func (l *Log) release(n int) {
	for range n {
		<-l.inflight
	}
}

// releaseSlot gives back w's place in l.inflight, if w still holds it.
func (l *Log) releaseSlot(w *waiter) {
	if w.slot.Swap(false) {
		<-l.inflight
	}
}

func (l *Log) acquire(k sessionKey) *session {
	l.smu.Lock()
	defer l.smu.Unlock()
	s, ok := l.sessions[k]
	if !ok {
		if len(l.sessions) >= l.cfg.MaxSessionsCached {
			l.evictLocked()
		}
		s = &session{}
		l.sessions[k] = s
	}
	s.refs++
	return s
}

func (l *Log) releaseSession(k sessionKey) {
	l.smu.Lock()
	defer l.smu.Unlock()
	l.sessions[k].refs--
}

// evictLocked drops idle session heads that the index already holds.
func (l *Log) evictLocked() {
	indexed := l.index.Size()
	_, shared := l.journal.(journal.HeadStore)
	for k, s := range l.sessions {
		if s.refs == 0 && (shared || s.pending.Load() == 0 && (!s.appended || s.lastIndex.Load() < indexed)) {
			delete(l.sessions, k)
		}
	}
}

// Checkpoint returns the latest published checkpoint, verified.
func (l *Log) Checkpoint(ctx context.Context) (*fmtlog.Checkpoint, []byte, error) {
	raw, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return nil, nil, ErrNoCheckpoint
	}
	cp, err := l.verify(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("own checkpoint does not verify: %w", err)
	}
	return cp, raw, nil
}

func (l *Log) verify(raw []byte) (*fmtlog.Checkpoint, error) {
	if l.cfg.VerifyCheckpoint != nil {
		return l.cfg.VerifyCheckpoint(raw)
	}
	cp, _, err := checkpoint.Verify(raw, l.cfg.Verifier)
	return cp, err
}

// WaitReceipt waits until a published checkpoint covers index and returns a
// receipt for leaf at index.
func (l *Log) WaitReceipt(ctx context.Context, index uint64, leaf []byte) (*api.Receipt, error) {
	_, raw, err := l.awaiter.Await(ctx, func() (tessera.Index, error) { return tessera.Index{Index: index}, nil })
	if err != nil {
		return nil, fmt.Errorf("waiting for checkpoint: %w", err)
	}
	cp, err := l.verify(raw)
	if err != nil {
		return nil, fmt.Errorf("own checkpoint does not verify: %w", err)
	}
	return l.receipt(ctx, index, leaf, cp, raw)
}

func (l *Log) receipt(ctx context.Context, index uint64, leaf []byte, cp *fmtlog.Checkpoint, raw []byte) (*api.Receipt, error) {
	pb, err := tclient.NewProofBuilder(ctx, cp.Size, l.reader.ReadTile)
	if err != nil {
		return nil, err
	}
	p, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("building inclusion proof: %w", err)
	}
	env, err := l.envelopeOf(leaf)
	if err != nil {
		return nil, err
	}
	lh := event.LeafHash(leaf)
	mh := lh // the Merkle leaf's hash: the envelope's on a version 3 log
	if env != nil {
		mh = event.LeafHash(env)
	}
	// Never hand out a proof we have not checked ourselves.
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, cp.Size, mh, p, cp.Hash); err != nil {
		return nil, fmt.Errorf("inclusion proof for %d does not verify: %w", index, err)
	}
	rc := &api.Receipt{Index: index, Leaf: leaf, Envelope: env, LeafHash: hex.EncodeToString(lh), TreeSize: cp.Size, InclusionProof: p, Checkpoint: string(raw)}
	tp, err := rc.MarshalTlogProof()
	if err != nil {
		return nil, fmt.Errorf("receipt for %d as a tlog-proof: %w", index, err)
	}
	rc.TlogProof = string(tp)
	return rc, nil
}

// Entry returns a receipt for the leaf at index against the latest
// published checkpoint (with its tlog-proof), or against the tree size asked
// for (size > 0), which must not exceed the latest checkpoint (without one
// below the latest checkpoint: the proof is for a tree the checkpoint does
// not sign).
func (l *Log) Entry(ctx context.Context, index, size uint64) (*api.Receipt, error) {
	cp, raw, err := l.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		size = cp.Size
	}
	if size > cp.Size || index >= size {
		return nil, ErrNotPublished
	}
	leaf, err := l.ReadLeaf(ctx, index, cp.Size)
	if err != nil {
		return nil, err
	}
	if size == cp.Size {
		return l.receipt(ctx, index, leaf, cp, raw)
	}
	pb, err := tclient.NewProofBuilder(ctx, size, l.reader.ReadTile)
	if err != nil {
		return nil, err
	}
	p, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("building inclusion proof: %w", err)
	}
	env, err := l.envelopeOf(leaf)
	if err != nil {
		return nil, err
	}
	return &api.Receipt{Index: index, Leaf: leaf, Envelope: env, LeafHash: hex.EncodeToString(event.LeafHash(leaf)), TreeSize: size, InclusionProof: p, Checkpoint: string(raw)}, nil
}

// readBundle reads and parses entry bundle bi of a tree of size entries.
func (l *Log) readBundle(ctx context.Context, bi, size uint64) (*tapi.EntryBundle, error) {
	raw, err := l.reader.ReadEntryBundle(ctx, bi, layout.PartialTileSize(0, bi, size))
	if err != nil {
		return nil, fmt.Errorf("reading entry bundle %d: %w", bi, err)
	}
	var b tapi.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("parsing entry bundle %d: %w", bi, err)
	}
	return &b, nil
}

// ReadLeaf returns the leaf data at index in a tree of at least size
// entries.
func (l *Log) ReadLeaf(ctx context.Context, index, size uint64) ([]byte, error) {
	if index >= size {
		return nil, ErrNotPublished
	}
	bundleIdx := index / layout.EntryBundleWidth
	b, err := l.readBundle(ctx, bundleIdx, size)
	if err != nil {
		return nil, err
	}
	i := index % layout.EntryBundleWidth
	if i >= uint64(len(b.Entries)) {
		return nil, fmt.Errorf("entry bundle %d has no entry %d", bundleIdx, i)
	}
	return b.Entries[i], nil
}

// Consistency returns a consistency proof between two tree sizes, the larger
// of which must not exceed the latest published checkpoint.
func (l *Log) Consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	cp, _, err := l.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	if to > cp.Size {
		return nil, ErrNotPublished
	}
	if from > to {
		return nil, fmt.Errorf("from (%d) is larger than to (%d)", from, to)
	}
	pb, err := tclient.NewProofBuilder(ctx, to, l.reader.ReadTile)
	if err != nil {
		return nil, err
	}
	return pb.ConsistencyProof(ctx, from, to)
}

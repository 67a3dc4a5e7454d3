// Package verify audits an LLMAuditTrail log as any outside auditor can,
// through its tlog-tiles read API: the checkpoint's log signature and
// witness quorum, every entry re-hashed into the checkpoint's root, every
// tile compared with the hashes recomputed from the entries, every
// session's seq and prev chain, every electronic signature against the keys
// enrolled in the log, consistency with the log's latest checkpoint, and
// what each policy witness says it cosigned. Audit does all of it once;
// Scanner, Tree, Consistency, WitnessCheckpoint and CompareWitness are the
// parts that a monitor following the log uses as it grows.
//
// Problems with the log are findings (Finding) in the Report, each with a
// stable ID; errors are for what prevented the audit.
package verify

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/signature"
	"github.com/llmaudittrail/llmaudittrail/timestamp"
)

// Config configures Audit.
type Config struct {
	// Log is the log, read through its tlog-tiles API (with the client's
	// token: a private log serves its entries only with a log-wide read
	// token). Required unless Source is set.
	Log *client.Client
	// Source, if set, is read instead of Log (a copy of the log's files,
	// say, with Tessera's client.FileFetcher).
	Source Source
	// LogKey verifies the log's checkpoints. Required.
	LogKey note.Verifier
	// Policy, if set, must be met by the checkpoint, and its witnesses'
	// cosigned checkpoints are compared with the log.
	Policy *checkpoint.Policy
	// Progress, if set, is called as entries are verified.
	Progress func(done, total uint64)
	// At, if set, is a signed checkpoint (note text) to audit the log at
	// instead of its latest one: it must verify (with Policy), and the
	// latest checkpoint must be consistent with it.
	At []byte
	// Visit, if set, is called with every entry, in index order, as it is
	// re-hashed: leaf is the event (on a log of leaf version 3 the body
	// its envelope commits to, nil when the audit does not cover the entry
	// or its body is missing), leafHash the entry's Merkle leaf hash in the
	// log's tree (on version 3: of the envelope). What it is given is proved
	// once the audit ends without a finding of RuleCheckpointSignature,
	// RuleFork, RuleEntryMismatch, RuleTileMismatch or RuleSplitView. An
	// error from Visit ends the audit with an error that wraps it.
	Visit func(index uint64, leaf, leafHash []byte) error
	// TenantKey, if set, audits one tenant of a log of leaf version 3
	// (docs/leaf-format.md), with Log's token of that tenant: every entry
	// is re-hashed as in a full audit, the entries whose envelopes carry
	// the key's tag are the tenant's, and each must have a body from
	// GET /v1/bodies that its envelope commits to (RuleBodyMissing,
	// RuleBodyMismatch); a body served for an entry without the tag is
	// RuleWrongTag; the tenant's sessions are chained from seq 0. Without
	// it, the bodies of a version 3 log are read with Log's token (a
	// global one sees every entry's).
	TenantKey *event.TenantKey
	// LogWideKey, if set with TenantKey, is the log-wide key (GET
	// /v1/tenant-key's log_key): the entries whose envelopes carry its tag
	// are the log-wide records (event.LogWide) that every tenant reads, and
	// the tenant audit covers them as its own (RuleBodyMissing,
	// RuleBodyMismatch, also when the body is not a log-wide record). A
	// log-wide record under neither tag is RuleWrongTag. Without it the
	// log-wide records are not checked.
	LogWideKey *event.TenantKey
	// Tenant, if set with TenantKey, is the tenant's name: the audit reads
	// only the bodies GET /v1/bodies serves a token of the tenant (its
	// events and the log-wide records, judged from the body), whatever
	// Log's token reads, so that a global token and the tenant's own find
	// the same; a body of another tenant under the tenant's tag is then
	// RuleBodyMissing, as for the tenant's token, unless it is a log-wide
	// record (RuleBodyMismatch).
	Tenant string
	// Timestamps, if set, verifies the RFC 3161 tokens of the log's
	// timestamp.issued events (the TSAs' roots): signature, chain and
	// message imprint, and that each TSA's token times do not go backwards
	// as the tree size grows. Without it the events' checkpoints are still
	// checked (log key, consistency with the audited tree), their tokens
	// are not (Report.Timestamps counts them, TimestampsVerified is 0).
	Timestamps *timestamp.Verifier
	// HTTPClient is used for the witnesses' requests (default: 30s
	// timeout); Log has its own.
	HTTPClient *http.Client
	// Logger receives what does not make a finding (a witness that could
	// not be read). Default slog.Default().
	Logger *slog.Logger
}

// Report is the outcome of a full audit.
type Report struct {
	Origin     string `json:"origin"`
	Checkpoint string `json:"checkpoint"`
	Size       uint64 `json:"size"`
	Root       string `json:"root"`
	Entries    uint64 `json:"entries"`
	Bundles    int    `json:"bundles"`
	Tiles      int    `json:"tiles"`
	Sessions   int    `json:"sessions"`
	// Signatures counts the human.signature events checked against the
	// keys enrolled in the log.
	Signatures int `json:"signatures"`
	// Tenant and TenantEntries: on a tenant audit (Config.TenantKey), the
	// tenant and how many entries carry its tag.
	Tenant        string `json:"tenant,omitempty"`
	TenantEntries uint64 `json:"tenant_entries,omitempty"`
	Witnesses     int    `json:"witnesses_compared"`
	// Timestamps counts the timestamp.issued events, TimestampsVerified
	// those whose token verified with Config.Timestamps.
	Timestamps         int           `json:"timestamps"`
	TimestampsVerified int           `json:"timestamps_verified"`
	Duration           time.Duration `json:"duration_ns"`
	// Findings lists every problem; the audit passed when it is empty.
	Findings []Finding `json:"findings"`
}

// OK reports whether everything verified.
func (r *Report) OK() bool { return len(r.Findings) == 0 }

// Audit verifies a whole log once: the checkpoint (log signature and
// witness policy), every entry re-hashed into its root, every tile compared
// with the recomputed hashes, every entry parsed as an audit event with its
// session's seq and prev chain checked from seq 0, and every policy
// witness's cosigned checkpoint compared with the log. Problems are
// findings in the report; the error is for what prevented the audit
// (an unreachable log, for one).
func Audit(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Log == nil && cfg.Source == nil || cfg.LogKey == nil {
		return nil, errors.New("verify: Log (or Source) and LogKey are required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	src := cfg.Source
	if src == nil {
		src = cfg.Log.Tiles()
	}
	start := time.Now()
	origin := cfg.LogKey.Name()
	rep := &Report{Origin: origin}
	finish := func() (*Report, error) {
		rep.Duration = time.Since(start)
		if rep.Findings == nil {
			rep.Findings = []Finding{}
		}
		return rep, nil
	}
	raw, err := src.ReadCheckpoint(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("the log has not published a checkpoint")
	}
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	// The tree the log serves now: the audited one, or a later one.
	var logSize uint64
	var logRoot []byte
	if cfg.At != nil {
		latest, err := api.VerifyCheckpoint(raw, cfg.LogKey, cfg.Policy)
		if err != nil {
			return nil, fmt.Errorf("the log's latest checkpoint does not verify: %w", err)
		}
		logSize, logRoot, raw = latest.Size, latest.Hash, cfg.At
	}
	rep.Checkpoint = string(raw)
	cp, err := api.VerifyCheckpoint(raw, cfg.LogKey, cfg.Policy)
	if err != nil {
		rule := RuleCheckpointSignature
		if errors.Is(err, checkpoint.ErrNoQuorum) {
			rule = RuleWitnessQuorum
		}
		rep.Findings = append(rep.Findings, Finding{Rule: rule, Severity: "critical", Source: SourceIntegrity, Origin: origin,
			Message: fmt.Sprintf("checkpoint does not verify: %v", err)})
		return finish()
	}
	rep.Size, rep.Root = cp.Size, hex.EncodeToString(cp.Hash)
	switch {
	case cfg.At == nil:
		logSize = cp.Size
	case logSize < cp.Size:
		rep.Findings = append(rep.Findings, Finding{Rule: RuleFork, Severity: "critical", Source: SourceIntegrity, Origin: origin,
			Message: fmt.Sprintf("the audited checkpoint (size %d) is larger than the log's latest (size %d)", cp.Size, logSize)})
		return finish()
	}
	add := func(f Finding) {
		f.Origin, f.TreeSize = origin, cp.Size
		if f.ID == "" {
			f.ID = FindingID(origin, f.Rule, f.Message)
		}
		rep.Findings = append(rep.Findings, f)
	}

	type chain struct {
		seq  uint64
		hash []byte
	}
	chains := map[string]*chain{}
	sigs := signature.NewChecker(origin)
	stamps := &timestampChecker{logKey: cfg.LogKey, tv: cfg.Timestamps, add: add}
	t := &Tree{}
	sc := NewScanner(src, origin)
	var done uint64
	bodies := &bodyCache{c: cfg.Log, size: cp.Size}
	rep.Tenant = cfg.Tenant
	firstVersion := 0 // the leaf version of entry 0: 2 (an event, of version 1 or 2), 3 or 4
	res, err := sc.Scan(ctx, t, cp.Size, logSize, ScanOptions{Head: true, CheckTiles: true}, func(e Entry) error {
		done++
		if cfg.Progress != nil && (done%4096 == 0 || done == cp.Size) {
			cfg.Progress(done, cp.Size)
		}
		idx := e.Index
		entryHash := e.Hash
		// A log keeps the leaf version of its first entry: an envelope
		// of version 3 in a log of version 4 commits to no fields (none
		// of them can be disclosed), an event in a log of envelopes is
		// public in clear.
		if v := entryVersion(e.Data); idx == 0 {
			firstVersion = v
		} else if v != firstVersion && v != 0 && firstVersion != 0 {
			add(Finding{Rule: RuleMalformedEntry, Severity: "high", Source: SourceIntegrity, Index: &idx,
				Message: fmt.Sprintf("entry %d is %s, the log's first entry %s: a log keeps its leaf version", idx, versionText(v), versionText(firstVersion))})
		}
		if event.IsEnvelope(e.Data) || cfg.TenantKey != nil {
			// Leaf version 3: the event is the body the envelope commits to.
			logKey := cfg.LogWideKey
			if cfg.TenantKey == nil {
				logKey = nil
			}
			body, f, err := bodies.open(ctx, idx, e.Data, cfg.TenantKey, logKey, cfg.Tenant)
			if err != nil {
				return err
			}
			if f != nil {
				f.Index = &idx
				add(*f)
			}
			if body == nil {
				if cfg.Visit != nil {
					return cfg.Visit(idx, nil, entryHash)
				}
				return nil
			}
			rep.TenantEntries++
			e.Data, e.Hash = body, event.LeafHash(body)
			e.Head, e.Err = event.ParseHead(body)
			e.HasHead = e.Err == nil
		}
		if cfg.Visit != nil {
			if err := cfg.Visit(idx, e.Data, entryHash); err != nil {
				return err
			}
		}
		if !e.HasHead {
			add(Finding{Rule: RuleMalformedEntry, Severity: "high", Source: SourceIntegrity, Index: &idx,
				Message: fmt.Sprintf("entry %d is not a valid audit event leaf: %v", idx, e.Err)})
			return nil
		}
		h := e.Head
		key := h.Tenant + "\x00" + h.Session
		c := chains[key]
		var hx [64]byte
		if c != nil {
			hex.Encode(hx[:], c.hash)
		}
		switch {
		case c == nil && (h.Seq != 0 || h.Prev != ""):
			add(Finding{Rule: RuleSessionChain, Severity: "critical", Source: SourceIntegrity, Index: &idx, Tenant: h.Tenant, Session: h.Session,
				Message: fmt.Sprintf("session %s/%s starts at seq %d (prev %q), want seq 0 with no prev", h.Tenant, h.Session, h.Seq, h.Prev)})
		case c != nil && h.Seq != c.seq+1:
			add(Finding{Rule: RuleSessionChain, Severity: "critical", Source: SourceIntegrity, Index: &idx, Tenant: h.Tenant, Session: h.Session,
				Message: fmt.Sprintf("session %s/%s: seq %d follows seq %d", h.Tenant, h.Session, h.Seq, c.seq)})
		case c != nil && h.Prev != string(hx[:]):
			add(Finding{Rule: RuleSessionChain, Severity: "critical", Source: SourceIntegrity, Index: &idx, Tenant: h.Tenant, Session: h.Session,
				Message: fmt.Sprintf("session %s/%s: seq %d does not link to the previous event's leaf hash", h.Tenant, h.Session, h.Seq)})
		}
		if c == nil {
			c = &chain{}
			chains[key] = c
		}
		c.seq, c.hash = h.Seq, e.Hash
		if sigs.Wants(h.Kind) {
			if l, err := event.ParseLeaf(e.Data); err == nil {
				if p := sigs.See(idx, l); p != nil {
					add(signatureFinding(*p, h.Tenant, h.Session))
				}
			}
		}
		if h.Kind == event.KindTimestampIssued && h.Session == event.SessionTimestamps {
			if l, err := event.ParseLeaf(e.Data); err == nil {
				rep.Timestamps++
				stamps.see(idx, l)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the log: %w", err)
	}
	if cfg.TenantKey == nil {
		rep.TenantEntries = 0
	}
	rep.Entries, rep.Bundles, rep.Tiles, rep.Sessions, rep.Signatures = done, res.Bundles, res.Tiles, len(chains), sigs.Signatures()
	root, err := t.Root()
	if err != nil {
		return nil, err
	}
	for _, f := range res.Findings {
		add(f)
	}
	if !bytes.Equal(root, cp.Hash) {
		if len(res.LeafMismatch) > 0 {
			for i, idx := range res.LeafMismatch {
				if i == 100 {
					break
				}
				add(RewrittenEntry(idx))
			}
		} else {
			add(RootMismatch(cp.Size, cp.Hash, root))
		}
	}
	f := func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
		return src.ReadTile(ctx, level, index, p)
	}
	if logSize > cp.Size && bytes.Equal(root, cp.Hash) {
		if err := Consistency(ctx, f, cp.Size, logSize, cp.Hash, logRoot); err != nil {
			add(Finding{Rule: RuleFork, Severity: "critical", Source: SourceIntegrity,
				Message: fmt.Sprintf("the log's latest checkpoint (size %d) is not consistent with the audited one (size %d): %v", logSize, cp.Size, err)})
		}
	}
	if bytes.Equal(root, cp.Hash) {
		ps, err := sigs.CheckRecords(ctx, cp.Size, cp.Hash, f)
		if err != nil {
			return nil, fmt.Errorf("proving signed records: %w", err)
		}
		for _, p := range ps {
			add(signatureFinding(p, "", ""))
		}
		if err := stamps.finish(ctx, f, cp.Size, cp.Hash); err != nil {
			return nil, fmt.Errorf("proving time-stamped checkpoints: %w", err)
		}
		rep.TimestampsVerified = stamps.verified()
	}
	if cfg.Policy != nil && bytes.Equal(root, cp.Hash) {
		for _, w := range cfg.Policy.Witnesses() {
			if w.URL == "" {
				continue
			}
			wcp, wraw, err := WitnessCheckpoint(ctx, cfg.HTTPClient, w, cfg.LogKey)
			if errors.Is(err, ErrNotCosigned) {
				continue
			}
			if err != nil {
				cfg.Logger.Warn("reading a witness failed", "witness", w.Name, "error", err)
				continue
			}
			rep.Witnesses++
			msg, ahead := CompareWitness(ctx, wcp, cp.Size, cp.Hash, nil, func(ctx context.Context, from, to uint64, fr, tr []byte) error {
				return Consistency(ctx, f, from, to, fr, tr)
			})
			if ahead {
				// Compare against a fresh checkpoint of the log.
				if raw2, err := src.ReadCheckpoint(ctx); err == nil {
					if cp2, err := api.VerifyCheckpoint(raw2, cfg.LogKey, cfg.Policy); err == nil && cp2.Size >= wcp.Size {
						if err := Consistency(ctx, f, wcp.Size, cp2.Size, wcp.Hash, cp2.Hash); err != nil {
							msg = fmt.Sprintf("cosigned size %d root %x, not consistent with the log's size %d: %v", wcp.Size, wcp.Hash, cp2.Size, err)
						}
					} else if err == nil {
						msg = fmt.Sprintf("cosigned size %d, larger than the log's size %d", wcp.Size, cp2.Size)
					}
				}
			}
			if msg != "" {
				add(Finding{Rule: RuleSplitView, Severity: "critical", Source: SourceIntegrity,
					Message: fmt.Sprintf("split view: witness %s %s", w.Name, msg), Details: map[string]any{"witness_checkpoint": string(wraw)}})
			}
		}
	}
	return finish()
}

// entryVersion is the leaf version of a log's entry data: 3 or 4 for an
// envelope, 2 for an event (leaves of version 1 and 2 share a log), 0 for
// an envelope that does not parse (a finding of its own).
func entryVersion(data []byte) int {
	if !event.IsEnvelope(data) {
		return event.LeafVersion
	}
	e, err := event.ParseEnvelope(data)
	if err != nil {
		return 0
	}
	return e.Version()
}

func versionText(v int) string {
	if v == event.LeafVersion {
		return "an event (leaf version 1 or 2)"
	}
	return fmt.Sprintf("an envelope of leaf version %d", v)
}

// Package tsa has the log's published checkpoints time-stamped by
// independent RFC 3161 timestamp authorities (TSAs): it asks each TSA for
// a token on the latest checkpoint once per interval when the log has
// grown, verifies the token (package timestamp) against the TSA's
// configured chain, stores it beside the server's other state (the state
// database: SQLite in the data directory, or the s3 storage's MariaDB),
// and appends a timestamp.issued event that carries it, so that the log
// proves the token existed. A TSA that cannot be reached delays its
// tokens and is recorded once per outage as timestamp.failed, which the
// monitor's rule pack alerts on; appends never wait for a TSA.
package tsa

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/timestamp"
)

// Defaults.
const (
	// DefaultInterval is how often the latest checkpoint is time-stamped
	// when the log has grown since the last token.
	DefaultInterval = time.Minute
	// DefaultTimeout bounds one request to a TSA.
	DefaultTimeout = 10 * time.Second
)

// The events this package appends, in event.SessionTimestamps of the
// default tenant, by event.ServerActor.
const (
	KindIssued = event.KindTimestampIssued
	KindFailed = event.KindTimestampFailed
)

// Attributes of timestamp.issued (all) and timestamp.failed (tsa,
// tree_size, error).
const (
	AttrTSA        = event.AttrTimestampTSA
	AttrTreeSize   = event.AttrTimestampTreeSize
	AttrCheckpoint = event.AttrTimestampCheckpoint
	AttrToken      = event.AttrTimestampToken
	AttrTime       = event.AttrTimestampTime
	AttrError      = event.AttrTimestampError
)

// Authority is a TSA the log asks for tokens.
type Authority struct {
	// URL takes RFC 3161 requests over HTTP (POST
	// application/timestamp-query).
	URL string
	// Chain is the TSA's certificate chain, PEM; its self-signed
	// certificate is the root its tokens must chain to.
	Chain []byte
}

// Config configures a Stamper.
type Config struct {
	Log         *auditlog.Log
	DB          *sqldb.DB
	Authorities []Authority
	// Interval is how often a round runs (DefaultInterval).
	Interval time.Duration
	// Timeout bounds one request to a TSA (DefaultTimeout).
	Timeout time.Duration
	// Client makes the requests (default: http.DefaultClient's transport).
	Client *http.Client
	// Tenant is the tenant of the events (the server's default tenant),
	// and ServerToken their writer.
	Tenant, ServerToken string
	Logger              *slog.Logger
}

// Stamper time-stamps the log's checkpoints.
type Stamper struct {
	cfg      Config
	verifier []*timestamp.Verifier // per authority
	client   *http.Client
	logger   *slog.Logger

	mu   sync.Mutex
	down map[string]bool // TSA URL -> an outage is recorded and not over
	own  []uint64        // indexes of this stamper's recent events
}

// SchemaVersion is the version of the timestamps table, pinned as
// schema.timestamps in the state database.
const SchemaVersion = 1

const ddl = `CREATE TABLE IF NOT EXISTS llmaudit_timestamps (
	tsa {name} NOT NULL,
	tree_size {int} NOT NULL,
	checkpoint {blob} NOT NULL,
	token {blob} NOT NULL,
	gen_time {time} NOT NULL,
	event_index {int},
	PRIMARY KEY (tsa, tree_size)
){table}`

// New returns a Stamper; it creates its table if needed.
func New(ctx context.Context, cfg Config) (*Stamper, error) {
	if cfg.Log == nil || cfg.DB == nil || len(cfg.Authorities) == 0 {
		return nil, errors.New("tsa: Log, DB and an authority are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Stamper{cfg: cfg, logger: cfg.Logger, down: map[string]bool{}}
	s.client = cfg.Client
	if s.client == nil {
		s.client = &http.Client{}
	}
	seen := map[string]bool{}
	for _, a := range cfg.Authorities {
		if seen[a.URL] {
			return nil, fmt.Errorf("tsa: %s is given twice", a.URL)
		}
		seen[a.URL] = true
		v, err := timestamp.NewVerifier(a.Chain)
		if err != nil {
			return nil, fmt.Errorf("tsa %s: %w", a.URL, err)
		}
		s.verifier = append(s.verifier, v)
	}
	if _, err := cfg.DB.Schema(ctx, "timestamps", SchemaVersion, ddl); err != nil {
		return nil, err
	}
	return s, nil
}

// Run runs a round every interval until ctx ends.
func (s *Stamper) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.Round(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("timestamping checkpoints", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Round time-stamps the latest published checkpoint by every TSA that
// has no token for it yet, if the log grew since that TSA's last token by
// more than this stamper's own events. The error is one the log returned;
// a TSA's failure is recorded, not returned.
func (s *Stamper) Round(ctx context.Context) error {
	unlock, err := s.cfg.Log.Lock(ctx, "timestamps")
	if err != nil {
		return err
	}
	defer unlock()
	cp, raw, err := s.cfg.Log.Checkpoint(ctx)
	if errors.Is(err, auditlog.ErrNoCheckpoint) {
		return nil
	}
	if err != nil {
		return err
	}
	if cp.Size == 0 {
		return nil
	}
	for i, a := range s.cfg.Authorities {
		last, err := s.lastSize(ctx, a.URL)
		if err != nil {
			return err
		}
		if cp.Size <= last || s.onlyOwnSince(last, cp.Size) {
			continue
		}
		tok, err := s.stamp(ctx, i, raw)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.failed(ctx, a.URL, cp.Size, err)
			continue
		}
		tok.TreeSize = cp.Size
		if err := s.record(ctx, tok); err != nil {
			return err
		}
	}
	return nil
}

// onlyOwnSince reports whether every entry in [from, to) is an event this
// stamper appended: then a new token would stamp only its own records.
func (s *Stamper) onlyOwnSince(from, to uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := uint64(0)
	for _, i := range s.own {
		if i >= from && i < to {
			n++
		}
	}
	return from > 0 && n == to-from
}

// stamp asks authority i for a token on checkpoint and verifies it.
func (s *Stamper) stamp(ctx context.Context, i int, checkpoint []byte) (*api.Timestamp, error) {
	a := s.cfg.Authorities[i]
	req, err := timestamp.NewRequest(checkpoint)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL, bytes.NewReader(req.DER))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/timestamp-query")
	hr.Header.Set("Accept", "application/timestamp-reply")
	resp, err := s.client.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, timestamp.MaxTokenBytes+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("the TSA answered %s", resp.Status)
	}
	tok, err := req.Token(answer)
	if err != nil {
		return nil, err
	}
	st, err := s.verifier[i].Verify(tok, checkpoint)
	if err != nil {
		return nil, err
	}
	return &api.Timestamp{TSA: a.URL, Checkpoint: string(checkpoint), Token: tok, Time: st.Time}, nil
}

// record stores tok, then appends its timestamp.issued event and notes
// the event's index beside it. A TSA that was down is up again.
func (s *Stamper) record(ctx context.Context, tok *api.Timestamp) error {
	db := s.cfg.DB
	_, err := db.ExecContext(ctx, db.InsertIgnore()+` INTO llmaudit_timestamps (tsa, tree_size, checkpoint, token, gen_time) VALUES (?, ?, ?, ?, ?)`,
		tok.TSA, tok.TreeSize, []byte(tok.Checkpoint), tok.Token, tok.Time.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("storing a timestamp token: %w", err)
	}
	s.mu.Lock()
	wasDown := s.down[tok.TSA]
	delete(s.down, tok.TSA)
	s.mu.Unlock()
	if wasDown {
		s.logger.Info("timestamp authority answers again", "tsa", tok.TSA, "tree_size", tok.TreeSize)
	}
	ap, err := s.appendEvent(ctx, KindIssued, map[string]any{
		AttrTSA: tok.TSA, AttrTreeSize: tok.TreeSize, AttrCheckpoint: tok.Checkpoint,
		AttrToken: base64.StdEncoding.EncodeToString(tok.Token), AttrTime: tok.Time.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `UPDATE llmaudit_timestamps SET event_index = ? WHERE tsa = ? AND tree_size = ?`, ap.Index, tok.TSA, tok.TreeSize); err != nil {
		return fmt.Errorf("storing a timestamp token: %w", err)
	}
	return nil
}

// failed records the first failure of an outage of the TSA at url as a
// timestamp.failed event; later failures of the same outage are logged
// only.
func (s *Stamper) failed(ctx context.Context, url string, size uint64, cause error) {
	s.mu.Lock()
	already := s.down[url]
	s.down[url] = true
	s.mu.Unlock()
	s.logger.Warn("timestamp authority gave no token; the checkpoint is time-stamped when it answers again", "tsa", url, "tree_size", size, "err", cause)
	if already {
		return
	}
	if _, err := s.appendEvent(ctx, KindFailed, map[string]any{AttrTSA: url, AttrTreeSize: size, AttrError: event.Shorten(cause.Error(), 512)}); err != nil {
		s.logger.Error("recording a timestamp authority outage", "tsa", url, "err", err)
		s.mu.Lock()
		delete(s.down, url) // record it at the next failure
		s.mu.Unlock()
	}
}

func (s *Stamper) appendEvent(ctx context.Context, kind string, attrs map[string]any) (event.Appended, error) {
	m := make(map[string]json.RawMessage, len(attrs))
	for k, v := range attrs {
		b, err := json.Marshal(v)
		if err != nil {
			return event.Appended{}, err
		}
		m[k] = b
	}
	res, err := s.cfg.Log.Append(ctx, s.cfg.Tenant, event.Writer{Token: s.cfg.ServerToken, Via: event.ViaServer},
		[]*event.Request{{Session: event.SessionTimestamps, Kind: kind, Actor: event.ServerActor, Attributes: m}})
	if err != nil {
		return event.Appended{}, fmt.Errorf("recording %s: %w", kind, err)
	}
	s.mu.Lock()
	s.own = append(s.own, res[0].Index)
	if len(s.own) > 64 {
		s.own = s.own[len(s.own)-64:]
	}
	s.mu.Unlock()
	return res[0], nil
}

// lastSize is the largest tree size the TSA at url stamped (0: none).
func (s *Stamper) lastSize(ctx context.Context, url string) (uint64, error) {
	var n sql.NullInt64
	if err := s.cfg.DB.QueryRowContext(ctx, `SELECT MAX(tree_size) FROM llmaudit_timestamps WHERE tsa = ?`, url).Scan(&n); err != nil {
		return 0, fmt.Errorf("reading timestamps: %w", err)
	}
	return uint64(n.Int64), nil
}

// Down lists the TSAs whose outage is recorded and not over.
func (s *Stamper) Down() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, a := range s.cfg.Authorities {
		if s.down[a.URL] {
			out = append(out, a.URL)
		}
	}
	return out
}

// ForSize returns the tokens on the checkpoint of tree size size, one per
// TSA, in the order of the configured authorities' URLs.
func (s *Stamper) ForSize(ctx context.Context, size uint64) ([]api.Timestamp, error) {
	return s.query(ctx, `WHERE tree_size = ? ORDER BY tsa`, size)
}

// Latest returns the tokens of the largest tree size stamped.
func (s *Stamper) Latest(ctx context.Context) ([]api.Timestamp, error) {
	return s.query(ctx, `WHERE tree_size = (SELECT MAX(tree_size) FROM llmaudit_timestamps) ORDER BY tsa`)
}

// Covering returns the tokens of the first time-stamped checkpoint that
// covers the entry at index (the smallest tree size above it), none if no
// token covers it yet.
func (s *Stamper) Covering(ctx context.Context, index uint64) ([]api.Timestamp, error) {
	return s.query(ctx, `WHERE tree_size = (SELECT MIN(tree_size) FROM llmaudit_timestamps WHERE tree_size > ?) ORDER BY tsa`, index)
}

func (s *Stamper) query(ctx context.Context, where string, args ...any) ([]api.Timestamp, error) {
	rows, err := s.cfg.DB.QueryContext(ctx, `SELECT tsa, tree_size, checkpoint, token, gen_time, event_index FROM llmaudit_timestamps `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("reading timestamps: %w", err)
	}
	defer rows.Close()
	var out []api.Timestamp
	for rows.Next() {
		var t api.Timestamp
		var cp []byte
		var gen string
		var ev sql.NullInt64
		if err := rows.Scan(&t.TSA, &t.TreeSize, &cp, &t.Token, &gen, &ev); err != nil {
			return nil, fmt.Errorf("reading timestamps: %w", err)
		}
		t.Checkpoint = string(cp)
		if t.Time, err = time.Parse(time.RFC3339Nano, gen); err != nil {
			return nil, fmt.Errorf("reading timestamps: %w", err)
		}
		if ev.Valid {
			i := uint64(ev.Int64)
			t.EventIndex = &i
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

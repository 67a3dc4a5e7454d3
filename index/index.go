// Package index is the session index of a log: for every leaf, its tenant,
// session, seq, kind, id and leaf hash. It is derived data, rebuilt from the
// log by following it in order, so it can always be deleted and recreated.
package index

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/tessera"
	tapi "github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/metrics"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
)

// Index is the session index of one log. Its high-water mark ("indexed
// size") only advances over a contiguous prefix of the log. Several
// instances may share one index (a shared sqldb.DB): they take turns to
// extend it, and each reads the indexed size from the database.
type Index struct {
	db     *sqldb.DB
	reader tessera.LogReader
	logger *slog.Logger

	mu      sync.Mutex
	size    uint64        // indexed size
	changed chan struct{} // closed and replaced whenever size grows
	kick    chan struct{}

	// stored are search terms that committed transactions wrote (at
	// most maxStoredTerms): writeSearch leaves them out.
	termsMu sync.Mutex
	stored  map[term]struct{}
}

// Schema is the index's tables (sqldb's portable DDL), with the session
// search's (search.go); SchemaVersion is pinned in the database.
var Schema = append([]string{
	`CREATE TABLE IF NOT EXISTS index_meta (k {name} PRIMARY KEY, v {int} NOT NULL){table}`,
	`CREATE TABLE IF NOT EXISTS entries (
  idx {int} PRIMARY KEY, tenant {id} NOT NULL, session {id} NOT NULL, seq {int} NOT NULL,
  kind {id} NOT NULL, id {id} NOT NULL, leaf_hash {hash} NOT NULL, time {time}){table}`,
	`CREATE UNIQUE INDEX IF NOT EXISTS entries_session ON entries (tenant, session, seq)`,
	// Added without a version change: created on the next start where
	// missing.
	`CREATE INDEX IF NOT EXISTS entries_id ON entries (id)`,
}, append(searchSchema, otelSchema...)...)

// SchemaVersion is the version of Schema.
const SchemaVersion = 1

// Open creates the index tables in db if needed.
func Open(db *sqldb.DB, reader tessera.LogReader, logger *slog.Logger) (*Index, error) {
	if db.Dialect == sqldb.SQLite {
		// An index made before the tables were named for one shared
		// database kept its size in "meta"; one made before event times
		// were kept lacks the time column, and rows it indexed then keep a
		// NULL time (delete index.db to rebuild it whole).
		for _, up := range []string{`ALTER TABLE meta RENAME TO index_meta`, `ALTER TABLE entries ADD COLUMN time TEXT`} {
			if _, err := db.Exec(up); err != nil && !strings.Contains(err.Error(), "no such table") && !strings.Contains(err.Error(), "duplicate column") {
				return nil, fmt.Errorf("upgrading index schema: %w", err)
			}
		}
	}
	if _, err := db.Schema(context.Background(), "index", SchemaVersion, Schema...); err != nil {
		return nil, err
	}
	if _, err := db.Exec(db.InsertIgnore() + ` INTO index_meta (k, v) VALUES ('indexed_size', 0)`); err != nil {
		return nil, fmt.Errorf("creating index schema: %w", err)
	}
	x := &Index{db: db, reader: reader, logger: logger, changed: make(chan struct{}), kick: make(chan struct{}, 1)}
	if err := x.upgradeSearch(context.Background()); err != nil {
		return nil, err
	}
	if _, err := x.refresh(context.Background()); err != nil {
		return nil, err
	}
	return x, nil
}

// refresh reads the indexed size from the database (another instance may
// have extended the index) and returns it.
func (x *Index) refresh(ctx context.Context) (uint64, error) {
	var size int64
	if err := x.db.QueryRowContext(ctx, `SELECT v FROM index_meta WHERE k = 'indexed_size'`).Scan(&size); err != nil {
		return 0, fmt.Errorf("reading the indexed size: %w", err)
	}
	x.grow(uint64(size))
	return x.Size(), nil
}

// grow raises the indexed size to size and wakes its waiters.
func (x *Index) grow(size uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if size <= x.size {
		return
	}
	x.size = size
	close(x.changed)
	x.changed = make(chan struct{})
}

// Size returns the indexed size: every leaf below it is in the index.
func (x *Index) Size() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.size
}

// Kick asks the follower to look for new leaves now.
func (x *Index) Kick() {
	select {
	case x.kick <- struct{}{}:
	default:
	}
}

// WaitFor blocks until the indexed size is at least size.
func (x *Index) WaitFor(ctx context.Context, size uint64) error {
	for {
		x.mu.Lock()
		s, ch := x.size, x.changed
		x.mu.Unlock()
		if s >= size {
			return nil
		}
		x.Kick()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// CatchUp indexes every integrated leaf not yet indexed, and reports the
// leaves left to index as it goes (metrics.IndexLag).
func (x *Index) CatchUp(ctx context.Context) error {
	target, err := x.reader.IntegratedSize(ctx)
	if err != nil {
		return fmt.Errorf("reading integrated size: %w", err)
	}
	from := x.Size()
	if x.db.Shared() {
		if from, err = x.refresh(ctx); err != nil {
			return err
		}
	}
	lag(target, from)
	if target <= from {
		return nil
	}
	start := time.Now()
	for from < target {
		// Whole entry bundles, up to maxBatchLeaves leaves and
		// maxBatchBytes of them, per transaction: memory stays flat, and
		// a session with events in several bundles has its search row
		// written once.
		leaves, end, err := x.readBatch(ctx, from, target)
		if err != nil {
			return err
		}
		var size uint64
		err = sqldb.Retry(ctx, func() (err error) {
			size, err = x.store(ctx, from, leaves, from, end)
			return err
		})
		if err != nil {
			return err
		}
		x.grow(size)
		from = size
		lag(target, from)
	}
	if d := time.Since(start); d > time.Second {
		x.logger.Info("session index caught up", "size", target, "took", d)
	}
	return nil
}

// The bounds of one transaction of CatchUp.
const (
	maxBatchLeaves = 4 * layout.EntryBundleWidth
	maxBatchBytes  = 4 << 20
)

// readBatch reads the leaves from from on, to the end of an entry bundle
// and below target: those of one bundle at least, and more bundles while
// they have fewer than maxBatchLeaves leaves and maxBatchBytes bytes. It
// returns them and the index after the last.
func (x *Index) readBatch(ctx context.Context, from, target uint64) (leaves [][]byte, end uint64, err error) {
	end, size := from, 0
	for end < target && len(leaves) < maxBatchLeaves && size < maxBatchBytes {
		bundleIdx := end / layout.EntryBundleWidth
		bundleEnd := min((bundleIdx+1)*layout.EntryBundleWidth, target)
		raw, err := x.reader.ReadEntryBundle(ctx, bundleIdx, layout.PartialTileSize(0, bundleIdx, bundleEnd))
		if err != nil {
			return nil, 0, fmt.Errorf("reading entry bundle %d: %w", bundleIdx, err)
		}
		var b tapi.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return nil, 0, fmt.Errorf("parsing entry bundle %d: %w", bundleIdx, err)
		}
		first := bundleIdx * layout.EntryBundleWidth
		if uint64(len(b.Entries)) < bundleEnd-first {
			return nil, 0, fmt.Errorf("entry bundle %d has %d entries, want %d", bundleIdx, len(b.Entries), bundleEnd-first)
		}
		for _, e := range b.Entries[end-first : bundleEnd-first] {
			leaves = append(leaves, e)
			size += len(e)
		}
		end = bundleEnd
	}
	return leaves, end, nil
}

// lag sets metrics.IndexLag: the integrated size target minus the indexed
// size.
func lag(target, indexed uint64) {
	metrics.IndexLag.Set(float64(target - min(target, indexed)))
}

// store indexes the leaves from..end (leaves[i] is the leaf at first+i) in
// one transaction, and returns the indexed size after it. The
// indexed size is read and locked first: where another instance indexed
// some of them already, only the rest are stored.
func (x *Index) store(ctx context.Context, first uint64, leaves [][]byte, from, end uint64) (uint64, error) {
	tx, err := x.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var cur int64
	if err := tx.QueryRowContext(ctx, `SELECT v FROM index_meta WHERE k = 'indexed_size'`+x.db.ForUpdate()).Scan(&cur); err != nil {
		return 0, fmt.Errorf("reading the indexed size: %w", err)
	}
	switch {
	case uint64(cur) >= end:
		return uint64(cur), nil
	case uint64(cur) < from:
		return 0, fmt.Errorf("the indexed size went back from %d to %d", from, cur)
	}
	from = uint64(cur)
	rows := make([]any, 0, 8*(end-from))
	for idx := from; idx < end; idx++ {
		data := leaves[idx-first]
		l, err := event.ParseHead(data)
		if err != nil {
			// Not one of ours (or corrupt): leave it out of the index, but
			// say so; the monitor reports it as a finding.
			x.logger.Warn("unparseable leaf not indexed", "index", idx, "error", err)
			continue
		}
		rows = append(rows, int64(idx), l.Tenant, l.Session, int64(l.Seq), l.Kind, l.ID, event.LeafHash(data), l.Time)
	}
	if err := insertRows(ctx, tx, `REPLACE INTO entries (idx, tenant, session, seq, kind, id, leaf_hash, time) VALUES `, 8, rows); err != nil {
		return 0, fmt.Errorf("indexing leaves %d to %d: %w", from, end, err)
	}
	sb, err := x.storeSearch(ctx, tx, first, leaves, from, end)
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE index_meta SET v = ? WHERE k = 'indexed_size'`, int64(end)); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	if sb != nil {
		x.rememberTerms(sb)
	}
	return end, nil
}

// rowsPerInsert is how many rows one statement of insertRows inserts.
const rowsPerInsert = 64

// insertRows runs the insert head (ending in "VALUES ") in tx for rows,
// width values a row, rowsPerInsert rows a statement: one statement per
// row was most of the index's CPU at load (SQLite and MariaDB both take
// a multi-row VALUES list, with INSERT IGNORE and REPLACE alike).
func insertRows(ctx context.Context, tx *sql.Tx, head string, width int, rows []any) error {
	return insertRowsThen(ctx, tx, head, width, rows, "")
}

// insertRowsThen is insertRows with tail after each statement's VALUES
// list (an upsert's ON CONFLICT clause).
func insertRowsThen(ctx context.Context, tx *sql.Tx, head string, width int, rows []any, tail string) error {
	tuple := "(?" + strings.Repeat(", ?", width-1) + ")"
	statement := func(n int) string { return head + tuple + strings.Repeat(", "+tuple, n-1) + tail }
	var full *sql.Stmt
	for len(rows) > 0 {
		n := min(len(rows)/width, rowsPerInsert)
		var err error
		switch {
		case n < rowsPerInsert:
			_, err = tx.ExecContext(ctx, statement(n), rows[:n*width]...)
		case full == nil:
			if full, err = tx.PrepareContext(ctx, statement(n)); err != nil {
				return err
			}
			defer full.Close()
			fallthrough
		default:
			_, err = full.ExecContext(ctx, rows[:n*width]...)
		}
		if err != nil {
			return err
		}
		rows = rows[n*width:]
	}
	return nil
}

// Follow keeps the index up to date until ctx is done.
func (x *Index) Follow(ctx context.Context, poll time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if err := x.CatchUp(ctx); err != nil && ctx.Err() == nil {
			x.logger.Error("session index", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-x.kick:
		}
	}
}

// Head returns the last indexed event of a session, or ok=false.
func (x *Index) Head(ctx context.Context, tenant, session string) (seq uint64, leafHash []byte, ok bool, err error) {
	var s int64
	err = x.db.QueryRowContext(ctx, `SELECT seq, leaf_hash FROM entries WHERE tenant = ? AND session = ? ORDER BY seq DESC LIMIT 1`, tenant, session).Scan(&s, &leafHash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, false, nil
	}
	if err != nil {
		return 0, nil, false, err
	}
	return uint64(s), leafHash, true, nil
}

// ByID returns the index of the event with id in tenant ("" for any), or
// ok=false if the index has no such event (yet).
func (x *Index) ByID(ctx context.Context, tenant, id string) (idx uint64, ok bool, err error) {
	var i int64
	err = x.db.QueryRowContext(ctx, `SELECT idx FROM entries WHERE id = ? AND (tenant = ? OR ? = '')`, id, tenant, tenant).Scan(&i)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return uint64(i), true, nil
}

// ByIDs returns the indices of the events of ids the index has (any
// tenant), 500 ids a query.
func (x *Index) ByIDs(ctx context.Context, ids []string) (map[string]uint64, error) {
	out := make(map[string]uint64, len(ids))
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := x.db.QueryContext(ctx, `SELECT id, idx FROM entries WHERE id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			var i int64
			if err := rows.Scan(&id, &i); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = uint64(i)
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Session lists up to limit events of a session with seq >= fromSeq, in
// order. The list covers the indexed prefix of the log only; call WaitFor
// first to include recent writes.
func (x *Index) Session(ctx context.Context, tenant, session string, fromSeq uint64, limit int) ([]api.SessionEntry, error) {
	rows, err := x.db.QueryContext(ctx, `SELECT idx, seq, kind, id, leaf_hash FROM entries WHERE tenant = ? AND session = ? AND seq >= ? ORDER BY seq LIMIT ?`,
		tenant, session, int64(fromSeq), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []api.SessionEntry
	for rows.Next() {
		var e api.SessionEntry
		var idx, seq int64
		var h []byte
		if err := rows.Scan(&idx, &seq, &e.Kind, &e.ID, &h); err != nil {
			return nil, err
		}
		e.Index, e.Seq, e.LeafHash = uint64(idx), uint64(seq), hex.EncodeToString(h)
		out = append(out, e)
	}
	return out, rows.Err()
}

// LatestTime returns the time of the latest event of tenant in any of
// sessions, and ok false if none is indexed. An event indexed without its
// time (by an index made before times were kept) counts as now.
func (x *Index) LatestTime(ctx context.Context, tenant string, sessions []string) (t time.Time, ok bool, err error) {
	for _, s := range sessions {
		var n int
		var latest sql.NullString
		if err := x.db.QueryRowContext(ctx, `SELECT count(*), max(time) FROM entries WHERE tenant = ? AND session = ?`, tenant, s).Scan(&n, &latest); err != nil {
			return time.Time{}, false, err
		}
		if n == 0 {
			continue
		}
		var nulls int
		if err := x.db.QueryRowContext(ctx, `SELECT count(*) FROM entries WHERE tenant = ? AND session = ? AND time IS NULL`, tenant, s).Scan(&nulls); err != nil {
			return time.Time{}, false, err
		}
		tt := time.Now().UTC()
		if nulls == 0 && latest.Valid {
			if tt, err = time.Parse(event.TimeFormat, latest.String); err != nil {
				return time.Time{}, false, err
			}
		}
		if !ok || tt.After(t) {
			t, ok = tt, true
		}
	}
	return t, ok, nil
}

package monitor

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// StateFile is the monitor's SQLite database inside its state directory.
const StateFile = "monitor.db"

// position is the monitor's verified progress. Entries [0, Pos) were
// evaluated and their alerts queued in the same transaction that stored
// Pos; Checkpoint is the last checkpoint whose every entry was re-hashed
// into its root (Size >= Pos).
type position struct {
	Origin     string     `json:"origin"`
	Checkpoint []byte     `json:"checkpoint"`
	Size       uint64     `json:"size"`
	Root       []byte     `json:"root"`
	Pos        uint64     `json:"pos"`
	Levels     [][][]byte `json:"levels"` // the tree at Pos
	FromStart  bool       `json:"from_start"`
}

func (p *position) tree() (*verify.Tree, error) { return verify.NewTree(p.Pos, p.Levels) }

// head is a verified tree head and when the monitor first verified it.
type head struct {
	Size     uint64
	Root     []byte
	Observed time.Time
}

// Sinks that an outbox row may still be pending for.
const (
	sinkStdout  = "stdout"
	sinkWebhook = "webhook"
	sinkAppend  = "append"
)

var sinks = []string{sinkStdout, sinkWebhook, sinkAppend}

// outboxRow is a queued alert.
type outboxRow struct {
	seq   int64
	alert Alert
}

// store persists the monitor's state in SQLite (WAL, synchronous=FULL):
// every commit is atomic and durable when it returns.
type store struct {
	db *sql.DB
}

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	path := filepath.Join(dir, StateFile)
	db, err := sqlitedb.Open(path, sqlitedb.Durable)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, k TEXT NOT NULL, v BLOB NOT NULL, PRIMARY KEY (ns, k)) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, body BLOB NOT NULL,
		   stdout INTEGER NOT NULL, webhook INTEGER NOT NULL, append INTEGER NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS heads (size INTEGER PRIMARY KEY, root BLOB NOT NULL, observed INTEGER NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS raised (id TEXT PRIMARY KEY, at INTEGER NOT NULL)`,
	} {
		if _, err := db.Exec(q); err != nil {
			db.Close()
			return nil, fmt.Errorf("initialising %s: %w", path, err)
		}
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

func (s *store) get(ns, key string) ([]byte, bool, error) {
	var v []byte
	err := s.db.QueryRow(`SELECT v FROM kv WHERE ns = ? AND k = ?`, ns, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading state: %w", err)
	}
	return v, true, nil
}

// preload reads all engine state when there is little of it, so that
// lookups of sessions the monitor never saw need no query.
func (s *store) preload(en *engine, limit int) (complete bool, err error) {
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM kv`).Scan(&n); err != nil {
		return false, err
	}
	if n > limit {
		return false, nil
	}
	rows, err := s.db.Query(`SELECT ns, k, v FROM kv`)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	for rows.Next() {
		var ns, k string
		var v []byte
		if err := rows.Scan(&ns, &k, &v); err != nil {
			return false, err
		}
		switch ns {
		case nsSession:
			st := new(sessionState)
			if err := json.Unmarshal(v, st); err != nil {
				return false, err
			}
			en.sessions[k] = st
		case nsGroup:
			g := new(groupState)
			if err := json.Unmarshal(v, g); err != nil {
				return false, err
			}
			en.groups[k] = g
		case nsConfig:
			c, err := decodeConfigState(v)
			if err != nil {
				return false, err
			}
			en.configs[k] = c
		}
	}
	return true, rows.Err()
}

func (s *store) loadPosition() (*position, error) {
	var v []byte
	err := s.db.QueryRow(`SELECT v FROM meta WHERE k = 'position'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	p := new(position)
	if err := json.Unmarshal(v, p); err != nil {
		return nil, fmt.Errorf("decoding state: %w", err)
	}
	return p, nil
}

func (s *store) loadHeads(n int) ([]head, error) {
	rows, err := s.db.Query(`SELECT size, root, observed FROM heads ORDER BY size DESC LIMIT ?`, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []head
	for rows.Next() {
		var h head
		var obs int64
		if err := rows.Scan(&h.Size, &h.Root, &obs); err != nil {
			return nil, err
		}
		h.Observed = time.Unix(0, obs).UTC()
		out = append([]head{h}, out...)
	}
	return out, rows.Err()
}

// commitSet is what one commit writes.
type commitSet struct {
	pos    *position // nil: unchanged
	writes []kvWrite
	alerts []queued
	head   *head
}

// queued is an alert and the sinks it must go to.
type queued struct {
	alert Alert
	sinks map[string]bool
}

// commit writes c atomically. Alerts whose ID was raised before (for
// integrity and health alerts, which can be re-detected) are dropped.
// It returns the alerts actually queued.
func (s *store) commit(ctx context.Context, c commitSet) ([]outboxRow, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("saving state: %w", err)
	}
	defer tx.Rollback()
	if c.pos != nil {
		b, err := json.Marshal(c.pos)
		if err != nil {
			return nil, err
		}
		if _, err := tx.Exec(`INSERT INTO meta (k, v) VALUES ('position', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, b); err != nil {
			return nil, fmt.Errorf("saving state: %w", err)
		}
	}
	for _, w := range c.writes {
		if _, err := tx.Exec(`INSERT INTO kv (ns, k, v) VALUES (?, ?, ?) ON CONFLICT (ns, k) DO UPDATE SET v = excluded.v`, w.ns, w.key, w.val); err != nil {
			return nil, fmt.Errorf("saving state: %w", err)
		}
	}
	if h := c.head; h != nil {
		if _, err := tx.Exec(`INSERT INTO heads (size, root, observed) VALUES (?, ?, ?) ON CONFLICT (size) DO NOTHING`, h.Size, h.Root, h.Observed.UnixNano()); err != nil {
			return nil, fmt.Errorf("saving state: %w", err)
		}
		if _, err := tx.Exec(`DELETE FROM heads WHERE size < (SELECT min(size) FROM (SELECT size FROM heads ORDER BY size DESC LIMIT 10000))`); err != nil {
			return nil, fmt.Errorf("saving state: %w", err)
		}
	}
	var out []outboxRow
	for _, q := range c.alerts {
		if q.alert.Source != SourceRule {
			res, err := tx.Exec(`INSERT INTO raised (id, at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, q.alert.ID, time.Now().UnixNano())
			if err != nil {
				return nil, fmt.Errorf("saving state: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue // raised before
			}
		}
		b, err := json.Marshal(q.alert)
		if err != nil {
			return nil, err
		}
		flag := func(s string) int {
			if q.sinks[s] {
				return 1
			}
			return 0
		}
		res, err := tx.Exec(`INSERT INTO outbox (id, body, stdout, webhook, append) VALUES (?, ?, ?, ?, ?)`,
			q.alert.ID, b, flag(sinkStdout), flag(sinkWebhook), flag(sinkAppend))
		if err != nil {
			return nil, fmt.Errorf("queueing alert: %w", err)
		}
		seq, _ := res.LastInsertId()
		out = append(out, outboxRow{seq: seq, alert: q.alert})
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("saving state: %w", err)
	}
	return out, nil
}

// pending returns up to limit alerts still pending for sink, oldest first.
func (s *store) pending(ctx context.Context, sink string, limit int) ([]outboxRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, body FROM outbox WHERE `+sink+` = 1 ORDER BY seq LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		var b []byte
		if err := rows.Scan(&r.seq, &b); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &r.alert); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *store) countPending(ctx context.Context, sink string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE `+sink+` = 1`).Scan(&n)
	return n, err
}

// delivered records that the alerts with these seqs reached sink.
func (s *store) delivered(ctx context.Context, sink string, seqs ...int64) error {
	if len(seqs) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range seqs {
		if _, err := tx.Exec(`UPDATE outbox SET `+sink+` = 0 WHERE seq = ?`, q); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(`DELETE FROM outbox WHERE stdout = 0 AND webhook = 0 AND append = 0`); err != nil {
		return err
	}
	return tx.Commit()
}

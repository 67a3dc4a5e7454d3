package witness

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
)

// Store keeps the latest cosigned checkpoint of each log in SQLite. Every
// write is durable when it returns (WAL journal, synchronous=FULL), and the
// only way to change a log's state is CompareAndSwap.
type Store struct {
	db *sql.DB
	// writeMu queues writers in-process. SQLite admits one writer at a
	// time; without this, concurrent writers would meet SQLITE_BUSY and
	// back off in sleeps of up to 100 ms. Correctness does not depend on
	// it: the compare-and-swap is a single UPDATE.
	writeMu sync.Mutex

	latest, cas *sql.Stmt
}

// State is a log's latest cosigned tree.
type State struct {
	Size uint64
	Root []byte
	// Checkpoint is the latest cosigned checkpoint (the log's signed note
	// plus this witness's cosignature), nil if none was cosigned yet.
	Checkpoint []byte
}

const schema = `
CREATE TABLE IF NOT EXISTS checkpoints (
	origin     TEXT PRIMARY KEY,
	size       INTEGER NOT NULL CHECK (size >= 0),
	root       BLOB NOT NULL CHECK (length(root) = 32),
	checkpoint BLOB
) STRICT;
-- Defence in depth: whatever the code does, the database refuses to roll a
-- log back or to change the root of a size it already cosigned.
CREATE TRIGGER IF NOT EXISTS checkpoints_append_only
BEFORE UPDATE ON checkpoints
WHEN NEW.size < OLD.size OR (NEW.size = OLD.size AND NEW.root != OLD.root) OR NEW.origin != OLD.origin
BEGIN
	SELECT RAISE(ABORT, 'witness: refusing to roll back or fork a log');
END;
`

// OpenStore opens (creating if needed) the database at path.
func OpenStore(path string) (*Store, error) {
	db, err := sqlitedb.Open(path, sqlitedb.Durable)
	if err != nil {
		return nil, fmt.Errorf("opening witness database: %w", err)
	}
	// SQLite has one writer at a time anyway; a few connections let reads
	// proceed while a commit is being synced.
	db.SetMaxOpenConns(4)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising witness database %s: %w", path, err)
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		db.Close()
		return nil, fmt.Errorf("witness database %s: journal mode %q, want wal (%v)", path, mode, err)
	}
	s := &Store{db: db}
	if s.latest, err = db.Prepare(`SELECT size, root, checkpoint FROM checkpoints WHERE origin = ?`); err != nil {
		db.Close()
		return nil, fmt.Errorf("witness database %s: %w", path, err)
	}
	if s.cas, err = db.Prepare(`UPDATE checkpoints SET size = ?, root = ?, checkpoint = ?
		WHERE origin = ? AND size = ? AND root = ?`); err != nil {
		db.Close()
		return nil, fmt.Errorf("witness database %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// AddLog records origin at size 0 (the empty tree) unless it is already
// known, in which case its state is left alone.
func (s *Store) AddLog(ctx context.Context, origin string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO checkpoints (origin, size, root) VALUES (?, 0, ?) ON CONFLICT (origin) DO NOTHING`,
		origin, rfc6962.DefaultHasher.EmptyRoot())
	if err != nil {
		return fmt.Errorf("adding log %q: %w", origin, err)
	}
	return nil
}

// errNoLog is returned by Latest for an origin never added with AddLog.
var errNoLog = errors.New("log not in witness database")

// Latest returns the latest cosigned state of origin.
func (s *Store) Latest(ctx context.Context, origin string) (*State, error) {
	var st State
	var size int64
	err := s.latest.QueryRowContext(ctx, origin).Scan(&size, &st.Root, &st.Checkpoint)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %q", errNoLog, origin)
	}
	if err != nil {
		return nil, fmt.Errorf("reading state of %q: %w", origin, err)
	}
	st.Size = uint64(size)
	return &st, nil
}

// CompareAndSwap atomically replaces origin's state with (newSize, newRoot,
// checkpoint) if and only if it is still (oldSize, oldRoot). It reports
// whether it did; the change is durable when it returns true.
func (s *Store) CompareAndSwap(ctx context.Context, origin string, oldSize uint64, oldRoot []byte,
	newSize uint64, newRoot, checkpoint []byte) (bool, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	res, err := s.cas.ExecContext(ctx, int64(newSize), newRoot, checkpoint, origin, int64(oldSize), oldRoot)
	if err != nil {
		return false, fmt.Errorf("updating state of %q: %w", origin, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("updating state of %q: %w", origin, err)
	}
	return n == 1, nil
}

// Package sqlitedb opens SQLite databases (pure Go, modernc.org/sqlite) with
// the settings this project relies on: WAL journal, a busy timeout, foreign
// keys, immediate write transactions and owner-only file permissions.
package sqlitedb

import (
	"database/sql"
	"fmt"
	"os"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Durability says when a commit reaches the disk.
type Durability string

const (
	// Durable: every commit is fsynced before it returns
	// (synchronous=FULL). For data that exists nowhere else: payloads,
	// tokens, witness state.
	Durable Durability = "FULL"
	// Rebuildable: commits are atomic but the last ones may be lost in a
	// power cut (synchronous=NORMAL in WAL mode). Only for data derived from
	// something durable, such as the session index built from the log.
	Rebuildable Durability = "NORMAL"
)

// MaxConns bounds the connections (and so page caches) of one database.
const MaxConns = 4

// Option adds a setting to every connection.
type Option string

// SecureDelete overwrites deleted content with zeros (PRAGMA
// secure_delete): data that is erased does not linger in free pages.
const SecureDelete Option = "&_pragma=secure_delete(on)"

// TempInMemory keeps SQLite's temporary files in memory (PRAGMA
// temp_store): a statement journal, which a multi-row write in a
// transaction keeps and otherwise spills to a file past 64 KiB, costs no
// system calls.
const TempInMemory Option = "&_pragma=temp_store(memory)"

// Open opens (creating if needed) the database at path. Memory stays
// bounded however large the data grows: at most MaxConns connections, each
// caching at most 8 MiB of pages.
func Open(path string, d Durability, opts ...Option) (*sql.DB, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("database path %q must not contain '?' or '#'", path)
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(" + string(d) + ")&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=cache_size(-8192)&_txlock=immediate"
	for _, o := range opts {
		dsn += string(o)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	db.SetMaxOpenConns(MaxConns)
	db.SetMaxIdleConns(MaxConns)
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

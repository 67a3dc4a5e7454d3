// Package sqldb is the database under the server's stores (vault, tokens,
// signers, holds, the session index, the session chain heads): SQLite files
// in the data directory for one log-server, or one MariaDB (or other
// MySQL-compatible) database shared by several log-server instances.
//
// Every store keeps one implementation over database/sql; where the two SQL
// dialects differ, it asks the DB (DDL, InsertIgnore, Upsert, ForUpdate).
// What several instances must agree on (schema versions, the log's key) is
// pinned in the table llmaudit_meta, and what must not happen twice at once
// across instances takes a named lock (Lock).
package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
)

// Dialect is the SQL dialect of a DB.
type Dialect string

// Dialects.
const (
	SQLite Dialect = "sqlite"
	MySQL  Dialect = "mysql"
)

// DB is a database of the server's state. It is safe for concurrent use.
type DB struct {
	*sql.DB
	Dialect Dialect
	// Name says where the database is, for messages (a path, or the
	// MySQL address and database name; never a password).
	Name string

	locks *localLocks
	// holders hold the user locks of a MySQL database (Lock).
	holders *holders
	// connector opens connections to a MySQL database (Pool).
	connector driver.Connector
}

// Close closes the database and its lock holders.
func (db *DB) Close() error {
	var errs []error
	if db.holders != nil {
		errs = append(errs, db.holders.close())
	}
	if db.DB != nil {
		errs = append(errs, db.DB.Close())
	}
	return errors.Join(errs...)
}

// Pool returns a pool of at most n connections of its own to the same
// database (MySQL), for work that must not wait behind the main pool's
// connections; on SQLite it is the database itself. The caller closes it
// (not on SQLite).
func (db *DB) Pool(n int) *sql.DB {
	if db.connector == nil {
		return db.DB
	}
	p := sql.OpenDB(db.connector)
	p.SetMaxOpenConns(n)
	p.SetMaxIdleConns(n)
	p.SetConnMaxLifetime(10 * time.Minute)
	return p
}

// Probe says whether the database takes a new connection now: it opens
// one outside the pool, pings it and closes it. A pool with idle
// connections answers a ping even when the server refuses every new
// connection (max_connections reached), which other pools on the same
// server (Tessera's) then fail on. On SQLite it pings the database.
func (db *DB) Probe(ctx context.Context) error {
	if db.connector == nil {
		return db.PingContext(ctx)
	}
	c, err := db.connector.Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if p, ok := c.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Errors.
var (
	// ErrPinMismatch is returned (wrapped) by Pin when the database holds
	// another value: another log's key, a schema of another version.
	ErrPinMismatch = errors.New("the database holds a different value")
)

// OpenSQLite opens (creating if needed) the SQLite database at path.
func OpenSQLite(path string, d sqlitedb.Durability, opts ...sqlitedb.Option) (*DB, error) {
	db, err := sqlitedb.Open(path, d, opts...)
	if err != nil {
		return nil, err
	}
	return &DB{DB: db, Dialect: SQLite, Name: path, locks: newLocalLocks()}, nil
}

// Shared reports whether several log-server instances may use the database
// at once (MySQL): in-memory caches then hold only for a bounded time, and
// locks are taken in the database.
func (db *DB) Shared() bool { return db.Dialect == MySQL }

// ddlTypes maps the portable type names of DDL to each dialect's.
var ddlTypes = map[Dialect]*strings.Replacer{
	SQLite: strings.NewReplacer(
		"{id}", "TEXT", // ids: tenants, sessions, tokens, kinds (event.MaxIDLength)
		"{name}", "TEXT", // short text that keys may include (up to 255 characters)
		"{text}", "TEXT",
		"{time}", "TEXT", // RFC 3339
		"{hash}", "BLOB", // up to 64 bytes: digests, lookup keys
		"{blob}", "BLOB",
		"{int}", "INTEGER",
		"{table}", "",
	),
	MySQL: strings.NewReplacer(
		"{id}", "VARCHAR(128)",
		"{name}", "VARCHAR(255)",
		"{text}", "MEDIUMTEXT",
		"{time}", "VARCHAR(40)",
		"{hash}", "VARBINARY(64)",
		"{blob}", "LONGBLOB",
		"{int}", "BIGINT",
		// Binary collation: ids compare byte for byte, as in SQLite
		// (MySQL's default collations fold case).
		"{table}", " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
	),
}

// DDL turns a portable CREATE statement into the dialect's: the types {id},
// {name}, {text}, {time}, {hash}, {blob} and {int}, and {table} after the
// closing parenthesis of a CREATE TABLE.
func (db *DB) DDL(stmt string) string { return ddlTypes[db.Dialect].Replace(stmt) }

// InsertIgnore starts an INSERT that skips rows whose key exists.
func (db *DB) InsertIgnore() string {
	if db.Dialect == MySQL {
		return "INSERT IGNORE"
	}
	return "INSERT OR IGNORE"
}

// Upsert returns an INSERT of cols into table that, when the row with the
// same key exists, sets the update columns to the new values instead.
func (db *DB) Upsert(table string, cols []string, key []string, update []string) string {
	q := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (?" + strings.Repeat(", ?", len(cols)-1) + ")"
	set := make([]string, len(update))
	for i, c := range update {
		if db.Dialect == MySQL {
			set[i] = c + " = VALUES(" + c + ")"
		} else {
			set[i] = c + " = excluded." + c
		}
	}
	if db.Dialect == MySQL {
		return q + " ON DUPLICATE KEY UPDATE " + strings.Join(set, ", ")
	}
	return q + " ON CONFLICT (" + strings.Join(key, ", ") + ") DO UPDATE SET " + strings.Join(set, ", ")
}

// ForUpdate is appended to a SELECT inside a transaction to lock the rows it
// reads until the transaction ends (MySQL). A SQLite write transaction
// locks the whole database already, so it is empty there.
func (db *DB) ForUpdate() string {
	if db.Dialect == MySQL {
		return " FOR UPDATE"
	}
	return ""
}

const metaDDL = `CREATE TABLE IF NOT EXISTS llmaudit_meta (k {name} PRIMARY KEY, v {text} NOT NULL){table}`

// Duplicate reports whether err says that a row with the same key exists.
func Duplicate(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062
	}
	return err != nil && (strings.Contains(err.Error(), "UNIQUE constraint failed") || strings.Contains(err.Error(), "PRIMARY KEY constraint failed"))
}

// Pin stores value under key if the database has none, and otherwise checks
// that it holds the same: every instance of a log must agree on what is
// pinned. first reports that this call stored it.
func (db *DB) Pin(ctx context.Context, key, value string) (first bool, err error) {
	if _, err := db.ExecContext(ctx, db.DDL(metaDDL)); err != nil {
		return false, fmt.Errorf("creating llmaudit_meta: %w", err)
	}
	res, err := db.ExecContext(ctx, db.InsertIgnore()+` INTO llmaudit_meta (k, v) VALUES (?, ?)`, key, value)
	if err != nil {
		return false, fmt.Errorf("pinning %s: %w", key, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	var got string
	if err := db.QueryRowContext(ctx, `SELECT v FROM llmaudit_meta WHERE k = ?`, key).Scan(&got); err != nil {
		return false, fmt.Errorf("reading %s: %w", key, err)
	}
	if got != value {
		return false, fmt.Errorf("%w: %s is %q in %s, not %q", ErrPinMismatch, key, clip(got), db.Name, clip(value))
	}
	return false, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Schema creates a component's tables (portable DDL, see DDL) where they
// are missing and checks the component's schema version, pinned as
// schema.COMPONENT: a database written by another version of the schema is
// refused rather than misread. created reports that the version was pinned
// now, i.e. that the component's tables are new.
func (db *DB) Schema(ctx context.Context, component string, version int, ddl ...string) (created bool, err error) {
	for _, stmt := range ddl {
		if _, err := db.ExecContext(ctx, db.DDL(stmt)); err != nil {
			return false, fmt.Errorf("creating the %s schema: %w", component, err)
		}
	}
	created, err = db.Pin(ctx, "schema."+component, fmt.Sprint(version))
	if err != nil {
		return false, fmt.Errorf("the %s schema: %w (this build uses version %d)", component, err, version)
	}
	return created, nil
}

package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Pool limits and timeouts of a MySQL database. Zero values take the
// defaults.
type Pool struct {
	// MaxConns bounds the main pool of this process (DefaultMaxConns).
	// MariaDB refuses connections past max_connections (151 by default)
	// in all: instances × (MaxConns + DefaultTesseraConns + LockHolders +
	// the head writer's pool) must stay below it.
	MaxConns int
	// DialTimeout bounds connecting (DefaultDialTimeout); IOTimeout bounds
	// one read or write on a connection (DefaultIOTimeout).
	DialTimeout, IOTimeout time.Duration
	// LockWait bounds how long a statement waits for a row lock
	// (innodb_lock_wait_timeout, DefaultLockWait).
	LockWait time.Duration
}

// Defaults of Pool.
const (
	DefaultMaxConns    = 24
	DefaultDialTimeout = 5 * time.Second
	DefaultIOTimeout   = 30 * time.Second
	DefaultLockWait    = 10 * time.Second
	// DefaultTesseraConns is the pool the server gives Tessera's sequencer.
	DefaultTesseraConns = 16
)

// ParseDSN checks a go-sql-driver/mysql DSN
// (user:password@tcp(host:port)/database) and returns it with the settings
// this project relies on: binary-safe UTF-8, arguments interpolated by the
// driver, timeouts and the lock wait of p. The database must be named.
func ParseDSN(dsn string, p Pool) (*mysql.Config, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("database DSN: %w", err)
	}
	if c.DBName == "" {
		return nil, errors.New("database DSN: name the database (user:password@tcp(host:3306)/llmaudit)")
	}
	if p.DialTimeout == 0 {
		p.DialTimeout = DefaultDialTimeout
	}
	if p.IOTimeout == 0 {
		p.IOTimeout = DefaultIOTimeout
	}
	if p.LockWait == 0 {
		p.LockWait = DefaultLockWait
	}
	if c.Timeout == 0 {
		c.Timeout = p.DialTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = p.IOTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = p.IOTimeout
	}
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	if _, ok := c.Params["innodb_lock_wait_timeout"]; !ok {
		c.Params["innodb_lock_wait_timeout"] = fmt.Sprint(int(max(1, p.LockWait.Seconds())))
	}
	c.Collation = "utf8mb4_bin"
	// Arguments are quoted by the driver (safe under utf8mb4), so a
	// statement with arguments is one round trip instead of three
	// (prepare, execute, close).
	c.InterpolateParams = true
	return c, nil
}

// Where names a MySQL database for messages: address and database, never
// the password.
func Where(c *mysql.Config) string {
	return fmt.Sprintf("mysql://%s@%s/%s", c.User, c.Addr, c.DBName)
}

// OpenMySQL opens the MySQL database of dsn (see ParseDSN) with the pool
// limits of p, and checks that it answers.
func OpenMySQL(ctx context.Context, dsn string, p Pool) (*DB, error) {
	c, err := ParseDSN(dsn, p)
	if err != nil {
		return nil, err
	}
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	if p.MaxConns == 0 {
		p.MaxConns = DefaultMaxConns
	}
	db.SetMaxOpenConns(p.MaxConns)
	db.SetMaxIdleConns(p.MaxConns)
	db.SetConnMaxLifetime(10 * time.Minute)
	db.SetConnMaxIdleTime(time.Minute)
	out := &DB{DB: db, Dialect: MySQL, Name: Where(c), locks: newLocalLocks(), connector: conn}
	out.holders = newHolders(out)
	if err := Retry(ctx, func() error { return db.PingContext(ctx) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to %s: %w", out.Name, err)
	}
	return out, nil
}

// Unavailable reports whether err says that the database cannot be reached
// or has gone away (a refused or broken connection, the server shutting
// down, too many connections): the request may succeed later, and a server
// answers 503 with Retry-After.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1040, // too many connections
			1203, // the user has more than max_user_connections
			1226, // a user resource limit reached (max_user_connections)
			1053, // server shutdown in progress
			1927, // connection was killed (MariaDB)
			2006, // server has gone away
			2013: // lost connection
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// Transient reports whether err may go away if the same work is tried
// again: Unavailable, a deadlock, or a lock wait timeout.
func Transient(err error) bool {
	if Unavailable(err) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213 || me.Number == 1205 // deadlock, lock wait timeout
	}
	return false
}

// Retry backoff: RetryAttempts tries, waiting RetryBase, then twice as long
// each time (50, 100, 200, 400 ms: at most 750 ms of waiting).
const (
	RetryAttempts = 5
	RetryBase     = 50 * time.Millisecond
)

// Retry runs f until it succeeds, fails with an error that is not
// Transient, ctx ends, or RetryAttempts tries failed; it returns f's last
// error. f must be safe to repeat (a read, an idempotent write, or a whole
// transaction).
func Retry(ctx context.Context, f func() error) error {
	wait := RetryBase
	var err error
	for try := 1; ; try++ {
		if err = f(); err == nil || !Transient(err) || try == RetryAttempts {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

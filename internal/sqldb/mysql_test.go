package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/llmaudittrail/llmaudittrail/internal/dbtest"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
)

// A server that refuses new connections is seen by Probe, though the
// pool's idle connection still answers a ping: the health check behind a
// failed append (Tessera's pool needs new connections) must see it too.
func TestProbeSeesRefusedConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := dbtest.MariaDB(t)
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	user := fmt.Sprintf("probe_%d", time.Now().UnixNano()%1e9)
	for _, q := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'pw' WITH MAX_USER_CONNECTIONS 1", user),
		fmt.Sprintf("GRANT ALL ON `%s`.* TO '%s'@'%%'", c.DBName, user),
	} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { admin.Exec(fmt.Sprintf("DROP USER '%s'@'%%'", user)) })

	full, err := sqldb.OpenMySQL(ctx, dsn, sqldb.Pool{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	if err := full.Probe(ctx); err != nil {
		t.Fatalf("Probe of a server that takes connections: %v", err)
	}

	c.User, c.Passwd = user, "pw"
	db, err := sqldb.OpenMySQL(ctx, c.FormatDSN(), sqldb.Pool{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("the pool's own connection: %v", err)
	}
	err = db.Probe(ctx)
	if err == nil {
		t.Fatal("Probe succeeded while the user's only connection is held by the pool")
	}
	if !sqldb.Unavailable(err) {
		t.Fatalf("Probe's error %v is not Unavailable", err)
	}
}

// Locks that no other instance holds are held by the shared holder
// connections, not by a connection each; another instance waits for them
// (and times out), takes them once released, and takes them when the
// holder's connection dies; the old Locks then release nothing.
func TestLocksAcrossInstances(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := dbtest.MariaDB(t)
	a, err := sqldb.OpenMySQL(ctx, dsn, sqldb.Pool{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqldb.OpenMySQL(ctx, dsn, sqldb.Pool{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	var held []*sqldb.Lock
	for i := range 20 {
		l, err := a.Lock(ctx, time.Second, fmt.Sprintf("session-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
	}
	if n := a.Stats().InUse; n != 0 {
		t.Fatalf("20 locks held keep %d connections of the pool in use, want 0", n)
	}
	start := time.Now()
	if _, err := b.Lock(ctx, time.Second, "session-3"); !errors.Is(err, sqldb.ErrLockTimeout) {
		t.Fatalf("another instance's Lock of a held name = %v, want ErrLockTimeout", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("the other instance gave up after %v, before its wait of 1 s", d)
	}
	got := make(chan error, 1)
	go func() {
		l, err := b.Lock(ctx, 10*time.Second, "session-4")
		if err == nil {
			l.Unlock()
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	held[4].Unlock()
	if err := <-got; err != nil {
		t.Fatalf("another instance's Lock after Unlock = %v", err)
	}

	// A Lock of several names gets all or none: x is free, y is held by a,
	// so b's Lock of both times out and leaves x free.
	if _, err := b.Lock(ctx, time.Second, "session-0-free", "session-5"); !errors.Is(err, sqldb.ErrLockTimeout) {
		t.Fatalf("b's Lock of a free and a held name = %v, want ErrLockTimeout", err)
	}
	x, err := a.Lock(ctx, time.Second, "session-0-free")
	if err != nil {
		t.Fatalf("a name left taken by a Lock that failed: %v", err)
	}
	x.Unlock()

	// Kill every connection to the test's database (a's lock holders
	// among them; b's pool reconnects): a's locks go.
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for i, h := range held {
		if i != 4 && h.Lost() {
			t.Fatalf("lock %d reported lost while its connection is alive", i)
		}
	}
	if dbtest.KillConnections(t, admin, "db = DATABASE()") == 0 {
		t.Fatal("no connection to the test's database")
	}
	// Once a's holders have tried a statement each (a Lock per holder),
	// every lock they held is known to be lost.
	for i := range sqldb.LockHolders {
		l, err := a.Lock(ctx, time.Second, fmt.Sprintf("probe-%d", i))
		if err != nil {
			t.Fatalf("a's Lock after its connections were killed = %v", err)
		}
		l.Unlock()
	}
	for i, h := range held {
		if i != 4 && !h.Lost() {
			t.Fatalf("lock %d not reported lost after its connection was killed", i)
		}
	}
	l, err := b.Lock(ctx, 5*time.Second, "session-7")
	if err != nil {
		t.Fatalf("Lock after the holder's connection died = %v", err)
	}
	for _, h := range held {
		h.Unlock() // releases nothing, and does not fail
	}
	if _, err := a.Lock(ctx, time.Second, "session-7"); !errors.Is(err, sqldb.ErrLockTimeout) {
		t.Fatalf("a's Lock of a name b holds, after a's old locks went = %v, want ErrLockTimeout", err)
	}
	l.Unlock()
	l2, err := a.Lock(ctx, time.Second, "session-7")
	if err != nil {
		t.Fatalf("a's Lock once b released = %v", err)
	}
	l2.Unlock()
}

package sqldb_test

import (
	"context"
	"database/sql"
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

package index

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/dbtest"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
)

// TestInsertRows: insertRows stores every row, in full statements of
// rowsPerInsert rows and one of the rest, on each dialect.
func TestInsertRows(t *testing.T) {
	ctx := context.Background()
	opens := map[string]func(t *testing.T) (*sqldb.DB, error){
		"sqlite": func(t *testing.T) (*sqldb.DB, error) {
			return sqldb.OpenSQLite(filepath.Join(t.TempDir(), "index.db"), sqlitedb.Rebuildable)
		},
		"mariadb": func(t *testing.T) (*sqldb.DB, error) { return sqldb.OpenMySQL(ctx, dbtest.MariaDB(t), sqldb.Pool{}) },
	}
	for name, open := range opens {
		t.Run(name, func(t *testing.T) {
			db, err := open(t)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			testInsertRows(ctx, t, db)
		})
	}
}

func testInsertRows(ctx context.Context, t *testing.T, db *sqldb.DB) {
	{
		for _, n := range []int{0, 1, rowsPerInsert, 2*rowsPerInsert + 5} {
			tbl := fmt.Sprintf("insert_rows_test_%d", n)
			db.Exec(`DROP TABLE IF EXISTS ` + tbl)
			if _, err := db.Exec(`CREATE TABLE ` + tbl + ` (a INTEGER PRIMARY KEY, b VARCHAR(20) NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			var rows []any
			for i := range n {
				rows = append(rows, int64(i), fmt.Sprint("v", i))
			}
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := insertRows(ctx, tx, `INSERT INTO `+tbl+` (a, b) VALUES `, 2, rows); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			var count, sum int64
			if err := db.QueryRow(`SELECT COUNT(*), COALESCE(SUM(a), 0) FROM `+tbl).Scan(&count, &sum); err != nil {
				t.Fatal(err)
			}
			if count != int64(n) || sum != int64(n*(n-1)/2) {
				t.Errorf("%d rows: stored %d, sum of keys %d", n, count, sum)
			}
		}
	}
}

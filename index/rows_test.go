package index

import (
	"context"
	"fmt"
	"log/slog"
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

// TestSessionRowsMerge: a session's row takes the earliest first and the
// latest last position (with their times) and the largest count, over
// batches in any order, the same on each dialect (an upsert on SQLite,
// read and update on MariaDB).
func TestSessionRowsMerge(t *testing.T) {
	ctx := context.Background()
	for name, open := range map[string]func(t *testing.T) (*sqldb.DB, error){
		"sqlite": func(t *testing.T) (*sqldb.DB, error) {
			return sqldb.OpenSQLite(filepath.Join(t.TempDir(), "index.db"), sqlitedb.Rebuildable)
		},
		"mariadb": func(t *testing.T) (*sqldb.DB, error) { return sqldb.OpenMySQL(ctx, dbtest.MariaDB(t), sqldb.Pool{}) },
	} {
		t.Run(name, func(t *testing.T) {
			db, err := open(t)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			x, err := Open(db, nil, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			k := sessionKey{"t1", "s1"}
			batch := func(first, last uint64, events uint64) {
				b := newSearchBatch()
				b.sessions[k] = &sessionAgg{firstIdx: first, lastIdx: last, firstTime: fmt.Sprint("time-", first), lastTime: fmt.Sprint("time-", last), events: events}
				b.order = append(b.order, k)
				b.sessions[sessionKey{"t1", fmt.Sprint("other-", first)}] = &sessionAgg{firstIdx: first, lastIdx: first, firstTime: "x", lastTime: "x", events: 1}
				b.order = append(b.order, sessionKey{"t1", fmt.Sprint("other-", first)})
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback()
				if err := x.writeSearch(ctx, tx, b); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			batch(10, 12, 3)
			batch(20, 25, 9)
			batch(5, 7, 2)   // earlier positions, fewer events
			batch(10, 25, 9) // nothing new
			var fi, li, ev int64
			var ft, lt string
			if err := db.QueryRow(`SELECT first_idx, last_idx, first_time, last_time, events FROM search_sessions WHERE tenant = 't1' AND session = 's1'`).Scan(&fi, &li, &ft, &lt, &ev); err != nil {
				t.Fatal(err)
			}
			if got, want := fmt.Sprintf("%d %d %s %s %d", fi, li, ft, lt, ev), "5 25 time-5 time-25 9"; got != want {
				t.Errorf("session row %q, want %q", got, want)
			}
			var n int
			if err := db.QueryRow(`SELECT COUNT(*) FROM search_sessions`).Scan(&n); err != nil || n != 4 {
				t.Errorf("%d session rows (%v), want 4", n, err)
			}
		})
	}
}

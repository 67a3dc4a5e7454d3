package sqlitedb

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// TestOptions: each connection of the pool has the options' settings.
func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		opts      []Option
		tempStore int // 0 default (a file), 2 memory
	}{{nil, 0}, {[]Option{TempInMemory}, 2}, {[]Option{SecureDelete, TempInMemory}, 2}} {
		db, err := Open(filepath.Join(t.TempDir(), "x.db"), Rebuildable, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		// Hold MaxConns connections at once, so that every one is asked.
		conns := make([]*sql.Conn, 0, MaxConns)
		for range MaxConns {
			c, err := db.Conn(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var v int
			if err := c.QueryRowContext(t.Context(), `PRAGMA temp_store`).Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v != tc.tempStore {
				t.Errorf("options %q: temp_store %d, want %d", tc.opts, v, tc.tempStore)
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
		db.Close()
	}
}

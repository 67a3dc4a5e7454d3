package backend_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/backend"
	"github.com/llmaudittrail/llmaudittrail/internal/dbtest"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
	"github.com/llmaudittrail/llmaudittrail/internal/storetest"
)

// The store conformance suite on both databases.
func TestStores(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) *sqldb.DB {
			db, err := sqldb.OpenSQLite(filepath.Join(t.TempDir(), "state.db"), sqlitedb.Durable, sqlitedb.SecureDelete)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		})
	})
	t.Run("mariadb", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) *sqldb.DB {
			db, err := sqldb.OpenMySQL(context.Background(), dbtest.MariaDB(t), sqldb.Pool{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		})
	})
}

// The engine's conformance suite on both storages.
func TestLog(t *testing.T) {
	t.Run("posix", func(t *testing.T) {
		storetest.RunLog(t, func(t *testing.T) *backend.Backend {
			return open(t, backend.Config{DataDir: t.TempDir()})
		})
	})
	t.Run("s3", func(t *testing.T) {
		storetest.RunLog(t, func(t *testing.T) *backend.Backend {
			ep, bucket := dbtest.S3(t)
			return open(t, backend.Config{Kind: backend.S3, DSN: dbtest.MariaDB(t), S3: backend.S3Config{Endpoint: ep, Bucket: bucket}})
		})
	})
}

func open(t *testing.T, cfg backend.Config) *backend.Backend {
	t.Helper()
	b, err := backend.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

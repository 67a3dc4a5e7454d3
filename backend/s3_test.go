package backend_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/transparency-dev/tessera"

	"github.com/llmaudittrail/llmaudittrail/backend"
	"github.com/llmaudittrail/llmaudittrail/internal/dbtest"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/storetest"
)

// The s3 storage answers tiles and bundles as tlog-tiles requires: a
// missing object is os.ErrNotExist (a 404 to clients), and a partial tile
// that garbage collection removed is answered by the full one.
func TestS3ReaderPartialOrFull(t *testing.T) {
	ep, bucket := dbtest.S3(t)
	b := open(t, backend.Config{Kind: backend.S3, DSN: dbtest.MariaDB(t), S3: backend.S3Config{Endpoint: ep, Bucket: bucket}})
	l := storetest.Engine(t, b, storetest.NewKeys(t, "test/s3reader"))
	r := l.Reader()
	ctx := context.Background()
	full := []byte("a full tile, as garbage collection leaves it")
	for key, data := range map[string][]byte{"tile/0/007": full, "tile/entries/007": full} {
		if _, err := b.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
	}
	for name, read := range map[string]func(uint8) ([]byte, error){
		"tile":   func(p uint8) ([]byte, error) { return r.ReadTile(ctx, 0, 7, p) },
		"bundle": func(p uint8) ([]byte, error) { return r.ReadEntryBundle(ctx, 7, p) },
	} {
		got, err := read(13)
		if err != nil || !bytes.Equal(got, full) {
			t.Fatalf("%s: partial of width 13 without its object = %q, %v; want the full one", name, got, err)
		}
	}
	if _, err := r.ReadTile(ctx, 0, 8, 5); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a tile that does not exist: %v, want os.ErrNotExist", err)
	}
	if _, err := r.ReadEntryBundle(ctx, 8, 0); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "tile/entries/008") {
		t.Fatalf("a bundle that does not exist: %v, want os.ErrNotExist naming it", err)
	}
	var _ tessera.LogReader = r
}

// At start an s3 instance says how many database connections it may open
// against max_connections, and warns when that alone is too many.
func TestS3ConnectionBudget(t *testing.T) {
	ep, bucket := dbtest.S3(t)
	dsn := dbtest.MariaDB(t)
	for _, tc := range []struct {
		conns int
		want  string
	}{
		{0, "instances_that_fit="},
		{100000, "lower --db-max-conns or raise max_connections"},
	} {
		var out bytes.Buffer
		open(t, backend.Config{Kind: backend.S3, DSN: dsn, Pool: sqldb.Pool{MaxConns: tc.conns},
			S3: backend.S3Config{Endpoint: ep, Bucket: bucket}, Logger: slog.New(slog.NewTextHandler(&out, nil))})
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("--db-max-conns %d: the start log does not say %q:\n%s", tc.conns, tc.want, out.String())
		}
	}
}

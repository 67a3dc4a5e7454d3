package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, MasterKeySize) }

// openFile opens a vault in a SQLite file, as the server does.
func openFile(t *testing.T, path string, mk []byte, opts ...Option) (*Vault, error) {
	t.Helper()
	db, err := sqldb.OpenSQLite(path, sqlitedb.Durable, sqlitedb.SecureDelete)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { db.Close() })
	return Open(db, mk, opts...)
}

func TestRoundTripAndAtRest(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vault.db")
	v, err := openFile(t, path, key(1))
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("patient MRN 00042 diagnosis: hypertension")
	salt := bytes.Repeat([]byte{7}, 32)
	if err := v.Put(ctx, Record{ID: "e1", Tenant: "t", Session: "s", MediaType: "text/plain", Salt: salt, Payload: secret}); err != nil {
		t.Fatal(err)
	}
	got, err := v.Get(ctx, "e1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Payload, secret) || !bytes.Equal(got.Salt, salt) || got.MediaType != "text/plain" || got.Session != "s" {
		t.Fatalf("Get = %+v", got)
	}
	if _, err := v.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	// Nothing in clear on disk (database, WAL).
	files, _ := filepath.Glob(path + "*")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("MRN 00042")) || bytes.Contains(b, salt) {
			t.Fatalf("%s holds the payload or salt in clear", f)
		}
	}
	// The wrong master key does not open the vault.
	if v2, err := openFile(t, path, key(2)); !errors.Is(err, ErrWrongMasterKey) {
		if err == nil {
			v2.Close()
		}
		t.Fatalf("Open with the wrong master key = %v, want ErrWrongMasterKey", err)
	}
}

func TestEraseSession(t *testing.T) {
	ctx := context.Background()
	v, err := openFile(t, filepath.Join(t.TempDir(), "vault.db"), key(1))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for i, s := range []string{"a", "a", "b"} {
		if err := v.Put(ctx, Record{ID: fmt.Sprint(i), Tenant: "t", Session: s, MediaType: "text/plain", Salt: []byte{1}, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := v.EraseSession(ctx, "t", "a")
	if err != nil || n != 2 {
		t.Fatalf("EraseSession = %d, %v; want 2, nil", n, err)
	}
	for _, id := range []string{"0", "1"} {
		if _, err := v.Get(ctx, id); !errors.Is(err, ErrErased) {
			t.Fatalf("Get(%s) after erasure = %v, want ErrErased", id, err)
		}
	}
	if _, err := v.Get(ctx, "2"); err != nil {
		t.Fatalf("other session damaged: %v", err)
	}
	if err := v.Put(ctx, Record{ID: "3", Tenant: "t", Session: "a", MediaType: "text/plain", Payload: []byte("y")}); !errors.Is(err, ErrErased) {
		t.Fatalf("Put into erased session = %v, want ErrErased", err)
	}
	if _, err := v.EraseSession(ctx, "t", "zzz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("EraseSession(unknown) = %v", err)
	}
}

func TestConcurrentPutsGroupCommit(t *testing.T) {
	ctx := context.Background()
	v, err := openFile(t, filepath.Join(t.TempDir(), "vault.db"), key(1))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 25 {
				id := fmt.Sprintf("%d-%d", w, i)
				if err := v.Put(ctx, Record{ID: id, Tenant: "t", Session: fmt.Sprint(w % 4), MediaType: "text/plain", Payload: []byte(id)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for w := range 16 {
		for i := range 25 {
			id := fmt.Sprintf("%d-%d", w, i)
			r, err := v.Get(ctx, id)
			if err != nil || string(r.Payload) != id {
				t.Fatalf("Get(%s) = %q, %v", id, r.Payload, err)
			}
		}
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Put(ctx, Record{ID: "late", Tenant: "t", Session: "s"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close = %v, want ErrClosed", err)
	}
}

// Under sustained load puts that arrive within the commit spacing share one
// transaction; every one of them is durable when Put returns.
func TestCommitSpacingGroupsPuts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vault.db")
	v, err := openFile(t, path, key(1), WithCommitSpacing(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	put := func(i int) error {
		return v.Put(ctx, Record{ID: fmt.Sprintf("e%d", i), Tenant: "t", Session: fmt.Sprintf("s%d", i%3), MediaType: "text/plain", Salt: []byte("salt"), Payload: []byte("p")})
	}
	// The first put after a quiet spell commits at once.
	if err := put(0); err != nil {
		t.Fatal(err)
	}
	if n := v.commits.Load(); n != 1 {
		t.Fatalf("%d commits after the first put, want 1", n)
	}
	// The next ones wait for the spacing, or for a full transaction: fill
	// one exactly, so that the test does not wait an hour.
	var wg sync.WaitGroup
	errs := make(chan error, maxBatchRows)
	for i := 1; i <= maxBatchRows; i++ {
		wg.Go(func() { errs <- put(i) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := v.commits.Load(); n != 2 {
		t.Fatalf("%d commits for 1+%d puts, want 2", n, maxBatchRows)
	}
	for _, i := range []int{0, 1, maxBatchRows} {
		if _, err := v.Get(ctx, fmt.Sprintf("e%d", i)); err != nil {
			t.Fatalf("Get(e%d): %v", i, err)
		}
	}
}

// The data-key cache never drops a key that is not committed yet: a second
// key would be made for the session and its payloads could not be opened.
func TestKeyCacheKeepsUncommittedKeys(t *testing.T) {
	ctx := context.Background()
	v, err := openFile(t, filepath.Join(t.TempDir(), "vault.db"), key(1))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	first, err := v.key(ctx, "t", "s0")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= maxCachedKeys; i++ { // one more than the bound
		if _, err := v.key(ctx, "t", fmt.Sprintf("s%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	again, err := v.key(ctx, "t", "s0")
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Fatal("an uncommitted data key was dropped from the cache and replaced")
	}
	// Once committed, keys may be dropped and are read back from the
	// database unchanged.
	if err := v.Put(ctx, Record{ID: "e0", Tenant: "t", Session: "s0", MediaType: "text/plain", Salt: []byte("salt"), Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	v.keys[sessionKey{"t", "x"}] = &dataKey{} // trigger the bound on the next miss
	v.mu.Unlock()
	if _, err := v.key(ctx, "t", "another"); err != nil {
		t.Fatal(err)
	}
	v.mu.Lock()
	_, cached := v.keys[sessionKey{"t", "s0"}]
	v.mu.Unlock()
	if cached {
		t.Fatal("a committed key was not dropped when the cache was full")
	}
	got, err := v.Get(ctx, "e0")
	if err != nil || string(got.Payload) != "p" {
		t.Fatalf("Get(e0) = %+v, %v", got, err)
	}
}

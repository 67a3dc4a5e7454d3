package signer

import (
	"context"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
	"golang.org/x/crypto/argon2"
)

func newStore(t testing.TB, p Policy) (*Store, *time.Time) {
	t.Helper()
	db, err := sqldb.OpenSQLite(filepath.Join(t.TempDir(), "state.db"), sqlitedb.Durable)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(db, p)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	return s, &now
}

var cheap = Policy{Time: 1, MemoryKiB: 1024, Threads: 1}

func TestEnrollUnsealRotate(t *testing.T) {
	s, _ := newStore(t, cheap)
	ctx := context.Background()
	if _, err := s.Enroll(ctx, "acme", "ada", "Ada", "short"); !errors.Is(err, ErrWeakSecret) {
		t.Fatalf("weak secret: %v", err)
	}
	sg, err := s.Enroll(ctx, "acme", "ada", " Ada Lovelace ", "secret one")
	if err != nil {
		t.Fatal(err)
	}
	if sg.PrintedName != "Ada Lovelace" {
		t.Fatalf("printed name %q", sg.PrintedName)
	}
	if _, err := s.Enroll(ctx, "acme", "ada", "Mallory", "secret two"); !errors.Is(err, ErrExists) {
		t.Fatalf("second enrollment: %v", err)
	}
	// The same id in another tenant is another signer.
	if _, err := s.Enroll(ctx, "other", "ada", "Ada B.", "secret two"); err != nil {
		t.Fatal(err)
	}
	priv, got, err := s.Unseal(ctx, "acme", "ada", "secret one")
	if err != nil || !priv.Public().(ed25519.PublicKey).Equal(sg.Public) || got.KeyID != sg.KeyID {
		t.Fatalf("Unseal: %v", err)
	}
	if _, _, err := s.Unseal(ctx, "acme", "ada", "secret two"); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, _, err := s.Unseal(ctx, "acme", "nobody", "secret one"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown signer: %v", err)
	}
	// Rotation: a new key under the new secret; the old secret is dead.
	if _, err := s.Rotate(ctx, "acme", "ada", "wrong secret", "secret three"); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("rotation with a wrong secret: %v", err)
	}
	rot, err := s.Rotate(ctx, "acme", "ada", "secret one", "secret three")
	if err != nil || rot.KeyID == sg.KeyID {
		t.Fatalf("Rotate: %v (key %s)", err, rot.KeyID)
	}
	if _, _, err := s.Unseal(ctx, "acme", "ada", "secret one"); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("old secret after rotation: %v", err)
	}
	if priv, _, err := s.Unseal(ctx, "acme", "ada", "secret three"); err != nil || !priv.Public().(ed25519.PublicKey).Equal(rot.Public) {
		t.Fatalf("new secret: %v", err)
	}
	// A stronger policy later does not break keys sealed under the old one:
	// each row names its own parameters.
	s.p.Time = 2
	if _, _, err := s.Unseal(ctx, "acme", "ada", "secret three"); err != nil {
		t.Fatalf("after a policy change: %v", err)
	}
	// Revocation is final and checked before the secret.
	if err := s.Revoke(ctx, "acme", "ada"); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, "acme", "ada"); !errors.Is(err, ErrRevoked) {
		t.Fatalf("second revocation: %v", err)
	}
	if _, _, err := s.Unseal(ctx, "acme", "ada", "secret three"); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}
	if _, err := s.Rotate(ctx, "acme", "ada", "secret three", "secret four"); !errors.Is(err, ErrRevoked) {
		t.Fatalf("rotation of a revoked signer: %v", err)
	}
}

// TestTamperedRowSignsNothing: the sealed key is bound to its signer, so a
// row copied to another signer (or a flipped byte) does not unseal.
func TestTamperedRowSignsNothing(t *testing.T) {
	s, _ := newStore(t, cheap)
	ctx := context.Background()
	for _, id := range []string{"ada", "bob"} {
		if _, err := s.Enroll(ctx, "acme", id, id, "same secret"); err != nil {
			t.Fatal(err)
		}
	}
	// Give bob ada's sealed key, salt and verifier (but keep bob's public
	// key and key id): the AEAD's associated data names the signer.
	if _, err := s.db.Exec(`UPDATE signers SET salt = (SELECT salt FROM signers WHERE id = 'ada'), verifier = (SELECT verifier FROM signers WHERE id = 'ada'),
		sealed_key = (SELECT sealed_key FROM signers WHERE id = 'ada') WHERE id = 'bob'`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Unseal(ctx, "acme", "bob", "same secret"); err == nil || errors.Is(err, ErrWrongSecret) {
		t.Fatalf("a transplanted key unsealed: %v", err)
	}
}

func TestLockout(t *testing.T) {
	s, now := newStore(t, Policy{Time: 1, MemoryKiB: 1024, Threads: 1, MaxFailures: 3, FailureWindow: 10 * time.Minute, LockDuration: 30 * time.Minute})
	ctx := context.Background()
	if _, err := s.Enroll(ctx, "acme", "ada", "Ada", "secret one"); err != nil {
		t.Fatal(err)
	}
	fail := func() bool {
		t.Helper()
		locked, err := s.Failure(ctx, "acme", "ada")
		if err != nil {
			t.Fatal(err)
		}
		return locked
	}
	// Failures spread wider than the window never lock.
	for range 5 {
		if fail() {
			t.Fatal("locked by failures outside one window")
		}
		*now = now.Add(6 * time.Minute)
	}
	*now = now.Add(time.Hour)
	if fail() || fail() || !fail() {
		t.Fatal("three failures within the window did not lock at the third")
	}
	if _, _, err := s.Unseal(ctx, "acme", "ada", "secret one"); !errors.Is(err, ErrLocked) {
		t.Fatalf("locked signer with the right secret: %v", err)
	}
	*now = now.Add(31 * time.Minute)
	if _, _, err := s.Unseal(ctx, "acme", "ada", "secret one"); err != nil {
		t.Fatalf("after the lock ended: %v", err)
	}
	// The count starts afresh after a lock.
	if fail() {
		t.Fatal("the failures before the lock still count")
	}
	if fail(); !fail() {
		t.Fatal("second lock")
	}
	if err := s.Unlock(ctx, "acme", "ada"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Unseal(ctx, "acme", "ada", "secret one"); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
}

func TestSessions(t *testing.T) {
	s, now := newStore(t, Policy{Time: 1, MemoryKiB: 1024, Threads: 1, SessionIdle: 10 * time.Minute, SessionMax: time.Hour})
	ctx := context.Background()
	sid, err := s.StartSession(ctx, "acme", "ada", "tok1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Session(ctx, sid, "tok2"); !errors.Is(err, ErrSession) {
		t.Fatalf("another token: %v", err)
	}
	// Using it with another token ended it.
	if _, _, err := s.Session(ctx, sid, "tok1"); !errors.Is(err, ErrSession) {
		t.Fatalf("after misuse: %v", err)
	}
	sid, _ = s.StartSession(ctx, "acme", "ada", "tok1")
	for range 6 { // 54 minutes of use every 9 minutes
		*now = now.Add(9 * time.Minute)
		if tenant, id, err := s.Session(ctx, sid, "tok1"); err != nil || tenant != "acme" || id != "ada" {
			t.Fatalf("session in use: %s %s %v", tenant, id, err)
		}
	}
	*now = now.Add(9 * time.Minute) // 63 minutes: past the maximum
	if _, _, err := s.Session(ctx, sid, "tok1"); !errors.Is(err, ErrSession) {
		t.Fatalf("past the maximum age: %v", err)
	}
	sid, _ = s.StartSession(ctx, "acme", "ada", "tok1")
	*now = now.Add(11 * time.Minute)
	if _, _, err := s.Session(ctx, sid, "tok1"); !errors.Is(err, ErrSession) {
		t.Fatalf("idle: %v", err)
	}
	if _, _, err := s.Session(ctx, "ss_unknown", "tok1"); !errors.Is(err, ErrSession) {
		t.Fatalf("unknown: %v", err)
	}
}

// BenchmarkUnseal is the cost of checking a secret (and unsealing the key)
// with the default argon2id parameters: the floor of a signing's latency,
// and what an attacker pays per guess of a stolen row.
func BenchmarkUnseal(b *testing.B) {
	s, _ := newStore(b, Policy{})
	ctx := context.Background()
	if _, err := s.Enroll(ctx, "acme", "ada", "Ada", "secret one"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := s.Unseal(ctx, "acme", "ada", "secret one"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkArgon2idBaseline is x/crypto's argon2id alone with the default
// parameters: BenchmarkUnseal minus this is the store's own cost.
func BenchmarkArgon2idBaseline(b *testing.B) {
	salt := make([]byte, 16)
	for b.Loop() {
		argon2.IDKey([]byte("secret one"), salt, 3, 64*1024, 2, 64)
	}
}

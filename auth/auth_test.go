package auth

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	db, err := sqldb.OpenSQLite(filepath.Join(t.TempDir(), "state.db"), sqlitedb.Durable)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCreateAndCheck(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	tok, p, err := s.Create(ctx, Spec{Name: "agent-7", Tenant: "clinic-a", Scopes: []string{ScopeWrite, ScopeRead}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "lat_") || len(tok) < 40 || p.ID == "" || p.Name != "agent-7" || p.Tenant != "clinic-a" {
		t.Fatalf("Create = %q, %+v", tok, p)
	}
	got, err := s.Check(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != p.ID || got.Tenant != "clinic-a" || !slices.Equal(got.Scopes, []string{ScopeWrite, ScopeRead}) {
		t.Fatalf("Check = %+v, want %+v", got, p)
	}
	for _, bad := range []string{"", tok + "x", strings.Repeat("a", 300), "lat_unknown"} {
		if _, err := s.Check(ctx, bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Check(%.20q) = %v, want ErrUnauthenticated", bad, err)
		}
	}
	// Only the hash is stored: the database never holds the token.
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM tokens WHERE hash = ? OR name = ?`, []byte(tok), tok).Scan(&n); err != nil || n != 0 {
		t.Fatalf("token stored in clear (%d rows, %v)", n, err)
	}
	if _, _, err := s.Create(ctx, Spec{Name: "", Tenant: "t", Scopes: []string{ScopeRead}}); err == nil {
		t.Error("Create accepted an empty name")
	}
}

func TestScopes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"write", []string{"write"}, false},
		{" read , audit,read", []string{"read", "audit"}, false},
		{"admin", []string{"admin"}, false},
		{"read,metrics", []string{"read", "metrics"}, false},
		{"", nil, true},
		{",", nil, true},
		{"write,root", nil, true},
	} {
		got, err := ParseScopes(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("ParseScopes(%q) = %q, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
	admin := &Principal{Scopes: []string{ScopeAdmin}}
	reader := &Principal{Scopes: []string{ScopeRead}}
	if !admin.Has(ScopeAudit) || !admin.Has(ScopeWrite) || !reader.Has(ScopeRead) || reader.Has(ScopeAudit) || reader.Has(ScopeAdmin) {
		t.Error("Has does not follow the scope rules (admin implies all)")
	}
	if !admin.Has(ScopeMetrics) || reader.Has(ScopeMetrics) {
		t.Error("the metrics scope does not follow the scope rules")
	}
	if all := strings.Join(Scopes(), ","); all != "write,read,audit,admin,monitor,sign,privacy,metrics" {
		t.Errorf("Scopes() = %s", all)
	}
}

func TestRevokeAndCacheExpiry(t *testing.T) {
	s := openStore(t)
	s.ttl = 50 * time.Millisecond
	ctx := context.Background()
	tok, p, err := s.Create(ctx, Spec{Name: "n", Tenant: "t", Scopes: []string{ScopeWrite}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(ctx, tok); err != nil {
		t.Fatal(err)
	}
	// A revocation through another store (another process, the token
	// command) reaches this one's cache only when the entry expires.
	other := &Store{db: s.db, ttl: CacheTTL, cache: map[[32]byte]cached{}}
	if err := other.Revoke(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(ctx, tok); err != nil {
		t.Fatalf("cached principal dropped before its TTL: %v", err)
	}
	time.Sleep(60 * time.Millisecond)
	if _, err := s.Check(ctx, tok); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked token still accepted after the TTL: %v", err)
	}
	if err := s.Revoke(ctx, p.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second revoke = %v, want ErrNotFound", err)
	}
	// A revocation through the same store takes effect at once.
	tok2, p2, _ := s.Create(ctx, Spec{Name: "m", Tenant: "t", Scopes: []string{ScopeRead}})
	s.Check(ctx, tok2)
	if err := s.Revoke(ctx, p2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(ctx, tok2); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("token revoked here still accepted: %v", err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("List after revoking all = %+v, %v", list, err)
	}
}

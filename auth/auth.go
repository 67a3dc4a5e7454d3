// Package auth manages API tokens: random bearer tokens, stored only as
// SHA-256 hashes, each bound to one tenant and a set of scopes.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Scopes. Admin implies every other scope.
const (
	ScopeWrite = "write" // append events, use the capture proxy
	ScopeRead  = "read"  // read session listings of its tenant
	ScopeAudit = "audit" // read decrypted payloads (each read is itself logged)
	ScopeAdmin = "admin" // everything, any tenant's sessions
)

var knownScopes = []string{ScopeWrite, ScopeRead, ScopeAudit, ScopeAdmin}

// Errors.
var (
	// ErrUnauthenticated: no token, an unknown token or a revoked one (401).
	ErrUnauthenticated = errors.New("missing, unknown or revoked token")
	// ErrNotFound: no token with that id.
	ErrNotFound = errors.New("no such token")
)

// Principal is the holder of a valid token.
type Principal struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Tenant string   `json:"tenant"`
	Scopes []string `json:"scopes"`
}

// Has reports whether p holds scope (admin holds all).
func (p *Principal) Has(scope string) bool {
	return slices.Contains(p.Scopes, scope) || slices.Contains(p.Scopes, ScopeAdmin)
}

// Store keeps tokens in a SQLite database.
type Store struct {
	db  *sql.DB
	ttl time.Duration

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	p   *Principal
	exp time.Time
}

// CacheTTL is how long a verified token is trusted without asking the
// database again: a revocation takes effect within this time.
const CacheTTL = 2 * time.Second

// Open creates the token table in db if needed.
func Open(db *sql.DB) (*Store, error) {
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, hash BLOB NOT NULL UNIQUE,
  tenant TEXT NOT NULL, scopes TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)`); err != nil {
		return nil, fmt.Errorf("creating token table: %w", err)
	}
	return &Store{db: db, ttl: CacheTTL, cache: make(map[[32]byte]cached)}, nil
}

// ParseScopes splits a comma-separated scope list and checks every name.
func ParseScopes(s string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(knownScopes, f) {
			return nil, fmt.Errorf("unknown scope %q (want %s)", f, strings.Join(knownScopes, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("at least one scope is required")
	}
	return out, nil
}

// Create makes a new token and returns it; only its hash is stored, so the
// token cannot be shown again.
func (s *Store) Create(ctx context.Context, name, tenant string, scopes []string) (token string, p *Principal, err error) {
	if name == "" || tenant == "" || len(scopes) == 0 {
		return "", nil, errors.New("name, tenant and scopes are required")
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	token = "lat_" + base64.RawURLEncoding.EncodeToString(raw)
	idb := make([]byte, 8)
	rand.Read(idb)
	p = &Principal{ID: hex.EncodeToString(idb), Name: name, Tenant: tenant, Scopes: scopes}
	h := sha256.Sum256([]byte(token))
	if _, err := s.db.ExecContext(ctx, `INSERT INTO tokens (id, name, hash, tenant, scopes, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		p.ID, name, h[:], tenant, strings.Join(scopes, ","), time.Now().UTC().Format(time.RFC3339)); err != nil {
		return "", nil, fmt.Errorf("storing token: %w", err)
	}
	return token, p, nil
}

// Revoke revokes the token with the given id.
func (s *Store) Revoke(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, time.Now().UTC().Format(time.RFC3339), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
	return nil
}

// List returns every token that is not revoked.
func (s *Store) List(ctx context.Context) ([]Principal, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, tenant, scopes FROM tokens WHERE revoked_at IS NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Principal
	for rows.Next() {
		var p Principal
		var scopes string
		if err := rows.Scan(&p.ID, &p.Name, &p.Tenant, &scopes); err != nil {
			return nil, err
		}
		p.Scopes = strings.Split(scopes, ",")
		out = append(out, p)
	}
	return out, rows.Err()
}

// Check returns the principal holding token, or ErrUnauthenticated.
func (s *Store) Check(ctx context.Context, token string) (*Principal, error) {
	if token == "" || len(token) > 256 {
		return nil, ErrUnauthenticated
	}
	h := sha256.Sum256([]byte(token))
	now := time.Now()
	s.mu.Lock()
	if c, ok := s.cache[h]; ok && now.Before(c.exp) {
		s.mu.Unlock()
		return c.p, nil
	}
	s.mu.Unlock()
	var p Principal
	var scopes string
	err := s.db.QueryRowContext(ctx, `SELECT id, name, tenant, scopes FROM tokens WHERE hash = ? AND revoked_at IS NULL`, h[:]).
		Scan(&p.ID, &p.Name, &p.Tenant, &scopes)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("checking token: %w", err)
	}
	p.Scopes = strings.Split(scopes, ",")
	s.mu.Lock()
	if len(s.cache) > 10_000 {
		clear(s.cache)
	}
	s.cache[h] = cached{p: &p, exp: now.Add(s.ttl)}
	s.mu.Unlock()
	return &p, nil
}

// Package auth manages API tokens: random bearer tokens, stored only as
// SHA-256 hashes, each bound to one tenant (or, for an operator or a
// log-wide auditor, to every tenant), a set of scopes, and optionally the
// actor ids it may write as.
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

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/identity"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
)

// Scopes. Admin implies every other scope, within the token's tenant (or
// every tenant, for a global token).
const (
	ScopeWrite   = event.ScopeWrite   // append events, use the capture proxy
	ScopeRead    = "read"             // read entries and session listings
	ScopeAudit   = event.ScopeAudit   // read decrypted payloads (each read is itself logged); append replay.verdict
	ScopeAdmin   = "admin"            // everything
	ScopeMonitor = event.ScopeMonitor // append monitor.alert and monitor.status events
	ScopeSign    = "sign"             // sign records as the signer the token is bound to (--actor)
	ScopePrivacy = "privacy"          // place and release legal holds, erase sessions and subjects
	ScopeMetrics = "metrics"          // read the Prometheus metrics (GET /metrics; with a global token, since they count every tenant)
)

var knownScopes = []string{ScopeWrite, ScopeRead, ScopeAudit, ScopeAdmin, ScopeMonitor, ScopeSign, ScopePrivacy, ScopeMetrics}

// Scopes returns every scope's name, in the order of their documentation.
func Scopes() []string { return slices.Clone(knownScopes) }

// MaxActors caps the actor ids a token may be bound to.
const MaxActors = 64

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
	// Global tokens act for every tenant: a log operator or a log-wide
	// auditor. Only they read entry bundles, which mix tenants.
	Global bool `json:"global,omitempty"`
	// Actors, if set, are the only actor ids the token may write events as.
	Actors []string `json:"actors,omitempty"`
	// Person, if set, is the person signed in through the identity
	// provider for whom the console acts (no token of the store): ID is
	// the sign-in's public id, Name the role the mapping gave them.
	Person *identity.Person `json:"person,omitempty"`
}

// MayActAs reports whether the token may write events with actor id.
func (p *Principal) MayActAs(id string) bool {
	return len(p.Actors) == 0 || slices.Contains(p.Actors, id)
}

// SeesTenant reports whether the token may read tenant's data.
func (p *Principal) SeesTenant(tenant string) bool { return p.Global || p.Tenant == tenant }

// Has reports whether p holds scope (admin holds all).
func (p *Principal) Has(scope string) bool {
	return slices.Contains(p.Scopes, scope) || slices.Contains(p.Scopes, ScopeAdmin)
}

// Store keeps tokens in the server's state database.
type Store struct {
	db    *sqldb.DB
	ttl   time.Duration
	fresh bool

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	p   *Principal
	exp time.Time
}

// CacheTTL is how long a verified token is trusted without asking the
// database again: a revocation takes effect within this time, in every
// instance that shares the database.
const CacheTTL = 2 * time.Second

// Schema is the token table (sqldb's portable DDL); SchemaVersion is pinned
// in the database.
var Schema = []string{`CREATE TABLE IF NOT EXISTS tokens (
  id {id} PRIMARY KEY, name {id} NOT NULL, hash {hash} NOT NULL,
  tenant {id} NOT NULL, scopes {text} NOT NULL, created_at {time} NOT NULL, revoked_at {time},
  global {int} NOT NULL DEFAULT 0, actors {text} NOT NULL,
  logged_created {int} NOT NULL DEFAULT 0, logged_revoked {int} NOT NULL DEFAULT 0,
  UNIQUE (hash)){table}`}

// SchemaVersion is the version of Schema.
const SchemaVersion = 1

// Open creates the token table in db if needed.
func Open(db *sqldb.DB) (*Store, error) {
	ctx := context.Background()
	if db.Dialect == sqldb.SQLite {
		// Columns added after the first release; a store created before
		// gets them with their defaults (tenant-bound, any actor).
		for _, col := range []string{"global INTEGER NOT NULL DEFAULT 0", "actors TEXT NOT NULL DEFAULT ''",
			"logged_created INTEGER NOT NULL DEFAULT 0", "logged_revoked INTEGER NOT NULL DEFAULT 0"} {
			if _, err := db.Exec(`ALTER TABLE tokens ADD COLUMN ` + col); err != nil && !strings.Contains(err.Error(), "duplicate column") && !strings.Contains(err.Error(), "no such table") {
				return nil, fmt.Errorf("upgrading token table: %w", err)
			}
		}
	}
	created, err := db.Schema(ctx, "auth", SchemaVersion, Schema...)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, ttl: CacheTTL, cache: make(map[[32]byte]cached)}
	if created {
		// A store made before schema versions were pinned has its tokens
		// already.
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM tokens`).Scan(&n); err != nil {
			return nil, err
		}
		s.fresh = n == 0
	}
	return s, nil
}

// Fresh reports whether this Open created the token store: a new log,
// whose first admin token is made now (by exactly one of the instances that
// start on a new shared database).
func (s *Store) Fresh() bool { return s.fresh }

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

// ErrInvalid is wrapped by Create for a spec it refuses.
var ErrInvalid = errors.New("invalid token spec")

// Spec describes a token to create.
type Spec struct {
	Name   string   // 1-128 characters of [A-Za-z0-9_.:@-]
	Tenant string   // likewise; the tenant the token acts for
	Scopes []string // at least one (see ParseScopes)
	Global bool     // act for every tenant
	Actors []string // if set, the only actor ids it may write as
}

// Create makes a new token and returns it; only its hash is stored, so the
// token cannot be shown again.
func (s *Store) Create(ctx context.Context, spec Spec) (token string, p *Principal, err error) {
	switch {
	case !event.ValidID(spec.Name):
		return "", nil, fmt.Errorf("%w: name %q: use 1-%d characters from [A-Za-z0-9_.:@-], starting with a letter or digit", ErrInvalid, event.Clip(spec.Name, 40), event.MaxIDLength)
	case !event.ValidID(spec.Tenant):
		return "", nil, fmt.Errorf("%w: tenant %q: use 1-%d characters from [A-Za-z0-9_.:@-], starting with a letter or digit", ErrInvalid, event.Clip(spec.Tenant, 40), event.MaxIDLength)
	case len(spec.Scopes) == 0:
		return "", nil, fmt.Errorf("%w: at least one scope is required", ErrInvalid)
	case len(spec.Actors) > MaxActors:
		return "", nil, fmt.Errorf("%w: at most %d actors", ErrInvalid, MaxActors)
	}
	for _, sc := range spec.Scopes {
		if !slices.Contains(knownScopes, sc) {
			return "", nil, fmt.Errorf("%w: unknown scope %q", ErrInvalid, sc)
		}
	}
	for _, a := range spec.Actors {
		if !event.ValidID(a) {
			return "", nil, fmt.Errorf("%w: actor %q is not a valid id", ErrInvalid, event.Clip(a, 40))
		}
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	token = "lat_" + base64.RawURLEncoding.EncodeToString(raw)
	idb := make([]byte, 8)
	rand.Read(idb)
	p = &Principal{ID: hex.EncodeToString(idb), Name: spec.Name, Tenant: spec.Tenant, Scopes: spec.Scopes, Global: spec.Global, Actors: spec.Actors}
	h := sha256.Sum256([]byte(token))
	if _, err := s.db.ExecContext(ctx, `INSERT INTO tokens (id, name, hash, tenant, scopes, created_at, global, actors) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, spec.Name, h[:], spec.Tenant, strings.Join(spec.Scopes, ","), time.Now().UTC().Format(time.RFC3339), spec.Global, strings.Join(spec.Actors, ",")); err != nil {
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
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, tenant, scopes, global, actors FROM tokens WHERE revoked_at IS NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Principal
	for rows.Next() {
		var p Principal
		var scopes, actors string
		if err := rows.Scan(&p.ID, &p.Name, &p.Tenant, &scopes, &p.Global, &actors); err != nil {
			return nil, err
		}
		p.Scopes, p.Actors = splitList(scopes), splitList(actors)
		out = append(out, p)
	}
	return out, rows.Err()
}

// Change is a token's creation or revocation not yet recorded in the log.
type Change struct {
	Principal
	Revoked bool
	At      string // when, RFC 3339
}

// Unlogged returns, oldest first, the creations and revocations that
// MarkLogged has not been told of.
func (s *Store) Unlogged(ctx context.Context) ([]Change, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, tenant, scopes, global, actors, created_at, revoked_at, logged_created FROM tokens
WHERE logged_created = 0 OR (revoked_at IS NOT NULL AND logged_revoked = 0) ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out, revs []Change
	for rows.Next() {
		var c Change
		var scopes, actors, created string
		var revoked sql.NullString
		var logged bool
		if err := rows.Scan(&c.ID, &c.Name, &c.Tenant, &scopes, &c.Global, &actors, &created, &revoked, &logged); err != nil {
			return nil, err
		}
		c.Scopes, c.Actors = splitList(scopes), splitList(actors)
		if !logged {
			c.At = created
			out = append(out, c)
		}
		if revoked.Valid {
			r := c
			r.Revoked, r.At = true, revoked.String
			revs = append(revs, r)
		}
	}
	return append(out, revs...), rows.Err()
}

// MarkLogged notes that the creation (or revocation) of token id is in the
// log.
func (s *Store) MarkLogged(ctx context.Context, id string, revoked bool) error {
	col := "logged_created"
	if revoked {
		col = "logged_revoked"
	}
	_, err := s.db.ExecContext(ctx, `UPDATE tokens SET `+col+` = 1 WHERE id = ?`, id)
	return err
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
	var scopes, actors string
	err := sqldb.Retry(ctx, func() error {
		return s.db.QueryRowContext(ctx, `SELECT id, name, tenant, scopes, global, actors FROM tokens WHERE hash = ? AND revoked_at IS NULL`, h[:]).
			Scan(&p.ID, &p.Name, &p.Tenant, &scopes, &p.Global, &actors)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("checking token: %w", err)
	}
	p.Scopes, p.Actors = splitList(scopes), splitList(actors)
	s.mu.Lock()
	if len(s.cache) > 10_000 {
		clear(s.cache)
	}
	s.cache[h] = cached{p: &p, exp: now.Add(s.ttl)}
	s.mu.Unlock()
	return &p, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// Package signer keeps the electronic signers of a log: each signer's
// Ed25519 key pair, the private key sealed under a key derived from the
// signer's secret (argon2id), failed attempts and lock-outs, and signing
// sessions (21 CFR 11.200: the first signing of a session uses every
// component, later ones the secret).
//
// Where the private key lives: in the server's state database, sealed with
// AES-256-GCM under a key that only the signer's secret yields. The server
// therefore cannot sign without the secret, a copy of the database signs
// nothing, and a signer needs no key management of their own; the price is
// that the secret crosses the server at each signing (use TLS). The public
// key is in the log, in the signer.enrolled event, so that anyone verifies
// a signature from the log.
package signer

import (
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"

	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/signature"
)

// Outcomes a caller acts on.
var (
	ErrNotFound = errors.New("no such signer")
	// ErrExists: a signer id is never enrolled twice, also after revocation.
	ErrExists      = errors.New("the signer id is already enrolled")
	ErrRevoked     = errors.New("the signer's key is revoked")
	ErrLocked      = errors.New("the signer is locked after too many failed attempts")
	ErrWrongSecret = errors.New("wrong secret")
	// ErrSession: the signing session is unknown, expired, or not this
	// token's.
	ErrSession = errors.New("no such signing session")
	// ErrWeakSecret: the secret is shorter than MinSecret.
	ErrWeakSecret = errors.New("the secret is too short")
)

// Policy of the store; zero fields take the defaults.
type Policy struct {
	// Argon2id parameters (RFC 9106's second recommendation by default:
	// 3 passes, 64 MiB, 2 lanes).
	Time, MemoryKiB uint32
	Threads         uint8
	// MaxFailures failed attempts within FailureWindow lock the signer for
	// LockDuration (5 in 15 min, 30 min).
	MaxFailures   int
	FailureWindow time.Duration
	LockDuration  time.Duration
	// A signing session ends after SessionIdle without a signing, or
	// SessionMax after it began (15 min, 8 h).
	SessionIdle, SessionMax time.Duration
}

// MinSecret is the least length of a secret.
const MinSecret = 8

func (p Policy) withDefaults() Policy {
	if p.Time == 0 {
		p.Time = 3
	}
	if p.MemoryKiB == 0 {
		p.MemoryKiB = 64 * 1024
	}
	if p.Threads == 0 {
		p.Threads = 2
	}
	if p.MaxFailures == 0 {
		p.MaxFailures = 5
	}
	if p.FailureWindow == 0 {
		p.FailureWindow = 15 * time.Minute
	}
	if p.LockDuration == 0 {
		p.LockDuration = 30 * time.Minute
	}
	if p.SessionIdle == 0 {
		p.SessionIdle = 15 * time.Minute
	}
	if p.SessionMax == 0 {
		p.SessionMax = 8 * time.Hour
	}
	return p
}

// Signer is an enrolled signer.
type Signer struct {
	Tenant, ID, PrintedName string
	Public                  ed25519.PublicKey
	KeyID                   string
	Revoked                 bool
	LockedUntil             time.Time
}

// Store keeps signers in a SQL database (the server's state database).
type Store struct {
	db  *sqldb.DB
	p   Policy
	Now func() time.Time // tests move the clock
}

// Schema is the signers' tables (sqldb's portable DDL); SchemaVersion is
// pinned in the database.
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS signers (
  tenant {id} NOT NULL, id {id} NOT NULL, printed_name {text} NOT NULL,
  public_key {hash} NOT NULL, key_id {id} NOT NULL,
  kdf {text} NOT NULL, salt {hash} NOT NULL, verifier {hash} NOT NULL, sealed_key {blob} NOT NULL,
  revoked_at {time}, locked_until {time}, enrolled_at {time} NOT NULL,
  PRIMARY KEY (tenant, id)){table}`,
	`CREATE TABLE IF NOT EXISTS signer_failures (tenant {id} NOT NULL, id {id} NOT NULL, at {time} NOT NULL){table}`,
	`CREATE INDEX IF NOT EXISTS signer_failures_by ON signer_failures (tenant, id, at)`,
	`CREATE TABLE IF NOT EXISTS signing_sessions (
  id {id} PRIMARY KEY, tenant {id} NOT NULL, signer {id} NOT NULL, token {id} NOT NULL,
  started_at {time} NOT NULL, used_at {time} NOT NULL){table}`,
	`CREATE TABLE IF NOT EXISTS signatures (
  tenant {id} NOT NULL, signer {id} NOT NULL, record {int} NOT NULL, meaning {name} NOT NULL,
  event_index {int} NOT NULL, PRIMARY KEY (tenant, signer, record, meaning)){table}`,
}

// SchemaVersion is the version of Schema.
const SchemaVersion = 1

// Open creates the tables in db if needed.
func Open(db *sqldb.DB, p Policy) (*Store, error) {
	if _, err := db.Schema(context.Background(), "signer", SchemaVersion, Schema...); err != nil {
		return nil, err
	}
	return &Store{db: db, p: p.withDefaults(), Now: time.Now}, nil
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// derive returns the secret's verifier and the key that seals the private
// key: argon2id(secret, salt) split in two.
func (s *Store) derive(secret string, salt []byte, kdf string) (verifier, key []byte, err error) {
	var t, m uint32
	var p uint8
	if _, err := fmt.Sscanf(kdf, "argon2id t=%d m=%d p=%d", &t, &m, &p); err != nil {
		return nil, nil, fmt.Errorf("signer: unknown kdf %q", kdf)
	}
	out := argon2.IDKey([]byte(secret), salt, t, m, p, 64)
	return out[:32], out[32:], nil
}

func keyAAD(tenant, id, keyID string) []byte {
	return []byte("llmaudittrail/signer-key/v1\x00" + tenant + "\x00" + id + "\x00" + keyID)
}

// seal makes a new key pair and seals its private key under secret.
func (s *Store) seal(tenant, id, secret string) (pub ed25519.PublicKey, keyID, kdf string, salt, verifier, sealed []byte, err error) {
	if len(secret) < MinSecret {
		return nil, "", "", nil, nil, nil, fmt.Errorf("%w: at least %d characters", ErrWeakSecret, MinSecret)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", "", nil, nil, nil, err
	}
	keyID = signature.KeyID(pub)
	kdf = fmt.Sprintf("argon2id t=%d m=%d p=%d", s.p.Time, s.p.MemoryKiB, s.p.Threads)
	salt = make([]byte, 16)
	rand.Read(salt)
	verifier, k, err := s.derive(secret, salt, kdf)
	if err != nil {
		return nil, "", "", nil, nil, nil, err
	}
	aead, err := gcm(k)
	if err != nil {
		return nil, "", "", nil, nil, nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	sealed = aead.Seal(nonce, nonce, priv.Seed(), keyAAD(tenant, id, keyID))
	return pub, keyID, kdf, salt, verifier, sealed, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Enroll creates signer id of tenant with a new key pair sealed under
// secret.
func (s *Store) Enroll(ctx context.Context, tenant, id, printedName, secret string) (*Signer, error) {
	if !event.ValidID(tenant) || !event.ValidID(id) {
		return nil, fmt.Errorf("signer: tenant and id must be valid ids")
	}
	if printedName = strings.TrimSpace(printedName); printedName == "" || len(printedName) > 256 {
		return nil, fmt.Errorf("signer: printed_name must be 1-256 bytes")
	}
	pub, keyID, kdf, salt, verifier, sealed, err := s.seal(tenant, id, secret)
	if err != nil {
		return nil, err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO signers (tenant, id, printed_name, public_key, key_id, kdf, salt, verifier, sealed_key, enrolled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tenant, id, printedName, []byte(pub), keyID, kdf, salt, verifier, sealed, ts(s.Now()))
	if err != nil {
		if sqldb.Duplicate(err) {
			return nil, ErrExists
		}
		return nil, fmt.Errorf("signer: storing: %w", err)
	}
	return &Signer{Tenant: tenant, ID: id, PrintedName: printedName, Public: pub, KeyID: keyID}, nil
}

// Get returns signer id of tenant.
func (s *Store) Get(ctx context.Context, tenant, id string) (*Signer, error) {
	var sg Signer
	var pub []byte
	var revoked, locked sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT printed_name, public_key, key_id, revoked_at, locked_until FROM signers WHERE tenant = ? AND id = ?`, tenant, id).
		Scan(&sg.PrintedName, &pub, &sg.KeyID, &revoked, &locked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	sg.Tenant, sg.ID, sg.Public, sg.Revoked = tenant, id, pub, revoked.Valid
	if locked.Valid {
		sg.LockedUntil, _ = time.Parse(time.RFC3339Nano, locked.String)
	}
	return &sg, nil
}

// Unseal checks secret and returns the signer's private key. A revoked
// signer is ErrRevoked, a locked one ErrLocked (both before the secret is
// looked at), a wrong secret ErrWrongSecret.
func (s *Store) Unseal(ctx context.Context, tenant, id, secret string) (ed25519.PrivateKey, *Signer, error) {
	sg, err := s.Get(ctx, tenant, id)
	if err != nil {
		return nil, nil, err
	}
	if sg.Revoked {
		return nil, sg, ErrRevoked
	}
	if s.Now().Before(sg.LockedUntil) {
		return nil, sg, ErrLocked
	}
	var kdf string
	var salt, verifier, sealed []byte
	if err := s.db.QueryRowContext(ctx, `SELECT kdf, salt, verifier, sealed_key FROM signers WHERE tenant = ? AND id = ?`, tenant, id).Scan(&kdf, &salt, &verifier, &sealed); err != nil {
		return nil, nil, fmt.Errorf("signer: %w", err)
	}
	v, k, err := s.derive(secret, salt, kdf)
	if err != nil {
		return nil, nil, err
	}
	if subtle.ConstantTimeCompare(v, verifier) != 1 {
		return nil, sg, ErrWrongSecret
	}
	aead, err := gcm(k)
	if err != nil {
		return nil, nil, err
	}
	ns := aead.NonceSize()
	if len(sealed) < ns {
		return nil, nil, errors.New("signer: corrupt sealed key")
	}
	seed, err := aead.Open(nil, sealed[:ns], sealed[ns:], keyAAD(tenant, id, sg.KeyID))
	if err != nil {
		return nil, nil, fmt.Errorf("signer: unsealing the key: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if !priv.Public().(ed25519.PublicKey).Equal(sg.Public) {
		return nil, nil, errors.New("signer: the sealed key does not match the enrolled public key")
	}
	return priv, sg, nil
}

// Rotate gives the signer a new key pair, sealed under newSecret (the
// secret revised, 11.300(b)); the old secret must be right. Rotation of a
// revoked signer is ErrRevoked.
func (s *Store) Rotate(ctx context.Context, tenant, id, secret, newSecret string) (*Signer, error) {
	if _, _, err := s.Unseal(ctx, tenant, id, secret); err != nil {
		return nil, err
	}
	pub, keyID, kdf, salt, verifier, sealed, err := s.seal(tenant, id, newSecret)
	if err != nil {
		return nil, err
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE signers SET public_key = ?, key_id = ?, kdf = ?, salt = ?, verifier = ?, sealed_key = ? WHERE tenant = ? AND id = ?`,
		[]byte(pub), keyID, kdf, salt, verifier, sealed, tenant, id); err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	return s.Get(ctx, tenant, id)
}

// Revoke revokes the signer's key for good and ends its sessions.
func (s *Store) Revoke(ctx context.Context, tenant, id string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE signers SET revoked_at = ? WHERE tenant = ? AND id = ? AND revoked_at IS NULL`, ts(s.Now()), tenant, id)
	if err != nil {
		return fmt.Errorf("signer: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Get(ctx, tenant, id); err != nil {
			return err
		}
		return ErrRevoked
	}
	_, err = s.db.ExecContext(ctx, `DELETE FROM signing_sessions WHERE tenant = ? AND signer = ?`, tenant, id)
	return err
}

// Failure records a failed attempt; locked reports whether it locked the
// signer now (MaxFailures within FailureWindow).
func (s *Store) Failure(ctx context.Context, tenant, id string) (locked bool, err error) {
	now := s.Now()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO signer_failures (tenant, id, at) VALUES (?, ?, ?)`, tenant, id, ts(now)); err != nil {
		return false, fmt.Errorf("signer: %w", err)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM signer_failures WHERE tenant = ? AND id = ? AND at > ?`, tenant, id, ts(now.Add(-s.p.FailureWindow))).Scan(&n); err != nil {
		return false, fmt.Errorf("signer: %w", err)
	}
	if n < s.p.MaxFailures {
		return false, nil
	}
	_, err = s.db.ExecContext(ctx, `UPDATE signers SET locked_until = ? WHERE tenant = ? AND id = ?`, ts(now.Add(s.p.LockDuration)), tenant, id)
	if err == nil {
		_, err = s.db.ExecContext(ctx, `DELETE FROM signer_failures WHERE tenant = ? AND id = ?`, tenant, id)
	}
	return true, err
}

// Unlock lifts a lock-out.
func (s *Store) Unlock(ctx context.Context, tenant, id string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE signers SET locked_until = NULL WHERE tenant = ? AND id = ?`, tenant, id)
	if err != nil {
		return fmt.Errorf("signer: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// StartSession begins a signing session of the signer for token.
func (s *Store) StartSession(ctx context.Context, tenant, id, token string) (string, error) {
	b := make([]byte, 24)
	rand.Read(b)
	sid := "ss_" + hex.EncodeToString(b)
	now := ts(s.Now())
	if _, err := s.db.ExecContext(ctx, `INSERT INTO signing_sessions (id, tenant, signer, token, started_at, used_at) VALUES (?, ?, ?, ?, ?, ?)`, sid, tenant, id, token, now, now); err != nil {
		return "", fmt.Errorf("signer: %w", err)
	}
	return sid, nil
}

// Session returns the tenant and signer of a live session of token, and
// marks it used now. An unknown session, one of another token, or one idle
// or old past the policy is ErrSession (and is ended).
func (s *Store) Session(ctx context.Context, sid, token string) (tenant, id string, err error) {
	var started, used, tok string
	err = s.db.QueryRowContext(ctx, `SELECT tenant, signer, token, started_at, used_at FROM signing_sessions WHERE id = ?`, sid).Scan(&tenant, &id, &tok, &started, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrSession
	}
	if err != nil {
		return "", "", fmt.Errorf("signer: %w", err)
	}
	st, _ := time.Parse(time.RFC3339Nano, started)
	ut, _ := time.Parse(time.RFC3339Nano, used)
	now := s.Now()
	if tok != token || now.Sub(ut) > s.p.SessionIdle || now.Sub(st) > s.p.SessionMax {
		s.EndSession(ctx, sid)
		return "", "", ErrSession
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE signing_sessions SET used_at = ? WHERE id = ?`, ts(now), sid); err != nil {
		return "", "", fmt.Errorf("signer: %w", err)
	}
	return tenant, id, nil
}

// EndSession ends a signing session.
func (s *Store) EndSession(ctx context.Context, sid string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM signing_sessions WHERE id = ?`, sid)
	return err
}

// Signed returns the log index of the signer's signature of record with
// meaning, if there is one.
func (s *Store) Signed(ctx context.Context, tenant, id string, record uint64, meaning string) (uint64, bool, error) {
	var idx int64
	err := s.db.QueryRowContext(ctx, `SELECT event_index FROM signatures WHERE tenant = ? AND signer = ? AND record = ? AND meaning = ?`, tenant, id, int64(record), meaning).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("signer: %w", err)
	}
	return uint64(idx), true, nil
}

// RecordSignature notes that the signer signed record with meaning in the
// event at eventIndex.
func (s *Store) RecordSignature(ctx context.Context, tenant, id string, record uint64, meaning string, eventIndex uint64) error {
	_, err := s.db.ExecContext(ctx, s.db.InsertIgnore()+` INTO signatures (tenant, signer, record, meaning, event_index) VALUES (?, ?, ?, ?, ?)`, tenant, id, int64(record), meaning, int64(eventIndex))
	return err
}

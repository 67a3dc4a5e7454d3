// Package vault stores event payloads encrypted at rest.
//
// Each payload is sealed with AES-256-GCM under a data key that belongs to
// one (tenant, session) pair. Data keys are themselves sealed ("wrapped") with
// the master key and stored next to the payloads; the master key is never
// stored in the vault. The payload's commitment salt is sealed together with
// the payload, so destroying a session's data key erases every payload and
// salt of that session while the log's leaves and proofs stay valid.
//
// Writes are group-committed: concurrent Put calls are gathered into one
// transaction, and Put returns only once that transaction is durable
// (SQLite: WAL, synchronous=FULL; MariaDB: InnoDB's commit). Under sustained load commits start at least
// DefaultCommitSpacing apart (see WithCommitSpacing), so that one fsync
// covers many payloads; a put that arrives after a quiet spell is committed
// at once.
package vault

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
)

// Errors returned by Get.
var (
	// ErrNotFound: no payload was ever stored under the id.
	ErrNotFound = errors.New("payload not found")
	// ErrErased: the payload existed but its data key was destroyed.
	ErrErased = errors.New("payload erased")
	// ErrClosed: the vault was closed.
	ErrClosed = errors.New("vault closed")
	// ErrWrongMasterKey: Open was given another master key than the one the
	// vault was created with (its key-check value does not match).
	ErrWrongMasterKey = errors.New("the master key does not match the vault's key-check value")
	// ErrNoForget: the database cannot be made to forget erased data
	// (Forget on MariaDB; see docs/scale-out.md).
	ErrNoForget = errors.New("this database keeps no write-ahead log the vault can truncate")
)

// CacheTTL bounds how long a data key or a pseudonym is used from memory on
// a database that several instances share: an erasure made by one instance
// takes effect in the others within this time. (With one instance, erasures
// clear the cache at once.)
const CacheTTL = 2 * time.Second

// MasterKeySize is the size of the master key in bytes (AES-256).
const MasterKeySize = 32

// Record is one payload and the secret salt of its commitment.
type Record struct {
	ID        string // event id; the payload is bound to it
	Tenant    string
	Session   string
	MediaType string
	Salt      []byte
	Payload   []byte
}

// Vault is an encrypted payload store. It is safe for concurrent use.
type Vault struct {
	db     *sqldb.DB
	master cipher.AEAD
	lookup []byte // HMAC key of pseudonym lookups, derived from the master key
	// envelope is the secret of leaf version 3's envelopes (tenant keys,
	// nonces), derived from the master key.
	envelope []byte
	spacing  time.Duration

	mu   sync.Mutex
	keys map[sessionKey]*dataKey // cache of unwrapped data keys, bounded

	pmu        sync.Mutex
	pseudonyms map[[32]byte]cachedPseudonym // lookup hash to pseudonym, bounded

	queue   chan *putReq
	closed  chan struct{}
	done    chan struct{}
	closeMu sync.Once

	commits atomic.Int64 // transactions committed by the writer (for tests)
}

type sessionKey struct{ tenant, session string }

type dataKey struct {
	aead    cipher.AEAD
	wrapped []byte
	// readAt is when the key was last known to be the stored one (unix
	// nanoseconds): read from the database, or committed to it.
	readAt atomic.Int64
	// stored: the wrapped key is committed to data_keys. Until then the
	// key is only in the cache, which must not drop it: a second key for the
	// session would be created, and its payloads could never be opened.
	stored atomic.Bool
}

type putReq struct {
	rows []row
	err  chan error
}

type row struct {
	id, tenant, session, mediaType string
	size                           int
	nonce, sealed                  []byte
	key                            *dataKey
}

const maxCachedKeys = 4096

// DefaultCommitSpacing is the least time between the starts of two commits
// under sustained load. On the 2-core VM of the README, a commit's fsync
// costs about 0.3 ms of CPU; without spacing, 512 clients produced about 940
// commits/s of 6 payloads each.
const DefaultCommitSpacing = 2 * time.Millisecond

// Option configures a Vault.
type Option func(*Vault)

// WithCommitSpacing sets the least time between the starts of two commits
// (default DefaultCommitSpacing; 0 commits as soon as the previous commit
// is done).
func WithCommitSpacing(d time.Duration) Option { return func(v *Vault) { v.spacing = d } }

// Schema is the vault's tables (sqldb's portable DDL); SchemaVersion is
// pinned in the database.
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS data_keys (
  tenant {id} NOT NULL, session {id} NOT NULL,
  wrapped {hash},            -- NULL once erased
  erased_at {time},
  PRIMARY KEY (tenant, session)){table}`,
	`CREATE TABLE IF NOT EXISTS payloads (
  id {id} PRIMARY KEY, tenant {id} NOT NULL, session {id} NOT NULL,
  media_type {name} NOT NULL, size {int} NOT NULL,
  nonce {hash} NOT NULL, sealed {blob} NOT NULL){table}`,
	`CREATE INDEX IF NOT EXISTS payloads_session ON payloads (tenant, session)`,
	`CREATE TABLE IF NOT EXISTS vault_meta (k {name} PRIMARY KEY, v {hash} NOT NULL){table}`,
	`CREATE TABLE IF NOT EXISTS pseudonyms (
  tenant {id} NOT NULL, pseudonym {id} NOT NULL,
  lookup {hash},           -- HMAC of (tenant, value); NULL once erased
  nonce {hash}, sealed {blob}, -- the value, sealed; NULL once erased
  created_at {time} NOT NULL, erased_at {time},
  PRIMARY KEY (tenant, pseudonym),
  UNIQUE (lookup)){table}`,
}

// A vault made by an earlier version also has subject_sessions (subjects'
// sessions, now found in the session index): it is no longer read or
// written, and left in place so that such a version can still run on the
// database.

// SchemaVersion is the version of Schema.
const SchemaVersion = 1

// Open opens the vault in db (creating its tables if needed), using the
// 32-byte master key to wrap and unwrap data keys. On SQLite, open db with
// sqlitedb.Durable and sqlitedb.SecureDelete.
func Open(db *sqldb.DB, masterKey []byte, opts ...Option) (*Vault, error) {
	if len(masterKey) != MasterKeySize {
		return nil, fmt.Errorf("master key must be %d bytes, got %d", MasterKeySize, len(masterKey))
	}
	master, err := newAEAD(masterKey)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if db.Dialect == sqldb.SQLite {
		// A vault made before the tables were named for one shared
		// database kept its key check in "meta".
		if _, err := db.ExecContext(ctx, `ALTER TABLE meta RENAME TO vault_meta`); err != nil && !strings.Contains(err.Error(), "no such table") {
			return nil, fmt.Errorf("upgrading the vault schema: %w", err)
		}
	}
	if _, err := db.Schema(ctx, "vault", SchemaVersion, Schema...); err != nil {
		return nil, err
	}
	if _, err := db.Schema(ctx, "bodies", BodiesSchemaVersion, BodiesSchema...); err != nil {
		return nil, err
	}
	if err := checkMasterKey(db, masterKey, master); err != nil {
		return nil, err
	}
	v := &Vault{
		db:         db,
		master:     master,
		lookup:     derive(masterKey, "llmaudittrail vault pseudonym lookup v1"),
		envelope:   derive(masterKey, "llmaudittrail leaf envelope secret v1"),
		spacing:    DefaultCommitSpacing,
		keys:       make(map[sessionKey]*dataKey),
		pseudonyms: map[[32]byte]cachedPseudonym{},
		queue:      make(chan *putReq, 1024),
		closed:     make(chan struct{}),
		done:       make(chan struct{}),
	}
	for _, o := range opts {
		o(v)
	}
	go v.writer()
	return v, nil
}

// derive returns a sub-key of the master key for one purpose.
func derive(master []byte, label string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// checkMasterKey compares the master key with the vault's key-check value,
// HMAC-SHA256(master, label), which reveals nothing of the key. A vault
// without one gets it now, after its first data key (if any) proved that
// this is the key it was written with.
func checkMasterKey(db *sqldb.DB, masterKey []byte, master cipher.AEAD) error {
	want := derive(masterKey, "llmaudittrail vault key check v1")
	var got []byte
	err := db.QueryRow(`SELECT v FROM vault_meta WHERE k = 'key_check'`).Scan(&got)
	switch {
	case err == nil:
		if !hmac.Equal(got, want) {
			return ErrWrongMasterKey
		}
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("reading the vault's key check: %w", err)
	}
	var tenant, session string
	var wrapped []byte
	err = db.QueryRow(`SELECT tenant, session, wrapped FROM data_keys WHERE wrapped IS NOT NULL LIMIT 1`).Scan(&tenant, &session, &wrapped)
	switch {
	case err == nil:
		ns := master.NonceSize()
		if len(wrapped) < ns {
			return errors.New("corrupt wrapped data key")
		}
		if _, err := master.Open(nil, wrapped[:ns], wrapped[ns:], keyAAD(tenant, session)); err != nil {
			return ErrWrongMasterKey
		}
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("reading a data key: %w", err)
	}
	// Another instance may store it at the same time: keep the first, and
	// check against it.
	if _, err := db.Exec(db.InsertIgnore()+` INTO vault_meta (k, v) VALUES ('key_check', ?)`, want); err != nil {
		return fmt.Errorf("storing the vault's key check: %w", err)
	}
	if err := db.QueryRow(`SELECT v FROM vault_meta WHERE k = 'key_check'`).Scan(&got); err != nil {
		return fmt.Errorf("reading the vault's key check: %w", err)
	}
	if !hmac.Equal(got, want) {
		return ErrWrongMasterKey
	}
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func keyAAD(tenant, session string) []byte {
	return []byte("llmaudittrail/data-key/v1\x00" + tenant + "\x00" + session)
}

func payloadAAD(id, tenant, session, mediaType string) []byte {
	return []byte("llmaudittrail/payload/v1\x00" + id + "\x00" + tenant + "\x00" + session + "\x00" + mediaType)
}

// key returns the data key of a session, creating one if the session has
// none. A newly created key is written with the first payload that uses it.
func (v *Vault) key(ctx context.Context, tenant, session string) (*dataKey, error) {
	sk := sessionKey{tenant, session}
	v.mu.Lock()
	defer v.mu.Unlock()
	if k, ok := v.keys[sk]; ok && (!k.stored.Load() || !v.db.Shared() || time.Since(time.Unix(0, k.readAt.Load())) < CacheTTL) {
		return k, nil
	}
	var wrapped []byte
	var erasedAt sql.NullString
	err := v.db.QueryRowContext(ctx, `SELECT wrapped, erased_at FROM data_keys WHERE tenant = ? AND session = ?`, tenant, session).Scan(&wrapped, &erasedAt)
	var k *dataKey
	switch {
	case errors.Is(err, sql.ErrNoRows):
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		nonce := make([]byte, v.master.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		aead, err := newAEAD(raw)
		if err != nil {
			return nil, err
		}
		k = &dataKey{aead: aead, wrapped: v.master.Seal(nonce, nonce, raw, keyAAD(tenant, session))}
	case err != nil:
		return nil, fmt.Errorf("reading data key: %w", err)
	case erasedAt.Valid:
		return nil, ErrErased
	default:
		k, err = v.unwrap(tenant, session, wrapped)
		if err != nil {
			return nil, err
		}
		k.stored.Store(true)
		k.readAt.Store(time.Now().UnixNano())
	}
	if len(v.keys) >= maxCachedKeys {
		// Cheap bound; stored keys are re-read on demand.
		maps.DeleteFunc(v.keys, func(_ sessionKey, k *dataKey) bool { return k.stored.Load() })
	}
	v.keys[sk] = k
	return k, nil
}

func (v *Vault) unwrap(tenant, session string, wrapped []byte) (*dataKey, error) {
	ns := v.master.NonceSize()
	if len(wrapped) < ns {
		return nil, errors.New("corrupt wrapped data key")
	}
	raw, err := v.master.Open(nil, wrapped[:ns], wrapped[ns:], keyAAD(tenant, session))
	if err != nil {
		return nil, fmt.Errorf("unwrapping data key (wrong master key?): %w", err)
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	return &dataKey{aead: aead, wrapped: wrapped}, nil
}

// errKeyConflict: another instance stored a data key for a session first;
// the put is sealed again with that key.
var errKeyConflict = errors.New("vault: another data key was stored for the session")

// Put stores records durably; it returns only after the transaction holding
// them has been committed to disk. All records are stored, or none.
func (v *Vault) Put(ctx context.Context, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	sealed, err := v.Seal(ctx, recs...)
	if err != nil {
		return err
	}
	return v.PutSealed(ctx, sealed...)
}

// enqueue hands rows to the writer and waits until they are durable (or
// refused).
func (v *Vault) enqueue(ctx context.Context, rows []row) error {
	select {
	case <-v.closed:
		return ErrClosed
	default:
	}
	req := &putReq{rows: rows, err: make(chan error, 1)}
	select {
	case v.queue <- req:
	case <-v.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the write happens whatever the caller's context does; wait
	// for it so that the caller never acknowledges an undurable payload.
	return <-req.err
}

// writer gathers queued puts into transactions (group commit).
func (v *Vault) writer() {
	defer close(v.done)
	var last time.Time // start of the previous commit
	var linger *time.Timer
	for {
		var batch []*putReq
		rows := 0
		select {
		case r := <-v.queue:
			batch, rows = append(batch, r), len(r.rows)
		case <-v.closed:
			// Drain whatever is still queued, then stop.
			for {
				select {
				case r := <-v.queue:
					v.commitAll([]*putReq{r})
				default:
					return
				}
			}
		}
		// Under sustained load, wait for the spacing to pass, gathering puts.
		if wait := v.spacing - time.Since(last); wait > 0 {
			if linger == nil {
				linger = time.NewTimer(wait)
			} else {
				linger.Reset(wait)
			}
		gather:
			for rows < maxBatchRows {
				select {
				case r := <-v.queue:
					batch, rows = append(batch, r), rows+len(r.rows)
				case <-linger.C:
					break gather
				case <-v.closed:
					break gather
				}
			}
			linger.Stop()
		}
	more:
		for rows < maxBatchRows {
			select {
			case r := <-v.queue:
				batch, rows = append(batch, r), rows+len(r.rows)
			default:
				break more
			}
		}
		last = time.Now()
		v.commitAll(batch)
	}
}

// commitAll commits batch and answers every put in it.
func (v *Vault) commitAll(batch []*putReq) {
	for len(batch) > 0 {
		var conflicts map[*putReq]bool
		err := sqldb.Retry(context.Background(), func() (err error) {
			conflicts, err = v.commit(batch)
			return err
		})
		if conflicts == nil {
			for _, r := range batch {
				r.err <- err
			}
			return
		}
		// Another instance stored a key first: those puts are sealed again
		// (Put); the others are committed without them.
		batch = slices.DeleteFunc(batch, func(r *putReq) bool {
			if conflicts[r] {
				r.err <- errKeyConflict
				return true
			}
			return false
		})
	}
}

// maxBatchRows bounds one transaction (a put's rows are never split).
const maxBatchRows = 1024

// insertChunk and insertBytes bound one INSERT statement: rows, and sealed
// bytes (MariaDB's max_allowed_packet is 16 MiB by default; a single
// payload is at most the server's body limit, 4 MiB by default).
const (
	insertChunk = 128
	insertBytes = 8 << 20
)

// commit stores batch in one transaction. If another instance stored a data
// key first for a session whose new key the batch carries, nothing is
// stored, the key leaves the cache, and conflicts names the puts that used
// it.
func (v *Vault) commit(batch []*putReq) (conflicts map[*putReq]bool, err error) {
	tx, err := v.db.Begin()
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	defer tx.Rollback()
	keyStmt, err := tx.Prepare(v.db.InsertIgnore() + ` INTO data_keys (tenant, session, wrapped) VALUES (?, ?, ?)`)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	defer keyStmt.Close()
	// Payloads go in multi-row inserts: one round trip per insertChunk
	// rows, which is what a database on the network needs.
	var args []any
	var size int
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		n := len(args) / 7
		q := v.db.InsertIgnore() + ` INTO payloads (id, tenant, session, media_type, size, nonce, sealed) VALUES (?, ?, ?, ?, ?, ?, ?)` + strings.Repeat(`, (?, ?, ?, ?, ?, ?, ?)`, n-1)
		_, err := tx.Exec(q, args...)
		args, size = args[:0], 0
		return err
	}
	newKeys := make(map[*dataKey]bool)
	for _, r := range batch {
		for _, w := range r.rows {
			if !w.key.stored.Load() && !newKeys[w.key] {
				res, err := keyStmt.Exec(w.tenant, w.session, w.key.wrapped)
				if err != nil {
					return nil, fmt.Errorf("vault: storing data key: %w", err)
				}
				if n, _ := res.RowsAffected(); n == 0 {
					var stored []byte
					if err := tx.QueryRow(`SELECT wrapped FROM data_keys WHERE tenant = ? AND session = ?`, w.tenant, w.session).Scan(&stored); err != nil && !errors.Is(err, sql.ErrNoRows) {
						return nil, fmt.Errorf("vault: reading data key: %w", err)
					}
					if !bytes.Equal(stored, w.key.wrapped) {
						return v.conflict(batch, w.key), nil
					}
				}
				newKeys[w.key] = true
			}
			args = append(args, w.id, w.tenant, w.session, w.mediaType, w.size, w.nonce, w.sealed)
			if size += len(w.sealed); len(args) == 7*insertChunk || size >= insertBytes {
				if err := flush(); err != nil {
					return nil, fmt.Errorf("vault: storing payloads: %w", err)
				}
			}
		}
	}
	if err := flush(); err != nil {
		return nil, fmt.Errorf("vault: storing payloads: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("vault: commit: %w", err)
	}
	v.commits.Add(1)
	now := time.Now().UnixNano()
	for k := range newKeys {
		k.readAt.Store(now)
		k.stored.Store(true)
	}
	return nil, nil
}

// conflict drops key from the cache and names the puts of batch that use
// it.
func (v *Vault) conflict(batch []*putReq, key *dataKey) map[*putReq]bool {
	v.mu.Lock()
	maps.DeleteFunc(v.keys, func(_ sessionKey, k *dataKey) bool { return k == key })
	v.mu.Unlock()
	out := map[*putReq]bool{}
	for _, r := range batch {
		for _, w := range r.rows {
			if w.key == key {
				out[r] = true
			}
		}
	}
	return out
}

// Get returns the decrypted record stored under id.
func (v *Vault) Get(ctx context.Context, id string) (Record, error) {
	var r Record
	var size int
	var nonce, sealed, wrapped []byte
	var erasedAt sql.NullString
	err := v.db.QueryRowContext(ctx, `
SELECT p.tenant, p.session, p.media_type, p.size, p.nonce, p.sealed, k.wrapped, k.erased_at
FROM payloads p JOIN data_keys k ON k.tenant = p.tenant AND k.session = p.session
WHERE p.id = ?`, id).Scan(&r.Tenant, &r.Session, &r.MediaType, &size, &nonce, &sealed, &wrapped, &erasedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Record{}, ErrNotFound
	case err != nil:
		return Record{}, fmt.Errorf("vault: %w", err)
	}
	r.ID = id
	return v.open(r, size, nonce, sealed, wrapped, erasedAt.Valid)
}

// open decrypts a stored row.
func (v *Vault) open(r Record, size int, nonce, sealed, wrapped []byte, erased bool) (Record, error) {
	if erased || wrapped == nil {
		return Record{}, ErrErased
	}
	k, err := v.unwrap(r.Tenant, r.Session, wrapped)
	if err != nil {
		return Record{}, err
	}
	return openWith(k, r, nonce, sealed, size)
}

// getManyChunk is how many ids one query of GetMany names.
const getManyChunk = 500

// GetMany returns the decrypted records stored under ids, with one query
// per 500 ids: found holds the records, failed the ids whose record is
// erased (ErrErased) or does not decrypt; an id in neither is not stored.
func (v *Vault) GetMany(ctx context.Context, ids []string) (found map[string]Record, failed map[string]error, err error) {
	found, failed = make(map[string]Record, len(ids)), map[string]error{}
	// One unwrap per session key, not per payload: the keys met so far,
	// by session, with the wrapped key they were unwrapped from.
	type unwrapped struct {
		wrapped []byte
		k       *dataKey
		err     error
	}
	keys := map[sessionKey]unwrapped{}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), getManyChunk)]
		ids = ids[len(chunk):]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := v.db.QueryContext(ctx, `
SELECT p.id, p.tenant, p.session, p.media_type, p.size, p.nonce, p.sealed, k.wrapped, k.erased_at
FROM payloads p JOIN data_keys k ON k.tenant = p.tenant AND k.session = p.session
WHERE p.id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, nil, fmt.Errorf("vault: %w", err)
		}
		for rows.Next() {
			var r Record
			var size int
			var nonce, sealed, wrapped sql.RawBytes // the driver's, valid until Next: only read here
			var erasedAt sql.NullString
			if err := rows.Scan(&r.ID, &r.Tenant, &r.Session, &r.MediaType, &size, &nonce, &sealed, &wrapped, &erasedAt); err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("vault: %w", err)
			}
			if erasedAt.Valid || wrapped == nil {
				failed[r.ID] = ErrErased
				continue
			}
			sk := sessionKey{r.Tenant, r.Session}
			u, ok := keys[sk]
			if !ok || !bytes.Equal(u.wrapped, wrapped) {
				u.wrapped = bytes.Clone(wrapped)
				u.k, u.err = v.unwrap(r.Tenant, r.Session, u.wrapped)
				keys[sk] = u
			}
			if u.err != nil {
				failed[r.ID] = u.err
			} else if rec, err := openWith(u.k, r, nonce, sealed, size); err != nil {
				failed[r.ID] = err
			} else {
				found[r.ID] = rec
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("vault: %w", err)
		}
	}
	return found, failed, nil
}

// EraseSession destroys the data key of (tenant, session), making every
// payload and salt of that session unreadable. It reports how many payloads
// were affected. Erasing an unknown session returns ErrNotFound.
func (v *Vault) EraseSession(ctx context.Context, tenant, session string) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	tx, err := v.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	res, err := tx.Exec(`UPDATE data_keys SET wrapped = NULL, erased_at = ? WHERE tenant = ? AND session = ? AND erased_at IS NULL`,
		time.Now().UTC().Format(time.RFC3339Nano), tenant, session)
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, ErrNotFound
	}
	// Drop the ciphertexts as well (without the key they are noise anyway),
	// keeping the rows so that a read answers "erased", not "never existed".
	res, err = tx.Exec(`UPDATE payloads SET sealed = x'', nonce = x'' WHERE tenant = ? AND session = ?`, tenant, session)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	delete(v.keys, sessionKey{tenant, session})
	return int(n), nil
}

// Forget makes what was erased unrecoverable from the database files: with
// secure_delete the erased rows' content is overwritten in the database,
// and a TRUNCATE checkpoint moves the write-ahead log into it and empties
// the WAL file, which would otherwise keep earlier page images. On MariaDB
// it is ErrNoForget: InnoDB keeps old row images in its undo and redo logs
// until they are overwritten (docs/scale-out.md says what to configure).
func (v *Vault) Forget(ctx context.Context) error {
	if v.db.Dialect != sqldb.SQLite {
		return ErrNoForget
	}
	var busy, logPages, done int
	if err := v.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logPages, &done); err != nil {
		return fmt.Errorf("vault: checkpoint: %w", err)
	}
	if busy != 0 {
		return errors.New("vault: the checkpoint was blocked by a reader; retry")
	}
	return nil
}

// Close stops the writer after it has committed every queued put. It does
// not close the database.
func (v *Vault) Close() error {
	v.closeMu.Do(func() { close(v.closed) })
	<-v.done
	return nil
}

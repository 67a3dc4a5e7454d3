package vault

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Pseudonyms stand for personal data in leaves: a data subject or the
// principal an actor acts for. The vault maps each (tenant, value) to one
// random pseudonym, so that the same person gets the same pseudonym and
// rules and reports can group by it. The value is kept only sealed under the
// master key, and looked up by a keyed hash; erasing a pseudonym destroys
// both, after which nothing in the log links to the person.

// cachedPseudonym is a pseudonym looked up, and when.
type cachedPseudonym struct {
	ps string
	at time.Time
}

// PseudonymPrefix starts every pseudonym.
const PseudonymPrefix = "ps_"

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func pseudonymAAD(tenant, pseudonym string) []byte {
	return []byte("llmaudittrail/pseudonym/v1\x00" + tenant + "\x00" + pseudonym)
}

func (v *Vault) lookupKey(tenant, value string) []byte {
	m := hmac.New(sha256.New, v.lookup)
	m.Write([]byte(tenant + "\x00" + value))
	return m.Sum(nil)
}

// Pseudonym returns the pseudonym of value in tenant, creating it if needed;
// it is durable when Pseudonym returns. A value that is already a pseudonym
// of the tenant stands for itself.
func (v *Vault) Pseudonym(ctx context.Context, tenant, value string) (string, error) {
	if strings.HasPrefix(value, PseudonymPrefix) {
		var n int
		if err := v.db.QueryRowContext(ctx, `SELECT count(*) FROM pseudonyms WHERE tenant = ? AND pseudonym = ? AND erased_at IS NULL`, tenant, value).Scan(&n); err != nil {
			return "", fmt.Errorf("vault: %w", err)
		}
		if n == 1 {
			return value, nil
		}
	}
	lk := v.lookupKey(tenant, value)
	v.pmu.Lock()
	c, ok := v.pseudonyms[[32]byte(lk)]
	v.pmu.Unlock()
	if ok && (!v.db.Shared() || time.Since(c.at) < CacheTTL) {
		return c.ps, nil
	}
	var ps string
	err := v.db.QueryRowContext(ctx, `SELECT pseudonym FROM pseudonyms WHERE lookup = ?`, lk).Scan(&ps)
	if err == nil {
		v.remember(lk, ps)
		return ps, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("vault: %w", err)
	}
	raw := make([]byte, 15)
	rand.Read(raw)
	ps = PseudonymPrefix + b32.EncodeToString(raw)
	nonce := make([]byte, v.master.NonceSize())
	rand.Read(nonce)
	sealed := v.master.Seal(nil, nonce, []byte(value), pseudonymAAD(tenant, ps))
	// Two writers may race for a new value: the unique lookup keeps one.
	if _, err := v.db.ExecContext(ctx, v.db.InsertIgnore()+` INTO pseudonyms (tenant, pseudonym, lookup, nonce, sealed, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		tenant, ps, lk, nonce, sealed, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return "", fmt.Errorf("vault: storing pseudonym: %w", err)
	}
	if err := v.db.QueryRowContext(ctx, `SELECT pseudonym FROM pseudonyms WHERE lookup = ?`, lk).Scan(&ps); err != nil {
		return "", fmt.Errorf("vault: %w", err)
	}
	v.remember(lk, ps)
	return ps, nil
}

// maxCachedPseudonyms bounds the lookup cache.
const maxCachedPseudonyms = 16384

func (v *Vault) remember(lk []byte, ps string) {
	v.pmu.Lock()
	defer v.pmu.Unlock()
	if len(v.pseudonyms) >= maxCachedPseudonyms {
		clear(v.pseudonyms)
	}
	v.pseudonyms[[32]byte(lk)] = cachedPseudonym{ps, time.Now()}
}

// Lookup returns the pseudonym of value in tenant without creating one:
// ErrNotFound if there is none (or it was erased). A pseudonym given as
// value is returned if it is a live pseudonym of the tenant.
func (v *Vault) Lookup(ctx context.Context, tenant, value string) (string, error) {
	var ps string
	err := v.db.QueryRowContext(ctx, `SELECT pseudonym FROM pseudonyms WHERE lookup = ?`, v.lookupKey(tenant, value)).Scan(&ps)
	if errors.Is(err, sql.ErrNoRows) {
		err = v.db.QueryRowContext(ctx, `SELECT pseudonym FROM pseudonyms WHERE tenant = ? AND pseudonym = ? AND erased_at IS NULL`, tenant, value).Scan(&ps)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("vault: %w", err)
	}
	return ps, nil
}

// Resolve returns the value a pseudonym of tenant stands for: ErrNotFound if
// the tenant has no such pseudonym, ErrErased if it was erased.
func (v *Vault) Resolve(ctx context.Context, tenant, pseudonym string) (string, error) {
	var nonce, sealed []byte
	var erased sql.NullString
	err := v.db.QueryRowContext(ctx, `SELECT nonce, sealed, erased_at FROM pseudonyms WHERE tenant = ? AND pseudonym = ?`, tenant, pseudonym).Scan(&nonce, &sealed, &erased)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", ErrNotFound
	case err != nil:
		return "", fmt.Errorf("vault: %w", err)
	case erased.Valid:
		return "", ErrErased
	}
	pt, err := v.master.Open(nil, nonce, sealed, pseudonymAAD(tenant, pseudonym))
	if err != nil {
		return "", fmt.Errorf("vault: opening pseudonym %s: %w", pseudonym, err)
	}
	return string(pt), nil
}

// ErasePseudonym destroys the mapping of a pseudonym of tenant: the value
// and its lookup hash. Its row stays, so that a resolve answers "erased";
// the same value gets a new pseudonym if it is ever used again.
func (v *Vault) ErasePseudonym(ctx context.Context, tenant, pseudonym string) error {
	res, err := v.db.ExecContext(ctx, `UPDATE pseudonyms SET lookup = NULL, nonce = NULL, sealed = NULL, erased_at = ? WHERE tenant = ? AND pseudonym = ? AND erased_at IS NULL`,
		time.Now().UTC().Format(time.RFC3339Nano), tenant, pseudonym)
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	v.pmu.Lock()
	clear(v.pseudonyms)
	v.pmu.Unlock()
	return nil
}

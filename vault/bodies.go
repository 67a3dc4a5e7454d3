package vault

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// BodiesSchema is the table of the event bodies of a log of leaf version 3
// (docs/leaf-format.md): the log's entries are envelopes, and each body is
// kept here under its leaf hash, the value its envelope commits to.
// Bodies are leaves as a version 2 log holds them, in clear; they are
// served only to tokens that may read them.
var BodiesSchema = []string{
	`CREATE TABLE IF NOT EXISTS bodies (
  hash {hash} PRIMARY KEY, -- event.LeafHash(body)
  body {blob} NOT NULL){table}`,
}

// BodiesSchemaVersion is the version of BodiesSchema.
const BodiesSchemaVersion = 1

// EnvelopeSecret is the secret the envelopes of leaf version 3 are made
// with (event.NewEnvelopeSealer): derived from the master key, so that it
// is as safe as the payloads are and needs no key file of its own.
func (v *Vault) EnvelopeSecret() []byte { return v.envelope }

// PutBodies stores event bodies under their leaf hashes, durably, in one
// transaction; a body stored already is left as it is.
func (v *Vault) PutBodies(ctx context.Context, bodies ...[]byte) error {
	if len(bodies) == 0 {
		return nil
	}
	tx, err := v.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storing bodies: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, v.db.InsertIgnore()+` INTO bodies (hash, body) VALUES (?, ?)`)
	if err != nil {
		return fmt.Errorf("storing bodies: %w", err)
	}
	defer stmt.Close()
	for _, b := range bodies {
		if _, err := stmt.ExecContext(ctx, event.LeafHash(b), b); err != nil {
			return fmt.Errorf("storing bodies: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storing bodies: %w", err)
	}
	return nil
}

// maxBodiesQuery bounds the hashes of one query (an entry bundle's width).
const maxBodiesQuery = 256

// Bodies returns the stored bodies of the leaf hashes asked for; a hash
// without a body is absent from the map.
func (v *Vault) Bodies(ctx context.Context, hashes [][sha256.Size]byte) (map[[sha256.Size]byte][]byte, error) {
	out := make(map[[sha256.Size]byte][]byte, len(hashes))
	for len(hashes) > 0 {
		n := min(len(hashes), maxBodiesQuery)
		args := make([]any, n)
		for i := range n {
			args[i] = hashes[i][:]
		}
		rows, err := v.db.QueryContext(ctx, `SELECT hash, body FROM bodies WHERE hash IN (?`+strings.Repeat(",?", n-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("reading bodies: %w", err)
		}
		for rows.Next() {
			var h, b []byte
			if err := rows.Scan(&h, &b); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading bodies: %w", err)
			}
			if len(h) == sha256.Size {
				out[[sha256.Size]byte(h)] = b
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("reading bodies: %w", err)
		}
		hashes = hashes[n:]
	}
	return out, nil
}

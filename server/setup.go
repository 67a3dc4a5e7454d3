package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/internal/keyfile"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// Paths inside a data directory.
const (
	KeysDir       = "keys"
	LogKeyFile    = "keys/log.key"
	LogPubFile    = "keys/log.pub"
	MasterKeyFile = "keys/master.key"
	AdminToken    = "keys/admin.token"
	LogDir        = "log"
	VaultDB       = "vault.db"
	StateDB       = "state.db"
	IndexDB       = "index.db"
)

// Keys are the secrets a data directory holds.
type Keys struct {
	Signer    note.Signer
	Verifier  note.Verifier
	VKey      string
	MasterKey []byte
}

// Created lists what Init made, for the operator.
type Created struct {
	Paths      []string
	AdminToken string // set only when the admin token was created now
}

// InitKeys creates the data directory and any missing key: the log's note
// signing key (name = origin), its verifier key, and, unless masterKey is
// given, the vault master key. Existing keys are kept; an existing log key
// whose name differs from a non-empty origin is an error. Every secret file
// must be mode 0600.
func InitKeys(dir, origin string, masterKey []byte) (*Keys, *Created, error) {
	created := &Created{}
	if err := os.MkdirAll(filepath.Join(dir, KeysDir), 0o700); err != nil {
		return nil, nil, err
	}
	skeyPath := filepath.Join(dir, LogKeyFile)
	exists, err := keyfile.Exists(skeyPath)
	if err != nil {
		return nil, nil, err
	}
	if !exists {
		if origin == "" {
			origin = DefaultOrigin
		}
		skey, vkey, err := checkpoint.GenerateKey(origin)
		if err != nil {
			return nil, nil, err
		}
		if err := keyfile.Create(skeyPath, []byte(skey+"\n")); err != nil {
			return nil, nil, fmt.Errorf("writing log key: %w", err)
		}
		pub := filepath.Join(dir, LogPubFile)
		os.Remove(pub) // a stale public key must not survive a new private key
		if err := os.WriteFile(pub, []byte(vkey+"\n"), 0o644); err != nil {
			return nil, nil, err
		}
		created.Paths = append(created.Paths, skeyPath, pub)
	}
	raw, err := keyfile.Read(skeyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("reading log key: %w", err)
	}
	signer, err := checkpoint.NewSigner(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, nil, err
	}
	if origin != "" && signer.Name() != origin {
		return nil, nil, fmt.Errorf("%s belongs to origin %q, not %q: pass the matching --origin or use a new data directory", skeyPath, signer.Name(), origin)
	}
	pubRaw, err := os.ReadFile(filepath.Join(dir, LogPubFile))
	if err != nil {
		return nil, nil, fmt.Errorf("reading log verifier key: %w", err)
	}
	vkey := strings.TrimSpace(string(pubRaw))
	verifier, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		return nil, nil, err
	}
	if verifier.Name() != signer.Name() || verifier.KeyHash() != signer.KeyHash() {
		return nil, nil, fmt.Errorf("%s does not match %s", LogPubFile, LogKeyFile)
	}

	master := masterKey
	if master != nil {
		if len(master) != vault.MasterKeySize {
			return nil, nil, fmt.Errorf("the master key must be %d bytes", vault.MasterKeySize)
		}
	} else {
		mkPath := filepath.Join(dir, MasterKeyFile)
		if ok, err := keyfile.Exists(mkPath); err != nil {
			return nil, nil, err
		} else if !ok {
			k := make([]byte, vault.MasterKeySize)
			rand.Read(k)
			if err := keyfile.Create(mkPath, []byte(hex.EncodeToString(k)+"\n")); err != nil {
				return nil, nil, fmt.Errorf("writing master key: %w", err)
			}
			created.Paths = append(created.Paths, mkPath)
		}
		raw, err := keyfile.Read(mkPath)
		if err != nil {
			return nil, nil, fmt.Errorf("reading master key: %w", err)
		}
		master, err = hex.DecodeString(strings.TrimSpace(string(raw)))
		if err != nil || len(master) != vault.MasterKeySize {
			return nil, nil, fmt.Errorf("%s must hold %d hex digits", mkPath, 2*vault.MasterKeySize)
		}
	}
	// The admin token file, if present, must be private as well.
	if _, err := keyfile.Read(filepath.Join(dir, AdminToken)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	return &Keys{Signer: signer, Verifier: verifier, VKey: vkey, MasterKey: master}, created, nil
}

// EnsureAdminToken creates the first admin token (tenant "default") and
// writes it to keys/admin.token if that file does not exist yet.
func EnsureAdminToken(ctx context.Context, dir string, tokens *auth.Store, created *Created) error {
	p := filepath.Join(dir, AdminToken)
	ok, err := keyfile.Exists(p)
	if err != nil || ok {
		return err
	}
	tok, _, err := tokens.Create(ctx, "admin", DefaultTenant, []string{auth.ScopeAdmin})
	if err != nil {
		return err
	}
	if err := keyfile.Create(p, []byte(tok+"\n")); err != nil {
		return fmt.Errorf("writing admin token: %w", err)
	}
	created.Paths = append(created.Paths, p)
	created.AdminToken = tok
	return nil
}

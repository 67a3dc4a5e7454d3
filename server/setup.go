package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/internal/hsm"
	"github.com/llmaudittrail/llmaudittrail/internal/keyring"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/backend"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/internal/keyfile"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// Paths inside a data directory.
const (
	KeysDir    = "keys"
	LogKeyFile = "keys/log.key"
	LogPubFile = "keys/log.pub"
	// PolicyFile is the policy an auditor should use (C2SP tlog-policy),
	// written at every start.
	PolicyFile    = "keys/policy"
	MasterKeyFile = "keys/master.key"
	AdminToken    = "keys/admin.token"
	InterceptCA   = "keys/intercept-ca.pem"
	InterceptKey  = "keys/intercept-ca.key"
	LogDir        = backend.LogDir
	VaultDB       = backend.VaultDB
	StateDB       = backend.StateDB
	IndexDB       = backend.IndexDB
)

// Keys are the secrets a data directory holds.
type Keys struct {
	Signer    note.Signer
	Verifier  note.Verifier
	VKey      string
	MasterKey []byte
}

// Created lists what InitKeys and EnsureAdminToken made, for the operator.
type Created struct {
	Paths []string
	// Fresh is set when the data directory was initialised now (it had no
	// keys/log.pub).
	Fresh      bool
	AdminToken string // set only when the admin token was created now
}

// KeySources says where the server's secrets come from.
type KeySources struct {
	// SigningKey, if set, is the checkpoint signing key in a PKCS#11 token,
	// used instead of keys/log.key, which must then not exist; keys/log.pub
	// is written from it on first start. The log's origin names it.
	SigningKey *hsm.Key
	// MasterKeySource is "file" (keys/master.key, created on first start),
	// "env" (MasterKey, given by the operator) or "keyring:DESC" (the user
	// key DESC of the Linux kernel keyring, hex; created on first start).
	// Default: "env" if MasterKey is set, else "file".
	MasterKeySource string
	// MasterKey is the operator's master key (the log-server command reads
	// LLMAUDIT_MASTER_KEY into it), if any. With another source it must
	// agree with that source's key.
	MasterKey []byte
}

// MasterKeyEnv names the environment variable the log-server command reads
// the master key from; errors name it.
const MasterKeyEnv = "LLMAUDIT_MASTER_KEY"

// ErrKeyMismatch is returned (wrapped) by InitKeys when two sources of the
// master key, or a signer and keys/log.pub, disagree.
var ErrKeyMismatch = errors.New("keys disagree")

// InitKeys creates the data directory and any missing key: the log's note
// signing key (name = origin) unless src.Signer is given, its verifier key,
// and the vault master key from its source. Existing keys are kept; an
// existing log key whose name differs from a non-empty origin is an error,
// and so are two sources of the master key that disagree. Every secret file
// must be mode 0600.
func InitKeys(dir, origin string, src KeySources) (*Keys, *Created, error) {
	created := &Created{}
	if err := os.MkdirAll(filepath.Join(dir, KeysDir), 0o700); err != nil {
		return nil, nil, err
	}
	pubPath := filepath.Join(dir, LogPubFile)
	pubExists, err := keyfile.Exists(pubPath)
	if err != nil {
		return nil, nil, err
	}
	created.Fresh = !pubExists
	signer, err := initSigner(dir, origin, src.SigningKey, created)
	if err != nil {
		return nil, nil, err
	}
	pubRaw, err := os.ReadFile(pubPath)
	if err != nil {
		return nil, nil, fmt.Errorf("reading log verifier key: %w", err)
	}
	vkey := strings.TrimSpace(string(pubRaw))
	verifier, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		return nil, nil, err
	}
	if verifier.Name() != signer.Name() || verifier.KeyHash() != signer.KeyHash() {
		return nil, nil, fmt.Errorf("%w: %s is not the verifier key of the signing key", ErrKeyMismatch, pubPath)
	}
	master, err := initMasterKey(dir, src, created)
	if err != nil {
		return nil, nil, err
	}
	// The admin token file, if present, must be private as well.
	if _, err := keyfile.Read(filepath.Join(dir, AdminToken)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	return &Keys{Signer: signer, Verifier: verifier, VKey: vkey, MasterKey: master}, created, nil
}

func initSigner(dir, origin string, key *hsm.Key, created *Created) (note.Signer, error) {
	skeyPath := filepath.Join(dir, LogKeyFile)
	pubPath := filepath.Join(dir, LogPubFile)
	exists, err := keyfile.Exists(skeyPath)
	if err != nil {
		return nil, err
	}
	if key != nil {
		if exists {
			return nil, fmt.Errorf("%s exists, but the signing key is a PKCS#11 key: remove one of them", skeyPath)
		}
		name := origin
		if !created.Fresh {
			// The origin is the name of the key the log was started with.
			raw, err := os.ReadFile(pubPath)
			if err != nil {
				return nil, err
			}
			pubName, _, _ := strings.Cut(strings.TrimSpace(string(raw)), "+")
			if origin != "" && origin != pubName {
				return nil, fmt.Errorf("%s belongs to origin %q, not %q", pubPath, pubName, origin)
			}
			name = pubName
		}
		if name == "" {
			name = DefaultOrigin
		}
		s, err := key.NoteSigner(name)
		if err != nil {
			return nil, err
		}
		if created.Fresh {
			if err := os.WriteFile(pubPath, []byte(s.VerifierKey()+"\n"), 0o644); err != nil {
				return nil, err
			}
			created.Paths = append(created.Paths, pubPath)
		}
		return s, nil
	}
	if !exists {
		if !created.Fresh {
			return nil, fmt.Errorf("%s is missing but %s exists: restore the log's signing key (or pass the PKCS#11 key it lives in)", skeyPath, pubPath)
		}
		if origin == "" {
			origin = DefaultOrigin
		}
		skey, vkey, err := checkpoint.GenerateKey(origin)
		if err != nil {
			return nil, err
		}
		if err := keyfile.Create(skeyPath, []byte(skey+"\n")); err != nil {
			return nil, fmt.Errorf("writing log key: %w", err)
		}
		if err := os.WriteFile(pubPath, []byte(vkey+"\n"), 0o644); err != nil {
			return nil, err
		}
		created.Paths = append(created.Paths, skeyPath, pubPath)
	}
	raw, err := keyfile.Read(skeyPath)
	if err != nil {
		return nil, fmt.Errorf("reading log key: %w", err)
	}
	signer, err := checkpoint.NewSigner(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, err
	}
	if origin != "" && signer.Name() != origin {
		return nil, fmt.Errorf("%s belongs to origin %q, not %q: pass the matching --origin or use a new data directory", skeyPath, signer.Name(), origin)
	}
	return signer, nil
}

func parseMasterKey(hx, where string) ([]byte, error) {
	k, err := hex.DecodeString(strings.TrimSpace(hx))
	if err != nil || len(k) != vault.MasterKeySize {
		return nil, fmt.Errorf("%s must hold %d hex digits", where, 2*vault.MasterKeySize)
	}
	return k, nil
}

func initMasterKey(dir string, src KeySources, created *Created) ([]byte, error) {
	mkPath := filepath.Join(dir, MasterKeyFile)
	fileKey := func() ([]byte, error) {
		raw, err := keyfile.Read(mkPath)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading master key: %w", err)
		}
		return parseMasterKey(string(raw), mkPath)
	}
	newKey := func() []byte {
		k := make([]byte, vault.MasterKeySize)
		rand.Read(k)
		return k
	}
	source := src.MasterKeySource
	if source == "" {
		source = "file"
		if src.MasterKey != nil {
			source = "env"
		}
	}
	if src.MasterKey != nil && len(src.MasterKey) != vault.MasterKeySize {
		return nil, fmt.Errorf("%s must be %d hex digits", MasterKeyEnv, 2*vault.MasterKeySize)
	}
	var key []byte
	var from string
	switch {
	case source == "env":
		if src.MasterKey == nil {
			return nil, fmt.Errorf("the master key source is env, but %s is not set", MasterKeyEnv)
		}
		key, from = src.MasterKey, MasterKeyEnv
		fk, err := fileKey()
		if err != nil {
			return nil, err
		}
		if fk != nil && !hmac.Equal(fk, key) {
			return nil, fmt.Errorf("%w: %s and %s hold different master keys; keep the one the vault was written with and remove the other", ErrKeyMismatch, MasterKeyEnv, mkPath)
		}
		return key, nil
	case source == "file":
		fk, err := fileKey()
		if err != nil {
			return nil, err
		}
		if fk == nil {
			fk = newKey()
			if err := keyfile.Create(mkPath, []byte(hex.EncodeToString(fk)+"\n")); err != nil {
				return nil, fmt.Errorf("writing master key: %w", err)
			}
			created.Paths = append(created.Paths, mkPath)
		}
		key, from = fk, mkPath
	case strings.HasPrefix(source, "keyring:"):
		desc := strings.TrimPrefix(source, "keyring:")
		if desc == "" {
			return nil, errors.New("keyring: needs a key description, e.g. keyring:llmaudit:master")
		}
		from = "kernel keyring key " + desc
		raw, err := keyring.Get(desc)
		switch {
		case errors.Is(err, keyring.ErrNotFound) && created.Fresh:
			key = newKey()
			if err := keyring.Add(desc, []byte(hex.EncodeToString(key))); err != nil {
				return nil, err
			}
			created.Paths = append(created.Paths, "keyring:"+desc)
		case err != nil:
			return nil, fmt.Errorf("master key: %w", err)
		default:
			if key, err = parseMasterKey(string(raw), from); err != nil {
				return nil, err
			}
		}
		fk, err := fileKey()
		if err != nil {
			return nil, err
		}
		if fk != nil && !hmac.Equal(fk, key) {
			return nil, fmt.Errorf("%w: %s and %s hold different master keys", ErrKeyMismatch, from, mkPath)
		}
	default:
		return nil, fmt.Errorf("master key source %q: want file, env or keyring:DESC", source)
	}
	if src.MasterKey != nil && !hmac.Equal(src.MasterKey, key) {
		return nil, fmt.Errorf("%w: %s and %s hold different master keys; unset %s or make them agree", ErrKeyMismatch, MasterKeyEnv, from, MasterKeyEnv)
	}
	return key, nil
}

// EnsureAdminToken creates the first admin token, a global one (tenant
// "default"), and writes it to keys/admin.token, when the token store is
// created (fresh): never again, so that deleting the file does not mint a
// new operator token. (`log-server token create --global` makes more.)
func EnsureAdminToken(ctx context.Context, dir string, tokens *auth.Store, fresh bool, created *Created) error {
	if !fresh {
		return nil
	}
	p := filepath.Join(dir, AdminToken)
	tok, _, err := tokens.Create(ctx, auth.Spec{Name: "admin", Tenant: DefaultTenant, Scopes: []string{auth.ScopeAdmin}, Global: true})
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

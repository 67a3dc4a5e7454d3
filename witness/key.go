package witness

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/internal/hsm"
	"github.com/llmaudittrail/llmaudittrail/internal/keyfile"
)

// Files in the witness data directory.
const (
	// KeyFile holds the witness's note signer key (PRIVATE+KEY+...), mode 0600.
	KeyFile = "witness.key"
	// PubFile holds the witness's verifier key in cosignature/v1 form
	// (name+hash+base64(0x04 || Ed25519 public key)).
	PubFile = "witness.pub"
	// DBFile is the SQLite database of the latest cosigned checkpoints.
	DBFile = "witness.db"
)

// ErrKeyNameMismatch is returned by LoadKey when the key's name is not the
// configured witness name.
var ErrKeyNameMismatch = errors.New("witness key name does not match the configured name")

// Key is the witness's signing key.
type Key struct {
	// Signer produces cosignature/v1 signatures.
	Signer note.Signer
	// VerifierKey is the cosignature/v1 verifier key, as written to PubFile
	// and as named in a witness policy.
	VerifierKey string
}

// GenerateKey creates a new Ed25519 key named name in dir, writing KeyFile
// (0600) and PubFile, and returns the verifier key. It never replaces an
// existing key: if KeyFile exists it fails with an error wrapping
// fs.ErrExist.
func GenerateKey(dir, name string) (vkey string, err error) {
	if !validName(name) {
		return "", fmt.Errorf("invalid witness name %q", name)
	}
	skey, stdVkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", fmt.Errorf("generating witness key: %w", err)
	}
	vkey, err = fnote.VKeyToCosignatureV1(stdVkey)
	if err != nil {
		return "", fmt.Errorf("converting witness key: %w", err)
	}
	if err := keyfile.Create(filepath.Join(dir, KeyFile), []byte(skey+"\n")); err != nil {
		return "", fmt.Errorf("writing witness key: %w", err)
	}
	if err := writePub(dir, vkey); err != nil {
		return "", err
	}
	return vkey, nil
}

// LoadKey reads the key in dir. It refuses a KeyFile readable or writable
// by group or others (keyfile.ErrInsecurePermissions), a key whose name is
// not name (ErrKeyNameMismatch), and a PubFile that does not match the key.
// A missing PubFile is rewritten. A missing KeyFile is an error wrapping
// fs.ErrNotExist.
func LoadKey(dir, name string) (*Key, error) {
	b, err := keyfile.Read(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("reading witness key: %w", err)
	}
	skey := strings.TrimSpace(string(b))
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, fmt.Errorf("parsing witness key: %w", err)
	}
	if signer.Name() != name {
		return nil, fmt.Errorf("%w: key is %q, config says %q", ErrKeyNameMismatch, signer.Name(), name)
	}
	vkey, err := cosignatureVerifierKey(skey)
	if err != nil {
		return nil, err
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil || v.KeyHash() != signer.KeyHash() || v.Name() != signer.Name() {
		return nil, errors.New("internal error: derived witness verifier key does not match the signer")
	}

	pubPath := filepath.Join(dir, PubFile)
	pub, err := os.ReadFile(pubPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := writePub(dir, vkey); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("reading witness public key: %w", err)
	case strings.TrimSpace(string(pub)) != vkey:
		return nil, fmt.Errorf("%s does not match %s (want %q)", pubPath, KeyFile, vkey)
	}
	return &Key{Signer: signer, VerifierKey: vkey}, nil
}

// HSMKey is the witness key of a PKCS#11 token, named name: cosignatures are
// made in the token, and dir holds only PubFile, written (or checked) here.
func HSMKey(dir, name string, k *hsm.Key) (*Key, error) {
	s, err := k.CosignatureSigner(name)
	if err != nil {
		return nil, err
	}
	if ok, err := keyfile.Exists(filepath.Join(dir, KeyFile)); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("%s exists, but the witness key is a PKCS#11 key: remove one of them", filepath.Join(dir, KeyFile))
		}
		return nil, err
	}
	pubPath := filepath.Join(dir, PubFile)
	pub, err := os.ReadFile(pubPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := writePub(dir, s.VerifierKey()); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("reading witness public key: %w", err)
	case strings.TrimSpace(string(pub)) != s.VerifierKey():
		return nil, fmt.Errorf("%s does not match the PKCS#11 key (want %q)", pubPath, s.VerifierKey())
	}
	return &Key{Signer: s, VerifierKey: s.VerifierKey()}, nil
}

// LoadOrGenerateKey loads the key in dir, generating one named name first
// if there is none.
func LoadOrGenerateKey(dir, name string) (k *Key, generated bool, err error) {
	exists, err := keyfile.Exists(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, false, err
	}
	if !exists {
		if _, err := GenerateKey(dir, name); err != nil {
			return nil, false, err
		}
		generated = true
	}
	k, err = LoadKey(dir, name)
	return k, generated, err
}

// cosignatureVerifierKey derives the cosignature/v1 verifier key from an
// Ed25519 note signer key as written by note.GenerateKey:
// PRIVATE+KEY+name+hash+base64(0x01 || seed).
func cosignatureVerifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errors.New("parsing witness key: malformed signer key")
	}
	k, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(k) != 1+ed25519.SeedSize || k[0] != 0x01 {
		return "", errors.New("parsing witness key: not an Ed25519 note signer key")
	}
	pub := ed25519.NewKeyFromSeed(k[1:]).Public().(ed25519.PublicKey)
	stdVkey, err := note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return "", fmt.Errorf("parsing witness key: %w", err)
	}
	return fnote.VKeyToCosignatureV1(stdVkey)
}

func writePub(dir, vkey string) error {
	if err := os.WriteFile(filepath.Join(dir, PubFile), []byte(vkey+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing witness public key: %w", err)
	}
	return nil
}

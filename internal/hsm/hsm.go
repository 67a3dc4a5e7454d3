package hsm

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/miekg/pkcs11"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/internal/keyfile"
)

// PKCS#11 3.0 values that miekg/pkcs11 does not name.
const (
	ckkECEdwards          = 0x00000040
	ckmECEdwardsKeyPairGe = 0x00001055
	ckmEdDSA              = 0x00001057
)

// ed25519Params is the DER of the curve's OID (1.3.101.112), the
// CKA_EC_PARAMS of an Ed25519 key.
var ed25519Params = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}

// ErrNoKey is returned by Open when the token holds no such key.
var ErrNoKey = errors.New("no such key in the PKCS#11 token")

// Key is an Ed25519 private key in a PKCS#11 token. It is safe for
// concurrent use (signatures are made one at a time on one session).
type Key struct {
	ctx  *pkcs11.Ctx
	mu   sync.Mutex
	sess pkcs11.SessionHandle
	priv pkcs11.ObjectHandle
	pub  ed25519.PublicKey
	// closed is set by Close: the module may be finalised after it, and a
	// call into it would crash the process rather than fail.
	closed bool
}

// ErrClosed is returned by Sign after Close.
var ErrClosed = errors.New("the PKCS#11 key is closed")

func pin(u *URI) (string, error) {
	if u.PinValue != "" {
		return u.PinValue, nil
	}
	if u.PinSource == "" {
		return "", nil
	}
	path, ok := strings.CutPrefix(u.PinSource, "file:")
	if !ok {
		return "", fmt.Errorf("%w: pin-source must be a file: URI", errURI)
	}
	b, err := keyfile.Read(path)
	if err != nil {
		return "", fmt.Errorf("reading the PIN: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// A module is initialised once per process (C_Initialize and C_Finalize
// act on the whole library), and finalised when its last key closes.
var (
	modMu   sync.Mutex
	modules = map[string]*module{}
)

type module struct {
	ctx  *pkcs11.Ctx
	refs int
}

func loadModule(path string) (*pkcs11.Ctx, error) {
	modMu.Lock()
	defer modMu.Unlock()
	if m := modules[path]; m != nil {
		m.refs++
		return m.ctx, nil
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("cannot load the PKCS#11 module %s", path)
	}
	if err := ctx.Initialize(); err != nil {
		ctx.Destroy()
		return nil, fmt.Errorf("initializing %s: %w", path, err)
	}
	modules[path] = &module{ctx: ctx, refs: 1}
	return ctx, nil
}

func releaseModule(ctx *pkcs11.Ctx) {
	modMu.Lock()
	defer modMu.Unlock()
	for path, m := range modules {
		if m.ctx != ctx {
			continue
		}
		if m.refs--; m.refs == 0 {
			ctx.Finalize()
			ctx.Destroy()
			delete(modules, path)
		}
		return
	}
}

// session loads the module, finds the token and logs in.
func session(u *URI) (*pkcs11.Ctx, pkcs11.SessionHandle, error) {
	ctx, err := loadModule(u.ModulePath)
	if err != nil {
		return nil, 0, err
	}
	fail := func(err error) (*pkcs11.Ctx, pkcs11.SessionHandle, error) {
		releaseModule(ctx)
		return nil, 0, err
	}
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return fail(err)
	}
	var slot uint
	found := false
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if (u.Token == "" || strings.TrimRight(ti.Label, " ") == u.Token) && (u.Serial == "" || strings.TrimRight(ti.SerialNumber, " ") == u.Serial) {
			slot, found = s, true
			break
		}
	}
	if !found {
		return fail(fmt.Errorf("no PKCS#11 token %q (serial %q) in %s", u.Token, u.Serial, u.ModulePath))
	}
	sess, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fail(fmt.Errorf("opening a session: %w", err))
	}
	p, err := pin(u)
	if err != nil {
		ctx.CloseSession(sess)
		return fail(err)
	}
	if err := ctx.Login(sess, pkcs11.CKU_USER, p); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		ctx.CloseSession(sess)
		return fail(fmt.Errorf("logging in to token %q: %w", u.Token, err))
	}
	return ctx, sess, nil
}

func keyTemplate(u *URI, class uint) []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
	}
	if u.Object != "" {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
	}
	if len(u.ID) > 0 {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
	}
	return t
}

func find(ctx *pkcs11.Ctx, sess pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := ctx.FindObjectsInit(sess, tmpl); err != nil {
		return nil, err
	}
	objs, _, err := ctx.FindObjects(sess, 2)
	if ferr := ctx.FindObjectsFinal(sess); err == nil {
		err = ferr
	}
	return objs, err
}

// Open opens the Ed25519 key that uri names. Exactly one private key and
// its public key must match.
func Open(uri string) (*Key, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	ctx, sess, err := session(u)
	if err != nil {
		return nil, err
	}
	k := &Key{ctx: ctx, sess: sess}
	if err := k.load(u); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

func (k *Key) load(u *URI) error {
	privs, err := find(k.ctx, k.sess, keyTemplate(u, pkcs11.CKO_PRIVATE_KEY))
	if err != nil {
		return fmt.Errorf("finding the private key: %w", err)
	}
	pubs, err := find(k.ctx, k.sess, keyTemplate(u, pkcs11.CKO_PUBLIC_KEY))
	if err != nil {
		return fmt.Errorf("finding the public key: %w", err)
	}
	switch {
	case len(privs) == 0 || len(pubs) == 0:
		return fmt.Errorf("%w: %s/%s", ErrNoKey, u.Token, u.Object)
	case len(privs) > 1 || len(pubs) > 1:
		return fmt.Errorf("more than one Ed25519 key in token %s matches %q: name it by id", u.Token, u.Object)
	}
	attrs, err := k.ctx.GetAttributeValue(k.sess, pubs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil {
		return fmt.Errorf("reading the public key: %w", err)
	}
	pub, err := ecPoint(attrs[0].Value)
	if err != nil {
		return err
	}
	k.priv, k.pub = privs[0], pub
	// The token signs with the key it has: check that it is this public key's.
	msg := []byte("llmaudittrail hsm self-test " + time.Now().UTC().String())
	sig, err := k.Sign(msg)
	if err != nil {
		return fmt.Errorf("signing a test message: %w", err)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return errors.New("the token's private key does not match its public key")
	}
	return nil
}

// ecPoint decodes CKA_EC_POINT: the 32-byte key, raw or as a DER OCTET
// STRING (tokens differ).
func ecPoint(b []byte) (ed25519.PublicKey, error) {
	switch {
	case len(b) == ed25519.PublicKeySize:
		return ed25519.PublicKey(b), nil
	case len(b) == 2+ed25519.PublicKeySize && b[0] == 0x04 && b[1] == ed25519.PublicKeySize:
		return ed25519.PublicKey(b[2:]), nil
	}
	return nil, fmt.Errorf("CKA_EC_POINT of %d bytes is not an Ed25519 public key", len(b))
}

// Generate creates an Ed25519 key pair in the token uri names, labelled with
// its object (and id), private key sensitive and not extractable, and opens
// it. It refuses to create a second key of that name.
func Generate(uri string) (*Key, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	ctx, sess, err := session(u)
	if err != nil {
		return nil, err
	}
	k := &Key{ctx: ctx, sess: sess}
	if existing, err := find(ctx, sess, keyTemplate(u, pkcs11.CKO_PRIVATE_KEY)); err != nil || len(existing) > 0 {
		k.Close()
		if err == nil {
			err = fmt.Errorf("token %s already has a key %q", u.Token, u.Object)
		}
		return nil, err
	}
	pubT := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, ed25519Params),
	}
	privT := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
	}
	for _, t := range []*[]*pkcs11.Attribute{&pubT, &privT} {
		if u.Object != "" {
			*t = append(*t, pkcs11.NewAttribute(pkcs11.CKA_LABEL, u.Object))
		}
		if len(u.ID) > 0 {
			*t = append(*t, pkcs11.NewAttribute(pkcs11.CKA_ID, u.ID))
		}
	}
	if _, _, err := ctx.GenerateKeyPair(sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmECEdwardsKeyPairGe, nil)}, pubT, privT); err != nil {
		k.Close()
		return nil, fmt.Errorf("generating an Ed25519 key in token %s: %w", u.Token, err)
	}
	if err := k.load(u); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

// Public is the key's public half.
func (k *Key) Public() ed25519.PublicKey { return k.pub }

// Sign signs msg with Ed25519 (pure, CKM_EDDSA) in the token.
func (k *Key) Sign(msg []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, ErrClosed
	}
	if err := k.ctx.SignInit(k.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmEdDSA, nil)}, k.priv); err != nil {
		return nil, fmt.Errorf("PKCS#11 SignInit: %w", err)
	}
	sig, err := k.ctx.Sign(k.sess, msg)
	if err != nil {
		return nil, fmt.Errorf("PKCS#11 Sign: %w", err)
	}
	return sig, nil
}

// Close logs out and unloads the module. Signing after Close fails with
// ErrClosed; a second Close does nothing.
func (k *Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	k.ctx.CloseSession(k.sess)
	releaseModule(k.ctx)
	return nil
}

func keyHash(name string, key []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write(key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// NoteSigner signs notes (C2SP signed-note, Ed25519, type 0x01) with a key
// in the token: the log's checkpoint signer.
type NoteSigner struct {
	k    *Key
	name string
	hash uint32
	vkey string
}

// NoteSigner returns a note signer named name (the log's origin).
func (k *Key) NoteSigner(name string) (*NoteSigner, error) {
	vkey, err := note.NewEd25519VerifierKey(name, k.pub)
	if err != nil {
		return nil, err
	}
	return &NoteSigner{k: k, name: name, hash: keyHash(name, append([]byte{0x01}, k.pub...)), vkey: vkey}, nil
}

func (s *NoteSigner) Name() string                    { return s.name }
func (s *NoteSigner) KeyHash() uint32                 { return s.hash }
func (s *NoteSigner) Sign(msg []byte) ([]byte, error) { return s.k.Sign(msg) }

// VerifierKey is the signer's note verifier key.
func (s *NoteSigner) VerifierKey() string { return s.vkey }

// CosignatureSigner makes C2SP tlog-cosignature (cosignature/v1)
// signatures with a key in the token: a witness's signer.
type CosignatureSigner struct {
	k    *Key
	name string
	hash uint32
	vkey string
}

// CosignatureSigner returns a cosignature/v1 signer named name (the
// witness's name).
func (k *Key) CosignatureSigner(name string) (*CosignatureSigner, error) {
	std, err := note.NewEd25519VerifierKey(name, k.pub)
	if err != nil {
		return nil, err
	}
	vkey, err := fnote.VKeyToCosignatureV1(std)
	if err != nil {
		return nil, err
	}
	return &CosignatureSigner{k: k, name: name, hash: keyHash(name, append([]byte{0x04}, k.pub...)), vkey: vkey}, nil
}

func (s *CosignatureSigner) Name() string    { return s.name }
func (s *CosignatureSigner) KeyHash() uint32 { return s.hash }

// Sign signs the note text msg: the signature is the 8-byte big-endian
// time followed by the Ed25519 signature of "cosignature/v1\ntime T\n"
// and msg (c2sp.org/tlog-cosignature).
func (s *CosignatureSigner) Sign(msg []byte) ([]byte, error) {
	if strings.Count(string(msg), "\n") < 3 {
		return nil, errors.New("cosigned note format invalid")
	}
	t := uint64(time.Now().Unix())
	sig, err := s.k.Sign([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n%s", t, msg)))
	if err != nil {
		return nil, err
	}
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(sig)), t), sig...), nil
}

// VerifierKey is the signer's cosignature/v1 verifier key.
func (s *CosignatureSigner) VerifierKey() string { return s.vkey }

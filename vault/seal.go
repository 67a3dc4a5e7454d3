package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// Sealed is a payload sealed under its session's data key and ready to be
// stored (PutSealed). Nothing in it is in clear: the payload and its salt
// are encrypted, and the data key is wrapped by the master key, so a Sealed
// may be kept where the vault's tables are not (the engine's journal).
type Sealed struct {
	ID, Tenant, Session, MediaType string
	// Size is the size of the payload as given, before compression.
	Size int
	// Nonce and Box are the AES-GCM nonce and ciphertext.
	Nonce, Box []byte
	// WrappedKey is the session's data key, wrapped by the master key.
	WrappedKey []byte
}

// The sealed plaintext of a payload, in two forms:
//
//	v1: len(salt) (1 byte, never 0) || salt || payload
//	v2: 0x00 || codec (1 byte) || len(salt) (1 byte) || salt || encoded payload
//
// codec is codecNone or codecZstd. Seal writes v2; open reads both.
const (
	plainV2   = 0x00
	codecNone = 0x00
	codecZstd = 0x01
)

// compressMin is the smallest payload Seal tries to compress.
const compressMin = 128

// maxDecoded bounds what one payload may decompress to.
const maxDecoded = 256 << 20

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxDecoded))
)

// plaintext encodes salt and payload in the v2 form, zstd-compressed when
// that makes it smaller.
func plaintext(salt, payload []byte) ([]byte, error) {
	if len(salt) > 255 {
		return nil, errors.New("salt too long")
	}
	head := []byte{plainV2, codecNone, byte(len(salt))}
	if len(payload) >= compressMin {
		pt := zenc.EncodeAll(payload, append(head, salt...))
		if len(pt)-len(head)-len(salt) < len(payload) {
			pt[1] = codecZstd
			return pt, nil
		}
	}
	pt := make([]byte, 0, len(head)+len(salt)+len(payload))
	pt = append(append(append(pt, head...), salt...), payload...)
	return pt, nil
}

// parsePlaintext reads either form of a sealed plaintext; size is the
// payload's recorded size.
func parsePlaintext(pt []byte, size int) (salt, payload []byte, err error) {
	if len(pt) < 1 {
		return nil, nil, errors.New("empty")
	}
	if pt[0] != plainV2 {
		n := int(pt[0])
		if len(pt) < 1+n {
			return nil, nil, errors.New("short")
		}
		return pt[1 : 1+n], pt[1+n:], nil
	}
	if len(pt) < 3 || len(pt) < 3+int(pt[2]) {
		return nil, nil, errors.New("short")
	}
	salt, body := pt[3:3+int(pt[2])], pt[3+int(pt[2]):]
	switch pt[1] {
	case codecNone:
		return salt, body, nil
	case codecZstd:
		if size < 0 || size > maxDecoded {
			return nil, nil, fmt.Errorf("recorded size %d out of range", size)
		}
		out, err := zdec.DecodeAll(body, make([]byte, 0, size))
		if err != nil {
			return nil, nil, fmt.Errorf("decompressing: %w", err)
		}
		if len(out) != size {
			return nil, nil, fmt.Errorf("decompressed to %d bytes, recorded %d", len(out), size)
		}
		return salt, out, nil
	default:
		return nil, nil, fmt.Errorf("unknown codec %d", pt[1])
	}
}

// Seal seals records under their sessions' data keys (creating a key for a
// session that has none; it is stored with the session's first payload)
// without storing them. Payloads are compressed with zstd first when that
// makes them smaller; the commitment in the leaf is over the payload as
// given, which Get returns.
func (v *Vault) Seal(ctx context.Context, recs ...Record) ([]Sealed, error) {
	out := make([]Sealed, 0, len(recs))
	for _, r := range recs {
		k, err := v.key(ctx, r.Tenant, r.Session)
		if err != nil {
			return nil, err
		}
		s, err := seal(k, r)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func seal(k *dataKey, r Record) (Sealed, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, err
	}
	pt, err := plaintext(r.Salt, r.Payload)
	if err != nil {
		return Sealed{}, err
	}
	return Sealed{
		ID: r.ID, Tenant: r.Tenant, Session: r.Session, MediaType: r.MediaType, Size: len(r.Payload),
		Nonce: nonce, Box: k.aead.Seal(nil, nonce, pt, payloadAAD(r.ID, r.Tenant, r.Session, r.MediaType)),
		WrappedKey: k.wrapped,
	}, nil
}

// PutSealed stores sealed payloads durably, in one transaction with other
// concurrent puts; it returns once that transaction is committed. Storing a
// payload that is already stored (same id) does nothing, so a journal may
// replay its records. A payload sealed under a data key that lost to
// another one (another instance created the session's key first) is sealed
// again under the stored key; a payload of a session erased since it was
// sealed is dropped (its erasure destroyed it) and counted in dropped.
func (v *Vault) PutSealed(ctx context.Context, recs ...Sealed) error {
	_, err := v.putSealed(ctx, recs)
	return err
}

func (v *Vault) putSealed(ctx context.Context, recs []Sealed) (dropped int, err error) {
	if len(recs) == 0 {
		return 0, nil
	}
	for try := 1; ; try++ {
		rows := make([]row, 0, len(recs))
		for _, s := range recs {
			k, err := v.keyOf(s)
			if err != nil {
				return dropped, err
			}
			rows = append(rows, row{id: s.ID, tenant: s.Tenant, session: s.Session, mediaType: s.MediaType,
				size: s.Size, nonce: s.Nonce, sealed: s.Box, key: k})
		}
		err := v.enqueue(ctx, rows)
		if !errors.Is(err, errKeyConflict) || try == 3 {
			return dropped, err
		}
		// Seal again under the key that was stored first.
		again := recs[:0:0]
		for _, s := range recs {
			r, err := v.openSealed(s)
			if err != nil {
				return dropped, err
			}
			k, err := v.key(ctx, s.Tenant, s.Session)
			if errors.Is(err, ErrErased) {
				dropped++
				continue
			}
			if err != nil {
				return dropped, err
			}
			if bytes.Equal(k.wrapped, s.WrappedKey) {
				again = append(again, s)
				continue
			}
			ns, err := seal(k, r)
			if err != nil {
				return dropped, err
			}
			again = append(again, ns)
		}
		recs = again
	}
}

// keyOf returns the data key a sealed payload was sealed under: the cached
// key when it is the same, else the wrapped key unwrapped.
func (v *Vault) keyOf(s Sealed) (*dataKey, error) {
	v.mu.Lock()
	k, ok := v.keys[sessionKey{s.Tenant, s.Session}]
	v.mu.Unlock()
	if ok && bytes.Equal(k.wrapped, s.WrappedKey) {
		return k, nil
	}
	return v.unwrap(s.Tenant, s.Session, s.WrappedKey)
}

// openSealed decrypts a sealed payload with its own wrapped key.
func (v *Vault) openSealed(s Sealed) (Record, error) {
	k, err := v.unwrap(s.Tenant, s.Session, s.WrappedKey)
	if err != nil {
		return Record{}, err
	}
	return openWith(k, Record{ID: s.ID, Tenant: s.Tenant, Session: s.Session, MediaType: s.MediaType}, s.Nonce, s.Box, s.Size)
}

// openWith decrypts a payload with data key k.
func openWith(k *dataKey, r Record, nonce, box []byte, size int) (Record, error) {
	pt, err := k.aead.Open(nil, nonce, box, payloadAAD(r.ID, r.Tenant, r.Session, r.MediaType))
	if err != nil {
		return Record{}, fmt.Errorf("vault: decrypting payload %s: %w", r.ID, err)
	}
	salt, payload, err := parsePlaintext(pt, size)
	if err != nil {
		return Record{}, fmt.Errorf("vault: corrupt payload %s: %v", r.ID, err)
	}
	r.Salt, r.Payload = salt, payload
	return r, nil
}

// Stats counts the payloads stored: how many, their bytes as given, and
// their bytes as stored (compressed and sealed, without the nonce).
func (v *Vault) Stats(ctx context.Context) (n int, size, stored int64, err error) {
	var s, st sql.NullInt64
	err = v.db.QueryRowContext(ctx, `SELECT COUNT(*), SUM(size), SUM(LENGTH(sealed)) FROM payloads`).Scan(&n, &s, &st)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("vault: %w", err)
	}
	return n, s.Int64, st.Int64, nil
}

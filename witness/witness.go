// Package witness is a C2SP tlog-witness (c2sp.org/tlog-witness): it
// verifies checkpoints of configured logs, checks that each is consistent
// with the latest one it cosigned, persists it, and returns a
// cosignature/v1 (c2sp.org/tlog-cosignature).
//
// The state of each log is its latest cosigned size and root, stored in
// SQLite and changed only by an atomic compare-and-swap on (size, root), so
// concurrent requests can never make the witness cosign two roots for one
// size or roll a log back.
package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Outcomes of AddCheckpoint. The HTTP handler maps each to the status code
// the tlog-witness spec requires.
var (
	// ErrMalformedRequest: the body or the checkpoint text cannot be
	// parsed. HTTP 400.
	ErrMalformedRequest = errors.New("malformed add-checkpoint request")
	// ErrUnknownLog: the checkpoint's origin is not a configured log.
	// HTTP 404.
	ErrUnknownLog = errors.New("unknown log origin")
	// ErrNoTrustedSignature: no signature on the checkpoint verifies with
	// the configured log key. HTTP 403.
	ErrNoTrustedSignature = errors.New("no valid signature from the log's key")
	// ErrOldSizeTooLarge: the old size is larger than the checkpoint size.
	// HTTP 400.
	ErrOldSizeTooLarge = errors.New("old size larger than checkpoint size")
	// ErrSizeMismatch: the old size is not the size of the latest
	// checkpoint this witness cosigned for the log (0 if none). Returned
	// as a *SizeMismatchError carrying that size. HTTP 409 with
	// Content-Type text/x.tlog.size.
	ErrSizeMismatch = errors.New("old size is not the latest cosigned size")
	// ErrInvalidProof: the consistency proof from the latest cosigned
	// checkpoint does not verify (including a non-empty proof from size 0
	// or at an unchanged size, and a size-0 checkpoint whose root is not
	// the empty tree's). HTTP 422.
	ErrInvalidProof = errors.New("consistency proof does not verify")
	// ErrRootMismatch: the checkpoint has the size of the latest cosigned
	// checkpoint but a different root hash: the log forked. HTTP 409
	// without a size body, as c2sp.org/tlog-witness requires.
	ErrRootMismatch = errors.New("root hash differs from the cosigned checkpoint of the same size")
	// ErrNotCosigned is returned by Checkpoint for a configured log that has
	// no cosigned checkpoint yet. HTTP 404.
	ErrNotCosigned = errors.New("no checkpoint cosigned for this log yet")
)

// SizeMismatchError is ErrSizeMismatch with the latest cosigned size.
type SizeMismatchError struct {
	// Known is the size of the latest checkpoint cosigned for the log.
	Known uint64
}

func (e *SizeMismatchError) Error() string {
	return fmt.Sprintf("%v (latest cosigned size is %d)", ErrSizeMismatch, e.Known)
}

// Is makes errors.Is(err, ErrSizeMismatch) true.
func (e *SizeMismatchError) Is(target error) bool { return target == ErrSizeMismatch }

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedRequest, fmt.Sprintf(format, args...))
}

// Witness cosigns checkpoints of its configured logs.
type Witness struct {
	key    *Key
	store  *Store
	logs   map[string]note.Verifier // by origin
	byID   map[string]string        // hex SHA-256 of origin -> origin
	logger *slog.Logger
	closer func() error

	// beforeCommit, if set (tests only), runs after a request was fully
	// verified and cosigned, just before the compare-and-swap.
	beforeCommit func()
}

// New returns a witness for the logs in cfg, signing with key and keeping
// state in store. It records every configured log in store (at size 0 if
// new). logger may be nil.
func New(ctx context.Context, cfg *Config, key *Key, store *Store, logger *slog.Logger) (*Witness, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if key.Signer.Name() != cfg.Name {
		return nil, fmt.Errorf("%w: key is %q, config says %q", ErrKeyNameMismatch, key.Signer.Name(), cfg.Name)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &Witness{
		key:    key,
		store:  store,
		logs:   make(map[string]note.Verifier),
		byID:   make(map[string]string),
		logger: logger,
	}
	for _, l := range cfg.Logs {
		v, err := note.NewVerifier(l.Key)
		if err != nil {
			return nil, fmt.Errorf("log %q: %w", l.Origin, err)
		}
		if err := store.AddLog(ctx, l.Origin); err != nil {
			return nil, err
		}
		w.logs[l.Origin] = v
		w.byID[checkpoint.OriginID(l.Origin)] = l.Origin
	}
	return w, nil
}

// Open opens the witness whose key and database live in dataDir, generating
// the key on first start. Close releases the database.
func Open(ctx context.Context, dataDir string, cfg *Config, logger *slog.Logger) (*Witness, error) {
	return OpenWithKey(ctx, dataDir, cfg, nil, logger)
}

// OpenWithKey is Open with the key given (see HSMKey); nil means the key in
// dataDir, as Open.
func OpenWithKey(ctx context.Context, dataDir string, cfg *Config, key *Key, logger *slog.Logger) (*Witness, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if key == nil {
		k, generated, err := LoadOrGenerateKey(dataDir, cfg.Name)
		if err != nil {
			return nil, err
		}
		if generated {
			logger.Info("generated witness key", "path", filepath.Join(dataDir, KeyFile), "vkey", k.VerifierKey)
		}
		key = k
	}
	store, err := OpenStore(filepath.Join(dataDir, DBFile))
	if err != nil {
		return nil, err
	}
	w, err := New(ctx, cfg, key, store, logger)
	if err != nil {
		store.Close()
		return nil, err
	}
	w.closer = store.Close
	return w, nil
}

// Close closes the database if the witness was made by Open.
func (w *Witness) Close() error {
	if w.closer == nil {
		return nil
	}
	return w.closer()
}

// VerifierKey returns the witness's cosignature/v1 verifier key.
func (w *Witness) VerifierKey() string { return w.key.VerifierKey }

// AddCheckpoint runs the tlog-witness add-checkpoint checks on req and, if
// they pass, durably records the checkpoint as the log's latest and returns
// this witness's cosignature line(s), each "— name base64\n". On failure
// it returns an error matching one of the sentinels above (or another error
// for internal failures such as a database error).
func (w *Witness) AddCheckpoint(ctx context.Context, req *Request) ([]byte, error) {
	origin, _, ok := bytes.Cut(req.Checkpoint, []byte("\n"))
	if !ok {
		return nil, malformed("checkpoint has no origin line")
	}
	v, ok := w.logs[string(origin)]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownLog, origin)
	}

	cp, _, n, err := fmtlog.ParseCheckpoint(req.Checkpoint, string(origin), v)
	if err != nil {
		// ParseCheckpoint does not say why; note.Open tells a note with
		// no (or a bad) trusted signature apart from a malformed one.
		if _, err := note.Open(req.Checkpoint, note.VerifierList(v)); err != nil {
			var unverified *note.UnverifiedNoteError
			var invalid *note.InvalidSignatureError
			if errors.As(err, &unverified) || errors.As(err, &invalid) {
				return nil, fmt.Errorf("%w: %v", ErrNoTrustedSignature, err)
			}
			return nil, malformed("checkpoint note: %v", err)
		}
		return nil, malformed("checkpoint: %v", err)
	}
	// One tree state, one text: "03" or a root hash with non-zero padding
	// bits parse, but are not the text a conforming log signs.
	if err := checkpoint.CheckText(n.Text); err != nil {
		return nil, malformed("%v", err)
	}
	if len(cp.Hash) != hashSize {
		return nil, malformed("checkpoint root hash is %d bytes, want %d", len(cp.Hash), hashSize)
	}
	if cp.Size > 1<<63-1 {
		return nil, malformed("checkpoint size %d too large", cp.Size)
	}
	if req.OldSize > cp.Size {
		return nil, fmt.Errorf("%w: old size %d, checkpoint size %d", ErrOldSizeTooLarge, req.OldSize, cp.Size)
	}
	if cp.Size == 0 && !bytes.Equal(cp.Hash, rfc6962.DefaultHasher.EmptyRoot()) {
		return nil, fmt.Errorf("%w: size 0 checkpoint with a root other than the empty tree's", ErrInvalidProof)
	}

	st, err := w.store.Latest(ctx, cp.Origin)
	if err != nil {
		return nil, err
	}
	if err := checkConsistency(st, req, cp); err != nil {
		if errors.Is(err, ErrRootMismatch) || errors.Is(err, ErrInvalidProof) {
			// Possible evidence of log misbehaviour: keep it in the log.
			w.logger.WarnContext(ctx, "rejected checkpoint", "origin", cp.Origin,
				"error", err, "request", string(req.Marshal()))
		}
		return nil, err
	}

	// Cosign. The stored checkpoint keeps only the signatures that
	// verified (the log's) plus this cosignature.
	own, err := note.Sign(&note.Note{Text: n.Text}, w.key.Signer)
	if err != nil {
		return nil, fmt.Errorf("cosigning: %w", err)
	}
	cosig := own[len(n.Text)+1:] // after the text and the blank line
	logSigned, err := note.Sign(&note.Note{Text: n.Text, Sigs: n.Sigs})
	if err != nil {
		return nil, fmt.Errorf("encoding checkpoint: %w", err)
	}
	signed := append(logSigned, cosig...)

	if w.beforeCommit != nil {
		w.beforeCommit()
	}
	// A client hanging up must not interrupt the commit half-way.
	swapped, err := w.store.CompareAndSwap(context.WithoutCancel(ctx), cp.Origin, st.Size, st.Root, cp.Size, cp.Hash, signed)
	if err != nil {
		return nil, err
	}
	if !swapped {
		// Another request moved the log first: report its new size.
		now, err := w.store.Latest(ctx, cp.Origin)
		if err != nil {
			return nil, err
		}
		return nil, &SizeMismatchError{Known: now.Size}
	}
	w.logger.DebugContext(ctx, "cosigned checkpoint", "origin", cp.Origin, "old", st.Size, "size", cp.Size)
	return cosig, nil
}

// checkConsistency applies the tlog-witness rules to a verified checkpoint
// cp given the log's latest cosigned state st.
func checkConsistency(st *State, req *Request, cp *fmtlog.Checkpoint) error {
	if req.OldSize != st.Size {
		return &SizeMismatchError{Known: st.Size}
	}
	switch {
	case cp.Size == st.Size:
		if !bytes.Equal(cp.Hash, st.Root) {
			return fmt.Errorf("%w: size %d", ErrRootMismatch, cp.Size)
		}
		if len(req.Proof) != 0 {
			return fmt.Errorf("%w: non-empty proof for an unchanged size", ErrInvalidProof)
		}
	case st.Size == 0:
		if len(req.Proof) != 0 {
			return fmt.Errorf("%w: non-empty proof from size 0", ErrInvalidProof)
		}
	default:
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, st.Size, cp.Size, req.Proof, st.Root, cp.Hash); err != nil {
			return fmt.Errorf("%w: from %d to %d: %v", ErrInvalidProof, st.Size, cp.Size, err)
		}
	}
	return nil
}

// Checkpoint returns the latest cosigned checkpoint of the configured log
// with the given origin, or ErrUnknownLog, or ErrNotCosigned.
func (w *Witness) Checkpoint(ctx context.Context, origin string) ([]byte, error) {
	if _, ok := w.logs[origin]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownLog, origin)
	}
	st, err := w.store.Latest(ctx, origin)
	if err != nil {
		return nil, err
	}
	if st.Checkpoint == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotCosigned, origin)
	}
	return st.Checkpoint, nil
}

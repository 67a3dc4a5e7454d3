// Package witnesstest helps tests talk to tlog-witnesses: a fake log that
// signs checkpoints and builds add-checkpoint requests, and helpers that
// start our witness, litewitness and omniwitness on loopback addresses.
//
// The peers are pinned as Go tool dependencies in go.mod, so the helpers
// build them with `go tool -n NAME` (which caches the binary) and need no
// network beyond the Go module proxy the first time.
package witnesstest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

// Log is an in-memory Merkle log with an Ed25519 note key that signs
// checkpoints and builds tlog-witness add-checkpoint requests. It is not
// safe for concurrent mutation.
type Log struct {
	// Origin is the checkpoint origin line and the log key's name.
	Origin string
	// VerifierKey is the log's note verifier key.
	VerifierKey string

	skey   string
	signer note.Signer
	tree   *testonly.Tree
	leaves [][]byte
	fork   int
	forks  *int
}

// NewLog returns an empty log with a fresh key named origin.
func NewLog(t testing.TB, origin string) *Log {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &Log{
		Origin:      origin,
		VerifierKey: vkey,
		skey:        skey,
		signer:      signer,
		tree:        testonly.New(rfc6962.DefaultHasher),
		forks:       new(int),
	}
}

// SignerKey returns the log's private note key (PRIVATE+KEY+...).
func (l *Log) SignerKey() string { return l.skey }

// ForkAt returns a log with the same key and the first size entries of l,
// whose future entries differ from l's: signing checkpoints of both beyond
// size is a split view.
func (l *Log) ForkAt(size uint64) *Log {
	*l.forks++
	f := *l
	f.fork = *l.forks
	f.tree = testonly.New(rfc6962.DefaultHasher)
	f.leaves = append([][]byte(nil), l.leaves[:size]...)
	f.tree.AppendData(f.leaves...)
	return &f
}

// Append adds n entries.
func (l *Log) Append(n int) {
	for range n {
		leaf := fmt.Appendf(nil, "%s entry %d fork %d", l.Origin, len(l.leaves), l.fork)
		l.leaves = append(l.leaves, leaf)
		l.tree.AppendData(leaf)
	}
}

// Size is the number of entries.
func (l *Log) Size() uint64 { return l.tree.Size() }

// Root returns the root hash of the tree of the given size.
func (l *Log) Root(size uint64) []byte { return l.tree.HashAt(size) }

// Checkpoint returns the signed checkpoint of the tree of the given size.
func (l *Log) Checkpoint(t testing.TB, size uint64) []byte {
	t.Helper()
	return l.SignText(t, fmt.Sprintf("%s\n%d\n%s\n", l.Origin, size, base64.StdEncoding.EncodeToString(l.tree.HashAt(size))))
}

// SignText signs an arbitrary note text with the log key.
func (l *Log) SignText(t testing.TB, text string) []byte {
	t.Helper()
	b, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Proof returns the consistency proof from old to size (empty if old is 0
// or old == size).
func (l *Log) Proof(t testing.TB, old, size uint64) [][]byte {
	t.Helper()
	if old == 0 || old == size {
		return nil
	}
	p, err := l.tree.ConsistencyProof(old, size)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// AddRequest returns an add-checkpoint request body with old size old, the
// consistency proof from old to size and the checkpoint of size size.
func (l *Log) AddRequest(t testing.TB, old, size uint64) []byte {
	t.Helper()
	return Request(old, l.Proof(t, old, size), l.Checkpoint(t, size))
}

// Request encodes an add-checkpoint request body.
func Request(old uint64, proof [][]byte, checkpoint []byte) []byte {
	b := fmt.Appendf(nil, "old %d\n", old)
	for _, h := range proof {
		b = base64.StdEncoding.AppendEncode(b, h)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, checkpoint...)
}

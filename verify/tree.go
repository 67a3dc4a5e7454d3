package verify

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
)

const (
	tileWidth  = layout.TileWidth // hashes in a full tile, entries in a full bundle
	tileHeight = layout.TileHeight
	hashSize   = 32
)

// Tree is a verifier's own view of a log's Merkle tree, computed from
// entries it re-hashed: for every tile level L, the hashes of the level-8L
// nodes in the rightmost, incomplete tile. That is enough to compute the
// root, and, as leaves are appended, to produce the exact tiles that the log
// must serve. The zero Tree is the empty tree.
type Tree struct {
	size   uint64
	levels [][][]byte
}

// NewTree restores a tree of the given size from its levels (as Levels
// returned them), checking that their layout fits the size. The hashes are
// taken as they are: levels must come from a tree that was verified.
func NewTree(size uint64, levels [][][]byte) (*Tree, error) {
	t := &Tree{size: size, levels: levels}
	for i := range t.levels {
		if t.levels[i] == nil {
			t.levels[i] = [][]byte{}
		}
	}
	return t, t.check()
}

// Size is the number of leaves in the tree.
func (t *Tree) Size() uint64 { return t.size }

// Levels returns the tree's state, to be stored and given to NewTree. The
// caller must not modify it.
func (t *Tree) Levels() [][][]byte { return t.levels }

var rf = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// Clone returns a copy of t that can grow on its own.
func (t *Tree) Clone() *Tree {
	c := &Tree{size: t.size, levels: make([][][]byte, len(t.levels))}
	for i, l := range t.levels {
		c.levels[i] = append(make([][]byte, 0, tileWidth), l...)
	}
	return c
}

// tileFunc receives a tile: its level, index and node hashes.
type tileFunc func(level, index uint64, hashes [][]byte)

// append adds a leaf hash. full, if not nil, is called for every tile the
// leaf completes.
func (t *Tree) append(leafHash []byte, full tileFunc) {
	t.size++
	h := leafHash
	for l := 0; ; l++ {
		if l == len(t.levels) {
			t.levels = append(t.levels, make([][]byte, 0, tileWidth))
		}
		t.levels[l] = append(t.levels[l], h)
		if len(t.levels[l]) < tileWidth {
			return
		}
		done := t.levels[l]
		if full != nil {
			full(uint64(l), (t.size>>(tileHeight*uint(l+1)))-1, done)
		}
		h = perfectRoot(done)
		t.levels[l] = make([][]byte, 0, tileWidth)
	}
}

// perfectRoot is the root of a perfect subtree whose leaves (at any level)
// are hashes; len(hashes) must be a power of two.
func perfectRoot(hashes [][]byte) []byte {
	cur := make([][]byte, len(hashes))
	copy(cur, hashes)
	for len(cur) > 1 {
		for i := 0; i < len(cur)/2; i++ {
			cur[i] = rfc6962.DefaultHasher.HashChildren(cur[2*i], cur[2*i+1])
		}
		cur = cur[:len(cur)/2]
	}
	return cur[0]
}

// partials calls fn for the rightmost incomplete tile of every level that
// has one, as the log serves it at this tree size.
func (t *Tree) partials(fn tileFunc) {
	for l, hs := range t.levels {
		if len(hs) == 0 {
			continue
		}
		fn(uint64(l), (t.size>>(tileHeight*uint(l)))/tileWidth, hs)
	}
}

// rangeHashes returns the hashes of the compact range [0, size).
func (t *Tree) rangeHashes() ([][]byte, error) {
	var out [][]byte
	for l := len(t.levels) - 1; l >= 0; l-- {
		r := rf.NewEmptyRange(0)
		for _, h := range t.levels[l] {
			if err := r.Append(h, nil); err != nil {
				return nil, err
			}
		}
		out = append(out, r.Hashes()...)
	}
	return out, nil
}

// Root computes the tree's root hash.
func (t *Tree) Root() ([]byte, error) {
	if t.size == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	hs, err := t.rangeHashes()
	if err != nil {
		return nil, err
	}
	r, err := rf.NewRange(0, t.size, hs)
	if err != nil {
		return nil, fmt.Errorf("inconsistent tree state: %w", err)
	}
	return r.GetRootHash(nil)
}

// check reports whether the tree's level layout is consistent with its size.
func (t *Tree) check() error {
	for l, hs := range t.levels {
		want := (t.size >> (tileHeight * uint(l))) % tileWidth
		if uint64(len(hs)) != want {
			return fmt.Errorf("tree state: level %d holds %d hashes, want %d for size %d", l, len(hs), want, t.size)
		}
		for _, h := range hs {
			if len(h) != hashSize {
				return errors.New("tree state: bad hash length")
			}
		}
	}
	if len(t.levels) > 0 && t.size>>(tileHeight*uint(len(t.levels))) != 0 {
		return fmt.Errorf("tree state: %d levels are too few for size %d", len(t.levels), t.size)
	}
	return nil
}

// TreeFromTiles builds the tree of the given size from the tiles of a log of
// at least that size, read with get. The result is not verified: the caller
// must check its root (or an extension of it) against a verified checkpoint.
func TreeFromTiles(size, logSize uint64, get func(level, index uint64, width uint8) ([]byte, error)) (*Tree, error) {
	t := &Tree{size: size}
	for l := uint(0); size>>(tileHeight*l) > 0; l++ {
		n := size >> (tileHeight * l) // complete level-8l nodes
		k := n % tileWidth
		t.levels = append(t.levels, make([][]byte, 0, tileWidth))
		if k == 0 {
			continue
		}
		idx := n / tileWidth
		raw, err := get(uint64(l), idx, layout.PartialTileSize(uint64(l), idx, logSize))
		if err != nil {
			return nil, fmt.Errorf("reading tile %d/%d: %w", l, idx, err)
		}
		if uint64(len(raw)) < k*hashSize || len(raw)%hashSize != 0 {
			return nil, fmt.Errorf("tile %d/%d has %d bytes, need %d hashes", l, idx, len(raw), k)
		}
		for i := range k {
			t.levels[l] = append(t.levels[l], bytes.Clone(raw[i*hashSize:(i+1)*hashSize]))
		}
	}
	return t, nil
}

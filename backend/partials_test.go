package backend

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
)

// fileReader reads a log directory as Tessera's POSIX reader does (a
// partial that is missing is read in full).
type fileReader struct{ tclient.FileFetcher }

func (fileReader) IntegratedSize(context.Context) (uint64, error) { return 0, nil }
func (fileReader) NextIndex(context.Context) (uint64, error)      { return 0, nil }

func testBundle(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		e := fmt.Appendf(nil, "entry %d", i)
		binary.Write(&b, binary.BigEndian, uint16(len(e)))
		b.Write(e)
	}
	return b.Bytes()
}

func testTile(n int) []byte {
	b := make([]byte, 32*n)
	for i := range b {
		b[i] = byte(i / 32)
	}
	return b
}

func put(t *testing.T, root, path string, data []byte) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// partialsOf lists the names in a partial directory, sorted.
func partialsOf(t *testing.T, root, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(root, dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	slices.Sort(out)
	return out
}

func names(ws ...int) []string {
	var out []string
	for _, w := range ws {
		out = append(out, fmt.Sprint(w))
	}
	slices.Sort(out)
	return out
}

// A log of 256+50 entries, integrated one entry at a time from 256+1 on:
// every width of bundle 1 and level-0 tile 1 exists; level-1 tile 0 has
// width 1. Plus names that are no width, which the collector leaves alone.
func lightRateLog(t *testing.T) string {
	root := t.TempDir()
	put(t, root, layout.EntriesPath(0, 0), testBundle(256))
	put(t, root, layout.TilePath(0, 0, 0), testTile(256))
	for w := 1; w <= 50; w++ {
		put(t, root, layout.EntriesPath(1, uint8(w)), testBundle(w))
		put(t, root, layout.TilePath(0, 1, uint8(w)), testTile(w))
	}
	put(t, root, layout.TilePath(1, 0, 1), testTile(1))
	for _, odd := range []string{"0", "300", "41234567", "x"} {
		put(t, root, "tile/entries/001.p/"+odd, []byte("not a width"))
	}
	return root
}

func TestCollectPartials(t *testing.T) {
	root := lightRateLog(t)
	ctx := context.Background()
	odd := []string{"0", "300", "41234567", "x"}
	// The published checkpoint needs width 40 of bundle 1 and tile 0/1, and
	// width 1 of tile 1/0; 40 to 50 are integrated and not yet published.
	if err := collectPartials(ctx, root, 256+40, layout.EntriesPath); err != nil {
		t.Fatal(err)
	}
	kept := names(40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50)
	if got, want := partialsOf(t, root, "tile/entries/001.p"), slices.Sorted(slices.Values(append(slices.Clone(kept), odd...))); !slices.Equal(got, want) {
		t.Errorf("bundle 1 partials = %v, want %v", got, want)
	}
	if got := partialsOf(t, root, "tile/0/001.p"); !slices.Equal(got, kept) {
		t.Errorf("tile 0/1 partials = %v, want %v", got, kept)
	}
	if got := partialsOf(t, root, "tile/1/000.p"); !slices.Equal(got, names(1)) {
		t.Errorf("tile 1/0 partials = %v, want [1]", got)
	}

	// The tree grew into bundle 2 (bundle 1 full: its partials go) and
	// level-1 tile 0 has width 2.
	put(t, root, layout.EntriesPath(1, 0), testBundle(256))
	put(t, root, layout.TilePath(0, 1, 0), testTile(256))
	put(t, root, layout.EntriesPath(2, 3), testBundle(3))
	put(t, root, layout.TilePath(0, 2, 3), testTile(3))
	put(t, root, layout.TilePath(1, 0, 2), testTile(2))
	if err := collectPartials(ctx, root, 512+3, layout.EntriesPath); err != nil {
		t.Fatal(err)
	}
	if got := partialsOf(t, root, "tile/1/000.p"); !slices.Equal(got, names(2)) {
		t.Errorf("tile 1/0 partials = %v, want [2]", got)
	}
	for _, dir := range []string{"tile/0/001.p", "tile/entries/001.p"} {
		if got := partialsOf(t, root, dir); got != nil {
			t.Errorf("%s = %v once the full one exists, want it removed", dir, got)
		}
	}
	if got := partialsOf(t, root, "tile/entries/002.p"); !slices.Equal(got, names(3)) {
		t.Errorf("bundle 2 partials = %v, want [3]", got)
	}

	// A full tile's partials stay until the full file is there.
	put(t, root, layout.TilePath(0, 2, 255), testTile(255))
	if err := collectPartials(ctx, root, 768, layout.EntriesPath); err != nil {
		t.Fatal(err)
	}
	if got := partialsOf(t, root, "tile/0/002.p"); !slices.Equal(got, names(3, 255)) {
		t.Errorf("tile 0/2 partials without its full tile = %v, want [3 255]", got)
	}
}

func TestSizeUnverified(t *testing.T) {
	for _, tc := range []struct {
		cp   string
		size uint64
		ok   bool
	}{
		{"example.com/log\n296\nAAAA\n\n— example.com/log sig\n", 296, true},
		{"an origin with spaces\n0\nAAAA\n", 0, true},
		{"example.com/log\n-1\nAAAA\n", 0, false},
		{"example.com/log\n296", 0, false},
		{"", 0, false},
	} {
		size, err := sizeUnverified([]byte(tc.cp))
		if (err == nil) != tc.ok || size != tc.size {
			t.Errorf("sizeUnverified(%q) = %d, %v; want %d, ok %v", tc.cp, size, err, tc.size, tc.ok)
		}
	}
}

// A partial that the collector removed is answered with the narrowest
// wider one that is whole, or the full one; a width beyond every file is
// os.ErrNotExist.
func TestPosixReaderWider(t *testing.T) {
	root := lightRateLog(t)
	ctx := context.Background()
	if err := collectPartials(ctx, root, 256+40, layout.EntriesPath); err != nil {
		t.Fatal(err)
	}
	// A temporary file of Tessera's that looks like a width: skipped.
	put(t, root, "tile/entries/001.p/12", testBundle(1))
	put(t, root, "tile/0/001.p/12", testTile(1))
	r := posixReader{LogReader: fileReader{tclient.FileFetcher{Root: root}}, root: root, entriesPath: layout.EntriesPath}
	for _, tc := range []struct {
		name  string
		read  func() ([]byte, error)
		want  []byte
		wantE error
	}{
		{"bundle, removed width", func() ([]byte, error) { return r.ReadEntryBundle(ctx, 1, 7) }, testBundle(40), nil},
		{"bundle, kept width", func() ([]byte, error) { return r.ReadEntryBundle(ctx, 1, 45) }, testBundle(45), nil},
		{"bundle, beyond the tree", func() ([]byte, error) { return r.ReadEntryBundle(ctx, 1, 51) }, nil, os.ErrNotExist},
		{"bundle, full", func() ([]byte, error) { return r.ReadEntryBundle(ctx, 0, 9) }, testBundle(256), nil},
		{"tile, removed width", func() ([]byte, error) { return r.ReadTile(ctx, 0, 1, 1) }, testTile(40), nil},
		{"tile, kept width", func() ([]byte, error) { return r.ReadTile(ctx, 0, 1, 50) }, testTile(50), nil},
		{"tile, beyond the tree", func() ([]byte, error) { return r.ReadTile(ctx, 0, 1, 200) }, nil, os.ErrNotExist},
		{"tile, full", func() ([]byte, error) { return r.ReadTile(ctx, 0, 0, 200) }, testTile(256), nil},
		{"tile, none at all", func() ([]byte, error) { return r.ReadTile(ctx, 0, 9, 3) }, nil, os.ErrNotExist},
		{"full tile missing", func() ([]byte, error) { return r.ReadTile(ctx, 0, 1, 0) }, nil, os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.read()
			if tc.wantE != nil {
				if !errors.Is(err, tc.wantE) {
					t.Fatalf("got %d bytes, %v; want %v", len(got), err, tc.wantE)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(tc.want))
			}
		})
	}
}

func TestBundleWidth(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want int
	}{
		{nil, 0},
		{testBundle(3), 3},
		{testBundle(3)[:len(testBundle(3))-1], -1},
		{[]byte{0}, -1},
		{[]byte{0, 0}, 1},
	} {
		if got := bundleWidth(tc.b); got != tc.want {
			t.Errorf("bundleWidth(%x) = %d, want %d", tc.b, got, tc.want)
		}
	}
}

package tiles

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"testing"
)

// fakeReader holds one version of each tile and bundle (full, or partial
// of some width), and answers a request of any width with it, as the posix
// storage does once the partials narrower than the latest checkpoint's are
// collected (and Tessera's reader once a tile is full).
type fakeReader struct {
	tiles   map[[2]uint64][]byte
	bundles map[uint64][]byte
}

func (f fakeReader) ReadCheckpoint(context.Context) ([]byte, error) {
	return []byte("origin\n1\nAAAA\n"), nil
}

func (f fakeReader) ReadTile(_ context.Context, l, i uint64, _ uint8) ([]byte, error) {
	if t, ok := f.tiles[[2]uint64{l, i}]; ok {
		return t, nil
	}
	return nil, fs.ErrNotExist
}

func (f fakeReader) ReadEntryBundle(_ context.Context, i uint64, _ uint8) ([]byte, error) {
	if b, ok := f.bundles[i]; ok {
		return b, nil
	}
	return nil, fs.ErrNotExist
}

func bundle(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		e := []byte(fmt.Sprintf("entry-%d", i))
		binary.Write(&b, binary.BigEndian, uint16(len(e)))
		b.Write(e)
	}
	return b.Bytes()
}

func TestHandler(t *testing.T) {
	full := bytes.Repeat([]byte{7}, 256*32)
	r := fakeReader{
		tiles:   map[[2]uint64][]byte{{0, 0}: full, {1, 1234067}: full, {0, 2}: full[:40*32]},
		bundles: map[uint64][]byte{0: bundle(256), 2: bundle(40)},
	}
	h := Handler(r, Options{})
	for _, tc := range []struct {
		method, path string
		status       int
		body         []byte
		cache        string
	}{
		{"GET", "/checkpoint", 200, []byte("origin\n1\nAAAA\n"), CacheCheckpoint},
		{"GET", "/tile/0/000", 200, full, CacheImmutable},
		{"GET", "/tile/0/000.p/5", 200, full[:5*32], CachePartial},
		{"GET", "/tile/1/x001/x234/067", 200, full, CacheImmutable},
		{"GET", "/tile/entries/000", 200, bundle(256), CacheImmutable},
		{"GET", "/tile/entries/000.p/3", 200, bundle(3), CachePartial},
		{"GET", "/tile/0/002.p/7", 200, full[:7*32], CachePartial},
		{"GET", "/tile/0/002.p/40", 200, full[:40*32], CachePartial},
		{"GET", "/tile/0/002.p/41", 404, nil, ""},
		{"GET", "/tile/entries/002.p/7", 200, bundle(7), CachePartial},
		{"GET", "/tile/entries/002.p/40", 200, bundle(40), CachePartial},
		{"GET", "/tile/entries/002.p/41", 404, nil, ""},
		{"HEAD", "/tile/0/000", 200, nil, CacheImmutable},
		{"GET", "/tile/0/001", 404, nil, ""},
		{"GET", "/tile/entries/001", 404, nil, ""},
		{"GET", "/tile/0/1", 400, nil, ""},
		{"GET", "/tile/64/000", 400, nil, ""},
		{"GET", "/tile/0/000.p/256", 400, nil, ""},
		{"GET", "/tile/entries/x000", 400, nil, ""},
		{"GET", "/other", 404, nil, ""},
		{"POST", "/checkpoint", 405, nil, ""},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, tc.status, rec.Body)
			}
			if tc.status != http.StatusOK {
				return
			}
			if got := rec.Header().Get("Cache-Control"); got != tc.cache {
				t.Errorf("Cache-Control = %q, want %q", got, tc.cache)
			}
			if tc.method == "GET" && !bytes.Equal(rec.Body.Bytes(), tc.body) {
				t.Errorf("body = %d bytes, want %d", rec.Body.Len(), len(tc.body))
			}
		})
	}
}

func TestTruncateBundle(t *testing.T) {
	b := bundle(4)
	if _, err := truncateBundle(b, 5); err == nil {
		t.Error("truncating 4 entries to 5 succeeded")
	}
	if _, err := truncateBundle(b[:len(b)-1], 4); err == nil {
		t.Error("a corrupt bundle was accepted")
	}
	got, err := truncateBundle(b, 2)
	if err != nil || !bytes.Equal(got, bundle(2)) {
		t.Errorf("truncateBundle(b, 2) = %x, %v", got, err)
	}
}

// Package tiles serves a Tessera log over the C2SP tlog-tiles read API:
// GET /checkpoint, /tile/<L>/<N>[.p/<W>] and /tile/entries/<N>[.p/<W>].
//
// Full tiles and bundles never change, so they are served as immutable;
// partial ones may be replaced by their full version (and garbage collected),
// so they get a short lifetime; the checkpoint is never cached.
//
// A partial tile or bundle is a byte prefix of every wider one of the same
// index and of the full one, so a partial that storage no longer holds is
// still served, byte for byte, from a wider one: a client holding an older
// checkpoint gets exactly what that checkpoint needs.
package tiles

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strings"

	"github.com/transparency-dev/tessera/api/layout"
)

// Reader is the part of tessera.LogReader that the tiles API needs. Asked
// for a partial tile or bundle (p > 0), it may answer with a wider partial
// or the full one (as the posix storage does once the partial asked for is
// collected, and Tessera's readers once a tile is full); Handler serves the
// prefix of the width asked for, and 404 if the answer is narrower.
type Reader interface {
	ReadCheckpoint(ctx context.Context) ([]byte, error)
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
}

// Cache-Control values.
const (
	CacheImmutable  = "public, max-age=31536000, immutable"
	CachePartial    = "public, max-age=60"
	CacheCheckpoint = "no-cache"
	// Private entry bundles may be cached only by the reader itself.
	CachePrivateImmutable = "private, max-age=31536000, immutable"
	CachePrivatePartial   = "private, max-age=60"
)

// Options configure Handler.
type Options struct {
	// PrivateEntries marks entry bundles as private: only the reader may
	// cache them, and no other origin may read them from a browser. The
	// caller guards them (Handler does not authenticate).
	PrivateEntries bool
}

// Handler serves the tlog-tiles paths of r. Mount it at the log's prefix
// (the server root here): it handles "/checkpoint" and "/tile/...".
func Handler(r Reader, o Options) http.Handler {
	return &handler{r: r, o: o}
}

type handler struct {
	r Reader
	o Options
}

func (h *handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := req.URL.Path
	switch {
	case p == "/checkpoint":
		cp, err := h.r.ReadCheckpoint(req.Context())
		if err != nil {
			notFoundOr500(w, err)
			return
		}
		w.Header().Set("Cache-Control", CacheCheckpoint)
		write(w, "text/plain; charset=utf-8", cp)
	case strings.HasPrefix(p, "/tile/entries/"):
		idx, width, err := layout.ParseTileIndexPartial(strings.TrimPrefix(p, "/tile/entries/"))
		if err != nil {
			http.Error(w, "bad entry bundle path", http.StatusBadRequest)
			return
		}
		b, err := h.r.ReadEntryBundle(req.Context(), idx, width)
		if err != nil {
			notFoundOr500(w, err)
			return
		}
		if width > 0 {
			if b, err = truncateBundle(b, int(width)); err != nil {
				notFoundOr500(w, err)
				return
			}
		}
		if h.o.PrivateEntries {
			cc := CachePrivateImmutable
			if width > 0 {
				cc = CachePrivatePartial
			}
			w.Header().Set("Cache-Control", cc)
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(b)
			return
		}
		setTileCache(w, width)
		write(w, "application/octet-stream", b)
	case strings.HasPrefix(p, "/tile/"):
		rest := strings.TrimPrefix(p, "/tile/")
		level, index, ok := strings.Cut(rest, "/")
		if !ok {
			http.Error(w, "bad tile path", http.StatusBadRequest)
			return
		}
		l, idx, width, err := layout.ParseTileLevelIndexPartial(level, index)
		if err != nil {
			http.Error(w, "bad tile path", http.StatusBadRequest)
			return
		}
		t, err := h.r.ReadTile(req.Context(), l, idx, width)
		if err != nil {
			notFoundOr500(w, err)
			return
		}
		if width > 0 {
			// The reader may answer a partial request with the full tile.
			if len(t) < int(width)*32 {
				http.NotFound(w, req)
				return
			}
			t = t[:int(width)*32]
		}
		setTileCache(w, width)
		write(w, "application/octet-stream", t)
	default:
		http.NotFound(w, req)
	}
}

// truncateBundle returns the first n entries of an entry bundle (each entry
// is a big-endian uint16 length followed by the data).
func truncateBundle(b []byte, n int) ([]byte, error) {
	off := 0
	for range n {
		if len(b)-off < 2 {
			return nil, fs.ErrNotExist // bundle narrower than asked for
		}
		l := int(binary.BigEndian.Uint16(b[off:]))
		off += 2 + l
		if off > len(b) {
			return nil, errors.New("corrupt entry bundle")
		}
	}
	return b[:off], nil
}

func setTileCache(w http.ResponseWriter, width uint8) {
	if width == 0 {
		w.Header().Set("Cache-Control", CacheImmutable)
	} else {
		w.Header().Set("Cache-Control", CachePartial)
	}
}

func write(w http.ResponseWriter, ctype string, b []byte) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Write(b)
}

func notFoundOr500(w http.ResponseWriter, err error) {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	http.Error(w, "internal error", http.StatusInternalServerError)
}

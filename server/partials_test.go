package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	fmtlog "github.com/transparency-dev/formats/log"
)

// tesseraFetcher is Tessera's HTTP fetcher for s, reading with the admin
// token, and a function that waits for a checkpoint of at least a size.
func tesseraFetcher(t *testing.T, s *testServer) (*tclient.HTTPFetcher, func(size uint64) (*fmtlog.Checkpoint, []byte)) {
	t.Helper()
	u, _ := url.Parse(s.ts.URL + "/")
	lc, err := client.New(s.ts.URL, client.WithToken(s.admin))
	if err != nil {
		t.Fatal(err)
	}
	f, err := tclient.NewHTTPFetcher(u, lc.HTTPClient())
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(s.srv.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return f, func(size uint64) (*fmtlog.Checkpoint, []byte) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			cp, raw, _, err := tclient.FetchCheckpoint(context.Background(), f.ReadCheckpoint, v, v.Name())
			if err == nil && cp.Size >= size {
				return cp, raw
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of size >= %d: %v", size, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// A client holding an older checkpoint verifies with Tessera's client,
// through the tiles handler, after the partial bundle and tile of that
// checkpoint were removed from the data directory: they are served as the
// prefix of the wider ones a later checkpoint needs, byte for byte.
func TestOldCheckpointAfterPartialsCollected(t *testing.T) {
	s := newTestServer(t, nil)
	ctx := context.Background()
	f, waitCP := tesseraFetcher(t, s)
	var evs []api.EventResponse
	for i := range 300 { // bundle 0 full, bundle 1 partial
		evs = append(evs, s.post(t, fmt.Sprintf("s%d", i%7), "llm.request", map[string]int{"i": i}))
	}
	cp1, _ := waitCP(s.size(t))
	bi := cp1.Size / layout.EntryBundleWidth
	w := layout.PartialTileSize(0, bi, cp1.Size)
	if bi != 1 || w == 0 {
		t.Fatalf("checkpoint size %d: want one in bundle 1, not at its edge", cp1.Size)
	}
	paths := []string{layout.EntriesPath(bi, w), layout.TilePath(0, bi, w)}
	served := map[string][]byte{}
	for _, p := range paths {
		code, body, _ := s.do(t, "GET", "/"+p, s.admin, nil)
		if code != 200 {
			t.Fatalf("GET /%s = %d %s", p, code, body)
		}
		served[p] = body
	}

	// The log grows inside bundle 1; once a checkpoint needs wider
	// partials, the collector removes those of cp1.
	for i := range 40 {
		s.post(t, "late", "tool.result", map[string]int{"i": i})
	}
	cp2, _ := waitCP(s.size(t))
	if cp2.Size/layout.EntryBundleWidth != bi {
		t.Fatalf("checkpoint size %d left bundle %d", cp2.Size, bi)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range paths {
		for {
			_, err := os.Stat(filepath.Join(s.dir, LogDir, p))
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is still in the data directory (%v), with a checkpoint of size %d published", p, err, cp2.Size)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	for _, p := range paths {
		code, body, h := s.do(t, "GET", "/"+p, s.admin, nil)
		if code != 200 || !bytes.Equal(body, served[p]) {
			t.Errorf("GET /%s once removed = %d, %d bytes; want 200 and the %d bytes served before", p, code, len(body), len(served[p]))
		}
		if cc := h.Get("Cache-Control"); !strings.Contains(cc, "max-age=60") {
			t.Errorf("GET /%s: Cache-Control %q, want a partial's", p, cc)
		}
	}
	// Tessera's client, against cp1: inclusion proofs, and the partial
	// bundle with exactly cp1's entries.
	pb, err := tclient.NewProofBuilder(ctx, cp1.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []api.EventResponse{evs[0], evs[254], evs[255], evs[len(evs)-1]} {
		p, err := pb.InclusionProof(ctx, e.Index)
		if err != nil {
			t.Fatalf("inclusion proof of %d at size %d: %v", e.Index, cp1.Size, err)
		}
		lh, _ := hex.DecodeString(e.LeafHash)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, e.Index, cp1.Size, lh, p, cp1.Hash); err != nil {
			t.Fatalf("inclusion of %d at size %d: %v", e.Index, cp1.Size, err)
		}
	}
	b, err := tclient.GetEntryBundle(ctx, f.ReadEntryBundle, bi, cp1.Size)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Entries) != int(w) {
		t.Fatalf("bundle %d at size %d has %d entries, want %d", bi, cp1.Size, len(b.Entries), w)
	}
	last := evs[len(evs)-1]
	if got, want := hex.EncodeToString(rfc6962.DefaultHasher.HashLeaf(b.Entries[last.Index%layout.EntryBundleWidth])), last.LeafHash; got != want {
		t.Fatalf("entry %d in the old bundle hashes to %s, want %s", last.Index, got, want)
	}
	// The consistency proof from cp1 is built from cp2's tiles, as before.
	pb2, _ := tclient.NewProofBuilder(ctx, cp2.Size, f.ReadTile)
	cproof, err := pb2.ConsistencyProof(ctx, cp1.Size, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp1.Size, cp2.Size, cproof, cp1.Hash, cp2.Hash); err != nil {
		t.Fatalf("consistency %d to %d: %v", cp1.Size, cp2.Size, err)
	}
}

// partialWaste is what the partial files of a log directory hold beyond
// what its tree needs: every partial of a tile or bundle whose full one
// exists, and every partial narrower than the widest of its tile. Entry
// bundles and hash tiles are counted apart.
type partialWaste struct {
	bundles, tiles int
	bytes          int64
}

func measurePartials(t *testing.T, root string) (waste partialWaste) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(root, "tile"), func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while walking
		} else if err != nil {
			return err
		}
		if !d.IsDir() || !strings.HasSuffix(path, ".p") {
			return nil
		}
		des, err := os.ReadDir(path)
		if err != nil {
			return fs.SkipDir
		}
		_, ferr := os.Stat(strings.TrimSuffix(path, ".p"))
		full := ferr == nil
		type file struct {
			w int
			b int64
		}
		var files []file
		maxW := 0
		for _, de := range des {
			w, err := strconv.Atoi(de.Name())
			fi, ierr := de.Info()
			if err != nil || w < 1 || w > 255 || ierr != nil {
				continue
			}
			files = append(files, file{w, fi.Size()})
			maxW = max(maxW, w)
		}
		for _, f := range files {
			if full || f.w != maxW {
				if strings.Contains(path, "entries") {
					waste.bundles++
				} else {
					waste.tiles++
				}
				waste.bytes += f.b
			}
		}
		return fs.SkipDir
	})
	if err != nil {
		t.Fatal(err)
	}
	return waste
}

// partialsBound bounds the stale partial bundles (and, apart, the stale
// partial tiles) at a light, steady rate (docs/performance.md). The
// collector keeps the partials the latest checkpoint needs and those
// integrated since, so beyond the tree's own there are the partials
// written in about two checkpoint intervals (one until the next checkpoint,
// one until the collector's next run) and, for up to Tessera's collection
// interval after a bundle fills, the few kept of the bundle before it.
const partialsBound = 8

// At a light, steady rate (two events per checkpoint interval, as one LLM
// call a second with the default 1 s interval) the data directory holds at
// most partialsBound stale partial bundles, each no larger than a bundle:
// it stays within that of its settled size, where Tessera alone keeps every
// width of a bundle until the bundle fills (some 32,000 entries' worth).
func TestPartialsBoundedAtLightRate(t *testing.T) {
	if testing.Short() {
		t.Skip("15 s of paced appends")
	}
	interval := 100 * time.Millisecond
	s := newTestServer(t, func(c *Config) { c.CheckpointInterval = interval })
	root := filepath.Join(s.dir, LogDir)
	var worst partialWaste
	over := 0 // the first event after which the bound did not hold
	next := time.Now()
	for i := range 300 {
		time.Sleep(time.Until(next))
		next = time.Now().Add(interval / 2)
		s.post(t, "light", "llm.request", map[string]string{"prompt": strings.Repeat("p", 400), "i": strconv.Itoa(i)})
		waste := measurePartials(t, root)
		worst.bundles, worst.tiles, worst.bytes = max(worst.bundles, waste.bundles), max(worst.tiles, waste.tiles), max(worst.bytes, waste.bytes)
		if over == 0 && (waste.bundles > partialsBound || waste.tiles > partialsBound) {
			over = i + 1
		}
	}
	if over > 0 {
		t.Fatalf("more than %d stale partial bundles or tiles from event %d on; at worst %d bundles, %d tiles, %d bytes",
			partialsBound, over, worst.bundles, worst.tiles, worst.bytes)
	}
	t.Logf("at worst %d stale partial bundles, %d stale partial tiles, %d bytes", worst.bundles, worst.tiles, worst.bytes)
}

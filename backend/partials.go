package backend

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
)

// Partial tiles and entry bundles on posix.
//
// At a light rate every integration of Tessera's POSIX driver writes the
// right-edge entry bundle again as a new file, tile/entries/N.p/W, holding
// all W entries so far (and likewise the right-edge hash tiles), and
// Tessera's garbage collection removes a bundle's partial files only once
// the bundle is full. Between the two the stale partials of one bundle add
// up to some 32,000 entries' worth of bytes, far more than the log itself.
//
// A partial tile or bundle of width w is a byte prefix of every wider one of
// the same tile and of the full one (entries and hashes are only appended),
// so posixDriver keeps the waste bounded without breaking tlog-tiles
// clients:
//
//   - collectPartials removes, in the right-edge tiles and entry bundle of
//     the latest published checkpoint, the partial files narrower than the
//     ones that checkpoint needs, and the partials of the full tiles and
//     bundle just left of them. It keeps that width and every wider one:
//     Tessera reads back only the partials of its integrated size (the
//     bundle it extends, the tiles it integrates into) and, to witness a
//     checkpoint, the tiles of the size being published, and neither is
//     ever smaller than the published size.
//   - posixReader answers a partial that is gone with the narrowest wider
//     partial that exists, or the full one; its callers read the prefix they
//     asked for (the tiles handler serves exactly those bytes, proofs read
//     the hashes they need), so a client holding an older checkpoint gets
//     the bytes it expects, as tlog-tiles requires ("Logs MUST serve partial
//     tiles corresponding to tree sizes for which a checkpoint was
//     produced").
//
// The data directory must therefore be served through the server (package
// tiles), not as static files. The s3 storage does not collect: its bucket
// may be served straight to clients (docs/scale-out.md), which would then
// miss narrower partials, and its waste is bounded by Tessera's collection
// as before (docs/performance.md).

// posixDriver is Tessera's POSIX driver with the partial collector running
// beside its appender and a reader that answers removed partials.
type posixDriver struct {
	inner  tessera.Driver
	root   string // the log directory
	logger *slog.Logger
}

// Appender starts Tessera's appender, and the partial collector at the
// checkpoint interval (as long as Tessera's own garbage collection is on),
// until ctx ends.
func (d posixDriver) Appender(ctx context.Context, opts *tessera.AppendOptions) (*tessera.Appender, tessera.LogReader, error) {
	a, r, err := innerAppender(ctx, d.inner, opts)
	if err != nil {
		return nil, nil, err
	}
	pr := posixReader{LogReader: r, root: d.root, entriesPath: opts.EntriesPath()}
	if opts.GarbageCollectionInterval() > 0 {
		c := &collector{r: pr, logger: d.logger}
		go c.run(ctx, opts.CheckpointInterval())
	}
	return a, pr, nil
}

// collector removes stale partials after each new checkpoint.
type collector struct {
	r      posixReader
	logger *slog.Logger
	done   uint64 // the checkpoint size last collected for
	ran    bool
}

// run collects every interval until ctx ends. A failure (a write-protected
// data directory) is logged once, and again after a success.
func (c *collector) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.once(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			c.logger.Warn("removing stale partial tiles and entry bundles; trying again after every checkpoint interval", "error", err)
		case err == nil && failing:
			c.logger.Info("removing stale partial tiles and entry bundles again")
		}
		failing = err != nil
	}
}

// once collects for the latest published checkpoint, unless it did for
// that size already (nothing narrower than a checkpoint's partials is
// written after it).
func (c *collector) once(ctx context.Context) error {
	raw, err := c.r.ReadCheckpoint(ctx)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	size, err := sizeUnverified(raw)
	if err != nil {
		return err
	}
	if c.ran && size == c.done {
		return nil
	}
	if err := collectPartials(ctx, c.r.root, size, c.r.entriesPath); err != nil {
		return err
	}
	c.ran, c.done = true, size
	return nil
}

// sizeUnverified returns the tree size of a checkpoint note, its second
// line, without verifying anything: the collector reads the checkpoint the
// driver itself wrote, and a size larger than the true one is impossible
// for a file only Tessera writes (a smaller one only collects less).
func sizeUnverified(raw []byte) (uint64, error) {
	lines := strings.SplitN(string(raw), "\n", 3)
	if len(lines) < 3 {
		return 0, errors.New("reading the checkpoint's size: not a checkpoint")
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("reading the checkpoint's size: %w", err)
	}
	return n, nil
}

// collectPartials removes, under root, the partial files of the right-edge
// hash tiles and entry bundle of a tree of size entries that are narrower
// than the ones that tree needs, and the partial files of the full tiles
// and bundle just left of them (Tessera's garbage collection would remove
// those too, but only at its next run, up to its interval later).
func collectPartials(ctx context.Context, root string, size uint64, entriesPath func(uint64, uint8) string) error {
	for level := uint64(0); size>>(level*layout.TileHeight) > 0; level++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		index := (size >> (level * layout.TileHeight)) / layout.TileWidth
		w := layout.PartialTileSize(level, index, size)
		paths := []func(uint64, uint8) string{func(i uint64, p uint8) string { return layout.TilePath(level, i, p) }}
		if level == 0 {
			paths = append(paths, entriesPath)
		}
		for _, path := range paths {
			if index > 0 {
				if err := removeFullsPartials(root, func(p uint8) string { return path(index-1, p) }); err != nil {
					return err
				}
			}
			if w > 0 {
				if err := removeNarrower(filepath.Join(root, partialDir(func(p uint8) string { return path(index, p) })), w); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// removeFullsPartials removes the partial files of a tile or bundle whose
// full file exists.
func removeFullsPartials(root string, path func(uint8) string) error {
	if _, err := os.Stat(filepath.Join(root, path(0))); err != nil {
		return nil
	}
	if err := os.RemoveAll(filepath.Join(root, partialDir(path))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// partialDir is the directory of a tile's (or bundle's) partial files,
// named by their width: tile/0/000.p for tile/0/000.p/5.
func partialDir(path func(uint8) string) string { return filepath.Dir(path(1)) }

// removeNarrower removes the partial files of dir narrower than w. Names
// that are no width are left alone (Tessera writes a partial as a temporary
// file in the same directory, named by the width it is written for
// followed by random digits: a number no smaller than a width the tree
// still needs).
func removeNarrower(dir string, w uint8) error {
	for _, k := range widths(dir) {
		if k >= w {
			break
		}
		if err := os.Remove(filepath.Join(dir, strconv.Itoa(int(k)))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// widths returns the widths of the partial files in dir, in increasing
// order (none if dir does not exist).
func widths(dir string) []uint8 {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var ws []uint8
	for _, de := range des {
		k, err := strconv.ParseUint(de.Name(), 10, 8)
		if err != nil || k == 0 || !de.Type().IsRegular() {
			continue
		}
		ws = append(ws, uint8(k))
	}
	slices.Sort(ws)
	return ws
}

// posixReader is the POSIX driver's log reader answering a partial tile
// or bundle that the collector removed with the narrowest wider one that
// exists, or the full one: a byte prefix of either is the one asked for.
type posixReader struct {
	tessera.LogReader
	root        string
	entriesPath func(uint64, uint8) string
}

func (r posixReader) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return r.partialOrWider(p, func(p uint8) string { return layout.TilePath(level, index, p) }, tileWidth,
		func(p uint8) ([]byte, error) { return r.LogReader.ReadTile(ctx, level, index, p) })
}

func (r posixReader) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return r.partialOrWider(p, func(p uint8) string { return r.entriesPath(index, p) }, bundleWidth,
		func(p uint8) ([]byte, error) { return r.LogReader.ReadEntryBundle(ctx, index, p) })
}

// widerTries bounds how often partialOrWider lists the partials again when
// the one it chose was removed before it was read (a checkpoint published
// meanwhile).
const widerTries = 3

// partialOrWider reads the partial of width p (or the full one, as Tessera's
// reader does); when neither exists, the narrowest wider partial that is
// whole (its width says how many hashes or entries it must hold: a file of
// another length is a temporary file of Tessera's that happens to be named
// like a width), or the full one if it appeared meanwhile.
func (r posixReader) partialOrWider(p uint8, path func(uint8) string, width func([]byte) int, read func(uint8) ([]byte, error)) ([]byte, error) {
	b, err := read(p)
	if p == 0 || !errors.Is(err, os.ErrNotExist) {
		return b, err
	}
	dir := filepath.Join(r.root, partialDir(path))
	for range widerTries {
		raced := false
		for _, k := range widths(dir) {
			if k <= p {
				continue
			}
			wb, werr := os.ReadFile(filepath.Join(dir, strconv.Itoa(int(k))))
			switch {
			case errors.Is(werr, os.ErrNotExist):
				raced = true
				continue
			case werr != nil:
				return nil, werr
			case width(wb) != int(k):
				continue
			}
			return wb, nil
		}
		if fb, ferr := read(0); !errors.Is(ferr, os.ErrNotExist) {
			return fb, ferr
		}
		if !raced {
			break
		}
	}
	return nil, err
}

// tileWidth is the number of hashes in a tile (-1 if it is no tile).
func tileWidth(b []byte) int {
	if len(b)%32 != 0 {
		return -1
	}
	return len(b) / 32
}

// bundleWidth is the number of entries in an entry bundle (-1 if it is no
// bundle: length prefixes that do not end at its end).
func bundleWidth(b []byte) int {
	n := 0
	for off := 0; off < len(b); n++ {
		if len(b)-off < 2 {
			return -1
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
		if off > len(b) {
			return -1
		}
	}
	return n
}

package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
)

// Caps on what Tiles reads. A full entry bundle is at most 256 entries of at
// most 65,535 bytes each.
const (
	MaxCheckpointBytes = 64 << 10
	MaxTileBytes       = layout.TileWidth * 32
	MaxBundleBytes     = layout.EntryBundleWidth * (2 + 65535)
)

// ErrResponseTooLarge is returned (wrapped) when a response exceeds its cap; it is
// never retried.
var ErrResponseTooLarge = errors.New("response too large")

// Retry says how often and how patiently a tile read is retried.
type Retry struct {
	Attempts int           // tries in all, at least 1
	Base     time.Duration // first backoff, doubled each time
	Max      time.Duration // longest backoff
}

// DefaultRetry is the default of WithRetry.
var DefaultRetry = Retry{Attempts: 5, Base: 100 * time.Millisecond, Max: 2 * time.Second}

// Backoff returns the wait before attempt i (from 1), with jitter.
func (p Retry) Backoff(i int) time.Duration {
	d := p.Base << min(i-1, 20)
	if d > p.Max || d <= 0 {
		d = p.Max
	}
	return d/2 + rand.N(d/2+1)
}

// do runs f until it succeeds, fails permanently, or the attempts are used up.
func (p Retry) do(ctx context.Context, f func(context.Context) ([]byte, error)) ([]byte, error) {
	var err error
	for i := 1; ; i++ {
		var b []byte
		if b, err = f(ctx); err == nil {
			return b, nil
		}
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrResponseTooLarge) || errors.Is(err, ErrUnauthenticated) ||
			errors.Is(err, ErrForbidden) || ctx.Err() != nil || i >= max(p.Attempts, 1) {
			return nil, err
		}
		t := time.NewTimer(p.Backoff(i))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// Tiles reads the log's C2SP tlog-tiles resources (checkpoint, hash tiles,
// entry bundles) with the client's token, capped and with retries of
// transient failures. A resource the log does not have answers an error
// wrapping fs.ErrNotExist (as Tessera's fetchers do); a partial tile or
// bundle that is gone because the tree grew is read in full instead. What it
// returns is unverified.
type Tiles struct{ c *Client }

// Tiles returns the client's tlog-tiles reader.
func (c *Client) Tiles() *Tiles { return &Tiles{c: c} }

// ReadCheckpoint returns the log's current checkpoint note, unverified.
func (t *Tiles) ReadCheckpoint(ctx context.Context) ([]byte, error) {
	return t.c.retry.do(ctx, func(ctx context.Context) ([]byte, error) {
		return t.get(ctx, layout.CheckpointPath, MaxCheckpointBytes)
	})
}

// ReadTile returns a hash tile (p > 0: a partial tile of width p).
func (t *Tiles) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return t.partialOrFull(ctx, p, func(p uint8) string { return layout.TilePath(level, index, p) }, MaxTileBytes)
}

// ReadEntryBundle returns an entry bundle (p > 0: a partial bundle).
func (t *Tiles) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return t.partialOrFull(ctx, p, func(p uint8) string { return layout.EntriesPath(index, p) }, MaxBundleBytes)
}

func (t *Tiles) partialOrFull(ctx context.Context, p uint8, path func(uint8) string, limit int64) ([]byte, error) {
	return t.c.retry.do(ctx, func(ctx context.Context) ([]byte, error) {
		b, err := t.get(ctx, path(p), limit)
		if errors.Is(err, fs.ErrNotExist) && p > 0 {
			return t.get(ctx, path(0), limit)
		}
		return b, err
	})
}

func (t *Tiles) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.c.endpoint("/"+path, nil), nil)
	if err != nil {
		return nil, err
	}
	if t.c.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.c.token)
	}
	resp, err := t.c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	case resp.StatusCode != http.StatusOK:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("%s: %w", path, decodeError(resp.StatusCode, b))
	case resp.ContentLength > limit:
		return nil, fmt.Errorf("%s: %w (%d bytes)", path, ErrResponseTooLarge, resp.ContentLength)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w (over %d bytes)", path, ErrResponseTooLarge, limit)
	}
	return b, nil
}

package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/transparency-dev/tessera/client"
)

// Caps on what the monitor reads from a log or witness. A full entry bundle
// is at most 256 entries of at most 65,535 bytes each.
const (
	maxCheckpointBytes = 64 << 10
	maxTileBytes       = tileWidth * hashSize
	maxBundleBytes     = tileWidth * (2 + 65535)
)

// ErrTooLarge is returned (wrapped) when a response exceeds its cap.
var ErrTooLarge = errors.New("response too large")

// cappedTransport refuses response bodies larger than limit bytes.
type cappedTransport struct {
	rt    http.RoundTripper
	limit int64
}

func (c cappedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > c.limit {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %w (%d bytes)", r.URL.Path, ErrTooLarge, resp.ContentLength)
	}
	resp.Body = &cappedBody{rc: resp.Body, left: c.limit}
	return resp, nil
}

type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Probe for one more byte: exactly limit bytes is fine.
		var one [1]byte
		if n, _ := b.rc.Read(one[:]); n > 0 {
			return 0, ErrTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// retryPolicy says how often and how patiently a read is retried.
type retryPolicy struct {
	attempts int
	base     time.Duration
	max      time.Duration
}

var defaultRetry = retryPolicy{attempts: 5, base: 100 * time.Millisecond, max: 2 * time.Second}

// backoff returns the wait before attempt i (from 1), with jitter.
func (p retryPolicy) backoff(i int) time.Duration {
	d := p.base << min(i-1, 20)
	if d > p.max || d <= 0 {
		d = p.max
	}
	return d/2 + rand.N(d/2+1)
}

// do runs f until it succeeds, fails permanently, or the attempts are used up.
func (p retryPolicy) do(ctx context.Context, f func(context.Context) ([]byte, error)) ([]byte, error) {
	var err error
	for i := 1; ; i++ {
		var b []byte
		if b, err = f(ctx); err == nil {
			return b, nil
		}
		var pe permanentError
		if errors.As(err, &pe) {
			return nil, pe.err
		}
		if errors.Is(err, ErrTooLarge) || ctx.Err() != nil || i >= p.attempts {
			return nil, err
		}
		t := time.NewTimer(p.backoff(i))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// permanentError stops retries.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }

// source reads a log's tlog-tiles API with Tessera's HTTP fetcher, with
// capped response bodies and retries of transient failures.
type source struct {
	base       *url.URL
	checkpoint *client.HTTPFetcher
	tiles      *client.HTTPFetcher
	bundles    *client.HTTPFetcher
	retry      retryPolicy
}

func newSource(rawURL string, hc *http.Client, retry retryPolicy) (*source, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("log URL %q: want http(s)://host[/prefix]", rawURL)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	mk := func(limit int64) (*client.HTTPFetcher, error) {
		rt := hc.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		c := *hc
		c.Transport = cappedTransport{rt: rt, limit: limit}
		u := *u
		return client.NewHTTPFetcher(&u, &c)
	}
	s := &source{base: u, retry: retry}
	if s.checkpoint, err = mk(maxCheckpointBytes); err != nil {
		return nil, err
	}
	if s.tiles, err = mk(maxTileBytes); err != nil {
		return nil, err
	}
	if s.bundles, err = mk(maxBundleBytes); err != nil {
		return nil, err
	}
	return s, nil
}

// readCheckpoint returns the log's current checkpoint, unverified. A log
// that has not published one yet answers fs.ErrNotExist.
func (s *source) readCheckpoint(ctx context.Context) ([]byte, error) {
	return s.retry.do(ctx, func(ctx context.Context) ([]byte, error) {
		b, err := s.checkpoint.ReadCheckpoint(ctx)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, permanentError{err}
		}
		return b, err
	})
}

func (s *source) readTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return s.retry.do(ctx, func(ctx context.Context) ([]byte, error) { return s.tiles.ReadTile(ctx, level, index, p) })
}

func (s *source) readBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return s.retry.do(ctx, func(ctx context.Context) ([]byte, error) { return s.bundles.ReadEntryBundle(ctx, index, p) })
}

// fetcher is what the tree scanner reads from: a live log (source) or, in
// benchmarks and tests, an in-memory one.
type fetcher interface {
	readCheckpoint(ctx context.Context) ([]byte, error)
	readTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	readBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
}

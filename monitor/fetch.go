package monitor

import "context"

// fetcher is what the tree scanner reads from: a live log
// (client.Tiles, with caps and retries) or, in benchmarks and tests, an
// in-memory one. Its methods are those of Tessera's fetchers.
type fetcher interface {
	ReadCheckpoint(ctx context.Context) ([]byte, error)
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
}

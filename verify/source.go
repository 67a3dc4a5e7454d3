package verify

import "context"

// Source is what an audit and a Scanner read a log from: a live log
// (client.Tiles, with caps and retries) or a copy of its files (Tessera's
// client.FileFetcher). Its methods are those of Tessera's fetchers; what
// they return is checked, never trusted.
type Source interface {
	ReadCheckpoint(ctx context.Context) ([]byte, error)
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
}

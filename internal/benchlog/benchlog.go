// Package benchlog is the benchmark log of the audit and the monitor: a
// Tessera POSIX log of 65,536 realistic audit events in sessions of 40 with
// real seq and prev chains, built once per test binary in a temporary
// directory and read from its files. Test only.
package benchlog

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	tclient "github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Entries is the size of the log.
const Entries = 1 << 16

// Log is the built log.
type Log struct {
	Key        note.Verifier // origin example.com/bench
	Checkpoint []byte        // its signed checkpoint
	Size       uint64
	Dir        string // the POSIX log's directory
}

var (
	once  sync.Once
	built *Log
	err   error

	leavesOnce sync.Once
	leaves     [][]byte
)

// Leaf returns leaf i of the log.
func Leaf(i int) []byte {
	leavesOnce.Do(func() {
		kinds := []string{event.KindLLMRequest, event.KindLLMResponse, event.KindToolCall, event.KindToolResult}
		var prev []byte
		for i := range Entries {
			l := &event.Leaf{
				V: event.LeafVersion, ID: fmt.Sprintf("%032x", i), Kind: kinds[i%4], Time: time.Unix(1_800_000_000+int64(i), 0).UTC().Format(event.TimeFormat),
				Tenant: "acme", Session: fmt.Sprintf("session-%d", i/40), Seq: uint64(i % 40),
				Actor:   event.Actor{Type: "agent", ID: "agent-7", OnBehalfOf: "ps_2vqjm4sebx5bbwdqh7rbmtll"},
				Subject: "ps_7bqs4agcvbfbxsa3d2uwyh3o",
				Writer:  &event.Writer{Token: "5f2b8e0c9a7d4e31", Via: event.ViaProxy},
				Attributes: map[string]any{
					event.AttrGenAIProviderName: "openai", event.AttrGenAIRequestModel: "gpt-4o", event.AttrGenAIResponseModel: "gpt-4o",
					event.AttrGenAIUsageInputTokens: 800 + i%300, event.AttrGenAIUsageOutputTokens: 200 + i%100, event.AttrGenAIToolName: "search",
				},
				Payload: &event.Commitment{Alg: "hmac-sha256", Digest: fmt.Sprintf("%064x", i), Size: 1234, MediaType: "application/json"},
			}
			if i%40 != 0 {
				l.Prev = hex.EncodeToString(prev)
			}
			b, _ := l.Marshal()
			prev = event.LeafHash(b)
			leaves = append(leaves, b)
		}
	})
	return leaves[i]
}

// Get returns the log, building it on first use.
func Get(tb testing.TB) *Log {
	once.Do(func() { built, err = build() })
	if err != nil {
		tb.Fatal(err)
	}
	return built
}

func build() (*Log, error) {
	dir, err := os.MkdirTemp("", "monitor-bench")
	if err != nil {
		return nil, err
	}
	skey, vkey, _ := checkpoint.GenerateKey("example.com/bench")
	signer, _ := checkpoint.NewSigner(skey)
	key, _ := checkpoint.NewVerifier(vkey)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	drv, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return nil, err
	}
	app, shutdown, reader, err := tessera.NewAppender(ctx, drv, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).WithBatching(4096, 20*time.Millisecond).WithCheckpointInterval(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	for start := 0; start < Entries; start += 8192 {
		var futs []tessera.IndexFuture
		for i := start; i < start+8192; i++ {
			futs = append(futs, app.Add(ctx, tessera.NewEntry(Leaf(i))))
		}
		for _, f := range futs {
			if _, err := f(); err != nil {
				return nil, err
			}
		}
	}
	if err := shutdown(ctx); err != nil {
		return nil, err
	}
	raw, err := reader.ReadCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	cp, _, err := checkpoint.Verify(raw, key)
	if err != nil {
		return nil, err
	}
	return &Log{Key: key, Checkpoint: raw, Size: cp.Size, Dir: dir}, nil
}

// Fetcher reads the log's files like Tessera's FileFetcher, with the
// checkpoint it was built with.
type Fetcher struct{ L *Log }

func (f Fetcher) ReadCheckpoint(ctx context.Context) ([]byte, error) { return f.L.Checkpoint, nil }

func (f Fetcher) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return tclient.FileFetcher{Root: f.L.Dir}.ReadTile(ctx, level, index, p)
}

func (f Fetcher) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return tclient.FileFetcher{Root: f.L.Dir}.ReadEntryBundle(ctx, index, p)
}

package monitor

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	tclient "github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/tiles"
)

// benchLog is a Tessera POSIX log of realistic audit events, built once,
// and read from memory (so the benchmark measures verification, not I/O).
type benchLog struct {
	key   note.Verifier
	raw   []byte
	size  uint64
	files sync.Map // path -> []byte
	root  string
}

var (
	benchOnce sync.Once
	bench     *benchLog
	benchErr  error
)

const benchEntries = 1 << 16

var (
	leavesOnce  sync.Once
	benchLeaves [][]byte
)

// benchLeaf returns leaf i of the bench log: realistic events in sessions
// of 40, with real seq and prev chains.
func benchLeaf(i int) []byte {
	leavesOnce.Do(func() {
		kinds := []string{"llm.request", "llm.response", "tool.call", "tool.result"}
		var prev []byte
		for i := range benchEntries {
			l := &event.Leaf{
				V: event.LeafVersion, ID: fmt.Sprintf("%032x", i), Kind: kinds[i%4], Time: time.Unix(1_800_000_000+int64(i), 0).UTC().Format(event.TimeFormat),
				Tenant: "acme", Session: fmt.Sprintf("session-%d", i/40), Seq: uint64(i % 40),
				Actor:   event.Actor{Type: "agent", ID: "agent-7", OnBehalfOf: "ps_2vqjm4sebx5bbwdqh7rbmtll"},
				Subject: "ps_7bqs4agcvbfbxsa3d2uwyh3o",
				Writer:  &event.Writer{Token: "5f2b8e0c9a7d4e31", Via: event.ViaProxy},
				Attributes: map[string]any{
					"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o",
					"gen_ai.usage.input_tokens": 800 + i%300, "gen_ai.usage.output_tokens": 200 + i%100, "gen_ai.tool.name": "search",
				},
				Payload: &event.Commitment{Alg: "hmac-sha256", Digest: fmt.Sprintf("%064x", i), Size: 1234, MediaType: "application/json"},
			}
			if i%40 != 0 {
				l.Prev = hex.EncodeToString(prev)
			}
			b, _ := l.Marshal()
			prev = event.LeafHash(b)
			benchLeaves = append(benchLeaves, b)
		}
	})
	return benchLeaves[i]
}

func getBenchLog(b *testing.B) *benchLog {
	benchOnce.Do(func() {
		bench, benchErr = buildBenchLog()
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return bench
}

func buildBenchLog() (*benchLog, error) {
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
	for start := 0; start < benchEntries; start += 8192 {
		var futs []tessera.IndexFuture
		for i := start; i < start+8192; i++ {
			futs = append(futs, app.Add(ctx, tessera.NewEntry(benchLeaf(i))))
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
	bl := &benchLog{key: key, raw: raw, size: cp.Size, root: dir}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			bl.files.Store(rel, b)
		}
		return nil
	})
	return bl, nil
}

// memFetcher serves the bench log from memory, like Tessera's FileFetcher.
type memFetcher struct{ l *benchLog }

func (m memFetcher) get(path string) ([]byte, error) {
	if b, ok := m.l.files.Load(path); ok {
		return b.([]byte), nil
	}
	return nil, os.ErrNotExist
}

func (m memFetcher) ReadCheckpoint(ctx context.Context) ([]byte, error) { return m.l.raw, nil }
func (m memFetcher) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return tclient.FileFetcher{Root: m.l.root}.ReadTile(ctx, level, index, p)
}
func (m memFetcher) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return tclient.FileFetcher{Root: m.l.root}.ReadEntryBundle(ctx, index, p)
}

// BenchmarkAudit measures a full audit: every entry re-hashed and parsed,
// every tile compared, sessions' chains followed, root checked.
func BenchmarkAudit(b *testing.B) {
	bl := getBenchLog(b)
	b.ResetTimer()
	for b.Loop() {
		rep, err := Audit(context.Background(), AuditConfig{LogKey: bl.key, src: memFetcher{bl}, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() || rep.Entries != bl.size || rep.Size != bl.size {
			b.Fatalf("audited %d of %d, %d findings", rep.Entries, bl.size, len(rep.Findings))
		}
	}
	b.ReportMetric(float64(bl.size)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkRehashRules measures the follow path without HTTP: entries
// re-hashed into the tree, tiles compared, parsed and evaluated by the
// shipped rule pack (12 rules).
func BenchmarkRehashRules(b *testing.B) {
	bl := getBenchLog(b)
	rs := pack(b, hoursLine, allHours)
	b.ResetTimer()
	for b.Loop() {
		en := newEngine(rs, bl.key.Name(), true, nil, quietLogger())
		t := &tree{}
		var n int
		_, err := newScanner(memFetcher{bl}).scan(context.Background(), t, bl.size, bl.size, scanOpts{parse: true, checkTiles: true}, func(e entry) error {
			as, err := en.evaluate(e, evalContext{})
			n += len(as)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		root, _ := t.root()
		cp, _, _ := checkpoint.Verify(bl.raw, bl.key)
		if hex.EncodeToString(root) != hex.EncodeToString(cp.Hash) {
			b.Fatal("root mismatch")
		}
		_ = n
	}
	b.ReportMetric(float64(bl.size)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkRules measures rule evaluation alone over parsed entries.
func BenchmarkRules(b *testing.B) {
	rs := pack(b, hoursLine, allHours)
	var es []entry
	for i := range 4096 {
		d := benchLeaf(i)
		l, err := event.ParseLeaf(d)
		if err != nil {
			b.Fatal(err)
		}
		es = append(es, entry{index: uint64(i), data: d, hash: event.LeafHash(d), leaf: l})
	}
	en := newEngine(rs, "x", false, nil, quietLogger())
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := en.evaluate(es[i%len(es)], evalContext{}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func benchReceipts(b *testing.B, n int) (*benchLog, []*api.Receipt) {
	bl := getBenchLog(b)
	ctx := context.Background()
	pb, err := tclient.NewProofBuilder(ctx, bl.size, memFetcher{bl}.ReadTile)
	if err != nil {
		b.Fatal(err)
	}
	var rs []*api.Receipt
	for i := range n {
		idx := uint64(i) * (bl.size / uint64(n))
		p, err := pb.InclusionProof(ctx, idx)
		if err != nil {
			b.Fatal(err)
		}
		leaf := benchLeaf(int(idx))
		rs = append(rs, &api.Receipt{Index: idx, Leaf: leaf, LeafHash: hex.EncodeToString(event.LeafHash(leaf)),
			TreeSize: bl.size, InclusionProof: p, Checkpoint: string(bl.raw)})
	}
	return bl, rs
}

// BenchmarkVerify1000Receipts: 1,000 receipts (leaf, inclusion proof in a
// 65,536-entry tree, checkpoint) verified by a fresh verifier; the shared
// checkpoint's signature is checked once.
func BenchmarkVerify1000Receipts(b *testing.B) {
	bl, rs := benchReceipts(b, 1000)
	b.ResetTimer()
	for b.Loop() {
		v := api.NewReceiptVerifier(bl.key, nil)
		for _, r := range rs {
			if _, err := v.Verify(r); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkVerifyReceiptUncached: one receipt with its own signature check
// (the worst case: every receipt against a different checkpoint).
func BenchmarkVerifyReceiptUncached(b *testing.B) {
	bl, rs := benchReceipts(b, 1)
	b.ResetTimer()
	for b.Loop() {
		if _, err := api.NewReceiptVerifier(bl.key, nil).Verify(rs[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuditHTTP is BenchmarkAudit over loopback HTTP, the log's
// files served by the project's tlog-tiles handler.
func BenchmarkAuditHTTP(b *testing.B) {
	bl := getBenchLog(b)
	hs := httptest.NewServer(tiles.Handler(tclient.FileFetcher{Root: bl.root}, tiles.Options{}))
	defer hs.Close()
	b.ResetTimer()
	for b.Loop() {
		rep, err := Audit(context.Background(), AuditConfig{Log: testClient(hs.URL, ""), LogKey: bl.key, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() || rep.Entries != bl.size {
			b.Fatalf("audited %d of %d, %d findings", rep.Entries, bl.size, len(rep.Findings))
		}
	}
	b.ReportMetric(float64(bl.size)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

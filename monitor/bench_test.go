package monitor

import (
	"context"
	"encoding/hex"
	"testing"

	tclient "github.com/transparency-dev/tessera/client"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/benchlog"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// BenchmarkRehashRules measures the follow path without HTTP: entries
// re-hashed into the tree, tiles compared, parsed and evaluated by the
// shipped rule pack (12 rules).
func BenchmarkRehashRules(b *testing.B) {
	bl := benchlog.Get(b)
	rs := pack(b, hoursLine, allHours)
	b.ResetTimer()
	for b.Loop() {
		en := newEngine(rs, bl.Key.Name(), true, nil, quietLogger())
		t := &verify.Tree{}
		var n int
		_, err := verify.NewScanner(benchlog.Fetcher{L: bl}, bl.Key.Name()).Scan(context.Background(), t, bl.Size, bl.Size, verify.ScanOptions{Parse: true, CheckTiles: true}, func(e verify.Entry) error {
			as, err := en.evaluate(e, evalContext{})
			n += len(as)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		root, _ := t.Root()
		cp, _, _ := checkpoint.Verify(bl.Checkpoint, bl.Key)
		if hex.EncodeToString(root) != hex.EncodeToString(cp.Hash) {
			b.Fatal("root mismatch")
		}
		_ = n
	}
	b.ReportMetric(float64(bl.Size)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkRules measures rule evaluation alone over parsed entries.
func BenchmarkRules(b *testing.B) {
	rs := pack(b, hoursLine, allHours)
	var es []verify.Entry
	for i := range 4096 {
		d := benchlog.Leaf(i)
		l, err := event.ParseLeaf(d)
		if err != nil {
			b.Fatal(err)
		}
		es = append(es, verify.Entry{Index: uint64(i), Data: d, Hash: event.LeafHash(d), Leaf: l})
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

func benchReceipts(b *testing.B, n int) (*benchlog.Log, []*api.Receipt) {
	bl := benchlog.Get(b)
	ctx := context.Background()
	pb, err := tclient.NewProofBuilder(ctx, bl.Size, benchlog.Fetcher{L: bl}.ReadTile)
	if err != nil {
		b.Fatal(err)
	}
	var rs []*api.Receipt
	for i := range n {
		idx := uint64(i) * (bl.Size / uint64(n))
		p, err := pb.InclusionProof(ctx, idx)
		if err != nil {
			b.Fatal(err)
		}
		leaf := benchlog.Leaf(int(idx))
		rs = append(rs, &api.Receipt{Index: idx, Leaf: leaf, LeafHash: hex.EncodeToString(event.LeafHash(leaf)),
			TreeSize: bl.Size, InclusionProof: p, Checkpoint: string(bl.Checkpoint)})
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
		v := api.NewReceiptVerifier(bl.Key, nil)
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
		if _, err := api.NewReceiptVerifier(bl.Key, nil).Verify(rs[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify1000ReceiptsWithTlogProof: the receipts as the server
// sends them, each with its tlog_proof, which Verify holds to the other
// fields (BenchmarkVerify1000Receipts is the baseline).
func BenchmarkVerify1000ReceiptsWithTlogProof(b *testing.B) {
	bl, rs := benchReceipts(b, 1000)
	for _, r := range rs {
		tp, err := r.MarshalTlogProof()
		if err != nil {
			b.Fatal(err)
		}
		r.TlogProof = string(tp)
	}
	b.ResetTimer()
	for b.Loop() {
		v := api.NewReceiptVerifier(bl.Key, nil)
		for _, r := range rs {
			if _, err := v.Verify(r); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkVerify1000TlogProofs: the same 1,000 proofs as tlog-proof texts,
// parsed (api.ParseReceipt) and verified.
func BenchmarkVerify1000TlogProofs(b *testing.B) {
	bl, rs := benchReceipts(b, 1000)
	texts := make([][]byte, len(rs))
	for i, r := range rs {
		var err error
		if texts[i], err = r.MarshalTlogProof(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		v := api.NewReceiptVerifier(bl.Key, nil)
		for _, t := range texts {
			r, err := api.ParseReceipt(t)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := v.Verify(r); err != nil {
				b.Fatal(err)
			}
		}
	}
}

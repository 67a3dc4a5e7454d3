package api_test

import (
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/llmaudittrail/llmaudittrail/api"
)

func FuzzParseReceipt(f *testing.F) {
	f.Add([]byte(`{"index":1,"leaf":"e30=","leaf_hash":"00","tree_size":2,"inclusion_proof":["AA=="],"checkpoint":"x\n2\nAA==\n"}`))
	f.Add([]byte(`{"receipt":{"index":0}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := api.ParseReceipt(data)
		if err == nil && (r.Checkpoint == "" || len(r.Leaf) == 0) {
			t.Fatal("accepted an incomplete receipt")
		}
	})
}

// TestVerifyInclusionMatchesMerkle checks the allocation-free inclusion
// check against transparency-dev/merkle on every index of trees up to 130
// leaves and on corrupted proofs.
func TestVerifyInclusionMatchesMerkle(t *testing.T) {
	tr := testonly.New(rfc6962.DefaultHasher)
	for n := uint64(1); n <= 130; n++ {
		tr.AppendData([]byte(fmt.Sprint(n)))
		root := tr.Hash()
		for i := uint64(0); i < n; i++ {
			p, err := tr.InclusionProof(i, n)
			if err != nil {
				t.Fatal(err)
			}
			lh := tr.LeafHash(i)
			if err := api.VerifyInclusion(i, n, lh, p, root); err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			cases := [][][]byte{append(p, lh)}
			if len(p) > 0 {
				cases = append(cases, p[1:], append([][]byte{lh}, p[1:]...))
			}
			for _, bad := range cases {
				want := proof.VerifyInclusion(rfc6962.DefaultHasher, i, n, lh, bad, root)
				got := api.VerifyInclusion(i, n, lh, bad, root)
				if (want == nil) != (got == nil) {
					t.Fatalf("n=%d i=%d: merkle %v, ours %v", n, i, want, got)
				}
			}
			if i+1 < n && api.VerifyInclusion(i+1, n, lh, p, root) == nil && proof.VerifyInclusion(rfc6962.DefaultHasher, i+1, n, lh, p, root) != nil {
				t.Fatalf("n=%d i=%d: accepted the wrong index", n, i)
			}
		}
	}
}

package verify

import (
	"context"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	tclient "github.com/transparency-dev/tessera/client"
)

// Consistency builds the consistency proof from size from to size to out of
// the log's tiles, read with f (Tessera's proof builder), and verifies it
// against the two roots: the tree of size to extends the tree of size from.
func Consistency(ctx context.Context, f tclient.TileFetcherFunc, from, to uint64, fromRoot, toRoot []byte) error {
	pb, err := tclient.NewProofBuilder(ctx, to, f)
	if err != nil {
		return err
	}
	p, err := pb.ConsistencyProof(ctx, from, to)
	if err != nil {
		return fmt.Errorf("building proof: %w", err)
	}
	return proof.VerifyConsistency(rfc6962.DefaultHasher, from, to, p, fromRoot, toRoot)
}

// Command verifytlogproof checks C2SP tlog-proofs (c2sp.org/tlog-proof@v1)
// of an LLMAuditTrail log with libraries this project did not write, as
// docs/verifying.md describes: transparency-dev/formats/proof parses the
// proof, golang.org/x/mod/sumdb/note and transparency-dev/formats/log check
// the log's signature on the checkpoint, transparency-dev/formats/witness
// checks the witness quorum of the policy (its Sigsum-style parser reads
// DATA/keys/policy, which gives every witness its URL), and
// transparency-dev/merkle checks that the RFC 6962 hash of the extra data
// (the leaf) is included at the index. It prints the leaf of each proof
// that verifies and exits 1 if one does not.
//
//	go run ./server/testdata/verifytlogproof LOG.pub POLICY|- PROOF.tlog-proof...
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/formats/witness"
	mproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: verifytlogproof LOG.pub POLICY|- PROOF.tlog-proof...")
		os.Exit(2)
	}
	vkey, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		fail(err)
	}
	var policy *witness.Group
	if os.Args[2] != "-" {
		text, err := os.ReadFile(os.Args[2])
		if err != nil {
			fail(err)
		}
		g, err := witness.ParsePolicy(text)
		if err != nil {
			fail(err)
		}
		policy = &g
	}
	code := 0
	for _, path := range os.Args[3:] {
		leaf, err := check(path, v, policy)
		if err != nil {
			fmt.Printf("FAIL %s: %v\n", path, err)
			code = 1
			continue
		}
		fmt.Printf("OK %s: %s\n", path, leaf)
	}
	os.Exit(code)
}

func check(path string, v note.Verifier, policy *witness.Group) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p proof.TLogProof
	if err := p.Unmarshal(data); err != nil {
		return nil, err
	}
	cp, _, _, err := fmtlog.ParseCheckpoint(p.Checkpoint, v.Name(), v)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if policy != nil && !policy.Satisfied(p.Checkpoint) {
		return nil, errors.New("the checkpoint lacks the policy's witness cosignatures")
	}
	hashes := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		hashes[i] = p.Hashes[i][:]
	}
	leafHash := rfc6962.DefaultHasher.HashLeaf(p.ExtraData)
	if err := mproof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, cp.Size, leafHash, hashes, cp.Hash); err != nil {
		return nil, fmt.Errorf("inclusion: %w", err)
	}
	return p.ExtraData, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "verifytlogproof:", err)
	os.Exit(2)
}

package api

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// TlogProofHeader is the first line of a C2SP tlog-proof
// (c2sp.org/tlog-proof@v1): a proof that an entry is in a log, made of an
// optional "extra" line, the entry's index, its RFC 6962 inclusion proof
// and the (cosigned) checkpoint the proof leads to. The log's tlog-proofs
// carry the leaf itself as the extra data, so that one file proves an
// audit event offline; store them as TlogProofExt files.
const TlogProofHeader = "c2sp.org/tlog-proof@v1"

// TlogProofExt is the file extension of a tlog-proof (C2SP recommends it).
const TlogProofExt = ".tlog-proof"

// TlogProofMediaType is the content type of GET /v1/entries/{index}/proof.
const TlogProofMediaType = "text/plain; charset=utf-8"

// maxProofHashes bounds the inclusion proof of a tlog-proof: a proof in a
// tree of 2^64 leaves has at most 64 hashes.
const maxProofHashes = 64

// IsTlogProof reports whether data starts like a tlog-proof (its header
// line), as opposed to a JSON receipt.
func IsTlogProof(data []byte) bool {
	return bytes.HasPrefix(data, []byte(TlogProofHeader+"\n"))
}

// MarshalTlogProof renders the receipt as a c2sp.org/tlog-proof@v1 text with the
// leaf as the extra data. The receipt's checkpoint must be for its tree
// size (a receipt of GET /v1/entries/{index}?size=N below the latest
// checkpoint has no tlog-proof form) and end in a newline.
func (r *Receipt) MarshalTlogProof() ([]byte, error) {
	size, err := checkpointSize(r.Checkpoint)
	if err != nil {
		return nil, err
	}
	if size != r.TreeSize {
		return nil, fmt.Errorf("%w: tree_size %d, but the checkpoint is for size %d", ErrReceiptMalformed, r.TreeSize, size)
	}
	if len(r.InclusionProof) > maxProofHashes {
		return nil, fmt.Errorf("%w: %d proof hashes", ErrReceiptMalformed, len(r.InclusionProof))
	}
	var b bytes.Buffer
	b.Grow(len(TlogProofHeader) + 8 + base64.StdEncoding.EncodedLen(len(r.Leaf)) + 27 + 45*len(r.InclusionProof) + 1 + len(r.Checkpoint))
	b.WriteString(TlogProofHeader + "\n")
	if len(r.Leaf) > 0 {
		b.WriteString("extra ")
		b.WriteString(base64.StdEncoding.EncodeToString(r.Leaf))
		b.WriteByte('\n')
	}
	b.WriteString("index ")
	b.WriteString(strconv.FormatUint(r.Index, 10))
	b.WriteByte('\n')
	for _, h := range r.InclusionProof {
		if len(h) != checkpoint.HashSize {
			return nil, fmt.Errorf("%w: a proof hash of %d bytes", ErrReceiptMalformed, len(h))
		}
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(r.Checkpoint)
	return b.Bytes(), nil
}

// checkpointSize reads the tree size of a checkpoint note, unverified.
func checkpointSize(note string) (uint64, error) {
	_, rest, ok := strings.Cut(note, "\n")
	size, _, ok2 := strings.Cut(rest, "\n")
	if !ok || !ok2 || !strings.HasSuffix(note, "\n") {
		return 0, fmt.Errorf("%w: the checkpoint is not a signed note", ErrReceiptMalformed)
	}
	n, err := strconv.ParseUint(size, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != size {
		return 0, fmt.Errorf("%w: the checkpoint's size line %q", ErrReceiptMalformed, size)
	}
	return n, nil
}

// ParseTlogProof decodes a c2sp.org/tlog-proof@v1 text strictly into an
// unverified Receipt (verify it with a ReceiptVerifier): the extra data is
// the leaf, and is required; the index is decimal without leading zeros;
// each proof line is the canonical base64 of 32 bytes; the checkpoint
// follows an empty line and runs to the end, ending in a newline. The
// receipt's TlogProof is data, and its tree size the checkpoint's
// (unverified: Verify checks the signed one).
func ParseTlogProof(data []byte) (*Receipt, error) {
	if len(data) > MaxReceiptBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrReceiptMalformed, MaxReceiptBytes)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: tlog-proof: %s", ErrReceiptMalformed, fmt.Sprintf(format, args...))
	}
	rest, ok := bytes.CutPrefix(data, []byte(TlogProofHeader+"\n"))
	if !ok {
		return nil, bad("the first line is not %s", TlogProofHeader)
	}
	if bytes.IndexByte(data, '\r') >= 0 {
		return nil, bad("a carriage return: lines end in a newline alone")
	}
	line := func() (string, bool) {
		l, r, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return "", false
		}
		rest = r
		return string(l), true
	}
	strict := base64.StdEncoding.Strict()
	r := &Receipt{TlogProof: string(data)}
	l, ok := line()
	if e, isExtra := strings.CutPrefix(l, "extra "); ok && isExtra {
		leaf, err := strict.DecodeString(e)
		if err != nil || base64.StdEncoding.EncodeToString(leaf) != e {
			return nil, bad("the extra line is not canonical base64")
		}
		r.Leaf = leaf
		l, ok = line()
	}
	if len(r.Leaf) == 0 {
		return nil, bad("no extra line: the log's tlog-proofs carry the leaf as their extra data, and it is needed to check the entry")
	}
	idx, isIndex := strings.CutPrefix(l, "index ")
	if !ok || !isIndex {
		return nil, bad("no index line")
	}
	n, err := strconv.ParseUint(idx, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != idx {
		return nil, bad("index %q is not decimal without leading zeros", idx)
	}
	r.Index = n
	for {
		l, ok = line()
		if !ok {
			return nil, bad("no empty line before the checkpoint")
		}
		if l == "" {
			break
		}
		if len(r.InclusionProof) == maxProofHashes {
			return nil, bad("more than %d proof hashes", maxProofHashes)
		}
		h, err := strict.DecodeString(l)
		if err != nil || len(h) != checkpoint.HashSize || base64.StdEncoding.EncodeToString(h) != l {
			return nil, bad("proof line %d is not the canonical base64 of %d bytes", len(r.InclusionProof)+1, checkpoint.HashSize)
		}
		r.InclusionProof = append(r.InclusionProof, h)
	}
	if r.InclusionProof == nil {
		r.InclusionProof = [][]byte{}
	}
	r.Checkpoint = string(rest)
	if r.TreeSize, err = checkpointSize(r.Checkpoint); err != nil {
		return nil, bad("%v", err)
	}
	r.LeafHash = hex.EncodeToString(event.LeafHash(r.Leaf))
	return r, nil
}

// sameAsTlogProof checks that a JSON receipt's tlog_proof is the receipt's
// own content, so that what is verified is what either form says.
func (r *Receipt) sameAsTlogProof() error {
	p, err := ParseTlogProof([]byte(r.TlogProof))
	if err != nil {
		return err
	}
	same := p.Index == r.Index && bytes.Equal(p.Leaf, r.Leaf) && p.Checkpoint == r.Checkpoint && p.TreeSize == r.TreeSize &&
		len(p.InclusionProof) == len(r.InclusionProof)
	for i := 0; same && i < len(p.InclusionProof); i++ {
		same = bytes.Equal(p.InclusionProof[i], r.InclusionProof[i])
	}
	if !same {
		return fmt.Errorf("%w: tlog_proof is not the receipt's index, leaf, proof and checkpoint", ErrReceiptMalformed)
	}
	return nil
}

package api

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"

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
	enc := base64.StdEncoding
	return r.appendTlogProof(make([]byte, 0, len(TlogProofHeader)+8+enc.EncodedLen(len(r.logEntry()))+27+(enc.EncodedLen(checkpoint.HashSize)+1)*len(r.InclusionProof)+1+len(r.Checkpoint)))
}

// appendTlogProof appends the tlog-proof text to b; the caller has checked
// the tree size and the number of hashes.
func (r *Receipt) appendTlogProof(b []byte) ([]byte, error) {
	enc := base64.StdEncoding
	b = append(b, TlogProofHeader+"\n"...)
	if entry := r.logEntry(); len(entry) > 0 {
		b = append(b, "extra "...)
		b = enc.AppendEncode(b, entry)
		b = append(b, '\n')
	}
	b = append(b, "index "...)
	b = strconv.AppendUint(b, r.Index, 10)
	b = append(b, '\n')
	for _, h := range r.InclusionProof {
		if len(h) != checkpoint.HashSize {
			return nil, fmt.Errorf("%w: a proof hash of %d bytes", ErrReceiptMalformed, len(h))
		}
		b = enc.AppendEncode(b, h)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	b = append(b, r.Checkpoint...)
	return b, nil
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
	line := func() ([]byte, bool) {
		l, r, ok := bytes.Cut(rest, []byte("\n"))
		if ok {
			rest = r
		}
		return l, ok
	}
	// Strict decoding of the padded standard encoding accepts one text per
	// value: padding required, padding bits zero, no line breaks.
	strict := base64.StdEncoding.Strict()
	r := &Receipt{TlogProof: string(data)}
	l, ok := line()
	if e, isExtra := bytes.CutPrefix(l, []byte("extra ")); ok && isExtra {
		leaf := make([]byte, strict.DecodedLen(len(e)))
		n, err := strict.Decode(leaf, e)
		if err != nil {
			return nil, bad("the extra line is not canonical base64")
		}
		r.setLogEntry(leaf[:n])
		l, ok = line()
	}
	if len(r.logEntry()) == 0 {
		return nil, bad("no extra line: the log's tlog-proofs carry the leaf as their extra data, and it is needed to check the entry")
	}
	idx, isIndex := bytes.CutPrefix(l, []byte("index "))
	if !ok || !isIndex {
		return nil, bad("no index line")
	}
	n, err := strconv.ParseUint(string(idx), 10, 64)
	if err != nil || (len(idx) > 1 && idx[0] == '0') {
		return nil, bad("index %q is not decimal without leading zeros", idx)
	}
	r.Index = n
	// The proof hashes run to the empty line; they share one array.
	end := bytes.Index(rest, []byte("\n\n"))
	switch {
	case bytes.HasPrefix(rest, []byte("\n")):
		end = -1 // no hashes
	case end < 0:
		return nil, bad("no empty line before the checkpoint")
	}
	count := 0
	if end >= 0 {
		count = bytes.Count(rest[:end+1], []byte("\n"))
	}
	if count > maxProofHashes {
		return nil, bad("more than %d proof hashes", maxProofHashes)
	}
	hashes := make([]byte, count*checkpoint.HashSize)
	r.InclusionProof = make([][]byte, count)
	for i := range count {
		l, _ = line()
		h := hashes[i*checkpoint.HashSize : (i+1)*checkpoint.HashSize]
		if len(l) != base64.StdEncoding.EncodedLen(checkpoint.HashSize) {
			return nil, bad("proof line %d is not the canonical base64 of %d bytes", i+1, checkpoint.HashSize)
		}
		var buf [checkpoint.HashSize + 1]byte // DecodedLen of a padded 44-byte text
		if n, err := strict.Decode(buf[:], l); err != nil || n != checkpoint.HashSize {
			return nil, bad("proof line %d is not the canonical base64 of %d bytes", i+1, checkpoint.HashSize)
		}
		copy(h, buf[:checkpoint.HashSize])
		r.InclusionProof[i] = h
	}
	if l, ok = line(); !ok || len(l) != 0 {
		return nil, bad("no empty line before the checkpoint")
	}
	r.Checkpoint = string(rest)
	if r.TreeSize, err = checkpointSize(r.Checkpoint); err != nil {
		return nil, bad("%v", err)
	}
	return r, nil
}

var tlogProofBuffers = sync.Pool{New: func() any { return new([]byte) }}

// sameAsTlogProof checks that a JSON receipt's tlog_proof is the receipt's
// own content, so that what is verified is what either form says. A
// tlog-proof of given content has one text (ParseTlogProof is strict, and
// FuzzParseTlogProof holds that what it accepts re-encodes to itself), so
// the check is a comparison with the receipt's own encoding.
func (r *Receipt) sameAsTlogProof() error {
	if size, err := checkpointSize(r.Checkpoint); err != nil || size != r.TreeSize || len(r.InclusionProof) > maxProofHashes {
		return fmt.Errorf("%w: tlog_proof is not the receipt's index, leaf, proof and checkpoint", ErrReceiptMalformed)
	}
	bp := tlogProofBuffers.Get().(*[]byte)
	defer tlogProofBuffers.Put(bp)
	own, err := r.appendTlogProof((*bp)[:0])
	if cap(own) <= 64<<10 {
		*bp = own
	}
	if err != nil {
		return err
	}
	if string(own) != r.TlogProof {
		return fmt.Errorf("%w: tlog_proof is not the receipt's index, leaf, proof and checkpoint", ErrReceiptMalformed)
	}
	return nil
}

// logEntry is a tlog-proof's extra data: the log's entry at the index, the
// data whose RFC 6962 leaf hash the inclusion proof starts from, so that a
// verifier that knows nothing of this log checks it with HashLeaf(extra).
// On a log of leaf version 2 the entry is the leaf; on version 3 it is the
// envelope (the body, which the envelope commits to, is not in the
// tlog-proof: it is served to those who may read it).
func (r *Receipt) logEntry() []byte {
	if r.Envelope != nil {
		return r.Envelope
	}
	return r.Leaf
}

// setLogEntry puts a tlog-proof's extra data (the log's entry) where the
// receipt holds it: an envelope of leaf version 3 in Envelope, with the
// body's hash (which the envelope names) as LeafHash and no Leaf; a leaf
// in Leaf.
func (r *Receipt) setLogEntry(entry []byte) {
	if event.IsEnvelope(entry) {
		r.Envelope = entry
		if e, err := event.ParseEnvelope(entry); err == nil {
			r.LeafHash = hex.EncodeToString(e.Body[:])
		}
		return
	}
	r.Leaf = entry
	r.LeafHash = hex.EncodeToString(event.LeafHash(entry))
}

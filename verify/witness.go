package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	fmtlog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
)

// ErrNotCosigned is returned by WitnessCheckpoint when the witness has
// cosigned nothing for the log yet (it answered 404).
var ErrNotCosigned = errors.New("witness has not cosigned this log")

// WitnessCheckpoint reads what w last cosigned for the log of logKey (the
// tlog-witness monitoring read) and checks both the witness's and the log's
// signature. It returns the checkpoint and the note as served.
func WitnessCheckpoint(ctx context.Context, hc *http.Client, w checkpoint.Witness, logKey note.Verifier) (*fmtlog.Checkpoint, []byte, error) {
	origin := logKey.Name()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.URL+"/"+checkpoint.OriginID(origin)+"/checkpoint", nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, client.MaxCheckpointBytes+1))
	if err != nil {
		return nil, nil, err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, nil, ErrNotCosigned
	case resp.StatusCode != http.StatusOK:
		return nil, nil, fmt.Errorf("witness %s answered %d", w.Name, resp.StatusCode)
	case len(raw) > client.MaxCheckpointBytes:
		return nil, nil, fmt.Errorf("witness %s: %w", w.Name, client.ErrResponseTooLarge)
	}
	n, err := note.Open(raw, note.VerifierList(logKey, w.Verifier))
	if err != nil {
		return nil, nil, fmt.Errorf("witness %s served a checkpoint that does not open: %w", w.Name, err)
	}
	var byLog, byWitness bool
	for _, s := range n.Sigs {
		byLog = byLog || (s.Name == logKey.Name() && s.Hash == logKey.KeyHash())
		byWitness = byWitness || (s.Name == w.Verifier.Name() && s.Hash == w.Verifier.KeyHash())
	}
	if !byLog || !byWitness {
		return nil, nil, fmt.Errorf("witness %s served a checkpoint without both the log's signature and its own", w.Name)
	}
	cp := new(fmtlog.Checkpoint)
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return nil, nil, fmt.Errorf("witness %s: %w", w.Name, err)
	}
	if cp.Origin != origin {
		return nil, nil, fmt.Errorf("witness %s served a checkpoint of origin %q", w.Name, cp.Origin)
	}
	return cp, raw, nil
}

// CompareWitness compares a witness's cosigned checkpoint wcp with the
// verified tree of size and root. known, if not nil, returns the root of an
// earlier size that was verified; for other sizes, consistent proves that
// the smaller tree is a prefix of the larger (Consistency over the log's
// tiles). It returns a split-view message, or "" when they are consistent
// (or cannot be compared yet: ahead is true when the witness saw a larger
// tree).
func CompareWitness(ctx context.Context, wcp *fmtlog.Checkpoint, size uint64, root []byte, known func(size uint64) ([]byte, bool),
	consistent func(ctx context.Context, from, to uint64, fromRoot, toRoot []byte) error) (msg string, ahead bool) {
	switch {
	case wcp.Size == size:
		if !bytes.Equal(wcp.Hash, root) {
			return fmt.Sprintf("cosigned root %x for size %d; the log's verified root is %x", wcp.Hash, size, root), false
		}
		return "", false
	case wcp.Size > size:
		return "", true
	}
	if known != nil {
		if r, ok := known(wcp.Size); ok {
			if !bytes.Equal(r, wcp.Hash) {
				return fmt.Sprintf("cosigned root %x for size %d; the monitor verified root %x for that size", wcp.Hash, wcp.Size, r), false
			}
			return "", false
		}
	}
	if err := consistent(ctx, wcp.Size, size, wcp.Hash, root); err != nil {
		return fmt.Sprintf("cosigned size %d root %x, which is not consistent with the verified checkpoint of size %d: %v", wcp.Size, wcp.Hash, size, err), false
	}
	return "", false
}

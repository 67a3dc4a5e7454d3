package monitor

import (
	"bytes"
	"context"
	"encoding/hex"
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

// errNotCosigned: the witness has cosigned nothing for the log yet.
var errNotCosigned = errors.New("witness has not cosigned this log")

// witnessCheckpoint reads what w last cosigned for origin (the tlog-witness
// monitoring read) and checks both the witness's and the log's signature.
func witnessCheckpoint(ctx context.Context, hc *http.Client, w checkpoint.Witness, origin string, logKey note.Verifier) (*fmtlog.Checkpoint, []byte, error) {
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
		return nil, nil, errNotCosigned
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

// witnessView compares a witness's cosigned checkpoint with the verified
// log. It returns a split-view message, or "" when they are consistent (or
// cannot be compared yet: ahead is true when the witness saw a larger tree).
func witnessView(ctx context.Context, wcp *fmtlog.Checkpoint, size uint64, root []byte, heads []head, tiles func(ctx context.Context, from, to uint64, fromRoot, toRoot []byte) error) (msg string, ahead bool) {
	switch {
	case wcp.Size == size:
		if !bytes.Equal(wcp.Hash, root) {
			return fmt.Sprintf("cosigned root %x for size %d; the log's verified root is %x", wcp.Hash, size, root), false
		}
		return "", false
	case wcp.Size > size:
		return "", true
	}
	for _, h := range heads {
		if h.Size == wcp.Size {
			if !bytes.Equal(h.Root, wcp.Hash) {
				return fmt.Sprintf("cosigned root %x for size %d; the monitor verified root %x for that size", wcp.Hash, wcp.Size, h.Root), false
			}
			return "", false
		}
	}
	if err := tiles(ctx, wcp.Size, size, wcp.Hash, root); err != nil {
		return fmt.Sprintf("cosigned size %d root %x, which is not consistent with the verified checkpoint of size %d: %v", wcp.Size, wcp.Hash, size, err), false
	}
	return "", false
}

// checkWitnesses asks every policy witness with a URL what it cosigned.
func (m *Monitor) checkWitnesses(ctx context.Context) error {
	if m.cfg.Policy == nil || m.pos == nil || m.pos.Checkpoint == nil {
		return nil
	}
	var alerts []Alert
	for _, w := range m.cfg.Policy.Witnesses() {
		if w.URL == "" {
			continue
		}
		wcp, raw, err := witnessCheckpoint(ctx, m.cfg.HTTPClient, w, m.origin, m.cfg.LogKey)
		if errors.Is(err, errNotCosigned) {
			continue
		}
		if err != nil {
			m.logger.Warn("reading a witness failed", "witness", w.Name, "error", err)
			continue
		}
		msg, ahead := witnessView(ctx, wcp, m.pos.Size, m.pos.Root, m.heads, m.servedConsistency)
		if ahead {
			if wcp.Size <= m.latestServed {
				continue // the log serves it too; compare once verified
			}
			first, ok := m.witnessAhead[w.Name]
			if !ok {
				m.witnessAhead[w.Name] = time.Now()
				continue
			}
			if time.Since(first) < m.cfg.WitnessLag {
				continue
			}
			msg = fmt.Sprintf("cosigned size %d, but the log has served at most size %d for %s", wcp.Size, m.latestServed, time.Since(first).Round(time.Second))
		} else {
			delete(m.witnessAhead, w.Name)
		}
		if msg == "" {
			continue
		}
		alerts = append(alerts, Alert{
			ID: alertID(m.origin, RuleSplitView, w.Name+"/"+hex.EncodeToString(hashOf(raw))), Rule: RuleSplitView,
			Severity: "critical", Source: SourceIntegrity, Origin: m.origin, TreeSize: m.pos.Size,
			Message: fmt.Sprintf("split view: witness %s %s", w.Name, msg),
			Details: map[string]any{"witness": w.Name, "witness_checkpoint": string(raw), "witness_size": wcp.Size},
		})
	}
	if len(alerts) == 0 {
		return nil
	}
	return m.raise(ctx, alerts...)
}

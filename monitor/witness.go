package monitor

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/llmaudittrail/llmaudittrail/verify"
)

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
		wcp, raw, err := verify.WitnessCheckpoint(ctx, m.cfg.HTTPClient, w, m.cfg.LogKey)
		if errors.Is(err, verify.ErrNotCosigned) {
			continue
		}
		if err != nil {
			m.logger.Warn("reading a witness failed", "witness", w.Name, "error", err)
			continue
		}
		msg, ahead := verify.CompareWitness(ctx, wcp, m.pos.Size, m.pos.Root, m.verifiedRoot, m.servedConsistency)
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
			ID: verify.FindingID(m.origin, verify.RuleSplitView, w.Name+"/"+hex.EncodeToString(hashOf(raw))), Rule: verify.RuleSplitView,
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

// verifiedRoot returns the root of a recent verified head of size.
func (m *Monitor) verifiedRoot(size uint64) ([]byte, bool) {
	for _, h := range m.heads {
		if h.Size == size {
			return h.Root, true
		}
	}
	return nil, false
}

package monitor

import (
	"context"
	"fmt"
	"time"

	"github.com/llmaudittrail/llmaudittrail/verify"
)

func (m *Monitor) noteUnreachable(ctx context.Context, cause error) error {
	now := time.Now()
	if m.unreachableSince.IsZero() {
		m.unreachableSince = now
	}
	if m.unreachableAlerted || now.Sub(m.unreachableSince) < m.cfg.UnreachableAfter {
		return nil
	}
	m.unreachableAlerted = true
	return m.raise(ctx, m.health(RuleLogUnreachable, "high", m.unreachableSince,
		fmt.Sprintf("the log at %s could not be read for %s: %v", m.cfg.Log.URL(), now.Sub(m.unreachableSince).Round(time.Second), cause)))
}

func (m *Monitor) health(rule, severity string, since time.Time, msg string) Alert {
	return Alert{
		ID: verify.FindingID(m.origin, rule, fmt.Sprint(since.UnixNano())), Rule: rule, Severity: severity,
		Message: msg, Source: SourceHealth, Origin: m.origin, Details: map[string]any{"since": nowString(since)},
	}
}

func (m *Monitor) checkStale(ctx context.Context, raw []byte, now time.Time) error {
	if m.cfg.MaxCheckpointAge <= 0 || m.staleAlerted {
		return nil
	}
	fresh := m.lastChange
	for _, ts := range cosignatures(m.cfg.Policy, raw) {
		if ts.After(fresh) {
			fresh = ts
		}
	}
	if now.Sub(fresh) < m.cfg.MaxCheckpointAge {
		return nil
	}
	m.staleAlerted = true
	return m.raise(ctx, m.health(RuleLogStale, "medium", fresh,
		fmt.Sprintf("the log has not published a new checkpoint for %s", now.Sub(fresh).Round(time.Second))))
}

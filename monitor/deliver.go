package monitor

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// sinksFor says where an alert goes.
func (m *Monitor) sinksFor(a Alert) map[string]bool {
	s := map[string]bool{sinkStdout: true}
	if m.cfg.Webhook != "" {
		s[sinkWebhook] = true
	}
	if m.cfg.AppendTo != nil && a.Kind != event.KindMonitorAlert {
		s[sinkAppend] = true
	}
	return s
}

// raise queues alerts without moving the position, and delivers them.
func (m *Monitor) raise(ctx context.Context, alerts ...Alert) error {
	return m.commit(ctx, commitSet{}, alerts)
}

// commit writes c with alerts queued for their sinks, then writes the
// queued alerts to stdout and wakes the other sinks.
func (m *Monitor) commit(ctx context.Context, c commitSet, alerts []Alert) error {
	now := nowString(time.Now())
	m.raised.Add(int64(len(alerts)))
	for _, a := range alerts {
		if a.Time == "" {
			a.Time = now
		}
		a.escape()
		c.alerts = append(c.alerts, queued{alert: a, sinks: m.sinksFor(a)})
	}
	rows, err := m.st.commit(context.WithoutCancel(ctx), c)
	if err != nil {
		return fatal(err)
	}
	if c.pos != nil {
		m.pos = c.pos
	}
	if c.head != nil {
		m.heads = append(m.heads, *c.head)
		if len(m.heads) > 1024 {
			m.heads = m.heads[len(m.heads)-1024:]
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if err := m.writeStdout(ctx, rows); err != nil {
		return err
	}
	for _, ch := range m.wake {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return nil
}

func (m *Monitor) writeStdout(ctx context.Context, rows []outboxRow) error {
	m.outMu.Lock()
	defer m.outMu.Unlock()
	seqs := make([]int64, 0, len(rows))
	var werr error
	for _, r := range rows {
		if werr = writeLine(m.cfg.Stdout, r.alert); werr != nil {
			break
		}
		seqs = append(seqs, r.seq)
	}
	if err := m.st.delivered(context.WithoutCancel(ctx), sinkStdout, seqs...); err != nil {
		return fatal(err)
	}
	if werr != nil {
		return fatal(fmt.Errorf("writing alert to stdout: %w", werr))
	}
	return nil
}

// redeliverStdout writes alerts that were queued but not recorded as
// written before the last stop, marked as redeliveries.
func (m *Monitor) redeliverStdout(ctx context.Context) error {
	for {
		rows, err := m.st.pending(ctx, sinkStdout, 1000)
		if err != nil {
			return fatal(err)
		}
		if len(rows) == 0 {
			return nil
		}
		for i := range rows {
			rows[i].alert.Redelivery = true
		}
		if err := m.writeStdout(ctx, rows); err != nil {
			return err
		}
	}
}

// deliverLoop sends queued alerts to one sink, in order, retrying each
// with exponential backoff until it is delivered or fails permanently.
func (m *Monitor) deliverLoop(ctx context.Context, sink string, send func(context.Context, Alert) error) {
	var failingSince time.Time
	alerted := false
	bo := client.Retry{Base: 500 * time.Millisecond, Max: time.Minute}
	for {
		rows, err := m.st.pending(ctx, sink, 100)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.logger.Error("reading alert outbox", "error", err)
		}
		if len(rows) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-m.wake[sink]:
			case <-time.After(5 * time.Second):
			}
			continue
		}
		for _, r := range rows {
			for attempt := 1; ; attempt++ {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := send(cctx, r.alert)
				cancel()
				if err == nil {
					failingSince, alerted = time.Time{}, false
					break
				}
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, errPermanent) {
					m.logger.Error("alert delivery failed permanently; dropping it for this sink", "sink", sink, "alert", r.alert.ID, "error", err)
					break
				}
				m.logger.Warn("alert delivery failed; will retry", "sink", sink, "alert", r.alert.ID, "attempt", attempt, "error", err)
				if failingSince.IsZero() {
					failingSince = time.Now()
				}
				if !alerted && time.Since(failingSince) >= m.cfg.UnreachableAfter {
					alerted = true
					h := m.health(RuleAlertDelivery, "high", failingSince, fmt.Sprintf("alerts could not be delivered to the %s for %s: %v", sink, time.Since(failingSince).Round(time.Second), err))
					if err := m.raise(ctx, h); err != nil {
						m.logger.Error("raising health alert", "error", err)
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(bo.Backoff(attempt)):
				}
			}
			if err := m.st.delivered(context.WithoutCancel(ctx), sink, r.seq); err != nil {
				m.logger.Error("recording alert delivery", "error", err)
				return
			}
		}
	}
}

func (m *Monitor) pendingDeliveries(ctx context.Context) (int, error) {
	n := 0
	for sink := range m.wake {
		c, err := m.st.countPending(ctx, sink)
		if err != nil {
			return 0, err
		}
		n = max(n, c)
	}
	return n, nil
}

// errPermanent marks a delivery failure that retrying cannot fix.
var errPermanent = errors.New("permanent delivery failure")

// postWebhook delivers a to a webhook. 2xx is success; 4xx other than 408
// and 429 is permanent.
func postWebhook(ctx context.Context, hc *http.Client, url string, a Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", a.ID)
	req.Header.Set("User-Agent", "llmaudittrail-monitor")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return statusError("webhook", resp.StatusCode)
}

func statusError(what string, code int) error {
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("%s answered %d", what, code)
	default:
		return fmt.Errorf("%w: %s answered %d", errPermanent, what, code)
	}
}

// maybeStatus appends a monitor.status event when one is due.
func (m *Monitor) maybeStatus(ctx context.Context) {
	if m.cfg.AppendTo == nil || m.cfg.StatusInterval < 0 || m.pos == nil || time.Since(m.lastStatus) < m.cfg.StatusInterval {
		return
	}
	raised := m.raised.Load()
	attrs := map[string]any{
		event.AttrMonitorInstance: m.cfg.Instance, event.AttrMonitorVerifiedSize: m.pos.Size, event.AttrMonitorVerifiedRoot: hex.EncodeToString(m.pos.Root),
		event.AttrMonitorEvaluated: m.pos.Pos, event.AttrMonitorAlertsSinceLast: raised - m.statusRaised, event.AttrMonitorIntervalS: int64(m.cfg.StatusInterval / time.Second),
	}
	ev := &event.Request{Session: event.MonitorPrefix + m.cfg.Instance, Kind: event.KindMonitorStatus,
		Actor: event.Actor{Type: event.ActorSystem, ID: event.MonitorPrefix + m.cfg.Instance}, Attributes: map[string]json.RawMessage{}}
	for k, v := range attrs {
		ev.Attributes[k], _ = json.Marshal(v)
	}
	if _, err := m.cfg.AppendTo.Append(ctx, []*event.Request{ev}); err != nil {
		m.logger.Warn("appending monitor.status failed; will retry", "error", err)
		return
	}
	m.lastStatus, m.statusRaised = time.Now(), raised
}

// appendAlert appends a to the log as a monitor.alert event.
func appendAlert(ctx context.Context, c *client.Client, instance string, a Alert) error {
	attrs := map[string]any{
		event.AttrMonitorAlertID: a.ID, event.AttrMonitorRule: a.Rule, event.AttrMonitorSeverity: a.Severity,
		event.AttrMonitorMessage: event.Shorten(a.Message, 4000), event.AttrMonitorSource: a.Source,
		event.AttrMonitorRaisedAt: a.Time,
	}
	if a.Index != nil {
		attrs[event.AttrMonitorIndex] = *a.Index
	}
	for k, v := range map[string]string{event.AttrMonitorTenant: a.Tenant, event.AttrMonitorSession: a.Session, event.AttrMonitorEventID: a.EventID, event.AttrMonitorKind: a.Kind} {
		if v != "" {
			attrs[k] = event.Shorten(v, 4000)
		}
	}
	if a.TreeSize > 0 {
		attrs[event.AttrMonitorTreeSize] = a.TreeSize
	}
	ev := &event.Request{
		Session:    event.MonitorPrefix + instance,
		Kind:       event.KindMonitorAlert,
		Actor:      event.Actor{Type: event.ActorSystem, ID: event.MonitorPrefix + instance},
		Attributes: map[string]json.RawMessage{},
	}
	for k, v := range attrs {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("%w: %v", errPermanent, err)
		}
		ev.Attributes[k] = b
	}
	// An alert about a session is written in the session's tenant (a
	// global token names it), so that the tenant's compliance report
	// counts it; an alert about the log itself is in the token's tenant,
	// and so is one that the token may not write in the session's tenant
	// (a token of another tenant).
	var opts []client.AppendOption
	if a.Tenant != "" && event.ValidID(a.Tenant) {
		opts = append(opts, client.InTenant(a.Tenant))
	}
	_, err := c.Append(ctx, []*event.Request{ev}, opts...)
	if len(opts) > 0 && errors.Is(err, client.ErrForbidden) {
		_, err = c.Append(ctx, []*event.Request{ev})
	}
	var se *client.Error
	switch {
	case err == nil, errors.Is(err, client.ErrOtherTenant):
		// ErrOtherTenant: a server that does not take ?tenant= wrote the
		// alert in the token's tenant; it is in the log.
		return nil
	case errors.Is(err, client.ErrUnauthenticated), errors.Is(err, client.ErrForbidden):
		// A token problem an operator can fix: keep retrying.
		return fmt.Errorf("log refused the append token: %w", err)
	case errors.As(err, &se):
		if err := statusError("log", se.StatusCode); err != nil {
			return fmt.Errorf("%w: %v", err, se)
		}
	}
	return err
}

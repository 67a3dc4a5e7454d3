package monitor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Alert sources.
const (
	SourceRule      = "rule"      // a rule of the rule file matched an entry
	SourceIntegrity = "integrity" // the log's data or signatures failed verification
	SourceHealth    = "health"    // the log, its witnesses or an alert sink misbehave
)

// Health alerts.
const (
	// RuleLogUnreachable: the log's checkpoint, tiles or bundles could not be
	// read for longer than Config.UnreachableAfter.
	RuleLogUnreachable = "health.log_unreachable"
	// RuleLogStale: the log has not published a new checkpoint (nor fresh
	// witness cosignatures) for longer than Config.MaxCheckpointAge.
	RuleLogStale = "health.log_stale"
	// RuleWitnessQuorum: the log's checkpoints have lacked the policy's
	// witness quorum for longer than Config.QuorumAfter.
	RuleWitnessQuorum = "health.witness_quorum"
	// RuleAlertDelivery: alerts could not be delivered to a webhook or
	// appended to the log for longer than Config.UnreachableAfter.
	RuleAlertDelivery = "health.alert_delivery"
)

// Alert is one alert, as written to stdout (one JSON object per line) and
// posted to the webhook.
type Alert struct {
	// ID is stable: the same finding gets the same ID after a restart, so
	// receivers can drop duplicates.
	ID       string `json:"id"`
	Time     string `json:"time"` // when the monitor raised it (RFC 3339, UTC)
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	// Index is the log index of the entry that caused the alert, if any.
	Index   *uint64 `json:"index,omitempty"`
	Message string  `json:"message"`
	Source  string  `json:"source"`
	Origin  string  `json:"origin"`
	// The entry's identity, for rule alerts.
	Tenant    string `json:"tenant,omitempty"`
	Session   string `json:"session,omitempty"`
	EventID   string `json:"event_id,omitempty"`
	Kind      string `json:"kind,omitempty"`
	EventTime string `json:"event_time,omitempty"`
	Group     string `json:"group,omitempty"`
	// TreeSize is the size of the verified checkpoint the alert was raised at.
	TreeSize uint64         `json:"tree_size,omitempty"`
	Details  map[string]any `json:"details,omitempty"`
	// Redelivery is set when an alert is written again after a restart
	// because the monitor stopped before recording that it had been written.
	Redelivery bool `json:"redelivery,omitempty"`
}

// alertID derives an alert's stable ID.
func alertID(origin, rule, key string) string {
	h := sha256.Sum256([]byte(origin + "\x00" + rule + "\x00" + key))
	return hex.EncodeToString(h[:16])
}

func findingAlert(origin string, f finding, size uint64) Alert {
	return Alert{
		ID: alertID(origin, f.rule, f.key), Rule: f.rule, Severity: "critical", Index: f.index,
		Message: f.message, Source: SourceIntegrity, Origin: origin, TreeSize: size, Details: f.details,
	}
}

// writeLine writes a as one JSON line.
func writeLine(w io.Writer, a Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
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

// appendAlert appends a to the log as a monitor.alert event.
func appendAlert(ctx context.Context, hc *http.Client, base, token, instance string, a Alert) error {
	attrs := map[string]any{
		"monitor.alert_id": a.ID, "monitor.rule": a.Rule, "monitor.severity": a.Severity,
		"monitor.message": truncate(a.Message, 4000), "monitor.source": a.Source,
		"monitor.raised_at": a.Time,
	}
	if a.Index != nil {
		attrs["monitor.index"] = *a.Index
	}
	for k, v := range map[string]string{"monitor.tenant": a.Tenant, "monitor.session": a.Session, "monitor.event_id": a.EventID, "monitor.kind": a.Kind} {
		if v != "" {
			attrs[k] = truncate(v, 4000)
		}
	}
	if a.TreeSize > 0 {
		attrs["monitor.tree_size"] = a.TreeSize
	}
	ev := map[string]any{
		"session":    "monitor." + instance,
		"kind":       "monitor.alert",
		"actor":      map[string]string{"type": "system", "id": "monitor." + instance},
		"attributes": attrs,
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/v1/events", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		// A token problem an operator can fix: keep retrying.
		return fmt.Errorf("log refused the append token (%d): %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	if err := statusError("log", resp.StatusCode); err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(body))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "..."
}

func nowString(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func itoa(u uint64) string { return strconv.FormatUint(u, 10) }

package monitor

import (
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// Alert sources.
const (
	SourceRule      = "rule"                 // a rule of the rule file matched an entry
	SourceIntegrity = verify.SourceIntegrity // the log's data or signatures failed verification (verify.Finding)
	SourceHealth    = "health"               // the log, its witnesses or an alert sink misbehave
)

// Health alerts; and verify.RuleWitnessQuorum, raised when the log's
// checkpoints have lacked the policy's witness quorum for longer than
// Config.QuorumAfter. Integrity alerts have the rules of verify's findings.
const (
	// RuleLogUnreachable: the log's checkpoint, tiles or bundles could not be
	// read for longer than Config.UnreachableAfter.
	RuleLogUnreachable = "health.log_unreachable"
	// RuleLogStale: the log has not published a new checkpoint (nor fresh
	// witness cosignatures) for longer than Config.MaxCheckpointAge.
	RuleLogStale = "health.log_stale"
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

// escape makes the alert's text fields, which may hold values written to
// the log (a rule's message names attributes, its group is one), visible
// text of one line (event.SafeText) before the alert is delivered anywhere:
// a right-to-left override in a tool name must not reorder the alert in a
// terminal, a chat channel or the log.
func (a *Alert) escape() {
	a.Message, a.Group = event.SafeText(a.Message), event.SafeText(a.Group)
	a.Tenant, a.Session, a.EventID, a.Kind = event.SafeText(a.Tenant), event.SafeText(a.Session), event.SafeText(a.EventID), event.SafeText(a.Kind)
}

// alertOf is the alert that raises a finding of the log's verification.
func alertOf(f verify.Finding) Alert {
	return Alert{
		ID: f.ID, Time: f.Time, Rule: f.Rule, Severity: f.Severity, Index: f.Index, Message: f.Message, Source: f.Source,
		Origin: f.Origin, Tenant: f.Tenant, Session: f.Session, TreeSize: f.TreeSize, Details: f.Details,
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

func nowString(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func itoa(u uint64) string { return strconv.FormatUint(u, 10) }

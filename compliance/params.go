package compliance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Params are the gates and thresholds the controls apply: the "controls"
// section of the compliance configuration file (--compliance-config), the
// same file as the retention floors. Every report carries the parameters it
// was computed with, and verify-report recomputes with those.
type Params struct {
	// SampleSize is how many in-period entries get an inclusion proof in the
	// report, and how many payloads are read back to check that they still
	// decrypt and open their commitment.
	SampleSize int `json:"sample_size" yaml:"sample_size"`
	// RequireWitnessQuorum: the report's checkpoint must meet a witness
	// policy (21 CFR 11.10(a), SOX operations).
	RequireWitnessQuorum bool `json:"require_witness_quorum" yaml:"require_witness_quorum"`
	// Gates (21 CFR 11.10(f)): a tool call of Tools needs, earlier in its
	// session, a valid human signature with Meaning.
	Gates []Gate `json:"gates" yaml:"gates"`
	// SessionIdle and SessionMax are the signing-session limits the server
	// enforces (21 CFR 11.200): in-session signings are checked against
	// them.
	SessionIdle Duration `json:"session_idle" yaml:"session_idle"`
	SessionMax  Duration `json:"session_max" yaml:"session_max"`
	// ApprovalOutcomes are the agent.decision outcomes that count as an
	// approval (segregation of duties).
	ApprovalOutcomes []string `json:"approval_outcomes" yaml:"approval_outcomes"`
	// TwoPersonTools (EU AI Act Art. 14(5)) need approvals by two distinct
	// people before the call.
	TwoPersonTools []string `json:"two_person_tools" yaml:"two_person_tools"`
	// IncidentDeadlines (Art. 73) by incident.classification; "default"
	// for the rest.
	IncidentDeadlines map[string]Duration `json:"incident_deadlines" yaml:"incident_deadlines"`
	// MaxCaptureOutage is the longest total capture outage (capture.gap)
	// in the period that still counts as automatic logging (Art. 12(1)).
	MaxCaptureOutage Duration `json:"max_capture_outage" yaml:"max_capture_outage"`
	// MonitorStatusInterval: the monitor must have reported
	// (monitor.status) at least this often over the period (Art. 72); a gap
	// of twice it fails.
	MonitorStatusInterval Duration `json:"monitor_status_interval" yaml:"monitor_status_interval"`
}

// Gate is one 11.10(f) sequencing rule.
type Gate struct {
	Tools   []string `json:"tools" yaml:"tools"`
	Meaning string   `json:"meaning" yaml:"meaning"`
}

// DefaultParams are the parameters of a configuration that sets none.
func DefaultParams() Params {
	return Params{
		SampleSize:           8,
		RequireWitnessQuorum: true,
		Gates:                []Gate{},
		SessionIdle:          Duration(15 * time.Minute),
		SessionMax:           Duration(8 * time.Hour),
		ApprovalOutcomes:     []string{"approved", "approve"},
		TwoPersonTools:       []string{},
		IncidentDeadlines: map[string]Duration{
			"default": Duration(15 * 24 * time.Hour), "widespread": Duration(2 * 24 * time.Hour),
			"critical_infrastructure": Duration(2 * 24 * time.Hour), "death": Duration(10 * 24 * time.Hour),
		},
		MaxCaptureOutage:      0,
		MonitorStatusInterval: Duration(time.Hour),
	}
}

// MaxSampleSize caps SampleSize.
const MaxSampleSize = 1000

// ParseParams reads the "controls" section of a compliance configuration
// (YAML; other top-level keys belong to the retention floors). Unknown keys
// inside it are errors; what it leaves out keeps its default.
func ParseParams(config []byte) (Params, error) {
	p := DefaultParams()
	if len(bytes.TrimSpace(config)) == 0 {
		return p, nil
	}
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(config, &doc); err != nil {
		return p, fmt.Errorf("compliance config: %w", err)
	}
	node, ok := doc["controls"]
	if !ok {
		return p, nil
	}
	b, err := yaml.Marshal(&node)
	if err != nil {
		return p, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("compliance config: controls: %w", err)
	}
	return p, p.Check()
}

// Check reports what is wrong with p.
func (p *Params) Check() error {
	switch {
	case p.SampleSize < 0 || p.SampleSize > MaxSampleSize:
		return fmt.Errorf("sample_size: 0 to %d", MaxSampleSize)
	case p.SessionIdle <= 0 || p.SessionMax < p.SessionIdle:
		return errors.New("session_idle must be positive and session_max at least as long")
	case p.MaxCaptureOutage < 0 || p.MonitorStatusInterval <= 0:
		return errors.New("max_capture_outage must be 0 or more and monitor_status_interval positive")
	}
	for i, g := range p.Gates {
		if len(g.Tools) == 0 || g.Meaning == "" {
			return fmt.Errorf("gates[%d]: name tools and a meaning", i)
		}
	}
	if _, ok := p.IncidentDeadlines["default"]; !ok {
		return errors.New("incident_deadlines: a default is required")
	}
	for _, l := range [][]string{p.ApprovalOutcomes, p.TwoPersonTools} {
		for _, x := range l {
			if !event.ValidID(x) {
				return fmt.Errorf("%q is not a valid name", x)
			}
		}
	}
	if p.Gates == nil {
		p.Gates = []Gate{}
	}
	if p.TwoPersonTools == nil {
		p.TwoPersonTools = []string{}
	}
	slices.Sort(p.TwoPersonTools)
	return nil
}

// Duration is a time.Duration written as Go writes it ("15m", "8h0m0s") or
// in days ("15d").
type Duration time.Duration

func parseDuration(s string) (Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 100000 {
			return 0, fmt.Errorf("duration %q", s)
		}
		return Duration(time.Duration(n) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return Duration(d), nil
}

func (d Duration) String() string {
	if d > 0 && time.Duration(d)%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(time.Duration(d)/(24*time.Hour)), 10) + "d"
	}
	return time.Duration(d).String()
}

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := parseDuration(s)
	*d = v
	return err
}

// UnmarshalYAML reads a string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	*d = v
	return err
}

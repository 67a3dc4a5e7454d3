package compliance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Params are the gates and thresholds the controls apply: the "controls"
// section of the compliance configuration file (--compliance-config), the
// same file as the retention floors. Every report carries the parameters it
// was computed with, and verify-report recomputes with those. Those of
// every profile are here, in every report; each profile's own are declared
// in its file (ProfileParams).
type Params struct {
	// SampleSize is how many in-period entries get an inclusion proof in the
	// report, and how many payloads are read back to check that they still
	// decrypt and open their commitment.
	SampleSize int `json:"sample_size" yaml:"sample_size"`
	// RequireWitnessQuorum: the report's checkpoint must meet a witness
	// policy (the controls of integrity and of operations).
	RequireWitnessQuorum bool `json:"require_witness_quorum" yaml:"require_witness_quorum"`
	ProfileParams        `yaml:",inline"`
}

// DefaultParams are the parameters of a configuration that sets none.
func DefaultParams() Params {
	p := Params{SampleSize: 8, RequireWitnessQuorum: true}
	for _, prof := range profiles {
		if prof.Defaults != nil {
			prof.Defaults(&p)
		}
	}
	return p
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

// Check reports what is wrong with p: the common parameters, then each
// profile's (Profile.Check).
func (p *Params) Check() error {
	if p.SampleSize < 0 || p.SampleSize > MaxSampleSize {
		return fmt.Errorf("sample_size: 0 to %d", MaxSampleSize)
	}
	for _, prof := range profiles {
		if prof.Check == nil {
			continue
		}
		if err := prof.Check(p); err != nil {
			return err
		}
	}
	return nil
}

// checkNames reports the first of names that is not a valid name.
func checkNames(names []string) error {
	for _, x := range names {
		if !event.ValidID(x) {
			return fmt.Errorf("%q is not a valid name", x)
		}
	}
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

package compliance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/profile"
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
// (YAML; other top-level keys belong to the retention floors) over the
// defaults and what the configuration's own profiles (its "profiles" key)
// switch on: ParamsFor those profiles.
func ParseParams(config []byte) (Params, error) {
	profiles, err := configProfiles(config)
	if err != nil {
		return DefaultParams(), err
	}
	return ParamsFor(profiles, config)
}

// ParamsFor are the report parameters of a log running profiles: the
// defaults, what each profile switches on (Profile.Enable), and over them
// the "controls" section of the compliance configuration (YAML; nil: none),
// where the operator overrides any of them. Unknown keys inside it are
// errors; what it leaves out keeps its value.
func ParamsFor(profiles []string, config []byte) (Params, error) {
	p := DefaultParams()
	for _, name := range profiles {
		prof, ok := profileByName(name)
		if !ok {
			return p, fmt.Errorf("compliance config: %w", profile.Unknown(name))
		}
		if prof.Enable != nil {
			prof.Enable(&p)
		}
	}
	node, err := configSection(config, "controls")
	if err != nil || node == nil {
		return p, errors.Join(err, p.Check())
	}
	b, err := yaml.Marshal(node)
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

// RuleParamsFor are the monitor rule parameters (params.* in rule files)
// of a log running profiles: those the profiles set (Profile.RuleParams,
// in registration order), and over them the "monitor" section of the
// compliance configuration (YAML; nil: none). The monitor's own rule file
// overrides both.
func RuleParamsFor(profiles []string, config []byte) (map[string]any, error) {
	out := map[string]any{}
	for _, prof := range profiles {
		if p, ok := profileByName(prof); ok {
			maps.Copy(out, p.RuleParams)
		}
	}
	node, err := configSection(config, "monitor")
	if err != nil || node == nil {
		return out, err
	}
	var m map[string]any
	if err := node.Decode(&m); err != nil {
		return out, fmt.Errorf("compliance config: monitor: %w", err)
	}
	maps.Copy(out, m)
	return out, nil
}

// configSection is a top-level section of a compliance configuration (nil
// if it has none).
func configSection(config []byte, name string) (*yaml.Node, error) {
	if len(bytes.TrimSpace(config)) == 0 {
		return nil, nil
	}
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(config, &doc); err != nil {
		return nil, fmt.Errorf("compliance config: %w", err)
	}
	node, ok := doc[name]
	if !ok {
		return nil, nil
	}
	return &node, nil
}

// configProfiles are the profiles a compliance configuration names for
// every tenant (its "profiles" key).
func configProfiles(config []byte) ([]string, error) {
	node, err := configSection(config, "profiles")
	if err != nil || node == nil {
		return nil, err
	}
	var names []string
	if err := node.Decode(&names); err != nil {
		return nil, fmt.Errorf("compliance config: profiles: %w", err)
	}
	return names, nil
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

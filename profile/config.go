package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// The compliance.config event: what a log runs under, as the server
// recorded it. At start the server appends one for the default scope (in
// tenant DefaultTenant) and one for each tenant with profiles of its own,
// whenever it differs from the one last recorded there, in the session
// event.SessionCompliance. Its attributes are the profiles in force and
// what they switch on with the operator's overrides: the compliance
// reports' parameters and the monitor's rule parameters. The monitor and
// monitor report read them from the log instead of from flags and files
// of their own.
const (
	// KindConfig is the event's kind (server-only: event's table).
	KindConfig = "compliance.config"
	// AttrScope is ScopeDefault or ScopeTenant.
	AttrScope = "compliance.scope"
	// AttrProfiles lists the profiles in force (names registered here).
	AttrProfiles = "compliance.profiles"
	// AttrControls is the reports' parameters, a JSON object (the
	// "parameters" of a report).
	AttrControls = "compliance.controls"
	// AttrRuleParams is the monitor's rule parameters (params.*), a JSON
	// object.
	AttrRuleParams = "compliance.rule_params"
)

// Scopes of a compliance.config event.
const (
	ScopeDefault = "default" // every tenant without a scope of its own
	ScopeTenant  = "tenant"  // the event's tenant
)

// DefaultTenant is the tenant whose compliance session holds the default
// scope's events (the server's default tenant).
const DefaultTenant = "default"

// Config is a compliance.config event.
type Config struct {
	// Index is the event's index in the log (ParseConfig sets it).
	Index  uint64
	Tenant string
	Scope  string
	// Profiles are the profiles in force.
	Profiles []string
	// Controls are the reports' parameters, a JSON object.
	Controls json.RawMessage
	// RuleParams are the monitor's rule parameters, a JSON object.
	RuleParams json.RawMessage
}

// ErrNotConfig is wrapped by ParseConfig's errors.
var ErrNotConfig = errors.New("not a compliance.config event of the server")

// Request is the event that records c, for the server to append in
// c.Tenant. Controls and RuleParams must be JSON objects that fit an
// attribute (event.MaxAttrValueLength bytes each).
func (c *Config) Request() (*event.Request, error) {
	str := func(v any) json.RawMessage {
		b, _ := json.Marshal(v)
		return b
	}
	for name, v := range map[string]json.RawMessage{AttrControls: c.Controls, AttrRuleParams: c.RuleParams} {
		if err := checkObject(v); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(v) > event.MaxAttrValueLength {
			return nil, fmt.Errorf("%s: %d bytes, more than an attribute holds (%d)", name, len(v), event.MaxAttrValueLength)
		}
	}
	profiles := c.Profiles
	if profiles == nil {
		profiles = []string{}
	}
	return &event.Request{
		Session: event.SessionCompliance, Kind: KindConfig, Actor: event.ServerActor,
		Attributes: map[string]json.RawMessage{
			AttrScope: str(c.Scope), AttrProfiles: str(profiles),
			AttrControls: str(string(c.Controls)), AttrRuleParams: str(string(c.RuleParams)),
		},
	}, nil
}

// ParseConfig reads the compliance.config event l at index: a leaf of the
// server (its kind, session, actor and writer), whose attributes are
// well-formed. The leaf must come from a verified read of the log.
func ParseConfig(index uint64, l *event.Leaf) (*Config, error) {
	if l.Kind != KindConfig || l.Session != event.SessionCompliance || l.Actor != event.ServerActor || l.Writer == nil || l.Writer.Via != event.ViaServer {
		return nil, fmt.Errorf("%w: entry %d is a %s in session %s", ErrNotConfig, index, l.Kind, l.Session)
	}
	a := l.Attributes
	c := &Config{Index: index, Tenant: l.Tenant, Scope: a.String(AttrScope), Profiles: a.Strings(AttrProfiles),
		Controls: json.RawMessage(a.String(AttrControls)), RuleParams: json.RawMessage(a.String(AttrRuleParams))}
	if c.Scope != ScopeDefault && c.Scope != ScopeTenant {
		return nil, fmt.Errorf("%w: entry %d: scope %q", ErrNotConfig, index, c.Scope)
	}
	for name, v := range map[string]json.RawMessage{AttrControls: c.Controls, AttrRuleParams: c.RuleParams} {
		if err := checkObject(v); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %s: %v", ErrNotConfig, index, name, err)
		}
	}
	if c.Profiles == nil {
		c.Profiles = []string{}
	}
	return c, nil
}

// Same reports whether c and d record the same configuration (wherever
// and whenever they were recorded).
func (c *Config) Same(d *Config) bool {
	return c.Scope == d.Scope && slices.Equal(c.Profiles, d.Profiles) &&
		bytes.Equal(c.Controls, d.Controls) && bytes.Equal(c.RuleParams, d.RuleParams)
}

func checkObject(v json.RawMessage) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil || m == nil {
		return errors.New("not a JSON object")
	}
	return nil
}

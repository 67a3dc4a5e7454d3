package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/llmaudittrail/llmaudittrail/verify"
	"maps"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/profile"
)

// The rule parameters the log sets: the server records what its
// compliance profiles need of the monitor (and what its compliance
// configuration overrides) in compliance.config events (profile.Config),
// per scope, the default one and tenants' own. An event sees params as the
// rule file's params over those of its tenant's scope in force (else the
// default scope's): the rule file overrides the log. A config event takes
// effect from the next entry on, so a replay gives the same alerts.

// nsConfig is the namespace of the persisted rule parameters of the log's
// scopes, keyed by configKey.
const nsConfig = "c"

// configState is a scope's compliance.config as the engine keeps it.
type configState struct {
	Index    uint64         `json:"index"`
	Profiles []string       `json:"profiles"`
	Params   map[string]any `json:"params"`
}

// configKey is the state key of a config's scope.
func configKey(scope, tenant string) string {
	if scope == profile.ScopeDefault {
		return profile.ScopeDefault
	}
	return "tenant/" + tenant
}

// config returns the rule parameters recorded for a scope (nil: none).
func (en *engine) config(key string) (*configState, error) {
	if c, ok := en.configs[key]; ok {
		return c, nil
	}
	var c *configState
	if en.kv != nil {
		b, ok, err := en.kv.get(nsConfig, key)
		if err != nil {
			return nil, err
		}
		if ok {
			if c, err = decodeConfigState(b); err != nil {
				return nil, fmt.Errorf("config state %q: %w", key, err)
			}
		}
	}
	en.configs[key] = c
	return c, nil
}

// paramsFor is what params is for an event of tenant: the rule file's
// params over those the log sets for the tenant.
func (en *engine) paramsFor(tenant string) (map[string]any, error) {
	if p, ok := en.tenantParams[tenant]; ok {
		return p, nil
	}
	c, err := en.config(configKey(profile.ScopeTenant, tenant))
	if err == nil && c == nil {
		c, err = en.config(configKey(profile.ScopeDefault, ""))
	}
	if err != nil {
		return nil, err
	}
	p := en.rules.params
	if c != nil && len(c.Params) > 0 {
		p = maps.Clone(c.Params)
		maps.Copy(p, en.rules.params)
	}
	if len(en.tenantParams) >= 10_000 {
		clear(en.tenantParams)
	}
	en.tenantParams[tenant] = p
	return p, nil
}

// setConfig records a compliance.config: its scope's rule parameters from
// now on.
func (en *engine) setConfig(c *profile.Config) error {
	var params map[string]any
	if err := decodeJSON(c.RuleParams, &params); err != nil {
		return fmt.Errorf("entry %d: %s: %w", c.Index, profile.AttrRuleParams, err)
	}
	key := configKey(c.Scope, c.Tenant)
	en.configs[key] = &configState{Index: c.Index, Profiles: c.Profiles, Params: params}
	en.dirty[[2]string{nsConfig, key}] = true
	clear(en.tenantParams)
	return nil
}

// seeConfig takes a verified entry's compliance.config, if it is one.
func (en *engine) seeConfig(index uint64, l *event.Leaf) {
	if l.Kind != profile.KindConfig {
		return
	}
	c, err := profile.ParseConfig(index, l)
	if err == nil {
		err = en.setConfig(c)
	}
	if err != nil {
		en.logger.Warn("a compliance.config entry is not one the monitor can use; the rule parameters stay as they were", "index", index, "error", err)
	}
}

// decodeConfigState reads a persisted configState.
func decodeConfigState(b []byte) (*configState, error) {
	var c configState
	if err := decodeJSON(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// decodeJSON decodes b into v and converts what v holds as any (numbers
// as json.Number) into the forms CEL handles, as normalizeParams does for
// YAML: int64, float64, string, bool, []any and map[string]any. A nil map
// of parameters becomes an empty one.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	switch x := v.(type) {
	case *map[string]any:
		*x = celValue(*x).(map[string]any)
	case *configState:
		x.Params = celValue(x.Params).(map[string]any)
	}
	return nil
}

// loadConfigs reads the compliance.config events among the log's first
// size entries (a new monitor starting past them) and takes the latest of
// each scope: what the log set before the monitor's first entry.
func (m *Monitor) loadConfigs(ctx context.Context, size uint64) error {
	if size == 0 {
		return nil
	}
	tenants, err := verify.ComplianceTenants(ctx, m.cfg.Log)
	if errors.Is(err, client.ErrUnauthenticated) || errors.Is(err, client.ErrForbidden) {
		m.logger.Warn("the log's compliance configuration cannot be read with this token (a log-wide read token reads it): "+
			"the rules see the rule file's params only, until the log records a new one", "error", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing the log's compliance configurations: %w", err)
	}
	for _, t := range tenants {
		cs, err := verify.ComplianceConfigs(ctx, m.cfg.Log, t, size, m.cfg.LogKey)
		if err != nil {
			return fmt.Errorf("reading the log's compliance configuration (tenant %s): %w", t, err)
		}
		for _, c := range cs {
			if err := m.en.setConfig(c); err != nil {
				return err
			}
		}
	}
	return nil
}

package governance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/llmaudittrail/llmaudittrail/event"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/profile"
)

// ComplianceSettings says what compliance profiles switch on
// (compliance.Reporter implements it). RecordCompliance records it in the
// log, a compliance.config event per scope (profile.Config), where the
// monitor and monitor report read it.
type ComplianceSettings interface {
	// ComplianceSettings returns, for a scope running profiles, the report
	// parameters and the monitor rule parameters (JSON objects) they
	// switch on, with the compliance configuration's overrides; record
	// says whether they are worth recording where nothing was recorded
	// before (some profile, or something configured).
	ComplianceSettings(profiles []string) (controls, ruleParams []byte, record bool, err error)
}

// RecordCompliance appends a compliance.config event for the default
// scope (in profile.DefaultTenant) and for each tenant of the retention
// floors in force (Config.Floors), whose settings differ from those last
// recorded there. Without floors it does nothing.
func (c *Clerk) RecordCompliance(ctx context.Context, cs ComplianceSettings) error {
	floors := c.cfg.Floors
	if floors == nil {
		return nil
	}
	scopes := []*profile.Config{{Tenant: profile.DefaultTenant, Scope: profile.ScopeDefault, Profiles: floors.DefaultProfiles}}
	for _, t := range slices.Sorted(maps.Keys(floors.Tenants)) {
		_, profiles := floors.For(t)
		scopes = append(scopes, &profile.Config{Tenant: t, Scope: profile.ScopeTenant, Profiles: profiles})
	}
	for _, sc := range scopes {
		var record bool
		var err error
		if sc.Controls, sc.RuleParams, record, err = cs.ComplianceSettings(sc.Profiles); err != nil {
			return err
		}
		last, err := c.lastCompliance(ctx, sc.Tenant, sc.Scope)
		if err != nil {
			return err
		}
		if (last == nil && !record) || (last != nil && last.Same(sc)) {
			continue
		}
		req, err := sc.Request()
		if err != nil {
			return err
		}
		if _, err := c.log.Append(ctx, sc.Tenant, event.Writer{Token: c.cfg.ServerToken, Via: event.ViaServer}, []*event.Request{req}); err != nil {
			return fmt.Errorf("recording %s: %w", profile.KindConfig, err)
		}
	}
	return nil
}

// lastCompliance is the compliance.config of scope last recorded in
// tenant's compliance session, or nil.
func (c *Clerk) lastCompliance(ctx context.Context, tenant, scope string) (*profile.Config, error) {
	var last *profile.Config
	for from := uint64(0); ; {
		evs, err := c.log.Session(ctx, tenant, event.SessionCompliance, from, 1000)
		if errors.Is(err, auditlog.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if len(evs) == 0 {
			return last, nil
		}
		size, err := c.log.Reader().IntegratedSize(ctx)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			from = e.Seq + 1
			if e.Kind != profile.KindConfig {
				continue
			}
			data, err := c.log.ReadLeaf(ctx, e.Index, size)
			if err != nil {
				return nil, err
			}
			l, err := event.ParseLeaf(data)
			if err != nil {
				return nil, err
			}
			if cfg, err := profile.ParseConfig(e.Index, l); err == nil && cfg.Scope == scope {
				last = cfg
			}
		}
	}
}

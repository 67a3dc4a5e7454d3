package compliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/profile"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// LogParams are the report parameters the log records for tenant among its
// first size entries: the controls of the latest compliance.config event
// of the server (profile.Config) of the tenant's own scope, else of the
// default scope, over DefaultParams. A log that records none has the
// defaults; a report on every tenant (api.AllTenants) has the default
// scope's. The events are read from the log's compliance sessions, verified
// (client.ComplianceConfigs).
func LogParams(ctx context.Context, src Source, tenant string, size uint64) (Params, error) {
	cfg, err := configInForce(ctx, src, tenant, size)
	if err != nil || cfg == nil {
		return DefaultParams(), err
	}
	p := DefaultParams()
	dec := json.NewDecoder(bytes.NewReader(cfg.Controls))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("the report parameters of the log's compliance.config at entry %d: %w", cfg.Index, err)
	}
	if err := p.Check(); err != nil {
		return p, fmt.Errorf("the report parameters of the log's compliance.config at entry %d: %w", cfg.Index, err)
	}
	return p, nil
}

// configInForce is the latest compliance.config of tenant's own scope
// among the first size entries, else of the default scope; nil if none.
func configInForce(ctx context.Context, src Source, tenant string, size uint64) (*profile.Config, error) {
	latest := func(t, scope string) (*profile.Config, error) {
		cs, err := verify.ComplianceConfigs(ctx, src.Log, t, size, src.Key)
		if err != nil {
			return nil, fmt.Errorf("reading the log's compliance configuration (tenant %s): %w", t, err)
		}
		var last *profile.Config
		for _, c := range cs {
			if c.Scope == scope {
				last = c
			}
		}
		return last, nil
	}
	if tenant != api.AllTenants {
		if c, err := latest(tenant, profile.ScopeTenant); err != nil || c != nil {
			return c, err
		}
	}
	c, err := latest(profile.DefaultTenant, profile.ScopeDefault)
	if err != nil && src.TenantKey != nil && errors.Is(err, client.ErrForbidden) {
		return nil, fmt.Errorf("%w: tenant %s has no compliance configuration of its own, and the default scope's is in tenant %s, which a tenant's token does not read: "+
			"compute with the parameters of a report (monitor report --at REPORT, or verify-report) or of a configuration file (--config)", ErrQuery, tenant, profile.DefaultTenant)
	}
	return c, err
}

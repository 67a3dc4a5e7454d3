package compliance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
)

// Reporter computes the reports of the log server's
// GET /v1/reports/{profile} (it is the server's Reporter): the same
// computation as monitor report, on the server's own in-process client,
// with the parameters the log records (ComputeAsConfigured). It also says
// what the server records there (governance.ComplianceSettings).
type Reporter struct {
	Renderer Renderer
	Logger   *slog.Logger
	// config is the compliance configuration's text.
	config []byte
}

// NewReporter checks the compliance configuration (empty: none) and keeps
// it for ComplianceSettings.
func NewReporter(config []byte, chromium string, logger *slog.Logger) (*Reporter, error) {
	if _, err := ParseParams(config); err != nil {
		return nil, err
	}
	if _, err := RuleParamsFor(nil, config); err != nil {
		return nil, err
	}
	return &Reporter{Renderer: Renderer{Chromium: chromium}, Logger: logger, config: bytes.Clone(config)}, nil
}

// Profiles lists the profiles.
func (r *Reporter) Profiles() []string { return ProfileNames() }

// ComplianceSettings is what a scope running profiles records in the log's
// compliance.config event (profile.Config): the report parameters
// (ParamsFor) and the monitor rule parameters (RuleParamsFor), each with
// the compliance configuration's overrides, as JSON objects. record says
// whether there is anything to record where nothing was recorded before:
// some profile, or something configured beyond the defaults.
func (r *Reporter) ComplianceSettings(profiles []string) (controls, ruleParams []byte, record bool, err error) {
	p, err := ParamsFor(profiles, r.config)
	if err != nil {
		return nil, nil, false, err
	}
	rp, err := RuleParamsFor(profiles, r.config)
	if err != nil {
		return nil, nil, false, err
	}
	if controls, err = json.Marshal(p); err != nil {
		return nil, nil, false, err
	}
	if ruleParams, err = json.Marshal(rp); err != nil {
		return nil, nil, false, fmt.Errorf("compliance config: monitor: %w", err)
	}
	def, err := json.Marshal(DefaultParams())
	if err != nil {
		return nil, nil, false, err
	}
	return controls, ruleParams, len(profiles) > 0 || len(rp) > 0 || !bytes.Equal(controls, def), nil
}

// Report computes and renders the report q names.
func (r *Reporter) Report(ctx context.Context, c *client.Client, key note.Verifier, policy *checkpoint.Policy, q api.ReportQuery) (*client.ReportDocument, error) {
	rep, err := ComputeAsConfigured(ctx, Source{Log: c, Key: key, Policy: policy, Logger: r.Logger},
		Query{Profile: q.Profile, Tenant: q.Tenant, From: q.From, To: q.To})
	if err != nil {
		return nil, err
	}
	return Document(ctx, rep, q.Format, q.Paper, r.Renderer)
}

// Document renders a computed report into a client.ReportDocument.
func Document(ctx context.Context, rep *Report, format, paper string, rd Renderer) (*client.ReportDocument, error) {
	canon, err := rep.Canonical()
	if err != nil {
		return nil, err
	}
	body, ct, err := rd.Render(ctx, rep, canon, format, paper)
	if err != nil {
		return nil, err
	}
	return &client.ReportDocument{JSON: canon, SHA256: Digest(canon), Checkpoint: rep.Log.Checkpoint, Size: rep.Log.Size,
		Root: rep.Log.Root, Body: body, ContentType: ct}, nil
}

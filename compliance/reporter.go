package compliance

import (
	"context"
	"log/slog"

	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
)

// Reporter computes the reports of the log server's
// GET /v1/reports/{profile} (it is the server's Reporter): the same
// computation as monitor report, on the server's own in-process client.
type Reporter struct {
	Params   Params
	Renderer Renderer
	Logger   *slog.Logger
}

// NewReporter reads the parameters from the compliance configuration
// (empty: the defaults).
func NewReporter(config []byte, chromium string, logger *slog.Logger) (*Reporter, error) {
	p, err := ParseParams(config)
	if err != nil {
		return nil, err
	}
	return &Reporter{Params: p, Renderer: Renderer{Chromium: chromium}, Logger: logger}, nil
}

// Profiles lists the profiles.
func (r *Reporter) Profiles() []string { return ProfileNames() }

// Report computes and renders the report q names.
func (r *Reporter) Report(ctx context.Context, c *client.Client, key note.Verifier, policy *checkpoint.Policy, q api.ReportQuery) (*client.ReportDocument, error) {
	rep, err := Compute(ctx, Source{Log: c, Key: key, Policy: policy, Logger: r.Logger},
		Query{Profile: q.Profile, Tenant: q.Tenant, From: q.From, To: q.To}, r.Params)
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

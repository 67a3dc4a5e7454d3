package compliance

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
)

//go:embed templates/report.html
var reportHTML string

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
}).Parse(reportHTML))

// HTML renders the report as a print-ready page (A4 or Letter). Every
// value from the log is text: html/template escapes it.
func HTML(r *Report, canonical []byte) ([]byte, error) {
	tenant := r.Tenant
	if tenant == api.AllTenants {
		tenant = "every tenant"
	}
	var b bytes.Buffer
	err := htmlTmpl.Execute(&b, struct {
		R              *Report
		Tenant, Digest string
	}{r, tenant, Digest(canonical)})
	return b.Bytes(), err
}

// Renderer turns a report into its formats; PDF needs Chromium.
type Renderer struct {
	// Chromium is the browser binary for PDFs (default: chromium from PATH).
	Chromium string
	// Now stamps OSCAL's last-modified (default time.Now).
	Now func() time.Time
}

// Render returns the report in format, with its media type.
func (rd Renderer) Render(ctx context.Context, r *Report, canonical []byte, format, paper string) ([]byte, string, error) {
	now := time.Now
	if rd.Now != nil {
		now = rd.Now
	}
	switch format {
	case api.FormatJSON:
		return canonical, "application/json", nil
	case api.FormatOSCAL:
		b, err := OSCAL(r, canonical, now().UTC().Truncate(time.Second))
		return b, "application/json", err
	case api.FormatHTML:
		b, err := HTML(r, canonical)
		return b, "text/html; charset=utf-8", err
	case api.FormatPDF:
		h, err := HTML(r, canonical)
		if err != nil {
			return nil, "", err
		}
		b, err := PDF(ctx, h, paper, rd.Chromium)
		return b, "application/pdf", err
	}
	return nil, "", fmt.Errorf("%w: format %q", ErrQuery, format)
}

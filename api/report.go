package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"
)

// Compliance reports (docs/compliance.md): GET /v1/reports/{profile}.

// Report formats.
const (
	FormatJSON  = "json"  // the canonical report, with its event and receipt
	FormatOSCAL = "oscal" // OSCAL assessment-results
	FormatHTML  = "html"  // print-ready HTML
	FormatPDF   = "pdf"   // the HTML printed by headless Chromium
)

// Formats lists the report formats.
var Formats = []string{FormatJSON, FormatOSCAL, FormatHTML, FormatPDF}

// AllTenants as ReportQuery.Tenant covers every tenant (a global token).
const AllTenants = "*"

// ReportQuery names a report: a profile over a period of one tenant (or all).
type ReportQuery struct {
	Profile string
	// From and To bound the period: entries with From <= time < To.
	From, To time.Time
	Format   string // default json
	// Tenant: the token's own by default; AllTenants or another tenant for
	// a global token.
	Tenant string
	// Paper is a4 (default) or letter, for the PDF.
	Paper string
}

// MaxReportPeriod caps a report's period.
const MaxReportPeriod = 20 * 366 * 24 * time.Hour

// Check reports what is wrong with q, filling in the defaults.
func (q *ReportQuery) Check() error {
	if q.Format == "" {
		q.Format = FormatJSON
	}
	if q.Paper == "" {
		q.Paper = "a4"
	}
	switch {
	case q.Profile == "":
		return errors.New("a profile is required")
	case !slices.Contains(Formats, q.Format):
		return fmt.Errorf("format %q: want one of %v", q.Format, Formats)
	case q.Paper != "a4" && q.Paper != "letter":
		return fmt.Errorf("paper %q: want a4 or letter", q.Paper)
	case q.From.IsZero() || q.To.IsZero():
		return errors.New("from and to are required (RFC 3339)")
	case !q.To.After(q.From):
		return errors.New("to must be after from")
	case q.To.Sub(q.From) > MaxReportPeriod:
		return fmt.Errorf("the period is longer than %v", MaxReportPeriod)
	}
	return nil
}

// Values is q as the query string of GET /v1/reports/{profile}.
func (q ReportQuery) Values() url.Values {
	v := url.Values{}
	v.Set("from", q.From.UTC().Format(time.RFC3339))
	v.Set("to", q.To.UTC().Format(time.RFC3339))
	for k, x := range map[string]string{"format": q.Format, "tenant": q.Tenant, "paper": q.Paper} {
		if x != "" {
			v.Set(k, x)
		}
	}
	return v
}

// ParseReportQuery reads a report query from the path's profile and the
// query string, strictly.
func ParseReportQuery(profile string, v url.Values) (ReportQuery, error) {
	q := ReportQuery{Profile: profile}
	for k, vs := range v {
		if len(vs) != 1 {
			return q, fmt.Errorf("%s: give it once", k)
		}
		var err error
		switch k {
		case "from":
			q.From, err = time.Parse(time.RFC3339, vs[0])
		case "to":
			q.To, err = time.Parse(time.RFC3339, vs[0])
		case "format":
			q.Format = vs[0]
		case "tenant":
			q.Tenant = vs[0]
		case "paper":
			q.Paper = vs[0]
		default:
			return q, fmt.Errorf("unknown parameter %q", k)
		}
		if err != nil {
			return q, fmt.Errorf("%s: %v", k, err)
		}
	}
	return q, q.Check()
}

// ReportResponse answers GET /v1/reports/{profile}?format=json: the report,
// its SHA-256, and the report.issued event that anchors it in the log, with
// its receipt.
type ReportResponse struct {
	Report  json.RawMessage `json:"report"`
	SHA256  string          `json:"sha256"`
	Event   EventResponse   `json:"event"`
	Receipt *Receipt        `json:"receipt,omitempty"`
	// Timestamps, when the log has timestamp authorities and one has
	// stamped a checkpoint at least as large as the report's, are the
	// tokens on the first such checkpoint, each with the consistency
	// proof from the report's tree to it (ReportTimestamps): every entry
	// the report is computed from existed no later than the token's time.
	Timestamps []Timestamp `json:"timestamps,omitempty"`
}

package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// ReportDocument is a computed report: its canonical JSON and, for another
// format, the document.
type ReportDocument struct {
	// JSON is the canonical report; SHA256 its hex digest.
	JSON   []byte
	SHA256 string
	// Checkpoint is the signed checkpoint it was computed at.
	Checkpoint string
	Size       uint64
	Root       string // hex
	// Body and ContentType are the document in the format asked for (for
	// json: JSON and application/json).
	Body        []byte
	ContentType string
}

// ReportResponse answers GET /v1/reports/{profile}?format=json: the report,
// its SHA-256, and the report.issued event that anchors it in the log, with
// its receipt.
type ReportResponse struct {
	Report  json.RawMessage `json:"report"`
	SHA256  string          `json:"sha256"`
	Event   EventResponse   `json:"event"`
	Receipt *Receipt        `json:"receipt,omitempty"`
}

// MaxReportBytes caps a report answer.
const MaxReportBytes = 64 << 20

// Report asks the server for a report (audit scope). For json the answer
// carries the ReportResponse; for every format Body is the document and
// SHA256 the digest of the canonical JSON report (the X-Report-SHA256
// header for the other formats).
func (c *Client) Report(ctx context.Context, q ReportQuery) (*ReportAnswer, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint("/v1/reports/"+url.PathEscape(q.Profile), q.Values()), nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxReportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the report: %w", err)
	}
	if len(b) > MaxReportBytes {
		return nil, fmt.Errorf("the report exceeds %d bytes", MaxReportBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, decodeError(resp.StatusCode, b)
	}
	a := &ReportAnswer{Body: b, ContentType: resp.Header.Get("Content-Type"), SHA256: resp.Header.Get("X-Report-SHA256")}
	if q.Format == FormatJSON {
		var r ReportResponse
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("decoding the report: %w", err)
		}
		a.JSON, a.SHA256 = &r, r.SHA256
	}
	return a, nil
}

// ReportAnswer is the server's answer to Report.
type ReportAnswer struct {
	Body        []byte
	ContentType string
	SHA256      string
	JSON        *ReportResponse // for json
}

package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/llmaudittrail/llmaudittrail/api"
)

// Compliance reports (docs/compliance.md): GET /v1/reports/{profile}.

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

// MaxReportBytes caps a report answer.
const MaxReportBytes = 64 << 20

// Report asks the server for a report (audit scope). For json the answer
// carries the ReportResponse; for every format Body is the document and
// SHA256 the digest of the canonical JSON report (the X-Report-SHA256
// header for the other formats).
func (c *Client) Report(ctx context.Context, q api.ReportQuery) (*ReportAnswer, error) {
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
	if q.Format == api.FormatJSON {
		var r api.ReportResponse
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
	JSON        *api.ReportResponse // for json
}

package console

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Reports: the user chooses a profile and a period; the log server
// computes the report at its latest checkpoint and appends a report.issued
// event carrying its digest (GET /v1/reports/{profile}, audit scope). The
// console checks that the answer's report hashes to that digest and that
// the event's receipt verifies, keeps the canonical report for the
// sign-in, and renders its HTML, OSCAL and PDF itself from those bytes
// with the compliance package, so every download is the one anchored
// report.

// storedReport is a report computed for a user.
type storedReport struct {
	ID        string
	Created   time.Time
	Profile   string
	Tenant    string
	From, To  string
	Canonical []byte
	Report    *compliance.Report
	SHA256    string
	// Event is the report.issued event; Anchored says its receipt
	// verified and it carries SHA256, AnchorErr why not.
	Event     uint64
	Anchored  bool
	AnchorErr string
	CP        cpState
}

// maxReportsPerUser caps the reports kept per sign-in (the oldest go).
const maxReportsPerUser = 4

type reportsData struct {
	Profiles []string
	Reports  []*storedReport
	From, To string
	Tenant   string
	Profile  string
}

func (c *Console) reportsPage(w http.ResponseWriter, r *http.Request, u *user) {
	c.renderReports(w, r, u, http.StatusOK, "", reportsData{})
}

func (c *Console) renderReports(w http.ResponseWriter, r *http.Request, u *user, status int, msg string, d reportsData) {
	d.Profiles = compliance.ProfileNames()
	now := time.Now().UTC()
	if d.From == "" {
		d.From = now.AddDate(0, 0, -30).Format(time.DateOnly)
	}
	if d.To == "" {
		d.To = now.Format(time.DateOnly)
	}
	if d.Profile == "" && len(d.Profiles) > 0 {
		d.Profile = d.Profiles[0]
	}
	u.mu.Lock()
	d.Reports = slices.Clone(u.reports)
	u.mu.Unlock()
	slices.Reverse(d.Reports)
	c.render(w, r, status, "reports", page{Title: "Reports", Nav: "reports", User: u, Error: msg, Data: d})
}

// generateReport asks the log for a report and keeps it.
func (c *Console) generateReport(w http.ResponseWriter, r *http.Request, u *user) {
	d := reportsData{Profile: r.PostFormValue("profile"), From: r.PostFormValue("from"), To: r.PostFormValue("to"),
		Tenant: strings.TrimSpace(r.PostFormValue("tenant"))}
	from, err1 := time.Parse(time.DateOnly, d.From)
	last, err2 := time.Parse(time.DateOnly, d.To)
	switch {
	case !slices.Contains(compliance.ProfileNames(), d.Profile):
		c.renderReports(w, r, u, http.StatusBadRequest, "Choose a profile.", d)
		return
	case err1 != nil || err2 != nil:
		c.renderReports(w, r, u, http.StatusBadRequest, "Give the period as two dates (YYYY-MM-DD).", d)
		return
	case last.Before(from):
		c.renderReports(w, r, u, http.StatusBadRequest, "The period's last day is before its first.", d)
		return
	case d.Tenant != "" && d.Tenant != api.AllTenants && !event.ValidID(d.Tenant):
		c.renderReports(w, r, u, http.StatusBadRequest, "That is not a tenant id.", d)
		return
	}
	q := api.ReportQuery{Profile: d.Profile, From: from, To: last.AddDate(0, 0, 1), Format: api.FormatJSON, Tenant: d.Tenant}
	// One report at a time from this console: each reads the whole log.
	c.reportMu.Lock()
	a, err := u.log.Report(r.Context(), q)
	c.reportMu.Unlock()
	if err != nil {
		msg := "The log could not compute the report: " + err.Error()
		switch {
		case errors.Is(err, client.ErrForbidden):
			msg = "Reports need a token with the audit scope (a tenant's token reports on its own tenant). " + clientMessage(err)
		case errors.Is(err, client.ErrNotFound):
			msg = "The log does not know this profile. " + clientMessage(err)
		}
		c.renderReports(w, r, u, http.StatusBadGateway, msg, d)
		return
	}
	sr, err := c.keepReport(u, a.JSON, q)
	if err != nil {
		c.renderReports(w, r, u, http.StatusBadGateway, "The log's report does not check out: "+err.Error(), d)
		return
	}
	c.logger.Info("console: report issued", "profile", sr.Profile, "sha256", sr.SHA256, "event", sr.Event)
	http.Redirect(w, r, Path+"reports/"+sr.ID, http.StatusSeeOther)
}

// keepReport checks the server's answer (the report hashes to its digest,
// the report.issued event's receipt verifies and carries the digest) and
// keeps it for the user.
func (c *Console) keepReport(u *user, a *api.ReportResponse, q api.ReportQuery) (*storedReport, error) {
	if a == nil {
		return nil, errors.New("no report in the answer")
	}
	canon := bytes.TrimSpace(a.Report)
	digest := compliance.Digest(canon)
	if a.SHA256 != digest {
		return nil, fmt.Errorf("the answer names digest %s, but its report hashes to %s", a.SHA256, digest)
	}
	rep, err := compliance.ParseReport(canon)
	if err != nil {
		return nil, err
	}
	sr := &storedReport{ID: base64.RawURLEncoding.EncodeToString(random(12)), Created: time.Now().UTC(), Profile: rep.Profile,
		Tenant: rep.Tenant, From: rep.From, To: rep.To, Canonical: canon, Report: rep, SHA256: digest, Event: a.Event.Index,
		CP: c.inspect([]byte(rep.Log.Checkpoint))}
	switch {
	case a.Receipt == nil:
		sr.AnchorErr = "the answer carries no receipt for the report.issued event (" + a.Event.ReceiptError + ")"
	default:
		vr, err := api.NewReceiptVerifier(c.cfg.Key, c.cfg.Policy).Verify(a.Receipt)
		if err != nil {
			sr.AnchorErr = err.Error()
			break
		}
		l, err := vr.Event()
		if err != nil || vr.Index != a.Event.Index || l.Kind != event.KindReportIssued || l.Attributes.String(event.AttrReportSHA256) != digest ||
			l.Writer == nil || l.Writer.Via != event.ViaServer {
			sr.AnchorErr = fmt.Sprintf("entry %d is not a report.issued event of the server carrying this report's digest", vr.Index)
			break
		}
		sr.Anchored = true
	}
	u.mu.Lock()
	u.reports = append(u.reports, sr)
	if len(u.reports) > maxReportsPerUser {
		u.reports = u.reports[len(u.reports)-maxReportsPerUser:]
	}
	u.mu.Unlock()
	return sr, nil
}

func (u *user) report(id string) *storedReport {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.reports {
		if r.ID == id {
			return r
		}
	}
	return nil
}

func (c *Console) reportPage(w http.ResponseWriter, r *http.Request, u *user) {
	sr := u.report(r.PathValue("id"))
	if sr == nil {
		c.fail(w, r, u, http.StatusNotFound, "No such report in this sign-in (reports are kept until you sign out; the last 4).")
		return
	}
	c.render(w, r, http.StatusOK, "report", page{Title: sr.Report.Title, Nav: "reports", User: u, Data: sr})
}

// reportCSP lets the report's own page show its inline styles; it runs no
// script and, sandboxed, has no access to the console's origin.
const reportCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"

// reportView shows the report's print-ready HTML.
func (c *Console) reportView(w http.ResponseWriter, r *http.Request, u *user) {
	sr := u.report(r.PathValue("id"))
	if sr == nil {
		c.fail(w, r, u, http.StatusNotFound, "No such report in this sign-in.")
		return
	}
	b, err := compliance.HTML(sr.Report, sr.Canonical)
	if err != nil {
		c.fail(w, r, u, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Security-Policy", reportCSP)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b)
}

// reportDownload answers the report as JSON (canonical), OSCAL or PDF.
func (c *Console) reportDownload(w http.ResponseWriter, r *http.Request, u *user) {
	sr := u.report(r.PathValue("id"))
	if sr == nil {
		c.fail(w, r, u, http.StatusNotFound, "No such report in this sign-in.")
		return
	}
	format := r.PathValue("format")
	ext := map[string]string{api.FormatJSON: "json", api.FormatOSCAL: "oscal.json", api.FormatPDF: "pdf"}[format]
	if ext == "" {
		c.fail(w, r, u, http.StatusNotFound, "Reports download as json, oscal or pdf.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), compliance.PDFTimeout)
	defer cancel()
	rd := compliance.Renderer{Chromium: c.cfg.Chromium, Now: func() time.Time { return sr.Created }}
	body, ct, err := rd.Render(ctx, sr.Report, sr.Canonical, format, "a4")
	if err != nil {
		msg := "The report could not be rendered: " + err.Error()
		if errors.Is(err, compliance.ErrNoChromium) {
			msg = "PDFs need Chromium on the console's machine (Debian's chromium package)."
		}
		c.fail(w, r, u, http.StatusInternalServerError, msg)
		return
	}
	w.Header().Set("X-Report-SHA256", sr.SHA256)
	download(w, fmt.Sprintf("%s-report-%s.%s", sr.Profile, sr.SHA256[:12], ext), ct, body)
}

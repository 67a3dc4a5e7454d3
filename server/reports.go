package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/go-chi/chi/v5"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/governance"
)

// Reporter computes compliance reports. The compliance package provides
// one; it reads the log only through the client it is given (this server's
// LocalClient), so the server's report and one recomputed by anyone else
// from the log's tiles are the same computation.
type Reporter interface {
	// Profiles lists the profiles it knows.
	Profiles() []string
	// Report computes the report q names from the log read through c,
	// verified with key and policy.
	Report(ctx context.Context, c *client.Client, key note.Verifier, policy *checkpoint.Policy, q api.ReportQuery) (*client.ReportDocument, error)
}

// ErrBadReportQuery is wrapped by a Reporter's errors about the query
// (answered 400).
var ErrBadReportQuery = errors.New("bad report query")

// getReport answers GET /v1/reports/{profile}: the report computed now, at
// the latest checkpoint, anchored by a report.issued event.
func (s *Server) getReport(w http.ResponseWriter, r *http.Request) {
	status, body, err := s.report(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if body != nil {
		writeJSON(w, status, body)
	}
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) (int, any, error) {
	p, err := s.Authenticate(r)
	if err != nil {
		return 0, nil, err
	}
	if !p.Has(auth.ScopeAudit) {
		return 0, nil, errorf(http.StatusForbidden, "forbidden", "token lacks the %q scope", auth.ScopeAudit)
	}
	if s.cfg.Reporter == nil {
		return 0, nil, errorf(http.StatusNotImplemented, "not_configured", "this server computes no reports")
	}
	q, err := api.ParseReportQuery(chi.URLParam(r, "profile"), r.URL.Query())
	if err != nil {
		return 0, nil, errorf(http.StatusBadRequest, "bad_query", "%v", err)
	}
	if !slices.Contains(s.cfg.Reporter.Profiles(), q.Profile) {
		return 0, nil, errorf(http.StatusNotFound, "not_found", "no profile %q (there are %v)", q.Profile, s.cfg.Reporter.Profiles())
	}
	switch {
	case q.Tenant == "" && p.Global:
		q.Tenant = api.AllTenants
	case q.Tenant == "":
		q.Tenant = p.Tenant
	case q.Tenant != p.Tenant && !p.Global:
		return 0, nil, errorf(http.StatusForbidden, "forbidden", "a token of tenant %s reports on its own tenant only", p.Tenant)
	case q.Tenant != api.AllTenants && !event.ValidID(q.Tenant):
		return 0, nil, errorf(http.StatusBadRequest, "bad_query", "tenant: not a valid id")
	}
	// One report at a time: each reads the whole log.
	select {
	case s.reportSem <- struct{}{}:
		defer func() { <-s.reportSem }()
	case <-r.Context().Done():
		return 0, nil, r.Context().Err()
	}
	key, err := checkpoint.NewVerifier(s.keys.VKey)
	if err != nil {
		return 0, nil, err
	}
	doc, err := s.cfg.Reporter.Report(r.Context(), s.LocalClient(), key, s.policy, q)
	if errors.Is(err, ErrBadReportQuery) {
		return 0, nil, errorf(http.StatusBadRequest, "bad_query", "%v", err)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("computing the report: %w", err)
	}
	a, err := s.gov.IssueReport(r.Context(), reader(p), governance.Report{Query: q, SHA256: doc.SHA256, CheckpointSize: doc.Size, CheckpointRoot: doc.Root})
	if err != nil {
		return 0, nil, err
	}
	if q.Format != api.FormatJSON {
		h := w.Header()
		h.Set("Content-Type", doc.ContentType)
		h.Set("X-Report-SHA256", doc.SHA256)
		h.Set("X-Report-Event", strconv.FormatUint(a.Index, 10))
		h.Set("X-Content-Type-Options", "nosniff")
		if q.Format == api.FormatPDF || q.Format == api.FormatOSCAL {
			h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-report.%s"`, q.Profile, map[string]string{api.FormatPDF: "pdf", api.FormatOSCAL: "json"}[q.Format]))
		}
		w.WriteHeader(http.StatusOK)
		w.Write(doc.Body)
		return 0, nil, nil
	}
	ev := s.responses(r.Context(), []event.Appended{a}, true)[0]
	out := api.ReportResponse{Report: json.RawMessage(doc.JSON), SHA256: doc.SHA256, Receipt: ev.Receipt}
	if out.Timestamps, err = s.treeTimestamps(r.Context(), doc.Size); err != nil {
		return 0, nil, err
	}
	ev.Receipt = nil
	out.Event = ev
	return http.StatusOK, out, nil
}

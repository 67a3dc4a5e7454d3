package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

// Session exports in progress at once, in all and per client address: each
// reads a whole session (503 with Retry-After beyond them).
const (
	maxExports          = 8
	maxExportsPerClient = 2
)

// getSessionExport answers GET /v1/sessions/{id}/export[?tenant=&from_seq=&payloads=true]:
// the session as one stream (api/export.go, docs/event-api.md),
// read scope; with payloads=true, audit scope, and the disclosure is
// appended as one access.read event before the stream begins. An error
// before the stream is a JSON answer; one in the stream ends it with an
// error frame.
func (s *Server) getSessionExport(w http.ResponseWriter, r *http.Request) {
	var enc *api.ExportEncoder
	err := s.sessionExport(w, r, &enc)
	switch {
	case err == nil:
	case enc == nil:
		s.writeError(w, r, err)
	case r.Context().Err() == nil:
		ae := s.toAPIError(r, err)
		if enc.Error(ae.code, ae.message) == nil {
			enc.Flush()
		}
	}
}

func (s *Server) sessionExport(w http.ResponseWriter, r *http.Request, enc **api.ExportEncoder) error {
	p, err := s.Authenticate(r)
	if err != nil {
		return err
	}
	q, err := exportQuery(r, p)
	if err != nil {
		return err
	}
	scope := auth.ScopeRead
	if q.Payloads {
		scope = auth.ScopeAudit
	}
	if !p.Has(scope) {
		return errorf(http.StatusForbidden, "forbidden", "token lacks the %q scope", scope)
	}
	c := clientOf(r)
	if !s.exports.acquire(c) {
		return errorf(http.StatusServiceUnavailable, "overloaded", "too many session exports in progress; retry later")
	}
	defer s.exports.release(c)
	err = s.log.ExportSession(r.Context(), reader(p), q, func() (*api.ExportEncoder, error) {
		w.Header().Set("Content-Type", api.ExportMediaType)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		*enc = api.NewExportEncoder(&streamWriter{w: w, rc: http.NewResponseController(w)})
		return *enc, nil
	})
	if *enc == nil && errors.Is(err, auditlog.ErrNotFound) {
		return errorf(http.StatusNotFound, "not_found", "no such session")
	}
	return err
}

// exportQuery reads an export's session, tenant (only a global token names
// another), from_seq and payloads.
func exportQuery(r *http.Request, p *auth.Principal) (auditlog.ExportQuery, error) {
	q := auditlog.ExportQuery{Session: chi.URLParam(r, "id")}
	if !event.ValidID(q.Session) {
		return q, errorf(http.StatusBadRequest, "bad_session", "invalid session id")
	}
	var err error
	if q.Tenant, err = tenantParam(r, p); err != nil {
		return q, err
	}
	for k, vs := range r.URL.Query() {
		if len(vs) != 1 {
			return q, errorf(http.StatusBadRequest, "bad_query", "%s: give it once", event.Clip(k, 64))
		}
		switch k {
		case "tenant":
		case "from_seq":
			if q.FromSeq, err = parseUint(vs[0], "from_seq"); err != nil {
				return q, err
			}
		case "payloads":
			if q.Payloads, err = strconv.ParseBool(vs[0]); err != nil {
				return q, errorf(http.StatusBadRequest, "bad_query", "payloads must be true or false")
			}
		default:
			return q, errorf(http.StatusBadRequest, "bad_query", "unknown parameter %q", event.Clip(k, 64))
		}
	}
	return q, nil
}

// streamWriter is a streamed answer's writer: each write may take
// apiDeadline (a reader that stops reading is cut off), and Flush sends
// what is buffered.
type streamWriter struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	last time.Time
}

func (s *streamWriter) Write(b []byte) (int, error) {
	if now := time.Now(); now.Sub(s.last) > time.Second {
		s.rc.SetWriteDeadline(now.Add(apiDeadline))
		s.last = now
	}
	return s.w.Write(b)
}

func (s *streamWriter) Flush() error { return s.rc.Flush() }

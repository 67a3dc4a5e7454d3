package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/identity"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

// apiError is an error answer: {"error": {"code": ..., "message": ...}}.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// jsonAppender is a body that writes its own JSON, the bytes encoding/json
// would write (api.EventResponse, api.BatchResponse).
type jsonAppender interface {
	AppendJSON(b []byte) ([]byte, error)
}

// answerBuffers hold the write path's answers (writeJSON); a buffer that
// grew beyond maxPooledAnswer (a batch's answer) is not kept.
var answerBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledAnswer = 64 << 10

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	if a, ok := v.(jsonAppender); ok {
		// The write path's answers, written without reflection, into a
		// pooled buffer (an answer with its base64 leaf outgrew a fresh
		// 1 KiB one); Write copies it into the connection's buffer.
		bp := answerBuffers.Get().(*[]byte)
		defer answerBuffers.Put(bp)
		if b, err := a.AppendJSON((*bp)[:0]); err == nil {
			b = append(b, '\n')
			if cap(b) <= maxPooledAnswer {
				*bp = b
			}
			w.WriteHeader(status)
			w.Write(b)
			return
		}
	}
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// toAPIError maps the engine's sentinels to answers.
func (s *Server) toAPIError(r *http.Request, err error) *apiError {
	var ae *apiError
	var mbe *http.MaxBytesError
	if g := governanceError(err); g != nil {
		return g
	}
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds %d bytes", mbe.Limit)
	case errors.Is(err, event.ErrInvalidEvent):
		return errorf(http.StatusBadRequest, "invalid_event", "%s", err.Error())
	case errors.Is(err, event.ErrNoScope):
		return errorf(http.StatusForbidden, "forbidden", "%s", err.Error())
	case errors.Is(err, event.ErrReservedKind):
		return errorf(http.StatusForbidden, "reserved_kind", "%s", err.Error())
	case errors.Is(err, event.ErrReservedSession):
		return errorf(http.StatusForbidden, "reserved_session", "%s", err.Error())
	case errors.Is(err, auditlog.ErrPushback):
		return errorf(http.StatusServiceUnavailable, "overloaded", "the log is overloaded, retry later")
	case errors.Is(err, auditlog.ErrUnavailable), sqldb.Unavailable(err):
		s.logger.Warn("storage unavailable", "method", r.Method, "path", r.URL.Path, "error", err)
		return errorf(http.StatusServiceUnavailable, "unavailable", "the log's storage is unavailable, retry later")
	case errors.Is(err, auditlog.ErrNotPublished), errors.Is(err, auditlog.ErrNoCheckpoint):
		return errorf(http.StatusNotFound, "not_published", "%s", err.Error())
	case errors.Is(err, auditlog.ErrNoPayload):
		return errorf(http.StatusNotFound, "no_payload", "%s", err.Error())
	case errors.Is(err, auditlog.ErrNoFieldCommitment):
		return errorf(http.StatusConflict, "no_field_commitment", "%s", err.Error())
	case errors.Is(err, auditlog.ErrNoBodyCommitment):
		return errorf(http.StatusConflict, "no_body_commitment", "%s", err.Error())
	case errors.Is(err, auditlog.ErrNoField):
		return errorf(http.StatusNotFound, "no_field", "%s", err.Error())
	case errors.Is(err, disclosure.ErrBadField):
		return errorf(http.StatusBadRequest, "bad_query", "fields: %s", err.Error())
	case errors.Is(err, auditlog.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "%s", err.Error())
	case errors.Is(err, auditlog.ErrErased):
		return errorf(http.StatusGone, "erased", "%s", err.Error())
	case errors.Is(err, auditlog.ErrNoEnvelopes):
		return errorf(http.StatusNotFound, "no_envelopes", "%s", err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errorf(http.StatusServiceUnavailable, "timeout", "%s", err.Error())
	}
	s.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	return errorf(http.StatusInternalServerError, "internal", "internal error")
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := s.toAPIError(r, err)
	switch ae.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="llmaudittrail"`)
	case http.StatusServiceUnavailable:
		retry := "1"
		if ae.code == "unavailable" {
			retry = "5"
		}
		w.Header().Set("Retry-After", retry)
	}
	var body api.ErrorBody
	body.Error.Code, body.Error.Message = ae.code, ae.message
	writeJSON(w, ae.status, body)
}

// limitBody caps every request body. The OTLP routes answer a body over
// the cap themselves, in OTLP's error form.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.cfg.MaxBodyBytes && r.URL.Path != OTLPTracesPath && r.URL.Path != OTLPLogsPath {
			s.writeError(w, r, &http.MaxBytesError{Limit: s.cfg.MaxBodyBytes})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// Authenticate returns the principal of the request's bearer token.
func (s *Server) Authenticate(r *http.Request) (*auth.Principal, error) {
	if r.Context().Value(internalKey{}) != nil {
		return s.internal, nil
	}
	if p, ok := r.Context().Value(personKey{}).(*auth.Principal); ok && p != nil {
		return p, nil
	}
	return s.authenticateBearer(r.Context(), r.Header.Get("Authorization"))
}

// authenticateBearer returns the principal of an Authorization header's
// bearer token (the API's, and OTLP/gRPC's authorization metadata): a
// token of the log, or an access token of the identity provider.
func (s *Server) authenticateBearer(ctx context.Context, h string) (*auth.Principal, error) {
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "an Authorization: Bearer token is required")
	}
	if tok = strings.TrimSpace(tok); s.access != nil && isJWT(tok) {
		return s.access.check(ctx, tok)
	}
	p, err := s.tokens.Check(ctx, tok)
	if errors.Is(err, auth.ErrUnauthenticated) {
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "unknown or revoked token")
	}
	if err == nil {
		err = s.ensureLogged(ctx, p)
	}
	return p, err
}

// ensureLogged makes sure the creation of p's token is in the log before
// p is served (the server's own principal has no token to record, nor
// a person signed in: their sign-in is recorded as access.signin).
func (s *Server) ensureLogged(ctx context.Context, p *auth.Principal) error {
	if p == s.internal || p.Person != nil {
		return nil
	}
	return s.gov.EnsureToken(ctx, p.ID)
}

// handler is an API call: it returns the status and body of its answer, or
// an error that toAPIError maps.
type handler func(r *http.Request, p *auth.Principal) (int, any, error)

// serve answers h without authentication (p is nil).
func (s *Server) serve(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, body, err := h(r, nil)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, status, body)
	}
}

// anyScope, as the scope of authed, admits any valid token (the handler
// checks).
const anyScope = ""

// authedAny answers h for a token holding one of scopes (the handler
// checks further).
func (s *Server) authedAny(scopes []string, h handler) http.HandlerFunc {
	return s.authed(anyScope, func(r *http.Request, p *auth.Principal) (int, any, error) {
		if !slices.ContainsFunc(scopes, p.Has) {
			return 0, nil, errorf(http.StatusForbidden, "forbidden", "token lacks the %q scope", scopes[0])
		}
		return h(r, p)
	})
}

// authed answers h for a token holding scope.
func (s *Server) authed(scope string, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.Authenticate(r)
		if err == nil && scope != anyScope && !p.Has(scope) {
			err = errorf(http.StatusForbidden, "forbidden", "token lacks the %q scope", scope)
		}
		var status int
		var body any
		if err == nil {
			status, body, err = h(r, p)
		}
		if err != nil {
			s.writeError(w, r, err)
			s.recordPersonRefused(r, p, err)
			return
		}
		writeJSON(w, status, body)
	}
}

// recordPersonRefused records a refusal (401, 403) of a person's request
// on the API, made with an access token of the identity provider, as
// identity.KindDenied (§11.300(d)); a verified token that maps to no
// role, as the person's failed sign-in (identity.ReasonNoRole), as the
// console records one. The console's in-process requests are recorded by
// their transport (inProcess), not here.
func (s *Server) recordPersonRefused(r *http.Request, p *auth.Principal, err error) {
	var nr *noRoleError
	if p == nil && errors.As(err, &nr) {
		person := nr.person
		if rerr := s.RecordAccount(context.WithoutCancel(r.Context()), identity.Account{Kind: identity.KindSignInFailed, Method: identity.MethodOIDC,
			Person: &person, Reason: identity.ReasonNoRole, Detail: fmt.Sprintf("%s %s: %d", r.Method, r.URL.Path, http.StatusForbidden)}); rerr != nil {
			s.logger.Error("recording a refused access token", "error", rerr)
		}
		return
	}
	if p == nil || p.Person == nil {
		return
	}
	if q, ok := r.Context().Value(personKey{}).(*auth.Principal); ok && q != nil {
		return
	}
	if st := s.toAPIError(r, err).status; st == http.StatusForbidden || st == http.StatusUnauthorized {
		s.recordDenied(r, p, st)
	}
}

// presizeBody is the largest announced body length readBody allocates at
// once (a client could announce more than it sends).
const presizeBody = 1 << 20

func readBody(r *http.Request) ([]byte, error) {
	var b []byte
	var err error
	if n := r.ContentLength; n > 0 && n <= presizeBody {
		// One buffer of the announced size (and room to see the end),
		// instead of io.ReadAll's doubling from 512 bytes: 3.3 KB of
		// garbage per 1 KiB event. The reader stays capped (limitBody).
		buf := bytes.NewBuffer(make([]byte, 0, n+bytes.MinRead))
		_, err = buf.ReadFrom(r.Body)
		b = buf.Bytes()
	} else {
		b, err = io.ReadAll(r.Body)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, "bad_body", "reading body: %v", err)
	}
	return b, nil
}

// waitFor reads the wait query of a write: durable (answer once the events
// are durable, without their index), index (the default: once they are
// sequenced) or checkpoint (once a published checkpoint covers them, with
// receipts).
func waitFor(r *http.Request) (wait auditlog.Wait, receipt bool, err error) {
	switch w := queryGet(r, "wait"); w {
	case "", api.WaitIndex:
		return auditlog.WaitIndexBounded, false, nil
	case api.WaitDurable:
		return auditlog.WaitDurable, false, nil
	case api.WaitCheckpoint:
		return auditlog.WaitIndexBounded, true, nil
	default:
		return 0, false, errorf(http.StatusBadRequest, "bad_query", "wait=%q: want durable, index or checkpoint", event.Clip(w, 32))
	}
}

func (s *Server) postEvents(r *http.Request, p *auth.Principal) (int, any, error) {
	out, err := s.write(r, p, func(body []byte) ([]*event.Request, error) {
		req, err := event.DecodeRequest(body)
		return []*event.Request{req}, err
	})
	if err != nil {
		return 0, nil, err
	}
	return writeStatus(r, out), out[0], nil
}

// writeStatus is 201, or 202 when a write that waits for its index
// (the default) is answered without it: the events are durable, and GET
// /v1/events/{id} answers their index once the log has sequenced them
// (DefaultIndexWait).
func writeStatus(r *http.Request, out []api.EventResponse) int {
	if queryGet(r, "wait") == api.WaitDurable {
		return http.StatusCreated
	}
	for _, e := range out {
		if !e.Indexed {
			return http.StatusAccepted
		}
	}
	return http.StatusCreated
}

func (s *Server) postBatch(r *http.Request, p *auth.Principal) (int, any, error) {
	out, err := s.write(r, p, func(body []byte) ([]*event.Request, error) { return event.DecodeBatch(body, s.cfg.MaxBatch) })
	if err != nil {
		return 0, nil, err
	}
	return writeStatus(r, out), api.BatchResponse{Events: out}, nil
}

// write decodes and appends the events of a write request, with receipts
// if asked for.
func (s *Server) write(r *http.Request, p *auth.Principal, decode func([]byte) ([]*event.Request, error)) ([]api.EventResponse, error) {
	wait, receipt, err := waitFor(r)
	if err != nil {
		return nil, err
	}
	if !s.log.WaitRoom(r.Context(), 1, s.cfg.PushbackWait) {
		// Refused before the body is read and decoded (the log would
		// refuse it after), once a place did not come free in time.
		return nil, auditlog.ErrPushback
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	reqs, err := decode(body)
	if err != nil {
		return nil, err
	}
	for i, req := range reqs {
		if err := event.Permit(req.Kind, p.Has); err != nil {
			return nil, fmt.Errorf("events[%d]: %w", i, err)
		}
		if !p.MayActAs(req.Actor.ID) {
			return nil, errorf(http.StatusForbidden, "actor_not_allowed", "events[%d]: this token may write only as actors %s, not %q", i, strings.Join(p.Actors, ", "), event.Clip(req.Actor.ID, 64))
		}
	}
	tenant, err := writeTenant(r, p)
	if err != nil {
		return nil, err
	}
	if tenant != p.Tenant {
		for i, req := range reqs {
			if !monitorAlertOf(req, tenant) {
				return nil, errorf(http.StatusForbidden, "forbidden", "events[%d]: in another tenant a global token writes only %s events of a monitor (session and actor monitor.*, actor type system) about that tenant", i, event.KindMonitorAlert)
			}
		}
	}
	writer := event.Writer{Token: p.ID, Via: event.ViaAPI}
	var res []event.Appended
	if receipt {
		// A receipt needs the index: wait for it as long as for the
		// receipt.
		res, err = s.log.AppendWithin(r.Context(), tenant, writer, reqs, s.cfg.ReceiptWait)
	} else {
		res, err = s.log.AppendWait(r.Context(), tenant, writer, reqs, wait)
	}
	if err != nil {
		return nil, err
	}
	return s.responses(r.Context(), res, receipt), nil
}

func (s *Server) responses(ctx context.Context, res []event.Appended, wait bool) []api.EventResponse {
	out := make([]api.EventResponse, len(res))
	for i, x := range res {
		out[i] = api.NewEventResponse(x)
	}
	if !wait {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReceiptWait)
	defer cancel()
	for i, x := range res {
		if !x.Indexed {
			out[i].ReceiptError = "not sequenced yet: no receipt; the event is durable (GET /v1/events/{id})"
			continue
		}
		rc, err := s.log.WaitReceipt(ctx, x.Index, x.Leaf)
		if err != nil {
			out[i].ReceiptError = err.Error()
			continue
		}
		if rc.Timestamps, err = s.coveringTimestamps(ctx, x.Index); err != nil {
			s.logger.Warn("reading the timestamps of a receipt", "index", x.Index, "err", err)
		}
		out[i].Receipt = rc
	}
	return out
}

func parseUint(s, name string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, errorf(http.StatusBadRequest, "bad_query", "%s must be a non-negative integer", name)
	}
	return n, nil
}

func (s *Server) getEntry(r *http.Request, _ *auth.Principal) (int, any, error) {
	p, err := s.entryReader(r)
	if err != nil {
		return 0, nil, err
	}
	idx, err := parseUint(chi.URLParam(r, "index"), "index")
	if err != nil {
		return 0, nil, err
	}
	var size uint64
	if q := r.URL.Query().Get("size"); q != "" {
		if size, err = parseUint(q, "size"); err != nil {
			return 0, nil, err
		}
		if size == 0 {
			return 0, nil, errorf(http.StatusBadRequest, "bad_query", "size must be positive")
		}
	}
	rc, err := s.log.Entry(r.Context(), idx, size)
	if err != nil {
		return 0, nil, err
	}
	if !visible(p, rc.Leaf) {
		return 0, nil, errorf(http.StatusNotFound, "not_found", "no entry %d in tenant %s", idx, p.Tenant)
	}
	if rc.Timestamps, err = s.coveringTimestamps(r.Context(), idx); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rc, nil
}

// getEntryProof answers GET /v1/entries/{index}/proof: the entry's receipt
// against the latest checkpoint as a c2sp.org/tlog-proof@v1 text, the leaf
// as its extra data. Who may read it is who may read the entry.
func (s *Server) getEntryProof(w http.ResponseWriter, r *http.Request) {
	proof, err := s.entryProof(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", api.TlogProofMediaType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(proof)
}

func (s *Server) entryProof(r *http.Request) ([]byte, error) {
	p, err := s.entryReader(r)
	if err != nil {
		return nil, err
	}
	idx, err := parseUint(chi.URLParam(r, "index"), "index")
	if err != nil {
		return nil, err
	}
	if len(r.URL.RawQuery) > 0 {
		return nil, errorf(http.StatusBadRequest, "bad_query", "a tlog-proof is against the latest checkpoint: no query parameters")
	}
	rc, err := s.log.Entry(r.Context(), idx, 0)
	if err != nil {
		return nil, err
	}
	if !visible(p, rc.Leaf) {
		return nil, errorf(http.StatusNotFound, "not_found", "no entry %d in tenant %s", idx, p.Tenant)
	}
	return []byte(rc.TlogProof), nil
}

func (s *Server) getConsistency(r *http.Request, _ *auth.Principal) (int, any, error) {
	q := r.URL.Query()
	from, err := parseUint(q.Get("from"), "from")
	if err != nil {
		return 0, nil, err
	}
	to, err := parseUint(q.Get("to"), "to")
	if err != nil {
		return 0, nil, err
	}
	if from == 0 || from > to {
		return 0, nil, errorf(http.StatusBadRequest, "bad_query", "want 0 < from <= to")
	}
	p, err := s.log.Consistency(r.Context(), from, to)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, api.ConsistencyResponse{From: from, To: to, Proof: p}, nil
}

// maxSessionPage is the largest (and default) page of a session listing.
const maxSessionPage = 1000

// sessionQuery reads what GET /v1/sessions/{id} and .../payloads take:
// the session, the tenant (only a global token names another), from_seq
// and limit (1 to maxSessionPage).
func sessionQuery(r *http.Request, p *auth.Principal) (id, tenant string, fromSeq uint64, limit int, err error) {
	id = chi.URLParam(r, "id")
	if !event.ValidID(id) {
		return "", "", 0, 0, errorf(http.StatusBadRequest, "bad_session", "invalid session id")
	}
	if tenant, err = tenantParam(r, p); err != nil {
		return "", "", 0, 0, err
	}
	if q := r.URL.Query().Get("from_seq"); q != "" {
		if fromSeq, err = parseUint(q, "from_seq"); err != nil {
			return "", "", 0, 0, err
		}
	}
	limit = maxSessionPage
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := parseUint(q, "limit")
		if err != nil || n == 0 || n > maxSessionPage {
			return "", "", 0, 0, errorf(http.StatusBadRequest, "bad_query", "limit must be 1-%d", maxSessionPage)
		}
		limit = int(n)
	}
	return id, tenant, fromSeq, limit, nil
}

func (s *Server) getSession(r *http.Request, p *auth.Principal) (int, any, error) {
	id, tenant, fromSeq, limit, err := sessionQuery(r, p)
	if err != nil {
		return 0, nil, err
	}
	evs, err := s.log.Session(r.Context(), tenant, id, fromSeq, limit)
	if errors.Is(err, auditlog.ErrNotFound) {
		return 0, nil, errorf(http.StatusNotFound, "not_found", "no such session")
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, api.SessionPage{Tenant: tenant, Session: id, Events: evs}, nil
}

// maxPayloadPage caps the payload bytes of one page of
// GET /v1/sessions/{id}/payloads.
const maxPayloadPage = 16 << 20

func (s *Server) getSessionPayloads(r *http.Request, p *auth.Principal) (int, any, error) {
	id, tenant, fromSeq, limit, err := sessionQuery(r, p)
	if err != nil {
		return 0, nil, err
	}
	d, err := s.log.DiscloseSession(r.Context(), reader(p), tenant, id, fromSeq, limit, maxPayloadPage)
	if errors.Is(err, auditlog.ErrNotFound) {
		return 0, nil, errorf(http.StatusNotFound, "not_found", "no such session")
	}
	if err != nil {
		return 0, nil, err
	}
	out := api.SessionPayloadsResponse{Tenant: tenant, Session: id, Events: make([]api.SessionPayloadEntry, 0, len(d.Events)),
		Access: api.NewEventResponse(d.Access)}
	if d.NextSeq != 0 {
		out.NextSeq = &d.NextSeq
	}
	for _, e := range d.Events {
		en := api.SessionPayloadEntry{Index: e.Index, Seq: e.Seq, Leaf: base64.StdEncoding.EncodeToString(e.Leaf), Status: e.Status}
		if e.Status == api.PayloadOK {
			en.MediaType = e.Record.MediaType
			en.PayloadBase64 = base64.StdEncoding.EncodeToString(e.Record.Payload)
			en.Salt = hex.EncodeToString(e.Record.Salt)
		}
		out.Events = append(out.Events, en)
	}
	return http.StatusOK, out, nil
}

// getEvent says where an acknowledged event stands (GET /v1/events/{id}:
// the path segment is an event id here, an index under .../payload).
func (s *Server) getEvent(r *http.Request, p *auth.Principal) (int, any, error) {
	id := chi.URLParam(r, "index")
	tenant := p.Tenant
	if p.Global {
		tenant = ""
	}
	st, err := s.log.Lookup(r.Context(), tenant, id)
	if err != nil {
		return 0, nil, err
	}
	out := api.EventStatus{ID: st.ID, Tenant: st.Tenant, Session: st.Session, Status: api.StatusDurable}
	if st.Indexed {
		out.Status, out.Index = api.StatusSequenced, &st.Index
	}
	return http.StatusOK, out, nil
}

func (s *Server) getPayload(r *http.Request, p *auth.Principal) (int, any, error) {
	idx, err := parseUint(chi.URLParam(r, "index"), "index")
	if err != nil {
		return 0, nil, err
	}
	d, err := s.log.Disclose(r.Context(), reader(p), idx)
	if err != nil {
		return 0, nil, err
	}
	rec := d.Record
	out := api.PayloadResponse{
		Index: idx, ID: d.Event.ID, Leaf: base64.StdEncoding.EncodeToString(d.Leaf),
		MediaType: rec.MediaType, Size: len(rec.Payload),
		PayloadBase64: base64.StdEncoding.EncodeToString(rec.Payload),
		Salt:          hex.EncodeToString(rec.Salt), Commitment: d.Event.Payload,
		Access: api.NewEventResponse(d.Access),
	}
	if rec.MediaType == "application/json" && strictjson.IsJSON(rec.Payload) {
		out.Payload = rec.Payload
	}
	out.Pseudonyms = d.Pseudonyms
	return http.StatusOK, out, nil
}

func (s *Server) getDisclosure(r *http.Request, p *auth.Principal) (int, any, error) {
	idx, err := parseUint(chi.URLParam(r, "index"), "index")
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	if len(q["fields"]) > 1 || len(q["body"]) > 1 || len(q["fields"])+len(q["body"]) == 0 {
		return 0, nil, errorf(http.StatusBadRequest, "bad_query", "give the payload's fields, the body's, or both, each once: ?fields=model,usage,tools[*].name&body=kind,attributes[\"gen_ai.request.model\"]")
	}
	var fields, body []disclosure.Field
	if len(q["fields"]) == 1 {
		if fields, err = disclosure.ParseFields(q.Get("fields")); err != nil {
			return 0, nil, err
		}
	}
	if len(q["body"]) == 1 {
		if body, err = disclosure.ParseFields(q.Get("body")); err != nil {
			return 0, nil, err
		}
	}
	d, err := s.log.DiscloseFields(r.Context(), reader(p), idx, fields, body)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, api.DisclosureResponse{
		Index: idx, ID: d.Event.ID, Fields: fieldStrings(fields), Unmatched: d.Unmatched,
		SDAlg: disclosure.Alg, SD: d.SD, Disclosures: d.Disclosures,
		Body: fieldStrings(body), BodyUnmatched: d.BodyUnmatched, BodySD: d.BodySD, BodyDisclosures: d.BodyDisclosures,
		Receipt: d.Receipt, Access: disclosureAccess(d),
	}, nil
}

// disclosureAccess is the access.read event of a disclosure as its answer
// carries it: whole, or on a log of leaf version 4 (whose answer shows the
// event only field by field, its receipt without the body) its id, index,
// leaf hash and envelope, not its body, which names the session, tenant and
// index of the event disclosed.
func disclosureAccess(d *auditlog.FieldDisclosure) api.EventResponse {
	a := api.NewEventResponse(d.Access)
	if d.Receipt.Leaf != nil {
		return a
	}
	return api.EventResponse{ID: a.ID, Index: a.Index, Indexed: a.Indexed, LeafHash: a.LeafHash, Envelope: a.Envelope}
}

// monitorAlertOf reports whether req is what a global token may write in
// tenant, another than its own: a monitor's alert, in a monitor's session
// and as a monitor (as monitor/deliver.go writes it), naming tenant as the
// tenant it is about if it names one; not an event in one of the tenant's
// own sessions or under one of its actors' names.
func monitorAlertOf(req *event.Request, tenant string) bool {
	if req.Kind != event.KindMonitorAlert || !strings.HasPrefix(req.Session, event.MonitorPrefix) ||
		req.Actor.Type != event.ActorSystem || !strings.HasPrefix(req.Actor.ID, event.MonitorPrefix) {
		return false
	}
	raw, ok := req.Attributes[event.AttrMonitorTenant]
	if !ok {
		return true
	}
	var named string
	return json.Unmarshal(raw, &named) == nil && named == tenant
}

func fieldStrings(fields []disclosure.Field) []string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.String()
	}
	return names
}

// tenantParam is the tenant a request names (?tenant=), which only a global
// token may set to another tenant than its own.
func tenantParam(r *http.Request, p *auth.Principal) (string, error) {
	t := queryGet(r, "tenant")
	if t == "" || t == p.Tenant {
		return p.Tenant, nil
	}
	if !p.Global {
		return "", errorf(http.StatusForbidden, "forbidden", "only a global token may read another tenant")
	}
	if !event.ValidID(t) {
		return "", errorf(http.StatusBadRequest, "bad_query", "invalid tenant")
	}
	return t, nil
}

// writeTenant is the tenant a write's events go to: the token's, or with
// ?tenant=T, T, which only a global token may name, and only for
// monitor.alert events (write checks that): a global monitor writes an
// alert in the tenant of the session it is about. Who wrote the events is
// the server's to say either way: the leaf's writer is the token's public
// id.
func writeTenant(r *http.Request, p *auth.Principal) (string, error) {
	t := queryGet(r, "tenant")
	switch {
	case t == "" || t == p.Tenant:
		return p.Tenant, nil
	case !p.Global:
		return "", errorf(http.StatusForbidden, "forbidden", "only a global token may write in another tenant")
	case !event.ValidID(t):
		return "", errorf(http.StatusBadRequest, "bad_query", "invalid tenant")
	}
	return t, nil
}

func reader(p *auth.Principal) auditlog.Reader {
	rd := auditlog.Reader{TokenID: p.ID, Tenant: p.Tenant, AllTenants: p.Global, Actors: p.Actors}
	if p.Person != nil {
		rd.Person, rd.Role = p.Person, p.Name
	}
	return rd
}

func (s *Server) getPseudonym(r *http.Request, p *auth.Principal) (int, any, error) {
	ps := chi.URLParam(r, "pseudonym")
	if !event.ValidID(ps) {
		return 0, nil, errorf(http.StatusBadRequest, "bad_pseudonym", "invalid pseudonym")
	}
	tenant, err := tenantParam(r, p)
	if err != nil {
		return 0, nil, err
	}
	value, acc, err := s.log.Resolve(r.Context(), reader(p), tenant, ps)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, api.PseudonymResponse{Tenant: tenant, Pseudonym: ps, Value: value, Access: api.NewEventResponse(acc)}, nil
}

package server

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/llmaudittrail/llmaudittrail/auth"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// apiError is the JSON error body: {"error": {"code": ..., "message": ...}}.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &mbe):
		ae = errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds %d bytes", mbe.Limit)
	case errors.Is(err, auditlog.ErrInvalidEvent):
		ae = errorf(http.StatusBadRequest, "invalid_event", "%s", err.Error())
	case errors.Is(err, auditlog.ErrPushback):
		w.Header().Set("Retry-After", "1")
		ae = errorf(http.StatusServiceUnavailable, "overloaded", "the log is overloaded, retry later")
	case errors.Is(err, auditlog.ErrNotPublished), errors.Is(err, auditlog.ErrNoCheckpoint):
		ae = errorf(http.StatusNotFound, "not_published", "%s", err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		ae = errorf(http.StatusServiceUnavailable, "timeout", "%s", err.Error())
	default:
		s.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		ae = errorf(http.StatusInternalServerError, "internal", "internal error")
	}
	if ae.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="llmaudittrail"`)
	}
	writeJSON(w, ae.status, map[string]any{"error": map[string]string{"code": ae.code, "message": ae.message}})
}

// limitBody caps every request body.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.cfg.MaxBodyBytes {
			s.writeError(w, r, &http.MaxBytesError{Limit: s.cfg.MaxBodyBytes})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

type principalKey struct{}

// Authenticate returns the principal of the request's bearer token.
func (s *Server) Authenticate(r *http.Request) (*auth.Principal, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "an Authorization: Bearer token is required")
	}
	p, err := s.tokens.Check(r.Context(), strings.TrimSpace(tok))
	if errors.Is(err, auth.ErrUnauthenticated) {
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "unknown or revoked token")
	}
	return p, err
}

func (s *Server) authed(scope string, h func(http.ResponseWriter, *http.Request, *auth.Principal) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.Authenticate(r)
		if err == nil && !p.Has(scope) {
			err = errorf(http.StatusForbidden, "forbidden", "token lacks the %q scope", scope)
		}
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	}
}

// EventResponse is the answer to a write.
type EventResponse struct {
	ID       string            `json:"id"`
	Index    uint64            `json:"index"`
	Seq      uint64            `json:"seq"`
	Session  string            `json:"session"`
	Leaf     string            `json:"leaf"`      // standard base64 of the exact leaf bytes
	LeafHash string            `json:"leaf_hash"` // hex RFC 6962 leaf hash
	Receipt  *auditlog.Receipt `json:"receipt,omitempty"`
	// ReceiptError says why no receipt came back; the event is appended all
	// the same.
	ReceiptError string `json:"receipt_error,omitempty"`
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, errorf(http.StatusBadRequest, "bad_body", "reading body: %v", err)
	}
	return b, nil
}

func wantReceipt(r *http.Request) (bool, error) {
	switch w := r.URL.Query().Get("wait"); w {
	case "":
		return false, nil
	case "checkpoint":
		return true, nil
	default:
		return false, errorf(http.StatusBadRequest, "bad_query", "wait=%q: the only value is checkpoint", w)
	}
}

func (s *Server) postEvents(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	wait, err := wantReceipt(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := auditlog.DecodeRequest(body)
	if err != nil {
		return err
	}
	res, err := s.log.Append(r.Context(), p.Tenant, []*auditlog.Request{req})
	if err != nil {
		return err
	}
	out := s.responses(r.Context(), []*auditlog.Request{req}, res, wait)
	writeJSON(w, http.StatusCreated, out[0])
	return nil
}

func (s *Server) postBatch(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	wait, err := wantReceipt(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	reqs, err := auditlog.DecodeBatch(body, s.cfg.MaxBatch)
	if err != nil {
		return err
	}
	res, err := s.log.Append(r.Context(), p.Tenant, reqs)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"events": s.responses(r.Context(), reqs, res, wait)})
	return nil
}

func (s *Server) responses(ctx context.Context, reqs []*auditlog.Request, res []auditlog.Result, wait bool) []EventResponse {
	out := make([]EventResponse, len(res))
	for i, x := range res {
		out[i] = EventResponse{ID: x.ID, Index: x.Index, Seq: x.Seq, Session: reqs[i].Session,
			Leaf: base64.StdEncoding.EncodeToString(x.Leaf), LeafHash: hex.EncodeToString(x.LeafHash)}
	}
	if !wait {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReceiptWait)
	defer cancel()
	for i, x := range res {
		rc, err := s.log.WaitReceipt(ctx, x.Index, x.Leaf)
		if err != nil {
			out[i].ReceiptError = err.Error()
			continue
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

func (s *Server) getEntry(w http.ResponseWriter, r *http.Request) {
	err := func() error {
		idx, err := parseUint(chi.URLParam(r, "index"), "index")
		if err != nil {
			return err
		}
		var size uint64
		if q := r.URL.Query().Get("size"); q != "" {
			if size, err = parseUint(q, "size"); err != nil {
				return err
			}
			if size == 0 {
				return errorf(http.StatusBadRequest, "bad_query", "size must be positive")
			}
		}
		rc, err := s.log.Entry(r.Context(), idx, size)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, rc)
		return nil
	}()
	if err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) getConsistency(w http.ResponseWriter, r *http.Request) {
	err := func() error {
		q := r.URL.Query()
		from, err := parseUint(q.Get("from"), "from")
		if err != nil {
			return err
		}
		to, err := parseUint(q.Get("to"), "to")
		if err != nil {
			return err
		}
		if from == 0 || from > to {
			return errorf(http.StatusBadRequest, "bad_query", "want 0 < from <= to")
		}
		p, err := s.log.Consistency(r.Context(), from, to)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "proof": p})
		return nil
	}()
	if err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	id := chi.URLParam(r, "id")
	if !auditlog.ValidID(id) {
		return errorf(http.StatusBadRequest, "bad_session", "invalid session id")
	}
	tenant := p.Tenant
	if t := r.URL.Query().Get("tenant"); t != "" && t != tenant {
		if !p.Has(auth.ScopeAdmin) {
			return errorf(http.StatusForbidden, "forbidden", "only admin tokens may read another tenant")
		}
		tenant = t
	}
	var fromSeq uint64
	var err error
	if q := r.URL.Query().Get("from_seq"); q != "" {
		if fromSeq, err = parseUint(q, "from_seq"); err != nil {
			return err
		}
	}
	limit := 1000
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := parseUint(q, "limit")
		if err != nil || n == 0 || n > 1000 {
			return errorf(http.StatusBadRequest, "bad_query", "limit must be 1-1000")
		}
		limit = int(n)
	}
	// Include everything acknowledged so far.
	size, err := s.log.Reader().IntegratedSize(r.Context())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := s.log.Index().WaitFor(ctx, size); err != nil {
		return err
	}
	evs, err := s.log.Index().Session(r.Context(), tenant, id, fromSeq, limit)
	if err != nil {
		return err
	}
	if len(evs) == 0 && fromSeq == 0 {
		return errorf(http.StatusNotFound, "not_found", "no such session")
	}
	if evs == nil {
		evs = []auditlog.SessionEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant": tenant, "session": id, "events": evs})
	return nil
}

// PayloadResponse is the answer to a payload read: everything an auditor
// needs to check the leaf's commitment.
type PayloadResponse struct {
	Index         uint64               `json:"index"`
	ID            string               `json:"id"`
	Leaf          string               `json:"leaf"`
	MediaType     string               `json:"media_type"`
	Size          int                  `json:"size"`
	PayloadBase64 string               `json:"payload_base64"`
	Payload       json.RawMessage      `json:"payload,omitempty"` // for application/json
	Salt          string               `json:"salt"`              // hex
	Commitment    *auditlog.Commitment `json:"commitment"`
	Access        EventResponse        `json:"access"` // the access.read event
}

func (s *Server) getPayload(w http.ResponseWriter, r *http.Request, p *auth.Principal) error {
	idx, err := parseUint(chi.URLParam(r, "index"), "index")
	if err != nil {
		return err
	}
	size, err := s.log.Reader().IntegratedSize(r.Context())
	if err != nil {
		return err
	}
	if idx >= size {
		return errorf(http.StatusNotFound, "not_found", "no entry %d", idx)
	}
	data, err := s.log.ReadLeaf(r.Context(), idx, size)
	if err != nil {
		return err
	}
	leaf, err := auditlog.ParseLeaf(data)
	if err != nil {
		return errorf(http.StatusNotFound, "not_found", "entry %d is not an audit event", idx)
	}
	if leaf.Tenant != p.Tenant && !p.Has(auth.ScopeAdmin) {
		return errorf(http.StatusNotFound, "not_found", "no entry %d in tenant %s", idx, p.Tenant)
	}
	if leaf.Payload == nil {
		return errorf(http.StatusNotFound, "no_payload", "entry %d has no payload", idx)
	}
	rec, err := s.log.Vault().Get(r.Context(), leaf.ID)
	switch {
	case errors.Is(err, vault.ErrErased):
		return errorf(http.StatusGone, "erased", "the payload of entry %d was erased", idx)
	case errors.Is(err, vault.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "the payload of entry %d is not in the vault", idx)
	case err != nil:
		return err
	}
	if !auditlog.CheckCommitment(leaf.Payload, rec.Salt, rec.Payload) {
		return fmt.Errorf("integrity failure: vault payload of entry %d does not match its commitment", idx)
	}
	// The read is itself audited, and must be recorded before it is served.
	acc := &auditlog.Request{
		Session: "access." + p.ID,
		Kind:    "access.read",
		Actor:   auditlog.Actor{Type: "human", ID: "token." + p.ID},
		Attributes: map[string]json.RawMessage{
			"access.index":      json.RawMessage(strconv.FormatUint(idx, 10)),
			"access.event_id":   mustJSON(leaf.ID),
			"access.session":    mustJSON(leaf.Session),
			"access.token_name": mustJSON(p.Name),
			"access.token_id":   mustJSON(p.ID),
		},
	}
	res, err := s.log.Append(r.Context(), leaf.Tenant, []*auditlog.Request{acc})
	if err != nil {
		return fmt.Errorf("recording access.read: %w", err)
	}
	out := PayloadResponse{
		Index: idx, ID: leaf.ID, Leaf: base64.StdEncoding.EncodeToString(data),
		MediaType: rec.MediaType, Size: len(rec.Payload),
		PayloadBase64: base64.StdEncoding.EncodeToString(rec.Payload),
		Salt:          hex.EncodeToString(rec.Salt), Commitment: leaf.Payload,
		Access: s.responses(r.Context(), []*auditlog.Request{acc}, res, false)[0],
	}
	if rec.MediaType == "application/json" && json.Valid(rec.Payload) {
		out.Payload = rec.Payload
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/governance"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/signer"
)

// Signatures, holds and erasures: the HTTP side of package governance.
// Request bodies are decoded strictly (exact keys, once).

func decodeStrict(r *http.Request, keys []string, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	rule := &strictjson.Object{Keys: map[string]*strictjson.Object{}}
	for _, k := range keys {
		rule.Keys[k] = nil
	}
	if err := strictjson.Check(body, rule); err != nil {
		return errorf(http.StatusBadRequest, "bad_request", "%v", err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errorf(http.StatusBadRequest, "bad_request", "%v", err)
	}
	return nil
}

// governanceError maps the sentinels of signing, holds and erasures.
func governanceError(err error) *apiError {
	var re *governance.RetentionError
	switch {
	case errors.As(err, &re):
		return errorf(http.StatusConflict, "retention_floor", "%s: erasure refused (an override needs override_reason)", re.Error())
	case errors.Is(err, governance.ErrLegalHold):
		return errorf(http.StatusConflict, "legal_hold", "%s", err.Error())
	case errors.Is(err, signer.ErrExists):
		return errorf(http.StatusConflict, "signer_exists", "%s", err.Error())
	case errors.Is(err, signer.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "%s", err.Error())
	case errors.Is(err, signer.ErrWrongSecret):
		return errorf(http.StatusUnauthorized, "wrong_secret", "%s", err.Error())
	case errors.Is(err, signer.ErrSession):
		return errorf(http.StatusUnauthorized, "signing_session", "%s: sign with every component (signer and secret)", err.Error())
	case errors.Is(err, governance.ErrNotBound):
		return errorf(http.StatusForbidden, "not_bound", "%s", err.Error())
	case errors.Is(err, signer.ErrRevoked):
		return errorf(http.StatusForbidden, "signer_revoked", "%s", err.Error())
	case errors.Is(err, signer.ErrLocked):
		return errorf(http.StatusLocked, "locked", "%s", err.Error())
	case errors.Is(err, signer.ErrWeakSecret):
		return errorf(http.StatusBadRequest, "weak_secret", "%s", err.Error())
	case errors.Is(err, governance.ErrLeafMismatch):
		return errorf(http.StatusConflict, "leaf_mismatch", "%s", err.Error())
	case errors.Is(err, governance.ErrAlreadySigned):
		return errorf(http.StatusConflict, "already_signed", "%s", err.Error())
	case errors.Is(err, governance.ErrNoSigners), errors.Is(err, governance.ErrNoRetention):
		return errorf(http.StatusNotImplemented, "not_configured", "%s", err.Error())
	}
	return nil
}

func signerResponse(sg *signer.Signer) api.Signer {
	return api.Signer{ID: sg.ID, PrintedName: sg.PrintedName, PublicKey: base64.StdEncoding.EncodeToString(sg.Public), KeyID: sg.KeyID}
}

func (s *Server) postSigner(r *http.Request, p *auth.Principal) (int, any, error) {
	var req api.Enrollment
	if err := decodeStrict(r, []string{"id", "printed_name", "secret", "identity_verified_by"}, &req); err != nil {
		return 0, nil, err
	}
	if !event.ValidID(req.ID) {
		return 0, nil, errorf(http.StatusBadRequest, "bad_request", "id: 1-%d characters of [A-Za-z0-9_.:@-]", event.MaxIDLength)
	}
	sg, a, err := s.gov.Enroll(r.Context(), reader(p), req)
	if err != nil {
		return 0, nil, err
	}
	sr := signerResponse(sg)
	return http.StatusCreated, api.SignerResponse{Signer: sr, PublicKey: sr.PublicKey, Event: api.NewEventResponse(a)}, nil
}

func (s *Server) postSignerAction(r *http.Request, p *auth.Principal) (int, any, error) {
	id := chi.URLParam(r, "id")
	rd := reader(p)
	switch action := chi.URLParam(r, "action"); action {
	case "rotate":
		if !p.Has(auth.ScopeSign) || !p.MayActAs(id) || len(p.Actors) == 0 {
			return 0, nil, errorf(http.StatusForbidden, "not_bound", "rotating a key needs a sign token bound to the signer")
		}
		var req api.RotateRequest
		if err := decodeStrict(r, []string{"secret", "new_secret"}, &req); err != nil {
			return 0, nil, err
		}
		sg, a, err := s.gov.RotateSigner(r.Context(), rd, id, req.Secret, req.NewSecret)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, api.SignerResponse{Signer: signerResponse(sg), Event: api.NewEventResponse(a)}, nil
	case "revoke", "unlock":
		if !p.Has(auth.ScopeAdmin) {
			return 0, nil, errorf(http.StatusForbidden, "forbidden", "token lacks the %q scope", auth.ScopeAdmin)
		}
		var req api.RevokeRequest
		if action == "revoke" {
			if err := decodeStrict(r, []string{"reason"}, &req); err != nil {
				return 0, nil, err
			}
		}
		var a event.Appended
		var err error
		if action == "revoke" {
			a, err = s.gov.RevokeSigner(r.Context(), rd, id, req.Reason)
		} else {
			a, err = s.gov.UnlockSigner(r.Context(), rd, id)
		}
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, api.SignerEvent{Event: api.NewEventResponse(a)}, nil
	}
	return 0, nil, errorf(http.StatusNotFound, "not_found", "no such signer action")
}

func (s *Server) postSignature(r *http.Request, p *auth.Principal) (int, any, error) {
	mode, wait, err := waitFor(r)
	if err != nil {
		return 0, nil, err
	}
	if mode == auditlog.WaitDurable {
		return 0, nil, errorf(http.StatusBadRequest, "bad_query", "a signature is answered once it is sequenced: wait=durable is not taken here")
	}
	var req api.SignRequest
	if err := decodeStrict(r, []string{"signer", "secret", "index", "leaf_hash", "meaning", "reason", "signing_session"}, &req); err != nil {
		return 0, nil, err
	}
	sd, err := s.gov.Sign(r.Context(), reader(p), req)
	if err != nil {
		return 0, nil, err
	}
	stmt, _ := json.Marshal(sd.Statement)
	out := api.SignatureResponse{
		Event: s.responses(r.Context(), []event.Appended{sd.Event}, wait)[0], Statement: stmt,
		StatementText: string(sd.StatementBytes), Signature: base64.StdEncoding.EncodeToString(sd.Signature),
		SigningSession: sd.SigningSession,
	}
	return http.StatusCreated, out, nil
}

// getSignature exports the signature at an index with the receipts a third
// party needs (signature.Export).
func (s *Server) getSignature(r *http.Request, p *auth.Principal) (int, any, error) {
	idx, err := parseUint(chi.URLParam(r, "index"), "index")
	if err != nil {
		return 0, nil, err
	}
	x, err := s.gov.ExportSignature(r.Context(), reader(p), idx)
	if err != nil {
		return 0, nil, err
	}
	// Each receipt carries the tokens of the first time-stamped
	// checkpoint that covers its entry, if any.
	for _, rc := range []*api.Receipt{x.Enrollment, x.Event, x.Record} {
		if rc == nil {
			continue
		}
		if rc.Timestamps, err = s.coveringTimestamps(r.Context(), rc.Index); err != nil {
			return 0, nil, err
		}
	}
	return http.StatusOK, x, nil
}

func targetKeys(extra ...string) []string { return append([]string{"session", "subject"}, extra...) }

func (s *Server) postHold(r *http.Request, p *auth.Principal) (int, any, error) {
	var req api.HoldRequest
	if err := decodeStrict(r, targetKeys("reason"), &req); err != nil {
		return 0, nil, err
	}
	h, a, err := s.gov.PlaceHold(r.Context(), reader(p), req.Target, req.Reason)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, api.HoldResponse{Hold: *h, Event: api.NewEventResponse(a)}, nil
}

func (s *Server) deleteHold(r *http.Request, p *auth.Principal) (int, any, error) {
	h, a, err := s.gov.ReleaseHold(r.Context(), reader(p), chi.URLParam(r, "id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, api.HoldResponse{Hold: *h, Event: api.NewEventResponse(a)}, nil
}

func (s *Server) postErasure(r *http.Request, p *auth.Principal) (int, any, error) {
	var req api.ErasureRequest
	if err := decodeStrict(r, targetKeys("legal_basis", "reason", "override_reason"), &req); err != nil {
		return 0, nil, err
	}
	e, err := s.gov.Erase(r.Context(), reader(p), req)
	if err != nil {
		return 0, nil, err
	}
	if e.Sessions == nil {
		e.Sessions = []string{}
	}
	return http.StatusCreated, api.ErasureResponse{Sessions: e.Sessions, Subject: e.Subject, Payloads: e.Payloads, Override: e.Override, Forgotten: e.Forgotten,
		Event: api.NewEventResponse(e.Event)}, nil
}

// oneOf admits a token with any of the scopes.
func (s *Server) oneOf(h handler, scopes ...string) handler {
	return func(r *http.Request, p *auth.Principal) (int, any, error) {
		for _, sc := range scopes {
			if p.Has(sc) {
				return h(r, p)
			}
		}
		return 0, nil, errorf(http.StatusForbidden, "forbidden", "token lacks one of the scopes %s", strings.Join(scopes, ", "))
	}
}

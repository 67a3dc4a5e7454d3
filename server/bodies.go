package server

import (
	"net/http"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// getBodies answers GET /v1/bodies?start=S&end=E[&size=N] (read scope):
// the event bodies of a range of entries that the token's tenant may read:
// its own events and the log-wide records (log.Log.Bodies); a global
// token reads every body.
func (s *Server) getBodies(r *http.Request, p *auth.Principal) (int, any, error) {
	q := r.URL.Query()
	start, err := parseUint(q.Get("start"), "start")
	if err != nil {
		return 0, nil, err
	}
	end, err := parseUint(q.Get("end"), "end")
	if err != nil {
		return 0, nil, err
	}
	if end <= start || end-start > api.MaxBodiesRange {
		return 0, nil, errorf(http.StatusBadRequest, "bad_query", "want start < end <= start+%d", api.MaxBodiesRange)
	}
	cp, _, err := s.log.Checkpoint(r.Context())
	if err != nil {
		return 0, nil, err
	}
	size := cp.Size
	if v := q.Get("size"); v != "" {
		if size, err = parseUint(v, "size"); err != nil {
			return 0, nil, err
		}
		if size > cp.Size {
			return 0, nil, errorf(http.StatusNotFound, "not_published", "size %d is beyond the latest checkpoint (%d)", size, cp.Size)
		}
	}
	tenant := p.Tenant
	if p.Global {
		tenant = ""
	}
	bs, err := s.log.Bodies(r.Context(), tenant, start, end, size)
	if err != nil {
		return 0, nil, err
	}
	out := api.Bodies{TreeSize: size, Start: start, End: end, Entries: make([]api.Body, len(bs))}
	for i, b := range bs {
		out.Entries[i] = api.Body{Index: b.Index, Body: b.Body, FieldSalt: s.log.FieldSalt(b.Body)}
	}
	return http.StatusOK, out, nil
}

// getTenantKey answers GET /v1/tenant-key[?tenant=T] (audit scope): the
// key with which the token's tenant (a global token: T) recognises its
// entries on a log of leaf version 3, and the log-wide key of the log-wide
// records, the read recorded in the log first.
func (s *Server) getTenantKey(r *http.Request, p *auth.Principal) (int, any, error) {
	tenant, err := tenantParam(r, p)
	if err != nil {
		return 0, nil, err
	}
	k, acc, err := s.log.ReadTenantKey(r.Context(), reader(p), tenant)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, api.TenantKeyResponse{Tenant: tenant, Key: k.Tenant.String(), LogKey: k.Log.String(), Access: api.NewEventResponse(acc)}, nil
}

// bundlesPublic reports whether anyone may read the entry bundles: on a
// log of leaf version 3 or 4 they hold envelopes only; otherwise only
// when the log is public on purpose (Config.PublicEntries).
func (s *Server) bundlesPublic() bool {
	return s.cfg.PublicEntries || event.IsEnvelopeVersion(s.log.LeafVersion())
}

package server

import (
	"errors"
	"net/http"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/index"
)

// getSessions answers GET /v1/sessions (read scope): the sessions the token
// may read that the query selects (api.SessionSearch), the most recent
// first, a page at a time. A tenant's token searches its own tenant (naming
// another is 403); a global token searches every tenant, or the one named.
// The answer is the session index's, unverified (docs/event-api.md).
func (s *Server) getSessions(r *http.Request, p *auth.Principal) (int, any, error) {
	q, err := api.ParseSessionSearch(r.URL.Query())
	if err != nil {
		return 0, nil, errorf(http.StatusBadRequest, "bad_query", "%v", err)
	}
	switch {
	case q.Tenant == "" && !p.Global:
		q.Tenant = p.Tenant
	case q.Tenant != "" && q.Tenant != p.Tenant && !p.Global:
		return 0, nil, errorf(http.StatusForbidden, "forbidden", "only a global token may search another tenant")
	case q.Tenant != "" && !event.ValidID(q.Tenant):
		return 0, nil, errorf(http.StatusBadRequest, "bad_query", "invalid tenant")
	}
	if err := s.log.WaitIndexed(r.Context()); err != nil {
		return 0, nil, err
	}
	l, err := s.log.Index().Search(r.Context(), q)
	if errors.Is(err, index.ErrBadSearch) {
		return 0, nil, errorf(http.StatusBadRequest, "bad_query", "%v", err)
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, l, nil
}

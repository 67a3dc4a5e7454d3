package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/identity"
)

// People signed in through an identity provider. The console verifies
// their ID tokens and maps their claims to a role (package identity); the
// server then serves the console's requests for them with the role's
// rights, as it serves a token's, and names the person in every event
// they cause (log's person attributes: issuer and role in clear, the
// subject as a pseudonym). Only code in this process can act for a person:
// the principal travels in the request's context, never on the wire.

// personKey carries the principal of a PersonClient request.
type personKey struct{}

// PersonClient returns a client of this server, called in process, that
// acts for person with the rights of role: its tenant (or every tenant),
// its scopes, and its signer id, which the person may sign as (with the
// signer's secret, at each signing). signin is the sign-in's public id,
// the writer of the events the person causes and the session of their
// reads (event.AccessSession). A request refused (401, 403) is recorded as
// identity.KindDenied.
func (s *Server) PersonClient(signin string, person identity.Person, role identity.Role) *client.Client {
	p := &auth.Principal{ID: signin, Name: role.Name, Tenant: role.Tenant, Global: role.Global,
		Scopes: append([]string(nil), role.Scopes...), Person: &person}
	if role.Signer != "" {
		p.Actors = []string{role.Signer}
	}
	c, err := client.New("http://log-server.console", client.WithHTTPClient(&http.Client{Transport: inProcess{s: s, addr: "console-" + signin, person: p}}))
	if err != nil {
		panic(err) // a constant URL
	}
	return c
}

// RecordAccount appends an account event (governance.Clerk.RecordAccount):
// a sign-in, a sign-out, a failed sign-in or a refusal.
func (s *Server) RecordAccount(ctx context.Context, a identity.Account) error {
	return s.gov.RecordAccount(ctx, a)
}

// recordDenied records a PersonClient request that the server refused.
func (s *Server) recordDenied(r *http.Request, p *auth.Principal, status int) {
	role := identity.Role{Name: p.Name, Tenant: p.Tenant, Global: p.Global, Scopes: p.Scopes}
	if len(p.Actors) == 1 {
		role.Signer = p.Actors[0]
	}
	// The refusal is recorded even when the request's context ended.
	ctx := context.WithoutCancel(r.Context())
	if err := s.RecordAccount(ctx, identity.Account{Kind: identity.KindDenied, Method: identity.MethodOIDC, SignIn: p.ID, Person: p.Person, Role: &role,
		Reason: identity.ReasonForbidden, Detail: fmt.Sprintf("%s %s: %d", r.Method, r.URL.Path, status)}); err != nil {
		s.logger.Error("recording a refused request", "signin", p.ID, "error", err)
	}
}

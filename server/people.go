package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/identity"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
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

// RecordAccount appends an account event: a sign-in, a sign-out, a failed
// sign-in or a refusal (identity.Account). A sign-in's events go in its
// role's tenant (a token's: the token's), in the sign-in's access session;
// failed sign-ins in identity.SessionSignInFailures of a.Tenant, or of the
// default tenant. A token is named by its public id, never by itself.
func (s *Server) RecordAccount(ctx context.Context, a identity.Account) error {
	r := auditlog.Reader{TokenID: a.SignIn, Tenant: a.Tenant, Person: a.Person}
	if r.Tenant == "" {
		r.Tenant = DefaultTenant
	}
	if a.Role != nil {
		r.Tenant, r.Role = a.Role.Tenant, a.Role.Name
	}
	if a.Token != "" {
		if p, err := s.tokens.Check(ctx, a.Token); err == nil {
			r.TokenID, r.Tenant = p.ID, p.Tenant
		}
	}
	session, actor := event.AccessSession(r.TokenID), event.Actor{Type: "human", ID: r.TokenID}
	if a.Person == nil {
		actor.ID = "token." + r.TokenID
	}
	if a.Kind == identity.KindSignInFailed || r.TokenID == "" {
		session, actor = identity.SessionSignInFailures, event.ServerActor
		if r.TokenID == "" {
			r.TokenID = ServerTokenID
		}
	}
	attrs := map[string]any{event.AttrAccessMethod: a.Method}
	if a.Reason != "" {
		attrs[event.AttrAccessReason] = a.Reason
	}
	if a.Detail != "" {
		attrs[event.AttrAccessDetail] = event.Clip(a.Detail, 256)
	}
	if r.TokenID != ServerTokenID {
		attrs[event.AttrAccessTokenID] = r.TokenID
	}
	if a.Role != nil {
		attrs[event.AttrAccessTenant] = a.Role.Tenant
		attrs[event.AttrAccessGlobal] = a.Role.Global
		attrs[event.AttrAccessScopes] = a.Role.Scopes
		if a.Role.Signer != "" {
			attrs[event.AttrAccessSigner] = a.Role.Signer
		}
	}
	_, err := s.log.AppendAs(ctx, r.Tenant, r, &event.Request{Session: session, Kind: a.Kind, Actor: actor, Attributes: jsonAttrs(attrs)})
	if err != nil {
		return fmt.Errorf("recording %s: %w", a.Kind, err)
	}
	return nil
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

// jsonAttrs encodes attribute values.
func jsonAttrs(kv map[string]any) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(kv))
	for k, v := range kv {
		b, _ := json.Marshal(v)
		out[k] = b
	}
	return out
}

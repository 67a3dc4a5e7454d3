package identity

import (
	"encoding/json"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Account events: what the log records of people signing in and out and of
// refusals (21 CFR 11.300(d): attempts at unauthorised use). The server
// appends them (access.* is its own); the console reports them.
const (
	// KindSignIn: a person (or a token, at the console's break-glass
	// sign-in) signed in; its session is AccessSession of the sign-in id.
	KindSignIn = "access.signin"
	// KindSignOut: the sign-in ended (signed out, idle or expired, or its
	// role changed).
	KindSignOut = "access.signout"
	// KindSignInFailed: a sign-in was refused (an ID token that does not
	// verify, no role, an unknown token, ...), in SessionSignInFailures.
	KindSignInFailed = "access.signin_failed"
	// KindDenied: a signed-in person was refused an action.
	KindDenied = "access.denied"
)

// SessionSignInFailures is the session of a tenant's failed sign-ins (the
// default tenant's when no tenant is known).
const SessionSignInFailures = "access.signin_failures"

// Sign-in methods (the access.method attribute).
const (
	MethodOIDC  = "oidc"
	MethodToken = "token"
)

// Reasons for failed sign-ins and refusals (the access.reason attribute):
// stable codes a rule or a reader can count on.
const (
	ReasonNoRole       = "no_role"       // the ID token verified, no rule of the mapping matched
	ReasonInvalidToken = "invalid_token" // the ID token did not verify (signature, issuer, audience, expiry)
	ReasonNonce        = "nonce"         // the ID token's nonce is not the sign-in's
	ReasonState        = "state"         // the callback's state is unknown, used or not this browser's
	ReasonExchange     = "code_exchange" // the provider refused the code (used, expired, not ours)
	ReasonProvider     = "provider"      // the provider answered with an error
	ReasonUnknownToken = "unknown_token" // token sign-in: the log does not know the token
	ReasonNoRead       = "no_read"       // token sign-in: the token lacks the read scope
	ReasonForbidden    = "forbidden"     // denied: the role lacks the scope or tenant
	ReasonCSRF         = "csrf"          // denied: a form without the sign-in's CSRF token
	ReasonRoleChanged  = "role_changed"  // sign-out: the mapping no longer gives the role
	ReasonSignedOut    = "signed_out"
	ReasonExpired      = "expired"
)

// Account is one account event for the server to append.
type Account struct {
	Kind   string // KindSignIn, KindSignOut, KindSignInFailed, KindDenied
	Method string // MethodOIDC or MethodToken
	// SignIn is the sign-in's public id (the writer of the events it
	// causes); empty for a failed sign-in.
	SignIn string
	// Person is the person, when an ID token verified (a failed sign-in
	// may have none); Role their role, if any.
	Person *Person
	Role   *Role
	// Token is the token of a token sign-in: the server records its
	// public id, never the token.
	Token string
	// Tenant is where the event goes when neither the role nor the token
	// says (a failed sign-in: the default tenant).
	Tenant string
	Reason string
	// Detail is a short text: for a refusal, what was refused ("POST
	// /v1/signatures"); for a failed sign-in, what the verifier said.
	Detail string
}

// Request is the event of a, recorded in the name of the sign-in tokenID
// (the public id of the sign-in, or of the token of a token sign-in; ""
// when none is known). A sign-in's events go in its access session
// (event.AccessSession), by the person (a "human" actor named by tokenID)
// or, without a person, by "token.ID"; a failed sign-in, or one with no
// id, goes in SessionSignInFailures as the server's own
// (event.ServerActor). Its attributes: access.method, access.reason,
// access.detail (clipped), access.token_id (when tokenID is set) and the
// role's access.tenant, access.global, access.scopes and access.signer.
func (a Account) Request(tokenID string) *event.Request {
	session, actor := event.AccessSession(tokenID), event.Actor{Type: "human", ID: tokenID}
	if a.Person == nil {
		actor.ID = "token." + tokenID
	}
	if a.Kind == KindSignInFailed || tokenID == "" {
		session, actor = SessionSignInFailures, event.ServerActor
	}
	attrs := map[string]any{event.AttrAccessMethod: a.Method}
	if a.Reason != "" {
		attrs[event.AttrAccessReason] = a.Reason
	}
	if a.Detail != "" {
		attrs[event.AttrAccessDetail] = event.Clip(a.Detail, 256)
	}
	if tokenID != "" {
		attrs[event.AttrAccessTokenID] = tokenID
	}
	if a.Role != nil {
		attrs[event.AttrAccessTenant] = a.Role.Tenant
		attrs[event.AttrAccessGlobal] = a.Role.Global
		attrs[event.AttrAccessScopes] = a.Role.Scopes
		if a.Role.Signer != "" {
			attrs[event.AttrAccessSigner] = a.Role.Signer
		}
	}
	raw := make(map[string]json.RawMessage, len(attrs))
	for k, v := range attrs {
		raw[k], _ = json.Marshal(v) // strings, booleans and string lists
	}
	return &event.Request{Session: session, Kind: a.Kind, Actor: actor, Attributes: raw}
}

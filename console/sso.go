package console

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/identity"
)

// Single sign-on with OpenID Connect: the authorization code flow with
// PKCE (S256), a state bound to the browser by a cookie and used once, a
// nonce in the ID token, discovery and the provider's keys with
// coreos/go-oidc and golang.org/x/oauth2. The ID token is verified (the
// provider's signature with a key of its JWKS, issuer, audience = our
// client id, expiry, nonce) and its claims mapped to a role
// (identity.Mapping); the sign-in then holds the person and the role, and
// a client of the log that acts for them (People.PersonClient), never a
// token of the provider. Sign-ins, sign-outs, failed sign-ins and refused
// actions are appended to the log (People.RecordAccount).

// OIDC configures sign-in through an OpenID provider.
type OIDC struct {
	// Issuer is the provider's issuer URL (its discovery document is
	// at Issuer/.well-known/openid-configuration).
	Issuer string
	// ClientID and ClientSecret are the console's client at the provider
	// (a confidential client; the secret comes from a 0600 file).
	ClientID, ClientSecret string
	// RedirectURL is the console's callback as registered at the
	// provider: the console's public URL followed by sso/callback
	// (https://log.example/console/sso/callback).
	RedirectURL string
	// Scopes are requested besides openid (DefaultOIDCScopes).
	Scopes []string
	// Roles returns the role mapping in force: a file the server reloads
	// on SIGHUP. A sign-in whose role the current mapping no longer gives
	// ends at its next request.
	Roles func() *identity.Mapping
	// Name names the provider on the sign-in page ("Keycloak").
	Name string
	// HTTPClient reaches the provider (default: one with a 10 s timeout).
	HTTPClient *http.Client
}

// DefaultOIDCScopes are requested besides openid.
var DefaultOIDCScopes = []string{"profile", "email"}

// People is the log server that acts for people signed in with OIDC:
// *server.Server in the log server's process.
type People interface {
	// PersonClient returns a client of the log that acts for person with
	// the rights of role; signin is the sign-in's public id.
	PersonClient(signin string, person identity.Person, role identity.Role) *client.Client
	// RecordAccount appends a sign-in, sign-out, failed sign-in or
	// refusal.
	RecordAccount(ctx context.Context, a identity.Account) error
}

// Limits of the sign-in flow.
const (
	// flowTTL bounds the time between leaving for the provider and
	// coming back.
	flowTTL = 10 * time.Minute
	// maxFlows caps the sign-ins under way at once.
	maxFlows = 10000
)

const flowCookieName = "llmat_console_sso"

// flow is a sign-in under way at the provider.
type flow struct {
	state, nonce, verifier string
	created                time.Time
}

// sso is the relying party.
type sso struct {
	cfg OIDC
	hc  *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
	// endSession is the provider's end_session_endpoint (OpenID Connect
	// RP-Initiated Logout), if it has one.
	endSession string
	flows      map[string]*flow // by the hash of the flow cookie
}

func newSSO(cfg OIDC) (*sso, error) {
	switch {
	case cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "":
		return nil, fmt.Errorf("%w: OIDC needs the issuer, the client id and the redirect URL", ErrConfig)
	case cfg.Roles == nil:
		return nil, fmt.Errorf("%w: OIDC needs a role mapping", ErrConfig)
	}
	if cfg.Scopes == nil {
		cfg.Scopes = DefaultOIDCScopes
	}
	if cfg.Name == "" {
		cfg.Name = "your identity provider"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &sso{cfg: cfg, hc: hc, flows: map[string]*flow{}}, nil
}

// discover fetches the provider's discovery document once (again after a
// failure).
func (s *sso) discover(ctx context.Context) (*oidc.IDTokenVerifier, *oauth2.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provider != nil {
		return s.verifier, s.oauth, nil
	}
	// The key set outlives the request: its fetches use a context of
	// their own, with the console's client.
	bg := oidc.ClientContext(context.Background(), s.hc)
	dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, s.hc), 15*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, s.cfg.Issuer)
	if err != nil {
		return nil, nil, err
	}
	ep := p.Endpoint()
	var meta struct {
		Methods    []string `json:"token_endpoint_auth_methods_supported"`
		EndSession string   `json:"end_session_endpoint"`
	}
	_ = p.Claims(&meta)
	// client_secret_basic is the default of OpenID Connect Discovery.
	ep.AuthStyle = oauth2.AuthStyleInHeader
	if len(meta.Methods) > 0 && !slices.Contains(meta.Methods, "client_secret_basic") && slices.Contains(meta.Methods, "client_secret_post") {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	if u, err := url.Parse(meta.EndSession); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		s.endSession = meta.EndSession
	}
	s.provider = p
	s.verifier = p.VerifierContext(bg, &oidc.Config{ClientID: s.cfg.ClientID})
	s.oauth = &oauth2.Config{ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret, Endpoint: ep,
		RedirectURL: s.cfg.RedirectURL, Scopes: append([]string{oidc.ScopeOpenID}, s.cfg.Scopes...)}
	return s.verifier, s.oauth, nil
}

// begin remembers a new flow under the browser's flow cookie value.
func (s *sso) begin(cookie string) *flow {
	f := &flow{state: rand64(32), nonce: rand64(32), verifier: oauth2.GenerateVerifier(), created: time.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, x := range s.flows {
		if time.Since(x.created) > flowTTL {
			delete(s.flows, k)
		}
	}
	if len(s.flows) >= maxFlows {
		var oldest string
		for k, x := range s.flows {
			if oldest == "" || x.created.Before(s.flows[oldest].created) {
				oldest = k
			}
		}
		delete(s.flows, oldest)
	}
	s.flows[hashID(cookie)] = f
	return f
}

// take returns and forgets the flow of the browser's cookie: a state is
// used once.
func (s *sso) take(cookie string) *flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := hashID(cookie)
	f := s.flows[k]
	delete(s.flows, k)
	if f != nil && time.Since(f.created) > flowTTL {
		return nil
	}
	return f
}

func rand64(n int) string { return base64.RawURLEncoding.EncodeToString(random(n)) }

// ssoStart sends the browser to the provider.
func (c *Console) ssoStart(w http.ResponseWriter, r *http.Request) {
	if !c.allowSignIn(w, r) {
		return
	}
	_, oc, err := c.sso.discover(r.Context())
	if err != nil {
		c.logger.Warn("console: OIDC discovery failed", "issuer", c.sso.cfg.Issuer, "error", err)
		c.signinForm(w, r, http.StatusBadGateway, "The identity provider cannot be reached just now; try again in a moment. (The log server's log says why.)")
		return
	}
	cookie := rand64(32)
	f := c.sso.begin(cookie)
	// Lax: the provider sends the browser back with a top-level GET from
	// its own site, on which a Strict cookie would not come.
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(r, flowCookieName), Value: cookie, Path: Path + "sso/", MaxAge: int(flowTTL.Seconds()),
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, oc.AuthCodeURL(f.state, oidc.Nonce(f.nonce), oauth2.S256ChallengeOption(f.verifier)), http.StatusSeeOther)
}

// ssoCallback completes a sign-in: the flow of this browser, the state,
// the code exchanged with the PKCE verifier, the ID token verified, the
// nonce, the role.
func (c *Console) ssoCallback(w http.ResponseWriter, r *http.Request) {
	if !c.allowSignIn(w, r) {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(r, flowCookieName), Value: "", Path: Path + "sso/", MaxAge: -1,
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteLaxMode})
	q := r.URL.Query()
	var f *flow
	if ck, err := r.Cookie(c.cookieName(r, flowCookieName)); err == nil && len(ck.Value) <= 64 {
		f = c.sso.take(ck.Value)
	}
	if f == nil || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.state)) != 1 {
		c.ssoFailed(w, r, http.StatusBadRequest, identity.ReasonState, "no sign-in of this browser is under way with this state",
			"This sign-in was not started here, was already completed, or took longer than 10 minutes. Start again.", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		c.ssoFailed(w, r, http.StatusForbidden, identity.ReasonProvider, clip(e+": "+q.Get("error_description"), 200),
			"The identity provider did not sign you in ("+clip(e, 60)+"). Start again, or ask your administrator.", nil)
		return
	}
	verifier, oc, err := c.sso.discover(r.Context())
	if err != nil {
		c.signinForm(w, r, http.StatusBadGateway, "The identity provider cannot be reached just now; try again in a moment.")
		return
	}
	ctx := oidc.ClientContext(r.Context(), c.sso.hc)
	tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		c.ssoFailed(w, r, http.StatusForbidden, identity.ReasonExchange, clip(err.Error(), 200),
			"The identity provider refused the sign-in code (used already, or expired). Start again.", nil)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		c.ssoFailed(w, r, http.StatusBadGateway, identity.ReasonInvalidToken, "the token response has no id_token",
			"The identity provider sent no ID token. Ask your administrator to check the console's client (scope openid).", nil)
		return
	}
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		c.ssoFailed(w, r, http.StatusForbidden, identity.ReasonInvalidToken, clip(err.Error(), 200),
			"The identity provider's answer did not verify, so you are not signed in. Start again; if it happens again, tell your administrator.", nil)
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.nonce)) != 1 {
		c.ssoFailed(w, r, http.StatusForbidden, identity.ReasonNonce, "the ID token's nonce is not this sign-in's",
			"The identity provider's answer belongs to another sign-in, so you are not signed in. Start again.", nil)
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil || idt.Subject == "" {
		c.ssoFailed(w, r, http.StatusForbidden, identity.ReasonInvalidToken, "the ID token's claims do not decode",
			"The identity provider's answer could not be read. Tell your administrator.", nil)
		return
	}
	person := identity.Person{Issuer: idt.Issuer, Subject: idt.Subject}
	mapping := c.sso.cfg.Roles()
	role, ok := mapping.Role(claims)
	if !ok {
		c.record(r.Context(), identity.Account{Kind: identity.KindSignInFailed, Method: identity.MethodOIDC, Person: &person, Reason: identity.ReasonNoRole})
		c.logger.Info("console: signed in at the provider without a role", "issuer", person.Issuer, "remote", r.RemoteAddr)
		c.render(w, r, http.StatusForbidden, "norole", page{Title: "No access", Data: noRoleData{Issuer: person.Issuer, Subject: person.Subject, Name: displayName(claims), Provider: c.sso.cfg.Name}})
		return
	}
	signin := "sso-" + hex.EncodeToString(random(8))
	u := &user{person: &person, role: &role, mapping: mapping, claims: claims, signin: signin, name: displayName(claims), idToken: raw,
		log: c.cfg.People.PersonClient(signin, person, role)}
	if err := c.cfg.People.RecordAccount(r.Context(), identity.Account{Kind: identity.KindSignIn, Method: identity.MethodOIDC, SignIn: signin, Person: &person, Role: &role}); err != nil {
		// No sign-in the log does not know of.
		c.logger.Error("console: recording a sign-in", "error", err)
		c.signinForm(w, r, http.StatusServiceUnavailable, "The log could not record your sign-in, so you are not signed in. Try again in a moment.")
		return
	}
	id := c.users.add(u)
	c.setCookie(w, r, cookieName, id, int(c.cfg.MaxAge.Seconds()))
	c.logger.Info("console: signed in", "method", identity.MethodOIDC, "signin", signin, "role", role.Name, "remote", r.RemoteAddr)
	// The provider sent the browser here from its own site: a redirect
	// would stay cross-site, and the Strict session cookie would not
	// come. A page of our own moves on from this site.
	c.render(w, r, http.StatusOK, "signedin", page{Title: "Signed in", Data: u})
}

// ssoFailed records a failed sign-in and shows the sign-in page with msg.
func (c *Console) ssoFailed(w http.ResponseWriter, r *http.Request, status int, reason, detail, msg string, person *identity.Person) {
	c.record(r.Context(), identity.Account{Kind: identity.KindSignInFailed, Method: identity.MethodOIDC, Person: person, Reason: reason, Detail: detail})
	c.logger.Info("console: sign-in refused", "method", identity.MethodOIDC, "reason", reason, "detail", detail, "remote", r.RemoteAddr)
	c.signinForm(w, r, status, msg)
}

// record appends an account event, when the console runs in the log
// server's process; a failure is logged.
func (c *Console) record(ctx context.Context, a identity.Account) {
	if c.cfg.People == nil {
		return
	}
	if err := c.cfg.People.RecordAccount(context.WithoutCancel(ctx), a); err != nil {
		c.logger.Error("console: recording "+a.Kind, "error", err)
	}
}

// remap checks a person's sign-in against the mapping in force: a reload
// that takes the role away (or changes it) ends the sign-in.
func (c *Console) remap(u *user) bool {
	if u.person == nil || c.sso == nil {
		return true
	}
	m := c.sso.cfg.Roles()
	u.mu.Lock()
	defer u.mu.Unlock()
	if m == u.mapping {
		return true
	}
	r, ok := m.Role(u.claims)
	if !ok || !r.Equal(*u.role) {
		return false
	}
	u.mapping = m
	return true
}

type noRoleData struct {
	Issuer, Subject, Name, Provider string
}

// displayName is how the console greets a person: a name from the ID
// token (shown to them, never recorded).
func displayName(claims map[string]any) string {
	for _, k := range []string{"name", "preferred_username", "email"} {
		if s, ok := claims[k].(string); ok && s != "" {
			return clip(s, 80)
		}
	}
	return ""
}

func clip(s string, n int) string { return event.Clip(s, n) }

// PostLogoutURL is where the provider sends the browser back after
// ending its session: the console's root, from RedirectURL. Register it
// at the provider as a post-logout redirect URI.
func (o *OIDC) PostLogoutURL() string { return strings.TrimSuffix(o.RedirectURL, "sso/callback") }

// endSessionURL is the provider's end-session URL for u (RP-Initiated
// Logout 1.0), or "" when the provider has none.
func (c *Console) endSessionURL(u *user) string {
	if c.sso == nil || u.person == nil || u.idToken == "" {
		return ""
	}
	c.sso.mu.Lock()
	ep := c.sso.endSession
	c.sso.mu.Unlock()
	if ep == "" {
		return ""
	}
	q := url.Values{"id_token_hint": {u.idToken}, "client_id": {c.sso.cfg.ClientID}, "post_logout_redirect_uri": {c.sso.cfg.PostLogoutURL()}}
	sep := "?"
	if strings.Contains(ep, "?") {
		sep = "&"
	}
	return ep + sep + q.Encode()
}

var errNoPeople = errors.New("OIDC sign-in needs the log server's People (the console in the log server's process)")

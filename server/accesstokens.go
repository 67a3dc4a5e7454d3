package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/identity"
)

// AccessTokens accepts JWT access tokens of an OpenID provider as bearer
// tokens on the API, so that scripts need no long-lived token of the log:
// the token must verify (the provider's signature with a key of its JWKS,
// the issuer, Audience among its audiences, not expired) and its claims
// must map to a role (the console's role mapping). The holder then acts as
// a person signed in to the console does: with the role's rights, named
// in every event they cause (issuer and role, the subject as a pseudonym),
// writing as "jwt-" and 16 hex digits of the token's hash. A group removed
// at the provider takes effect when the token expires.
type AccessTokens struct {
	// Issuer is the provider's issuer URL (discovery at
	// Issuer/.well-known/openid-configuration).
	Issuer string
	// Audience is the API's identifier at the provider, which access
	// tokens for the log carry in aud. Use one of its own, not the
	// console's client id: an ID token's audience is the client id.
	Audience string
	// Roles returns the role mapping in force.
	Roles func() *identity.Mapping
	// HTTPClient reaches the provider (default: one with a 10 s timeout).
	HTTPClient *http.Client
	// Now is the clock a token's expiry is checked against (default
	// time.Now; tests move it past a token's exp).
	Now func() time.Time
}

// accessTokens verifies access tokens.
type accessTokens struct {
	cfg AccessTokens
	hc  *http.Client

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
}

func newAccessTokens(cfg AccessTokens) (*accessTokens, error) {
	if cfg.Issuer == "" || cfg.Audience == "" || cfg.Roles == nil {
		return nil, fmt.Errorf("access tokens of an identity provider need its issuer, the API's audience and a role mapping")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &accessTokens{cfg: cfg, hc: hc}, nil
}

// isJWT reports whether a bearer token is a compact JWS (the log's own
// tokens start with lat_).
func isJWT(tok string) bool { return strings.HasPrefix(tok, "eyJ") && strings.Count(tok, ".") == 2 }

func (a *accessTokens) discover(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.verifier != nil {
		return a.verifier, nil
	}
	dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, a.hc), 15*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, a.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	a.verifier = p.VerifierContext(oidc.ClientContext(context.Background(), a.hc), &oidc.Config{ClientID: a.cfg.Audience, Now: a.cfg.Now})
	return a.verifier, nil
}

// check returns the principal of a verified access token with a role.
func (a *accessTokens) check(ctx context.Context, tok string) (*auth.Principal, error) {
	if len(tok) > 16<<10 {
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "the access token is too large")
	}
	v, err := a.discover(ctx)
	if err != nil {
		return nil, errorf(http.StatusServiceUnavailable, "identity_provider", "the identity provider cannot be reached to check the access token")
	}
	t, err := v.Verify(oidc.ClientContext(ctx, a.hc), tok)
	if err != nil {
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "the access token does not verify: %v", err)
	}
	var claims map[string]any
	if err := t.Claims(&claims); err != nil || t.Subject == "" {
		return nil, errorf(http.StatusUnauthorized, "unauthenticated", "the access token's claims do not decode")
	}
	// An ID token is no access token, even where its audience is the
	// API's: these claims are an ID token's alone (OpenID Connect Core).
	for _, k := range []string{"nonce", "at_hash", "c_hash"} {
		if _, ok := claims[k]; ok {
			return nil, errorf(http.StatusUnauthorized, "unauthenticated", "an ID token is not an access token (it carries %s)", k)
		}
	}
	role, ok := a.cfg.Roles().Role(claims)
	if !ok {
		return nil, &noRoleError{errorf(http.StatusForbidden, "no_role", "the access token's claims map to no role of the log"),
			identity.Person{Issuer: t.Issuer, Subject: t.Subject}}
	}
	h := sha256.Sum256([]byte(tok))
	p := &auth.Principal{ID: "jwt-" + hex.EncodeToString(h[:8]), Name: role.Name, Tenant: role.Tenant, Global: role.Global, Scopes: role.Scopes,
		Person: &identity.Person{Issuer: t.Issuer, Subject: t.Subject}}
	if role.Signer != "" {
		p.Actors = []string{role.Signer}
	}
	return p, nil
}

// noRoleError is the refusal of a verified access token whose claims map
// to no role: the person is known, and the refusal is recorded as their
// failed sign-in (recordPersonRefused).
type noRoleError struct {
	err    *apiError
	person identity.Person
}

func (e *noRoleError) Error() string { return e.err.Error() }
func (e *noRoleError) Unwrap() error { return e.err }

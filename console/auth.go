package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/identity"
)

// Sign-in. The token a user pastes stays on the server, in memory, with a
// client of the log made for it; the browser gets only a random 256-bit
// session id, in an HttpOnly, SameSite=Strict cookie (Secure, with the
// __Secure- prefix, under TLS). The server keeps a hash of the id, so a
// copy of its memory's keys does not sign anyone in. Every form carries a
// CSRF token: for a signed-in user a random one of the sign-in, for the
// sign-in form an HMAC of a pre-sign-in cookie.

const (
	cookieName    = "llmat_console"
	preCookieName = "llmat_console_pre"
)

// user is one sign-in: with a token (break-glass), or of a person
// through the identity provider (sso.go).
type user struct {
	key     string // hex SHA-256 of the session id
	token   string // a token sign-in's token
	log     *client.Client
	csrf    string
	created time.Time

	// A person's sign-in: who (verified), the role and the mapping that
	// gave it, the claims it was given for (mapped again when the
	// mapping is reloaded), the sign-in's public id, a name to greet them.
	person  *identity.Person
	role    *identity.Role
	mapping *identity.Mapping
	claims  map[string]any
	signin  string
	name    string
	// idToken is the ID token of the sign-in, kept in memory for the
	// provider's end-session request (id_token_hint) and nothing else.
	idToken string

	mu   sync.Mutex
	seen time.Time
	// signing continues a signer's signing session (21 CFR 11.200) across
	// signings: the signer and the session the server opened.
	signer, signing string
	reports         []*storedReport
}

// users holds the sign-ins.
type users struct {
	cfg    Config
	secret []byte // keys the pre-sign-in CSRF tokens
	// ended is told of each sign-in that ends other than by signing out
	// (idle, expired, pushed out by MaxUsers), outside the lock.
	ended func(u *user, reason string)

	mu sync.Mutex
	m  map[string]*user
}

func newUsers(cfg Config, ended func(u *user, reason string)) *users {
	return &users{cfg: cfg, secret: random(32), m: map[string]*user{}, ended: ended}
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return b
}

func hashID(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

// add signs u in and returns the session id for the cookie.
func (us *users) add(u *user) string {
	id := base64.RawURLEncoding.EncodeToString(random(32))
	now := time.Now()
	u.key, u.csrf, u.created, u.seen = hashID(id), base64.RawURLEncoding.EncodeToString(random(32)), now, now
	us.mu.Lock()
	gone := us.expireLocked(now)
	for len(us.m) >= us.cfg.MaxUsers {
		var oldest *user
		for _, x := range us.m {
			if oldest == nil || x.lastSeen().Before(oldest.lastSeen()) {
				oldest = x
			}
		}
		delete(us.m, oldest.key)
		gone = append(gone, oldest)
	}
	us.m[u.key] = u
	us.mu.Unlock()
	us.tell(gone, identity.ReasonExpired)
	return id
}

func (us *users) tell(gone []*user, reason string) {
	if us.ended == nil {
		return
	}
	for _, u := range gone {
		us.ended(u, reason)
	}
}

func (u *user) lastSeen() time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen
}

func (us *users) expired(u *user, now time.Time) bool {
	return now.Sub(u.created) > us.cfg.MaxAge || now.Sub(u.lastSeen()) > us.cfg.IdleTimeout
}

func (us *users) expireLocked(now time.Time) []*user {
	var gone []*user
	for k, u := range us.m {
		if us.expired(u, now) {
			delete(us.m, k)
			gone = append(gone, u)
		}
	}
	return gone
}

// get returns the signed-in user of the session id, if any.
func (us *users) get(id string) *user {
	if id == "" || len(id) > 128 {
		return nil
	}
	now := time.Now()
	us.mu.Lock()
	u := us.m[hashID(id)]
	if u != nil && us.expired(u, now) {
		delete(us.m, u.key)
		us.mu.Unlock()
		us.tell([]*user{u}, identity.ReasonExpired)
		return nil
	}
	us.mu.Unlock()
	if u != nil {
		u.mu.Lock()
		u.seen = now
		u.mu.Unlock()
	}
	return u
}

// remove ends u's sign-in; it reports whether u was signed in.
func (us *users) remove(u *user) bool {
	us.mu.Lock()
	defer us.mu.Unlock()
	_, ok := us.m[u.key]
	delete(us.m, u.key)
	return ok
}

// secure reports whether cookies must be Secure.
func (c *Console) secure(r *http.Request) bool { return c.cfg.SecureCookies || r.TLS != nil }

// cookie returns the cookie named name, with the __Secure- prefix when
// secure.
func (c *Console) cookieName(r *http.Request, name string) string {
	if c.secure(r) {
		return "__Secure-" + name
	}
	return name
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: c.cookieName(r, name), Value: value, Path: Path, MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode,
	})
}

func (c *Console) currentUser(r *http.Request) *user {
	ck, err := r.Cookie(c.cookieName(r, cookieName))
	if err != nil {
		return nil
	}
	return c.users.get(ck.Value)
}

// userHandler is a page for a signed-in user.
type userHandler func(w http.ResponseWriter, r *http.Request, u *user)

// user admits signed-in users: others go to the sign-in page (a POST is
// refused). A POST must carry the sign-in's CSRF token.
func (c *Console) user(h userHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := c.currentUser(r)
		if u == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, Path+"?expired=1", http.StatusSeeOther)
				return
			}
			c.fail(w, r, nil, http.StatusForbidden, "You are not signed in (or your sign-in expired). Sign in again.")
			return
		}
		if !c.remap(u) {
			if c.users.remove(u) {
				c.signedOut(r.Context(), u, identity.ReasonRoleChanged)
			}
			c.setCookie(w, r, cookieName, "", -1)
			c.fail(w, r, nil, http.StatusForbidden, "Your role in the console changed (the role mapping was updated), so your sign-in ended. Sign in again.")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead &&
			subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(u.csrf)) != 1 {
			if u.person != nil {
				c.record(r.Context(), identity.Account{Kind: identity.KindDenied, Method: identity.MethodOIDC, SignIn: u.signin, Person: u.person, Role: u.role,
					Reason: identity.ReasonCSRF, Detail: r.Method + " " + event.Clip(r.URL.Path, 200)})
			}
			c.fail(w, r, u, http.StatusForbidden, "The form's CSRF token is missing or wrong: reload the page and try again.")
			return
		}
		h(w, r, u)
	})
}

// preToken is the CSRF token of the sign-in form for a pre-sign-in
// cookie value.
func (c *Console) preToken(pre string) string {
	m := hmac.New(sha256.New, c.users.secret)
	m.Write([]byte("console sign-in\x00" + pre))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

type signinData struct {
	PreCSRF string
	Expired bool
	// SSO names the identity provider when people sign in through it;
	// Token says whether the token form is on.
	SSO   string
	Token bool
}

// home shows the sign-in form, or the health page to a signed-in user.
func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	if c.currentUser(r) != nil {
		http.Redirect(w, r, Path+"health", http.StatusSeeOther)
		return
	}
	c.signinForm(w, r, http.StatusOK, "")
}

func (c *Console) signinForm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	pre := ""
	if ck, err := r.Cookie(c.cookieName(r, preCookieName)); err == nil && len(ck.Value) == 43 {
		pre = ck.Value
	} else {
		pre = base64.RawURLEncoding.EncodeToString(random(32))
		c.setCookie(w, r, preCookieName, pre, 3600)
	}
	d := signinData{PreCSRF: c.preToken(pre), Expired: r.URL.Query().Get("expired") != "", Token: !c.cfg.DisableTokenSignIn}
	if c.sso != nil {
		d.SSO = c.sso.cfg.Name
	}
	c.render(w, r, status, "signin", page{Title: "Sign in", Error: msg, Data: d})
}

// login signs a user in with the token pasted into the form: the log must
// know it and it must have the read scope.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.cfg.DisableTokenSignIn {
		c.signinForm(w, r, http.StatusForbidden, "Sign-in with a token is turned off on this console.")
		return
	}
	if !c.allowSignIn(w, r) {
		return
	}
	ck, err := r.Cookie(c.cookieName(r, preCookieName))
	if err != nil || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(c.preToken(ck.Value))) != 1 {
		c.signinForm(w, r, http.StatusForbidden, "The sign-in form expired or did not come from this console: try again.")
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" || len(token) > MaxTokenBytes || strings.ContainsAny(token, " \t\r\n") {
		c.signinForm(w, r, http.StatusBadRequest, "Paste a token of the log (one line, as log-server token create prints it).")
		return
	}
	log := c.cfg.Client(token)
	// A search of one session says whether the log knows the token and
	// lets it read: 401 unknown or revoked, 403 no read scope. (It always
	// authenticates, also on a log whose entries are public.)
	_, err = log.Sessions(r.Context(), api.SessionSearch{Limit: 1})
	switch {
	case errors.Is(err, client.ErrUnauthenticated):
		c.record(r.Context(), identity.Account{Kind: identity.KindSignInFailed, Method: identity.MethodToken, Reason: identity.ReasonUnknownToken})
		c.signinForm(w, r, http.StatusUnauthorized, "The log does not know this token, or it was revoked.")
		return
	case errors.Is(err, client.ErrForbidden):
		c.record(r.Context(), identity.Account{Kind: identity.KindSignInFailed, Method: identity.MethodToken, Token: token, Reason: identity.ReasonNoRead})
		c.signinForm(w, r, http.StatusForbidden, "This token lacks the read scope, which the console needs (signers: a token of the sign and read scopes).")
		return
	case errors.Is(err, client.ErrOverloaded):
		c.signinForm(w, r, http.StatusServiceUnavailable, "The log is busy; try again in a moment.")
		return
	case err != nil:
		c.signinForm(w, r, http.StatusBadGateway, "The log could not check the token: "+err.Error())
		return
	}
	c.record(r.Context(), identity.Account{Kind: identity.KindSignIn, Method: identity.MethodToken, Token: token})
	id := c.users.add(&user{token: token, log: log})
	c.setCookie(w, r, cookieName, id, int(c.cfg.MaxAge.Seconds()))
	c.setCookie(w, r, preCookieName, "", -1)
	c.logger.Info("console: signed in", "method", identity.MethodToken, "remote", r.RemoteAddr)
	http.Redirect(w, r, Path+"health", http.StatusSeeOther)
}

// logout ends the sign-in: the server forgets the token, or the person.
func (c *Console) logout(w http.ResponseWriter, r *http.Request, u *user) {
	if c.users.remove(u) {
		c.signedOut(r.Context(), u, identity.ReasonSignedOut)
	}
	c.setCookie(w, r, cookieName, "", -1)
	if end := c.endSessionURL(u); end != "" {
		// The provider's session ends too (RP-Initiated Logout). A page
		// moves on to it: the form's redirect to another site would be
		// refused by the form-action policy.
		c.render(w, r, http.StatusOK, "signedout", page{Title: "Signed out", Data: signedOutData{EndSession: end, Provider: c.sso.cfg.Name}})
		return
	}
	http.Redirect(w, r, Path, http.StatusSeeOther)
}

type signedOutData struct{ EndSession, Provider string }

// signedOut records the end of a sign-in.
func (c *Console) signedOut(ctx context.Context, u *user, reason string) {
	a := identity.Account{Kind: identity.KindSignOut, Method: identity.MethodToken, Token: u.token, Reason: reason}
	if u.person != nil {
		a = identity.Account{Kind: identity.KindSignOut, Method: identity.MethodOIDC, SignIn: u.signin, Person: u.person, Role: u.role, Reason: reason}
	}
	c.record(ctx, a)
}

// Person is the person of the sign-in, nil for a token's.
func (u *user) Person() *identity.Person { return u.person }

// Name is how the console greets the person.
func (u *user) Name() string { return u.name }

// RoleName is the person's role.
func (u *user) RoleName() string {
	if u.role == nil {
		return ""
	}
	return u.role.Name
}

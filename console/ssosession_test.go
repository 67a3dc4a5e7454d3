package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/console"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/identity"
	"github.com/llmaudittrail/llmaudittrail/internal/oidctest"
	"github.com/llmaudittrail/llmaudittrail/signature"
)

// ssoSignIn signs a in as user through the provider, without a browser:
// the console's start, the provider's login form (with a cookie jar of
// the provider's own), and the console's callback. It returns the
// callback's answer and the sign-in's public id.
func (sw *ssoWorld) ssoSignIn(t *testing.T, a *agent, user string) (answer, string) {
	t.Helper()
	before := sw.ssoSignIns(t)
	r := a.do("GET", "sso/start", nil, nil)
	auth := r.header.Get("Location")
	if r.code != http.StatusSeeOther || !strings.HasPrefix(auth, sw.op.Issuer) {
		t.Fatalf("sso/start = %d to %q", r.code, auth)
	}
	jar, _ := cookiejar.New(nil)
	var callback *url.URL
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), sw.url+"sso/callback") {
			callback = r.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	res, err := hc.Get(auth)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	id := res.Request.URL.Query().Get("authRequestID")
	if id == "" {
		t.Fatalf("no login page: %s", res.Request.URL)
	}
	res, err = hc.PostForm(sw.op.Issuer+"/login/username", url.Values{"id": {id}, "username": {user}, "password": {oidctest.Password}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if callback == nil {
		t.Fatalf("the provider did not send %s back (%s)", user, res.Status)
	}
	r = a.do("GET", "sso/callback?"+callback.RawQuery, nil, nil)
	if r.code != http.StatusOK {
		t.Fatalf("callback = %d %s", r.code, r.body)
	}
	var signin string
	for _, s := range sw.ssoSignIns(t) {
		if !slices.Contains(before, s) {
			signin = s
		}
	}
	if signin == "" {
		t.Fatal("no new sign-in in the log")
	}
	return r, signin
}

// ssoSignIns lists the public ids of the people's sign-ins in clinic-a.
func (sw *ssoWorld) ssoSignIns(t *testing.T) []string {
	t.Helper()
	list, err := sw.client(sw.global).Sessions(context.Background(), api.SessionSearch{Tenant: tenant, Kind: identity.KindSignIn})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range list.Sessions {
		if id, ok := strings.CutPrefix(s.Session, "access."); ok && strings.HasPrefix(id, "sso-") {
			out = append(out, id)
		}
	}
	return out
}

// TestConsoleSSOSessionSecurity: with OIDC on, the token sign-in still
// works (break-glass, on by default); a person's sign-in gets the same
// cookie as a token's (HttpOnly, SameSite=Strict, Secure with the
// __Secure- prefix, Path, Max-Age); a state-changing POST without the
// sign-in's CSRF token is refused and recorded as access.denied (csrf);
// the sign form posted with another signer id than the role's is refused
// and recorded (signature.failed not_bound, access.denied);
// the idle and the absolute timeouts end a person's sign-in, recorded as
// access.signout (expired).
func TestConsoleSSOSessionSecurity(t *testing.T) {
	const idle, maxAge = time.Second, 2500 * time.Millisecond
	sw := newSSOWorldWith(t, func(cc *console.Config) {
		cc.SecureCookies, cc.IdleTimeout, cc.MaxAge = true, idle, maxAge
	})
	const name = "__Secure-llmat_console"

	tok := newAgent(t, sw.url, nil)
	pre := csrfOf(t, tok.do("GET", "", nil, nil).body)
	r := tok.do("POST", "login", url.Values{"csrf": {pre}, "token": {sw.auditor}}, nil)
	tc := cookie(r.cookies, name)
	if r.code != http.StatusSeeOther || tc == nil {
		t.Fatalf("token sign-in with OIDC on = %d, cookies %v", r.code, r.cookies)
	}
	if r := tok.do("GET", "health", nil, nil); r.code != http.StatusOK {
		t.Fatalf("health after the token sign-in = %d", r.code)
	}

	p := newAgent(t, sw.url, nil)
	r, signin := sw.ssoSignIn(t, p, "ada")
	pc := cookie(r.cookies, name)
	if pc == nil {
		t.Fatalf("no session cookie from the callback: %v", r.cookies)
	}
	if !pc.HttpOnly || !pc.Secure || pc.SameSite != http.SameSiteStrictMode || pc.Path != console.Path ||
		pc.MaxAge != int(maxAge.Seconds()) || pc.MaxAge != tc.MaxAge || pc.Path != tc.Path ||
		pc.HttpOnly != tc.HttpOnly || pc.Secure != tc.Secure || pc.SameSite != tc.SameSite {
		t.Errorf("the person's cookie %+v; the token's %+v", pc, tc)
	}
	if strings.Contains(pc.Value, "ey") && strings.Count(pc.Value, ".") == 2 {
		t.Errorf("the cookie holds a JWT: %q", pc.Value)
	}
	h := p.do("GET", "health", nil, nil)
	if h.code != http.StatusOK {
		t.Fatalf("health after the SSO sign-in = %d", h.code)
	}
	csrf := csrfOf(t, h.body)

	// CSRF: signing out without the token, or with another sign-in's, is
	// refused and recorded; the sign-in goes on.
	tokCSRF := csrfOf(t, tok.do("GET", "health", nil, nil).body)
	for _, form := range []url.Values{{}, {"csrf": {tokCSRF}}} {
		if r := p.do("POST", "logout", form, nil); r.code != http.StatusForbidden {
			t.Errorf("sign-out with csrf %q = %d", form.Get("csrf"), r.code)
		}
	}
	if r := p.do("GET", "health", nil, nil); r.code != http.StatusOK {
		t.Fatalf("health after the refused sign-outs = %d", r.code)
	}
	var denied int
	for _, l := range sw.events(t, tenant, "access."+signin) {
		if l.Kind == identity.KindDenied {
			denied++
			if attr(l, "access.reason") != identity.ReasonCSRF || attr(l, "access.detail") != "POST /console/logout" {
				t.Errorf("refusal %v", l.Attributes)
			}
			sw.checkPerson(t, l, "id-ada", "clinic-a-signer")
		}
	}
	if denied != 2 {
		t.Errorf("%d refusals recorded, want 2", denied)
	}
	// ada's role maps her to signer dr-ada: the sign form posted with
	// signer dr-bob, and dr-bob's own secret, is refused by the server,
	// which records the attempt in dr-bob's name and the person's refusal.
	const bobSecret = "bob's own long secret phrase"
	admin := sw.client(sw.token(auth.Spec{Name: "hr", Tenant: tenant, Scopes: []string{auth.ScopeAdmin}}))
	if _, err := admin.Enroll(context.Background(), api.Enrollment{ID: "dr-bob", PrintedName: "Dr. Bob", Secret: bobSecret, IdentityVerifiedBy: "hr.jones"}); err != nil {
		t.Fatal(err)
	}
	rec := sw.triage[1]
	r = p.do("POST", fmt.Sprintf("entries/%d/sign", rec.Index), url.Values{"csrf": {csrf}, "signer": {"dr-bob"}, "secret": {bobSecret}, "meaning": {"approved"}}, nil)
	if r.code != http.StatusForbidden || !strings.Contains(r.body, "not bound to that signer") {
		t.Errorf("signing as dr-bob through the console = %d:\n%s", r.code, r.body)
	}
	evs := sw.events(t, tenant, "access."+signin)
	if l := evs[len(evs)-1]; l.Kind != identity.KindDenied || attr(l, "access.detail") != "POST /v1/signatures: 403" || attr(l, "access.signer") != signerID {
		t.Errorf("the refusal of signing as dr-bob: %s %v", l.Kind, l.Attributes)
	} else {
		sw.checkPerson(t, l, "id-ada", "clinic-a-signer")
	}
	bob := sw.events(t, tenant, event.SignerSession("dr-bob"))
	if l := bob[len(bob)-1]; l.Kind != signature.KindFailed || attr(l, signature.AttrFailure) != "not_bound" || attr(l, signature.AttrTokenID) != signin {
		t.Errorf("dr-bob's signer session ends with %s %v", l.Kind, l.Attributes)
	}
	for _, l := range sw.events(t, tenant, "triage-7") {
		if l.Kind == event.KindHumanSignature {
			t.Errorf("a signature landed: %v", l.Attributes)
		}
	}

	if r := p.do("POST", "logout", url.Values{"csrf": {csrf}}, nil); r.code != http.StatusOK && r.code != http.StatusSeeOther {
		t.Errorf("sign-out with the CSRF token = %d", r.code)
	}

	// Idle: no request for longer than the idle timeout ends it.
	_, signin = sw.ssoSignIn(t, p, "ada")
	if r := p.do("GET", "health", nil, nil); r.code != http.StatusOK {
		t.Fatalf("health = %d", r.code)
	}
	time.Sleep(idle + 300*time.Millisecond)
	if r := p.do("GET", "health", nil, nil); r.code != http.StatusSeeOther || !strings.Contains(r.header.Get("Location"), "expired") {
		t.Errorf("after the idle timeout = %d %s", r.code, r.header.Get("Location"))
	}
	sw.wantEnd(t, signin, identity.ReasonExpired)

	// Absolute: a sign-in in use ends at MaxAge all the same. The server
	// signs in between before and start, so a check begun maxAge after
	// start or later must find it ended, and one that ends before maxAge
	// after before must not: bounds that hold however long a request
	// takes on a busy machine.
	before := time.Now()
	_, signin = sw.ssoSignIn(t, p, "ada")
	start, ended, lastOK := time.Now(), time.Duration(0), time.Duration(-1)
	for time.Since(start) < maxAge+time.Second {
		began := time.Since(start)
		if r := p.do("GET", "health", nil, nil); r.code != http.StatusOK {
			if r.code != http.StatusSeeOther || !strings.Contains(r.header.Get("Location"), "expired") {
				t.Fatalf("health = %d %s", r.code, r.header.Get("Location"))
			}
			ended = time.Since(before)
			break
		}
		lastOK = began
		time.Sleep(idle / 4)
	}
	switch {
	case ended == 0:
		t.Errorf("a sign-in in use did not end within %v", maxAge+time.Second)
	case lastOK >= maxAge:
		t.Errorf("a sign-in in use still served a check begun %v after it, past MaxAge %v", lastOK, maxAge)
	case ended < maxAge:
		t.Errorf("a sign-in in use ended %v after it, before MaxAge %v", ended, maxAge)
	}
	sw.wantEnd(t, signin, identity.ReasonExpired)
}

// wantEnd checks that a person's sign-in ended with reason.
func (sw *ssoWorld) wantEnd(t *testing.T, signin, reason string) {
	t.Helper()
	evs := sw.events(t, tenant, "access."+signin)
	if l := evs[len(evs)-1]; l.Kind != identity.KindSignOut || attr(l, "access.reason") != reason {
		t.Errorf("the sign-in's last event %s %v, want %s %s", l.Kind, l.Attributes, identity.KindSignOut, reason)
	}
}

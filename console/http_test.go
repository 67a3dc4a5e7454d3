package console_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/console"
)

// agent is a user agent without a browser: it keeps the cookies it is
// given, sends them back, and never follows a redirect.
type agent struct {
	t       *testing.T
	base    string // the console's root
	hc      *http.Client
	cookies map[string]*http.Cookie
}

func newAgent(t *testing.T, base string, hc *http.Client) *agent {
	if hc == nil {
		hc = &http.Client{}
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &agent{t: t, base: base, hc: &c, cookies: map[string]*http.Cookie{}}
}

type answer struct {
	code    int
	body    string
	header  http.Header
	cookies []*http.Cookie
}

func (a *agent) do(method, path string, form url.Values, header map[string]string) answer {
	a.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	for _, c := range a.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			delete(a.cookies, c.Name)
		} else {
			a.cookies[c.Name] = c
		}
	}
	return answer{resp.StatusCode, string(b), resp.Header, resp.Cookies()}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, html string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", html)
	}
	return m[1]
}

// signIn signs in with token and returns the sign-in's CSRF token.
func (a *agent) signIn(token string) string {
	a.t.Helper()
	pre := csrfOf(a.t, a.do("GET", "", nil, nil).body)
	if r := a.do("POST", "login", url.Values{"csrf": {pre}, "token": {token}}, nil); r.code != http.StatusSeeOther {
		a.t.Fatalf("sign-in = %d %s", r.code, r.body)
	}
	return csrfOf(a.t, a.do("GET", "health", nil, nil).body)
}

func cookie(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestConsoleSignIn: the sign-in form's CSRF token, the token check (an
// unknown token, one without the read scope), the session cookie's flags
// (HttpOnly, SameSite=Strict, Path, not the token), the headers of every
// page, sign-out (the cookie no longer works, even if kept).
func TestConsoleSignIn(t *testing.T) {
	w := newWorld(t, worldOptions{})
	a := newAgent(t, w.url, nil)
	r := a.do("GET", "", nil, nil)
	pre := cookie(r.cookies, "llmat_console_pre")
	if r.code != 200 || pre == nil || !pre.HttpOnly || pre.SameSite != http.SameSiteStrictMode || pre.Secure || pre.Path != console.Path {
		t.Fatalf("sign-in page = %d, pre-sign-in cookie %+v", r.code, pre)
	}
	form := csrfOf(t, r.body)
	for _, c := range []struct {
		name     string
		csrf     string
		token    string
		header   map[string]string
		wantCode int
		wantText string
	}{
		{"no CSRF token", "", w.auditor, nil, 403, "did not come from this console"},
		{"another form's CSRF token", "AAAA" + form[4:], w.auditor, nil, 403, "did not come from this console"},
		{"posted from another site", form, w.auditor, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "from another site"},
		{"no token", form, "", nil, 400, "Paste a token"},
		{"an unknown token", form, "0123456789abcdef", nil, 401, "does not know this token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := a.do("POST", "login", url.Values{"csrf": {c.csrf}, "token": {c.token}}, c.header)
			if r.code != c.wantCode || !strings.Contains(r.body, c.wantText) || cookie(r.cookies, "llmat_console") != nil {
				t.Fatalf("= %d, cookies %v, want %d %q:\n%s", r.code, r.cookies, c.wantCode, c.wantText, r.body)
			}
		})
	}
	t.Run("a token without the read scope", func(t *testing.T) {
		signer := w.token(auth.Spec{Name: "signer-only", Tenant: tenant, Scopes: []string{auth.ScopeSign}, Actors: []string{signerID}})
		r := a.do("POST", "login", url.Values{"csrf": {form}, "token": {signer}}, nil)
		if r.code != 403 || !strings.Contains(r.body, "lacks the read scope") {
			t.Fatalf("= %d %s", r.code, r.body)
		}
	})

	r = a.do("POST", "login", url.Values{"csrf": {form}, "token": {w.auditor}}, nil)
	sess := cookie(r.cookies, "llmat_console")
	switch {
	case r.code != http.StatusSeeOther || r.header.Get("Location") != console.Path+"health":
		t.Fatalf("sign-in = %d to %q", r.code, r.header.Get("Location"))
	case sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Secure || sess.Path != console.Path:
		t.Fatalf("session cookie %+v", sess)
	case strings.Contains(sess.Value, w.auditor) || len(sess.Value) < 40:
		t.Fatalf("the session cookie %q is not a random id", sess.Value)
	}
	r = a.do("GET", "health", nil, nil)
	if r.code != 200 || strings.Contains(r.body, w.auditor) {
		t.Fatalf("health = %d (the page must not hold the token)", r.code)
	}
	for k, v := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Content-Type-Options":  "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
		"Content-Type": "text/html; charset=utf-8",
	} {
		if got := r.header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	csrf := csrfOf(t, r.body)
	if r := a.do("POST", "logout", url.Values{}, nil); r.code != 403 {
		t.Fatalf("sign-out without the CSRF token = %d", r.code)
	}
	if r := a.do("GET", "health", nil, nil); r.code != 200 {
		t.Fatalf("the refused sign-out signed out: %d", r.code)
	}
	r = a.do("POST", "logout", url.Values{"csrf": {csrf}}, nil)
	if c := cookie(r.cookies, "llmat_console"); r.code != http.StatusSeeOther || c == nil || c.MaxAge >= 0 {
		t.Fatalf("sign-out = %d, cookie %+v", r.code, c)
	}
	a.cookies["llmat_console"] = sess // a copy kept by whoever had it
	if r := a.do("GET", "health", nil, nil); r.code != http.StatusSeeOther || !strings.Contains(r.header.Get("Location"), "expired") {
		t.Fatalf("after sign-out the old cookie = %d %s", r.code, r.header.Get("Location"))
	}
}

// TestConsoleSignInPublicLog: on a log whose entries anyone may read, a
// token the log does not know is still refused.
func TestConsoleSignInPublicLog(t *testing.T) {
	w := newWorld(t, worldOptions{public: true})
	a := newAgent(t, w.url, nil)
	form := csrfOf(t, a.do("GET", "", nil, nil).body)
	if r := a.do("POST", "login", url.Values{"csrf": {form}, "token": {"0123456789abcdef"}}, nil); r.code != 401 || cookie(r.cookies, "llmat_console") != nil {
		t.Fatalf("an unknown token on a public log = %d %v", r.code, r.cookies)
	}
	a.signIn(w.reader)
}

// TestConsoleCSRF: every state-changing action refuses a POST without the
// sign-in's CSRF token, with another sign-in's, or from another site, and
// then has no effect in the log; with the token it works (the control).
func TestConsoleCSRF(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.traffic()
	a := newAgent(t, w.url, nil)
	csrf := a.signIn(w.auditor)
	other := newAgent(t, w.url, nil).signIn(w.auditor) // a valid token of another sign-in
	target := w.triage[1].Index
	actions := []struct {
		path string
		form url.Values
	}{
		{fmt.Sprintf("entries/%d/payload", target), url.Values{}},
		{"sessions/triage-7/payloads", url.Values{"tenant": {tenant}}},
		{fmt.Sprintf("entries/%d/sign", target), url.Values{"signer": {signerID}, "secret": {secret}, "meaning": {"approved"}}},
		{"reports", url.Values{"profile": {"part11"}, "from": {"2026-01-01"}, "to": {"2026-12-31"}}},
		{"logout", url.Values{}},
	}
	size := func() uint64 {
		n, err := w.srv.Log().Reader().IntegratedSize(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, act := range actions {
		for _, c := range []struct {
			name   string
			csrf   string
			header map[string]string
		}{
			{"without the token", "", nil},
			{"with another sign-in's token", other, nil},
			{"from another site", csrf, map[string]string{"Sec-Fetch-Site": "cross-site"}},
			{"from another origin of the same site", csrf, map[string]string{"Sec-Fetch-Site": "same-site"}},
		} {
			t.Run(act.path+" "+c.name, func(t *testing.T) {
				before := size()
				f := url.Values{}
				for k, v := range act.form {
					f[k] = v
				}
				if c.csrf != "" {
					f.Set("csrf", c.csrf)
				}
				if r := a.do("POST", act.path, f, c.header); r.code != http.StatusForbidden {
					t.Fatalf("= %d, want 403:\n%s", r.code, r.body)
				}
				time.Sleep(50 * time.Millisecond) // the log sequences in 2 ms
				if after := size(); after != before {
					t.Fatalf("a refused POST appended %d entries", after-before)
				}
			})
		}
	}
	// The control: the same request with the token discloses and logs.
	before := size()
	if r := a.do("POST", fmt.Sprintf("entries/%d/payload", target), url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "same-origin"}); r.code != 200 ||
		!strings.Contains(r.body, "refer to cardiology") {
		t.Fatalf("with the token = %d", r.code)
	}
	if size() == before {
		t.Fatal("the disclosure was not logged")
	}
	if r := newAgent(t, w.url, nil).do("POST", fmt.Sprintf("entries/%d/payload", target), url.Values{"csrf": {csrf}}, nil); r.code != http.StatusForbidden {
		t.Fatalf("a stolen CSRF token without the cookie = %d", r.code)
	}
}

// TestConsoleCookiesUnderTLS: served over TLS, cookies are Secure with
// the __Secure- prefix, and the plain names are not accepted there.
func TestConsoleCookiesUnderTLS(t *testing.T) {
	w := newWorld(t, worldOptions{})
	ts := httptest.NewTLSServer(w.srv.Handler())
	t.Cleanup(ts.Close)
	hc := ts.Client()
	hc.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS12
	a := newAgent(t, ts.URL+console.Path, hc)
	r := a.do("GET", "", nil, nil)
	if c := cookie(r.cookies, "__Secure-llmat_console_pre"); c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("pre-sign-in cookie under TLS: %v", r.cookies)
	}
	r = a.do("POST", "login", url.Values{"csrf": {csrfOf(t, r.body)}, "token": {w.auditor}}, nil)
	c := cookie(r.cookies, "__Secure-llmat_console")
	if r.code != http.StatusSeeOther || c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("sign-in under TLS = %d, cookies %v", r.code, r.cookies)
	}
	if r := a.do("GET", "health", nil, nil); r.code != 200 {
		t.Fatalf("health under TLS = %d", r.code)
	}
	plain := newAgent(t, ts.URL+console.Path, hc)
	plain.cookies["llmat_console"] = &http.Cookie{Name: "llmat_console", Value: c.Value}
	if r := plain.do("GET", "health", nil, nil); r.code != http.StatusSeeOther {
		t.Fatalf("the id under the plain name over TLS = %d", r.code)
	}
}

// TestConsoleSignInExpires: a sign-in ends after the idle timeout.
func TestConsoleSignInExpires(t *testing.T) {
	w := newWorld(t, worldOptions{console: func(c *console.Config) { c.IdleTimeout = 300 * time.Millisecond }})
	a := newAgent(t, w.url, nil)
	a.signIn(w.auditor)
	if r := a.do("GET", "health", nil, nil); r.code != 200 {
		t.Fatalf("health = %d", r.code)
	}
	time.Sleep(500 * time.Millisecond)
	if r := a.do("GET", "health", nil, nil); r.code != http.StatusSeeOther || !strings.Contains(r.header.Get("Location"), "expired") {
		t.Fatalf("after the idle timeout = %d %s", r.code, r.header.Get("Location"))
	}
}

// TestConsoleTlogProofDownload: an entry's page offers its receipt as a
// C2SP tlog-proof, which verifies with the log's key and is the entry; a
// reader of another tenant gets none.
func TestConsoleTlogProofDownload(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.traffic()
	a := newAgent(t, w.url, nil)
	a.signIn(w.reader)
	target := w.triage[1].Index
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if cp, _, err := w.srv.Log().Checkpoint(context.Background()); err == nil && cp.Size > target {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint covers the entry")
		}
	}
	if r := a.do("GET", fmt.Sprintf("entries/%d", target), nil, nil); !strings.Contains(r.body, fmt.Sprintf(`href="/console/entries/%d/proof"`, target)) {
		t.Fatalf("the entry page links no tlog-proof:\n%s", r.body)
	}
	r := a.do("GET", fmt.Sprintf("entries/%d/proof", target), nil, nil)
	if r.code != http.StatusOK || !strings.Contains(r.header.Get("Content-Disposition"), fmt.Sprintf("entry-%d.tlog-proof", target)) {
		t.Fatalf("GET entries/%d/proof = %d %v\n%s", target, r.code, r.header, r.body)
	}
	key, _ := checkpoint.NewVerifier(w.srv.VerifierKey())
	vr, err := api.VerifyReceipt([]byte(r.body), key, nil)
	if err != nil || vr.Index != target || !bytes.Equal(vr.Leaf, w.triage[1].Leaf) {
		t.Fatalf("the downloaded tlog-proof: %+v, %v", vr, err)
	}
	other := newAgent(t, w.url, nil)
	other.signIn(w.token(auth.Spec{Name: "reader-b", Tenant: "clinic-b", Scopes: []string{auth.ScopeRead}}))
	if r := other.do("GET", fmt.Sprintf("entries/%d/proof", target), nil, nil); r.code == http.StatusOK || strings.Contains(r.body, "c2sp.org/tlog-proof") {
		t.Fatalf("another tenant's reader = %d\n%s", r.code, r.body)
	}
}

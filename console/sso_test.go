package console_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/console"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/identity"
	"github.com/llmaudittrail/llmaudittrail/internal/oidctest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// The OpenID provider of these tests is zitadel/oidc's (internal/oidctest).

const otherTenant = "clinic-b"

// testRoles maps ada (by subject) to clinic-a's signer dr-ada, and the
// clinic-a-qa group to clinic-a's reviewers.
const testRoles = `
roles:
  - name: clinic-a-signer
    claim: sub
    match: [id-ada]
    tenant: clinic-a
    scopes: [read, audit, sign]
    signer: dr-ada
  - name: clinic-a-reviewers
    match: [clinic-a-qa]
    tenant: clinic-a
    scopes: [read, audit]
`

// tamper stands between the console and the provider: it notes the codes
// the console exchanges and, when told to, rewrites the ID token of the
// provider's answer (claims changed, signed again with a key it is given),
// as an attacker who could inject a token into the flow would.
type tamper struct {
	mu       sync.Mutex
	edit     func(claims map[string]any) (key *rsa.PrivateKey, kid string)
	lastCode string
}

func (tp *tamper) set(f func(map[string]any) (*rsa.PrivateKey, string)) {
	tp.mu.Lock()
	tp.edit = f
	tp.mu.Unlock()
}

func (tp *tamper) code() string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.lastCode
}

func (tp *tamper) RoundTrip(r *http.Request) (*http.Response, error) {
	isToken := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token")
	if isToken && r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		if v, err := url.ParseQuery(string(b)); err == nil {
			tp.mu.Lock()
			tp.lastCode = v.Get("code")
			tp.mu.Unlock()
		}
	}
	res, err := http.DefaultTransport.RoundTrip(r)
	tp.mu.Lock()
	edit := tp.edit
	tp.mu.Unlock()
	if !isToken || err != nil || edit == nil || res.StatusCode != http.StatusOK {
		return res, err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var tok map[string]any
	if err := json.Unmarshal(body, &tok); err != nil {
		return nil, err
	}
	raw, _ := tok["id_token"].(string)
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("tamper: id_token %q", raw)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	key, kid := edit(claims)
	payload, _ = json.Marshal(claims)
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	jws, err := sg.Sign(payload)
	if err != nil {
		return nil, err
	}
	if tok["id_token"], err = jws.CompactSerialize(); err != nil {
		return nil, err
	}
	body, _ = json.Marshal(tok)
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	res.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return res, nil
}

// ssoWorld is a world whose console signs people in through theOP, with
// traffic in clinic-a and a session of clinic-b that clinic-a's people
// must not see.
type ssoWorld struct {
	*world
	op     *oidctest.OP
	tamper *tamper
	roles  atomic.Pointer[identity.Mapping] // read by the server's handlers, swapped by the test
	b      []client.Written                 // clinic-b's session
}

func newSSOWorld(t *testing.T) *ssoWorld {
	t.Helper()
	return newSSOWorldWith(t, nil)
}

// newSSOWorldWith is newSSOWorld with the console's configuration changed
// by opt.
func newSSOWorldWith(t *testing.T, opt func(cc *console.Config)) *ssoWorld {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	consoleURL := "http://" + ln.Addr().String() + console.Path
	o := oidctest.Start(t, consoleURL+"sso/callback")
	roles, err := identity.ParseMapping([]byte(testRoles), auth.Scopes())
	if err != nil {
		t.Fatal(err)
	}
	sw := &ssoWorld{op: o, tamper: &tamper{}}
	sw.roles.Store(roles)
	sw.world = newWorld(t, worldOptions{listener: ln, console2: func(cc *console.Config, s *server.Server) {
		cc.People = s
		cc.OIDC = &console.OIDC{Issuer: o.Issuer, ClientID: oidctest.ClientID, ClientSecret: oidctest.ClientSecret, RedirectURL: consoleURL + "sso/callback",
			Name: "Zitadel (test)", Roles: sw.roles.Load,
			HTTPClient: &http.Client{Transport: sw.tamper, Timeout: 10 * time.Second}}
		if opt != nil {
			opt(cc)
		}
	}})
	sw.traffic()
	wb := sw.client(sw.token(auth.Spec{Name: "agents-b", Tenant: otherTenant, Scopes: []string{auth.ScopeWrite}}))
	sw.b = sw.append(wb, &event.Request{Session: "b-secret-session", Kind: "llm.request", Actor: event.Actor{Type: "agent", ID: "b-bot"},
		Payload: json.RawMessage(`{"messages":[{"role":"user","content":"clinic-b only"}]}`)})
	return sw
}

// ssoSignIn signs in at the provider as user, from the console's sign-in
// page, and returns where the browser landed and the page's main text.
func (b *tab) ssoSignIn(user string) (string, string) {
	b.t.Helper()
	b.open("")
	b.click("#sso")
	if loc := b.location(); !strings.Contains(loc, "/login/username") {
		b.t.Fatalf("the sign-in button led to %s", loc)
	}
	b.set("#username", user)
	b.set("#password", oidctest.Password)
	b.click("button[type=submit]")
	// The callback's page moves on to the health page by itself.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		// Asked while the page moves on, the tab may answer that it
		// navigated (-32000): that is no failure, ask again.
		if loc := b.where(); loc != "" && (!strings.Contains(loc, "/sso/callback") || b.tryCount(`meta[http-equiv="refresh"]`) == 0) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return b.location(), b.mainText()
}

// ssoSignOut signs out of the console, which sends the browser to the
// provider's end-session endpoint, which sends it back to the console.
func (b *tab) ssoSignOut() {
	b.t.Helper()
	b.click("header form.out button")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		// Asked while the redirects go on, the tab may answer that it
		// navigated (-32000): where reads that as no location yet.
		if loc := b.where(); strings.HasSuffix(loc, "/console/") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("after signing out at %s: %s", b.location(), b.mainText())
}

// leaf reads and parses the entry at index with the global token.
func (sw *ssoWorld) leaf(t *testing.T, index uint64) *event.Leaf {
	t.Helper()
	sw.waitPublished()
	rc, err := sw.client(sw.global).Entry(context.Background(), index, 0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := event.ParseLeaf(rc.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// events returns the leaves of a session of tenant, in order.
func (sw *ssoWorld) events(t *testing.T, tenant, session string) []*event.Leaf {
	t.Helper()
	p, err := sw.client(sw.global).Session(context.Background(), session, client.SessionQuery{Tenant: tenant})
	if err != nil {
		t.Fatalf("session %s of %s: %v", session, tenant, err)
	}
	var out []*event.Leaf
	for _, e := range p.Events {
		out = append(out, sw.leaf(t, e.Index))
	}
	return out
}

func attr(l *event.Leaf, k string) string {
	switch v := l.Attributes[k].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// checkPerson checks that a leaf names the person: issuer and role in
// clear, the subject only as the pseudonym the vault maps to the person.
func (sw *ssoWorld) checkPerson(t *testing.T, l *event.Leaf, subject, role string) {
	t.Helper()
	if got := attr(l, "person.issuer"); got != sw.op.Issuer {
		t.Errorf("%s: person.issuer %q, want %q", l.Kind, got, sw.op.Issuer)
	}
	if got := attr(l, "person.role"); got != role {
		t.Errorf("%s: person.role %q, want %q", l.Kind, got, role)
	}
	ps := attr(l, "person.pseudonym")
	v, err := sw.srv.Vault().Resolve(context.Background(), l.Tenant, ps)
	if want := (identity.Person{Issuer: sw.op.Issuer, Subject: subject}).Value(); err != nil || v != want {
		t.Errorf("%s: person.pseudonym %q resolves to %q (%v)", l.Kind, ps, v, err)
	}
	raw, _ := json.Marshal(l)
	if strings.Contains(string(raw), subject) {
		t.Errorf("%s: the leaf holds the subject %q in clear: %s", l.Kind, subject, raw)
	}
}

// TestConsoleSSO: in the browser, people sign in at an OpenID provider we
// did not write; each lands on the tenant their groups map to, reads a
// payload (the access.read names them), signs a record with their own
// secret, and signs out; a person without a mapping, and one whose group
// the provider removed, get the no-access page; every sign-in, sign-out
// and failure is in the log.
func TestConsoleSSO(t *testing.T) {
	sw := newSSOWorld(t)
	b := newTab(t, sw.world)
	ctx := context.Background()

	var signin string
	t.Run("sign in and land on the mapped tenant", func(t *testing.T) {
		b.t = t
		b.open("")
		if s := b.text("#sso"); s != "Sign in with Zitadel (test)" {
			t.Errorf("button %q", s)
		}
		b.shoot("signin-sso")
		loc, text := b.ssoSignIn("quinn")
		if !strings.HasSuffix(loc, "/console/health") {
			t.Fatalf("signed in, at %s: %s", loc, text)
		}
		// The provider puts no name in its ID tokens (its profile claims
		// are at userinfo): the header names the role.
		if who := b.text("header .who"); !hasAll(who, "role clinic-a-reviewers") {
			t.Errorf("header %q", who)
		}
		b.open("sessions")
		got := b.eval(`[...document.querySelectorAll('#sessions a.session')].map(a => a.textContent).join(',')`)
		if !hasAll(got, "triage-7", "billing-2") || strings.Contains(got, "b-secret-session") {
			t.Errorf("sessions %q", got)
		}
		resp := b.open(fmt.Sprintf("entries/%d", sw.b[0].Index))
		if resp.Status != http.StatusNotFound || strings.Contains(b.mainText(), "b-secret-session") {
			t.Errorf("clinic-b's entry: %d %q", resp.Status, b.mainText())
		}
		// The sign-in is in the log, in clinic-a.
		list, err := sw.client(sw.global).Sessions(ctx, api.SessionSearch{Tenant: tenant, Kind: identity.KindSignIn})
		if err != nil || len(list.Sessions) != 1 {
			t.Fatalf("sign-in sessions %+v, %v", list, err)
		}
		signin = strings.TrimPrefix(list.Sessions[0].Session, "access.")
		evs := sw.events(t, tenant, list.Sessions[0].Session)
		if evs[0].Kind != identity.KindSignIn || evs[0].Writer.Token != signin || evs[0].Actor.ID != signin || attr(evs[0], "access.method") != "oidc" {
			t.Errorf("sign-in event %+v", evs[0])
		}
		sw.checkPerson(t, evs[0], "id-quinn", "clinic-a-reviewers")
		if evs[0].Actor.OnBehalfOf != attr(evs[0], "person.pseudonym") {
			t.Errorf("actor %+v", evs[0].Actor)
		}
		// A denied action: the reviewers may not sign (the server refuses
		// and records it).
		if _, err := sw.srv.PersonClient(signin, identity.Person{Issuer: sw.op.Issuer, Subject: "id-quinn"}, identity.Role{Name: "clinic-a-reviewers", Tenant: tenant, Scopes: []string{"read", "audit"}}).
			Sign(ctx, api.SignRequest{Signer: signerID, Secret: secret, Index: sw.triage[4].Index, LeafHash: "00", Meaning: "approved"}); err == nil {
			t.Error("a reviewer signed")
		}
		evs = sw.events(t, tenant, "access."+signin)
		if l := evs[len(evs)-1]; l.Kind != identity.KindDenied || !strings.Contains(attr(l, "access.detail"), "POST /v1/signatures: 403") {
			t.Errorf("the refusal: %s %v", l.Kind, l.Attributes)
		} else {
			sw.checkPerson(t, l, "id-quinn", "clinic-a-reviewers")
		}
	})

	t.Run("read a payload: the access.read names the person", func(t *testing.T) {
		b.t = t
		resp := sw.triage[1]
		b.open(fmt.Sprintf("entries/%d", resp.Index))
		b.click("#open-payload")
		if s := b.text("#payload-text"); !strings.Contains(s, "refer to cardiology within 24 h") {
			t.Errorf("payload %q", s)
		}
		access, err := strconv.ParseUint(strings.TrimPrefix(b.text("#access-link"), "access.read event, entry "), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		l := sw.leaf(t, access)
		if l.Kind != "access.read" || l.Session != "access."+signin || l.Writer.Token != signin || l.Actor.ID != signin || attr(l, "access.index") != strconv.FormatUint(resp.Index, 10) {
			t.Errorf("access.read %+v", l)
		}
		sw.checkPerson(t, l, "id-quinn", "clinic-a-reviewers")
		if l.Actor.OnBehalfOf != attr(l, "person.pseudonym") {
			t.Errorf("actor %+v", l.Actor)
		}
	})

	t.Run("issue a report: report.issued names the person", func(t *testing.T) {
		b.t = t
		b.open("reports")
		b.click("#generate")
		if s := b.text("#anchor"); !strings.Contains(s, "Anchored in the log") {
			t.Fatalf("report anchor: %q", s)
		}
		list, err := sw.client(sw.global).Session(ctx, event.SessionReports, client.SessionQuery{Tenant: tenant})
		if err != nil || len(list.Events) == 0 {
			t.Fatalf("reports session: %v", err)
		}
		l := sw.leaf(t, list.Events[len(list.Events)-1].Index)
		if l.Kind != "report.issued" || l.Writer.Token != signin {
			t.Errorf("report event %+v", l)
		}
		sw.checkPerson(t, l, "id-quinn", "clinic-a-reviewers")
	})

	t.Run("sign out, of the provider too", func(t *testing.T) {
		b.t = t
		b.ssoSignOut()
		if ended := sw.op.Ended(); !slices.Equal(ended, []string{"id-quinn"}) {
			t.Errorf("sessions ended at the provider: %v", ended)
		}
		b.open("health")
		if loc := b.location(); !strings.Contains(loc, "expired=1") {
			t.Errorf("after signing out, the health page is at %s", loc)
		}
		evs := sw.events(t, tenant, "access."+signin)
		// Browsing refused nothing: the one refusal is the signature tried
		// above.
		denied := 0
		for _, l := range evs {
			if l.Kind == identity.KindDenied {
				denied++
			}
		}
		if denied != 1 {
			t.Errorf("%d refusals recorded in the sign-in, want 1", denied)
		}
		if l := evs[len(evs)-1]; l.Kind != identity.KindSignOut || attr(l, "access.reason") != identity.ReasonSignedOut {
			t.Errorf("last event of the sign-in: %s %v", l.Kind, l.Attributes)
		} else {
			sw.checkPerson(t, l, "id-quinn", "clinic-a-reviewers")
		}
	})

	t.Run("a signer signs with her own secret", func(t *testing.T) {
		b.t = t
		loc, text := b.ssoSignIn("ada")
		if !strings.HasSuffix(loc, "/console/health") {
			t.Fatalf("at %s: %s", loc, text)
		}
		rec := sw.triage[4]
		b.open(fmt.Sprintf("entries/%d", rec.Index))
		b.set("#s-signer", signerID)
		b.set("#s-meaning", "approved")
		b.set("#s-secret", "wrong secret")
		b.click("#sign")
		if s := b.text("#error"); !strings.Contains(s, "secret is wrong") {
			t.Errorf("a wrong secret: %q", s)
		}
		b.set("#s-signer", signerID)
		b.set("#s-meaning", "approved")
		b.set("#s-secret", secret)
		b.click("#sign")
		if m := b.text("#signed"); !hasAll(m, printedName, "approved", "signature verified") {
			t.Fatalf("manifestation %q", m)
		}
		ev, err := strconv.ParseUint(b.eval(`document.querySelector('#signed .manifest').dataset.event`), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		l := sw.leaf(t, ev)
		if l.Kind != "human.signature" || l.Actor.ID != signerID {
			t.Errorf("signature event %+v", l)
		}
		sw.checkPerson(t, l, "id-ada", "clinic-a-signer")
		fails := sw.events(t, tenant, event.SignerSession(signerID))
		var failed *event.Leaf
		for _, f := range fails {
			if f.Kind == "signature.failed" {
				failed = f
			}
		}
		if failed == nil {
			t.Fatal("no signature.failed")
		}
		sw.checkPerson(t, failed, "id-ada", "clinic-a-signer")
		b.ssoSignOut()
	})

	t.Run("no mapping: no access", func(t *testing.T) {
		b.t = t
		b.ssoSignIn("nemo")
		if text := b.text("main"); !hasAll(text, "No access to this console", "none of your groups", sw.op.Issuer, "id-nemo") {
			t.Fatalf("nemo sees %q", b.text("main"))
		}
		b.shoot("norole")
		b.open("health")
		if loc := b.location(); !strings.Contains(loc, "expired=1") {
			t.Errorf("nemo reached %s", loc)
		}
		evs := sw.events(t, server.DefaultTenant, identity.SessionSignInFailures)
		l := evs[len(evs)-1]
		if l.Kind != identity.KindSignInFailed || attr(l, "access.reason") != identity.ReasonNoRole {
			t.Errorf("failure %s %v", l.Kind, l.Attributes)
		}
		sw.checkPerson(t, l, "id-nemo", "")
	})

	t.Run("a group removed at the provider takes effect at the next sign-in", func(t *testing.T) {
		b.t = t
		loc, _ := b.ssoSignIn("quinn")
		if !strings.HasSuffix(loc, "/console/health") {
			t.Fatalf("at %s", loc)
		}
		b.ssoSignOut()
		sw.op.SetGroups("id-quinn")
		_, text := b.ssoSignIn("quinn")
		if !strings.Contains(text, "No access to this console") {
			t.Fatalf("quinn without her group sees %q", text)
		}
		sw.op.SetGroups("id-quinn", "clinic-a-qa")
	})

	t.Run("a mapping reloaded without the role ends the sign-in", func(t *testing.T) {
		b.t = t
		loc, _ := b.ssoSignIn("quinn")
		if !strings.HasSuffix(loc, "/console/health") {
			t.Fatalf("at %s", loc)
		}
		old := sw.roles.Load()
		m, err := identity.ParseMapping([]byte(strings.Replace(testRoles, "[clinic-a-qa]", "[clinic-a-qa-v2]", 1)), auth.Scopes())
		if err != nil {
			t.Fatal(err)
		}
		sw.roles.Store(m)
		defer sw.roles.Store(old)
		resp := b.open("sessions")
		if resp.Status != http.StatusForbidden || !strings.Contains(b.mainText(), "Your role in the console changed") {
			t.Errorf("after the reload: %d %q", resp.Status, b.mainText())
		}
		b.open("health")
		if loc := b.location(); !strings.Contains(loc, "expired=1") {
			t.Errorf("still signed in at %s", loc)
		}
	})
}

// TestConsoleSSORefusals: ID tokens that must not sign anyone in, each
// injected into the provider's answer to the code exchange, in the
// browser; a replayed authorization code and a replayed state. Each is
// refused with a page that says so, and recorded as a failed sign-in.
func TestConsoleSSORefusals(t *testing.T) {
	sw := newSSOWorld(t)
	b := newTab(t, sw.world)
	opKey, kid := sw.op.SigningKey(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	lastFailure := func(t *testing.T) *event.Leaf {
		evs := sw.events(t, server.DefaultTenant, identity.SessionSignInFailures)
		return evs[len(evs)-1]
	}
	for _, tc := range []struct {
		name   string
		edit   func(c map[string]any) (*rsa.PrivateKey, string)
		reason string
		page   string
	}{
		{"wrong audience", func(c map[string]any) (*rsa.PrivateKey, string) {
			c["aud"] = []string{"another-client"}
			c["azp"] = "another-client"
			return opKey, kid
		}, identity.ReasonInvalidToken, "did not verify"},
		{"wrong nonce", func(c map[string]any) (*rsa.PrivateKey, string) {
			c["nonce"] = "a-nonce-of-another-sign-in"
			return opKey, kid
		}, identity.ReasonNonce, "belongs to another sign-in"},
		{"expired", func(c map[string]any) (*rsa.PrivateKey, string) {
			c["exp"] = time.Now().Add(-10 * time.Minute).Unix()
			c["iat"] = time.Now().Add(-70 * time.Minute).Unix()
			return opKey, kid
		}, identity.ReasonInvalidToken, "did not verify"},
		{"signed by another key", func(c map[string]any) (*rsa.PrivateKey, string) {
			return other, kid
		}, identity.ReasonInvalidToken, "did not verify"},
		{"another issuer", func(c map[string]any) (*rsa.PrivateKey, string) {
			c["iss"] = "http://127.0.0.1:1/evil"
			return opKey, kid
		}, identity.ReasonInvalidToken, "did not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.t = t
			sw.tamper.set(tc.edit)
			defer sw.tamper.set(nil)
			loc, text := b.ssoSignIn("quinn")
			if strings.HasSuffix(loc, "/console/health") || !strings.Contains(text, tc.page) {
				t.Fatalf("at %s: %q", loc, text)
			}
			b.open("health")
			if loc := b.location(); !strings.Contains(loc, "expired=1") {
				t.Errorf("signed in: at %s", loc)
			}
			if l := lastFailure(t); l.Kind != identity.KindSignInFailed || attr(l, "access.reason") != tc.reason {
				t.Errorf("failure %s %v", l.Kind, l.Attributes)
			}
		})
	}

	t.Run("replayed code and state", func(t *testing.T) {
		b.t = t
		loc, _ := b.ssoSignIn("quinn")
		if !strings.HasSuffix(loc, "/console/health") {
			t.Fatalf("at %s", loc)
		}
		used := sw.tamper.code()
		if used == "" {
			t.Fatal("no code seen")
		}
		// An attacker's browser starts its own sign-in (its own state and
		// flow cookie) and brings the code it stole.
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := hc.Get(sw.url + "sso/start")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		to, err := url.Parse(res.Header.Get("Location"))
		if err != nil || to.Query().Get("state") == "" || to.Query().Get("code_challenge_method") != "S256" || to.Query().Get("nonce") == "" {
			t.Fatalf("start sent the browser to %v (%v)", to, err)
		}
		state := to.Query().Get("state")
		res, err = hc.Get(sw.url + "sso/callback?" + url.Values{"code": {used}, "state": {state}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "refused the sign-in code") {
			t.Errorf("a replayed code: %d %s", res.StatusCode, body)
		}
		if l := lastFailure(t); attr(l, "access.reason") != identity.ReasonExchange {
			t.Errorf("failure %v", l.Attributes)
		}
		// The same state again: the sign-in it began is over.
		res, err = hc.Get(sw.url + "sso/callback?" + url.Values{"code": {used}, "state": {state}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("a replayed state: %d", res.StatusCode)
		}
		if l := lastFailure(t); attr(l, "access.reason") != identity.ReasonState {
			t.Errorf("failure %v", l.Attributes)
		}
	})
}

// TestConsoleSSOTokenSignInOff: with the token sign-in off, the form is
// gone and a posted token is refused; sign-in attempts are limited per
// address.
func TestConsoleSSOTokenSignInOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	consoleURL := "http://" + ln.Addr().String() + console.Path
	o := oidctest.Start(t, consoleURL+"sso/callback")
	roles, _ := identity.ParseMapping([]byte(testRoles), auth.Scopes())
	w := newWorld(t, worldOptions{listener: ln, console2: func(cc *console.Config, s *server.Server) {
		cc.People, cc.DisableTokenSignIn, cc.SignInBurst = s, true, 3
		cc.OIDC = &console.OIDC{Issuer: o.Issuer, ClientID: oidctest.ClientID, ClientSecret: oidctest.ClientSecret, RedirectURL: consoleURL + "sso/callback",
			Roles: func() *identity.Mapping { return roles }}
	}})
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := hc.Get(w.url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if strings.Contains(string(body), `name="token"`) || !strings.Contains(string(body), `href="/console/sso/start"`) {
		t.Errorf("sign-in page:\n%s", body)
	}
	res, err = hc.PostForm(w.url+"login", url.Values{"token": {w.auditor}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || res.Header.Get("Set-Cookie") != "" && strings.Contains(res.Header.Get("Set-Cookie"), "llmat_console=") {
		t.Errorf("a token posted: %d", res.StatusCode)
	}
	// Three attempts at once, then 429 with Retry-After.
	codes := []int{}
	for range 5 {
		res, err := hc.Get(w.url + "sso/start")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		codes = append(codes, res.StatusCode)
		if res.StatusCode == http.StatusTooManyRequests && res.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if !slices.Equal(codes, []int{303, 303, 303, 429, 429}) {
		t.Errorf("sign-in starts answered %v", codes)
	}
}

// TestConsoleTokenSignInsRecorded: in the log server's process (People),
// token sign-ins, sign-outs, expiries and failed token sign-ins are
// account events, naming the token by its public id only.
func TestConsoleTokenSignInsRecorded(t *testing.T) {
	w := newWorld(t, worldOptions{console2: func(cc *console.Config, s *server.Server) {
		cc.People, cc.IdleTimeout = s, 400*time.Millisecond
	}})
	ctx := context.Background()
	p, err := w.srv.Tokens().Check(ctx, w.auditor)
	if err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, w.url, nil)
	csrf := a.signIn(w.auditor)
	if r := a.do("POST", "logout", url.Values{"csrf": {csrf}}, nil); r.code != http.StatusSeeOther {
		t.Fatalf("sign-out %d", r.code)
	}
	a.signIn(w.auditor)
	time.Sleep(600 * time.Millisecond)
	a.do("GET", "health", nil, nil) // ends the idle sign-in
	pre := csrfOf(t, a.do("GET", "", nil, nil).body)
	if r := a.do("POST", "login", url.Values{"csrf": {pre}, "token": {"lat_not-a-token"}}, nil); r.code != http.StatusUnauthorized {
		t.Fatalf("an unknown token: %d", r.code)
	}
	sw := &ssoWorld{world: w}
	var kinds []string
	for _, l := range sw.events(t, tenant, "access."+p.ID) {
		if l.Writer.Token != p.ID || l.Actor.ID != "token."+p.ID || attr(l, "access.method") != identity.MethodToken {
			t.Errorf("%s by %+v as %+v", l.Kind, l.Writer, l.Actor)
		}
		b, _ := l.Marshal()
		if strings.Contains(string(b), w.auditor) {
			t.Errorf("the token is in the leaf: %s", b)
		}
		kinds = append(kinds, l.Kind+"/"+attr(l, "access.reason"))
	}
	want := []string{"access.signin/", "access.signout/signed_out", "access.signin/", "access.signout/expired"}
	if !slices.Equal(kinds, want) {
		t.Errorf("the token's account events %v, want %v", kinds, want)
	}
	fails := sw.events(t, server.DefaultTenant, identity.SessionSignInFailures)
	if l := fails[len(fails)-1]; attr(l, "access.reason") != identity.ReasonUnknownToken || strings.Contains(fmt.Sprint(l.Attributes), "not-a-token") {
		t.Errorf("failed token sign-in %v", l.Attributes)
	}
}

package server

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/identity"
	"github.com/llmaudittrail/llmaudittrail/internal/oidctest"
	"github.com/llmaudittrail/llmaudittrail/signature"
)

const testIssuer = "https://idp.example/realms/clinic"

func leafOf(t *testing.T, e api.EventResponse) *event.Leaf {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(e.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	l, err := event.ParseLeaf(b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// namesPerson checks that l names the person of subject with role: issuer
// and role in clear, the subject only as its pseudonym.
func namesPerson(t *testing.T, s *Server, l *event.Leaf, subject, role string) {
	t.Helper()
	if l.Attributes.String("person.issuer") != testIssuer || l.Attributes.String("person.role") != role {
		t.Errorf("%s: person attributes %v", l.Kind, l.Attributes)
	}
	ps := l.Attributes.String("person.pseudonym")
	v, err := s.Vault().Resolve(context.Background(), l.Tenant, ps)
	if want := (identity.Person{Issuer: testIssuer, Subject: subject}).Value(); err != nil || v != want {
		t.Errorf("%s: person.pseudonym %q resolves to %q (%v), want %q", l.Kind, ps, v, err, want)
	}
	if b, _ := l.Marshal(); strings.Contains(string(b), subject) {
		t.Errorf("%s: the subject is in the leaf: %s", l.Kind, b)
	}
}

// TestPersonClient: a person's in-process client has exactly their role's
// rights; the reads, resolutions, holds and erasures it makes name the
// person; what it is refused is recorded as access.denied.
func TestPersonClient(t *testing.T) {
	s := newTestServer(t, nil)
	ctx := context.Background()
	subj := "patient-77"
	// Two sessions of the default tenant, one about a data subject.
	b, _ := json.Marshal(map[string]any{"session": "case-1", "kind": "llm.request", "subject": subj, "actor": map[string]string{"type": "agent", "id": "bot"}, "payload": map[string]string{"q": "hi"}})
	code, body, _ := s.do(t, "POST", "/v1/events", s.admin, b)
	if code != 201 {
		t.Fatalf("post: %d %s", code, body)
	}
	first := s.post(t, "case-1", "llm.response", map[string]string{"a": "hello"})
	s.post(t, "case-2", "llm.request", map[string]string{"q": "other"})
	other, _, err := s.srv.Tokens().Create(ctx, auth.Spec{Name: "w-other", Tenant: "other", Scopes: []string{auth.ScopeWrite}})
	if err != nil {
		t.Fatal(err)
	}
	oc, _ := client.New(s.ts.URL, client.WithToken(other))
	ow, err := oc.Append(ctx, []*event.Request{{Session: "o-1", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "o"}}})
	if err != nil {
		t.Fatal(err)
	}
	waitPublished(t, s, ow[0].Index+1)

	ada := identity.Person{Issuer: testIssuer, Subject: "0b8f2c8e-ada"}
	dpo := identity.Role{Name: "privacy-officers", Tenant: DefaultTenant, Scopes: []string{auth.ScopeRead, auth.ScopeAudit, auth.ScopePrivacy}}
	pc := s.srv.PersonClient("sso-00000000000000aa", ada, dpo)

	d, err := pc.Payload(ctx, first.Index)
	if err != nil {
		t.Fatal(err)
	}
	l, err := event.ParseLeaf(d.Access.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind != "access.read" || l.Session != "access.sso-00000000000000aa" || l.Writer.Token != "sso-00000000000000aa" || l.Actor.ID != "sso-00000000000000aa" ||
		l.Actor.OnBehalfOf != l.Attributes.String("person.pseudonym") {
		t.Errorf("access.read %+v", l)
	}
	namesPerson(t, s.srv, l, ada.Subject, "privacy-officers")
	leaves := readSession(t, s, "case-1")
	ps := leaves[0].Subject
	res, err := pc.Pseudonym(ctx, DefaultTenant, ps)
	if err != nil || res.Value != subj {
		t.Fatalf("resolve: %+v %v", res, err)
	}
	namesPerson(t, s.srv, leafOf(t, res.Access), ada.Subject, "privacy-officers")
	hold, err := pc.PlaceHold(ctx, api.Target{Session: "case-1"}, "litigation")
	if err != nil {
		t.Fatal(err)
	}
	namesPerson(t, s.srv, leafOf(t, hold.Event), ada.Subject, "privacy-officers")
	er, err := pc.Erase(ctx, api.ErasureRequest{Target: api.Target{Session: "case-2"}, LegalBasis: "gdpr-art17-1a", Reason: "art. 17 request"})
	if err != nil {
		t.Fatal(err)
	}
	namesPerson(t, s.srv, leafOf(t, er.Event), ada.Subject, "privacy-officers")

	// Another tenant's entry is not there for the role.
	if _, err := pc.Entry(ctx, ow[0].Index, 0); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("another tenant's entry: %v", err)
	}
	// A reader may not open payloads: refused, and recorded.
	rd := s.srv.PersonClient("sso-00000000000000bb", ada, identity.Role{Name: "readers", Tenant: DefaultTenant, Scopes: []string{auth.ScopeRead}})
	if _, err := rd.Payload(ctx, first.Index); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("a reader opened a payload: %v", err)
	}
	denied := readSession(t, s, "access.sso-00000000000000bb")
	if len(denied) != 1 || denied[0].Kind != identity.KindDenied || !strings.Contains(denied[0].Attributes.String("access.detail"), "/payload: 403") {
		t.Fatalf("the refusal: %+v", denied)
	}
	namesPerson(t, s.srv, denied[0], ada.Subject, "readers")
	// A person never appends as a writer: the role has no write scope.
	if _, err := rd.Append(ctx, []*event.Request{{Session: "x", Kind: "llm.request", Actor: event.Actor{Type: "agent", ID: "a"}}}); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("a reader appended: %v", err)
	}
}

// TestPersonSignsOnlyAsTheirSigner: a person whose role maps to signer
// dr-ada cannot sign as dr-bob, not even with dr-bob's secret: refused
// (403 not_bound), recorded as a failed signature attempt in dr-bob's
// signer session (by the sign-in's id; five do not lock dr-bob out) and as
// the person's access.denied; nothing is signed. As dr-ada the same client
// signs.
func TestPersonSignsOnlyAsTheirSigner(t *testing.T) {
	s := newTestServer(t, fastSigners)
	ctx := context.Background()
	admin := s.client(t, s.admin)
	const bobSecret = "bob's own long secret phrase"
	for _, e := range []api.Enrollment{
		{ID: "dr-ada", PrintedName: adaName, Secret: adaSecret, IdentityVerifiedBy: "hr.jones"},
		{ID: "dr-bob", PrintedName: "Dr. Bob", Secret: bobSecret, IdentityVerifiedBy: "hr.jones"},
	} {
		if _, err := admin.Enroll(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	rec := s.post(t, "triage-9", "llm.response", map[string]string{"summary": "discharge"})
	waitPublished(t, s, rec.Index+1)

	ada := identity.Person{Issuer: testIssuer, Subject: "sub-ada"}
	const signin = "sso-00000000000000cc"
	pc := s.srv.PersonClient(signin, ada, identity.Role{Name: "clinic-signers", Tenant: DefaultTenant,
		Scopes: []string{auth.ScopeRead, auth.ScopeSign}, Signer: "dr-ada"})
	// Five attempts: as many wrong secrets would lock dr-bob out.
	for _, secret := range []string{bobSecret, adaSecret, bobSecret, adaSecret, bobSecret} {
		_, err := pc.Sign(ctx, api.SignRequest{Signer: "dr-bob", Secret: secret, Index: rec.Index, LeafHash: rec.LeafHash, Meaning: "approved"})
		wantAPIError(t, "signing as dr-bob", err, http.StatusForbidden, "not_bound")
	}
	fails := readSession(t, s, event.SignerSession("dr-bob"))
	var notBound int
	for _, l := range fails {
		switch l.Kind {
		case signature.KindFailed:
			if l.Attributes.String(signature.AttrFailure) != "not_bound" || l.Attributes.String(signature.AttrTokenID) != signin {
				t.Errorf("failed attempt %v", l.Attributes)
			}
			notBound++
		case event.KindHumanSignature, signature.KindLocked:
			t.Errorf("%s in dr-bob's session: %v", l.Kind, l.Attributes)
		}
	}
	if notBound != 5 {
		t.Errorf("%d not_bound attempts recorded in dr-bob's session, want 5", notBound)
	}
	denied := readSession(t, s, event.AccessSession(signin))
	if len(denied) != 5 {
		t.Fatalf("the person's access session: %d events, want 5 refusals", len(denied))
	}
	for _, l := range denied {
		if l.Kind != identity.KindDenied || l.Attributes.String("access.detail") != "POST /v1/signatures: 403" ||
			l.Attributes.String("access.signer") != "dr-ada" || l.Actor.ID != signin {
			t.Errorf("the refusal %s %v by %+v", l.Kind, l.Attributes, l.Actor)
		}
		namesPerson(t, s.srv, l, ada.Subject, "clinic-signers")
	}
	// No signature landed, and dr-bob was not locked out: he signs.
	for _, l := range readSession(t, s, "triage-9") {
		if l.Kind == event.KindHumanSignature {
			t.Errorf("a signature in the record's session: %v", l.Attributes)
		}
	}
	bobTok, _ := s.token(t, auth.Spec{Name: "bob-sign", Tenant: DefaultTenant, Scopes: []string{auth.ScopeSign, auth.ScopeRead}, Actors: []string{"dr-bob"}})
	if _, err := s.client(t, bobTok).Sign(ctx, api.SignRequest{Signer: "dr-bob", Secret: bobSecret, Index: rec.Index, LeafHash: rec.LeafHash, Meaning: "reviewed"}); err != nil {
		t.Errorf("dr-bob signing after the attempts in his name: %v", err)
	}
	// The person's own signer id works.
	sig, err := pc.Sign(ctx, api.SignRequest{Signer: "dr-ada", Secret: adaSecret, Index: rec.Index, LeafHash: rec.LeafHash, Meaning: "approved"})
	if err != nil {
		t.Fatalf("signing as dr-ada: %v", err)
	}
	namesPerson(t, s.srv, leafOf(t, sig.Event), ada.Subject, "clinic-signers")
}

// TestRecordAccount: token sign-ins are named by the token's public id,
// failed sign-ins go to the default tenant's failures session, a person
// is named as in every event.
func TestRecordAccount(t *testing.T) {
	s := newTestServer(t, nil)
	ctx := context.Background()
	tok, p, err := s.srv.Tokens().Create(ctx, auth.Spec{Name: "auditor", Tenant: "clinic-a", Scopes: []string{auth.ScopeRead}})
	if err != nil {
		t.Fatal(err)
	}
	role := identity.Role{Name: "reviewers", Tenant: "clinic-a", Scopes: []string{auth.ScopeRead}}
	ada := identity.Person{Issuer: testIssuer, Subject: "sub-ada"}
	for _, a := range []identity.Account{
		{Kind: identity.KindSignIn, Method: identity.MethodToken, Token: tok},
		{Kind: identity.KindSignInFailed, Method: identity.MethodToken, Reason: identity.ReasonUnknownToken},
		{Kind: identity.KindSignIn, Method: identity.MethodOIDC, SignIn: "sso-0000000000000001", Person: &ada, Role: &role},
		{Kind: identity.KindSignInFailed, Method: identity.MethodOIDC, Person: &ada, Reason: identity.ReasonNoRole},
	} {
		if err := s.srv.RecordAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	l := readSessionOf(t, s, "clinic-a", "access."+p.ID)[0]
	if l.Kind != identity.KindSignIn || l.Writer.Token != p.ID || l.Actor.ID != "token."+p.ID || strings.Contains(string(mustMarshal(t, l)), tok) {
		t.Errorf("token sign-in %+v", l)
	}
	l = readSessionOf(t, s, "clinic-a", "access.sso-0000000000000001")[0]
	if l.Attributes.String("access.tenant") != "clinic-a" || l.Actor.ID != "sso-0000000000000001" {
		t.Errorf("person sign-in %+v", l)
	}
	namesPerson(t, s.srv, l, ada.Subject, "reviewers")
	fails := readSessionOf(t, s, DefaultTenant, identity.SessionSignInFailures)
	if len(fails) != 2 || fails[0].Attributes.String("access.reason") != identity.ReasonUnknownToken || fails[0].Writer.Token != ServerTokenID ||
		fails[0].Actor != event.ServerActor || fails[1].Attributes.String("access.reason") != identity.ReasonNoRole {
		t.Fatalf("failures %+v", fails)
	}
	namesPerson(t, s.srv, fails[1], ada.Subject, "")
}

func mustMarshal(t *testing.T, l *event.Leaf) []byte {
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readSession(t *testing.T, s *testServer, session string) []*event.Leaf {
	return readSessionOf(t, s, DefaultTenant, session)
}

// readSessionOf reads a session's leaves with the admin token.
func readSessionOf(t *testing.T, s *testServer, tenant, session string) []*event.Leaf {
	t.Helper()
	ctx := context.Background()
	c, _ := client.New(s.ts.URL, client.WithToken(s.admin))
	p, err := c.Session(ctx, session, client.SessionQuery{Tenant: tenant})
	if err != nil {
		t.Fatalf("session %s: %v", session, err)
	}
	var out []*event.Leaf
	for _, e := range p.Events {
		waitPublished(t, s, e.Index+1)
		rc, err := c.Entry(ctx, e.Index, 0)
		if err != nil {
			t.Fatal(err)
		}
		l, err := event.ParseLeaf(rc.Leaf)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// TestAccessTokens: JWT access tokens of an OpenID provider we did not
// write (zitadel/oidc's) are bearer tokens on the API with the role
// mapping's rights, and what their holder reads names them; tokens that do
// not verify, an ID token, and a person without a role are refused; a
// group removed at the provider takes effect at the token's expiry: the
// next token has no role, the one issued before keeps its role until its
// exp (the server's clock moved there) and is refused after it.
func TestAccessTokens(t *testing.T) {
	o := oidctest.Start(t, "http://127.0.0.1:1/console/sso/callback")
	roles, err := identity.ParseMapping([]byte("roles:\n  - {name: qa, match: [clinic-a-qa], tenant: default, scopes: [read, audit]}\n"), auth.Scopes())
	if err != nil {
		t.Fatal(err)
	}
	// The server's clock for tokens' expiry: now, plus skip.
	var skip atomic.Int64
	s := newTestServer(t, func(cfg *Config) {
		cfg.AccessTokens = &AccessTokens{Issuer: o.Issuer, Audience: oidctest.ClientID, Roles: func() *identity.Mapping { return roles },
			Now: func() time.Time { return time.Now().Add(time.Duration(skip.Load())) }}
	})
	ctx := context.Background()
	first := s.post(t, "case-1", "llm.request", map[string]string{"q": "hi"})
	waitPublished(t, s, first.Index+1)
	as := func(tok string) *client.Client {
		c, err := client.New(s.ts.URL, client.WithToken(tok))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	access, idToken := o.Tokens(t, "quinn")
	d, err := as(access).Payload(ctx, first.Index)
	if err != nil {
		t.Fatalf("quinn's access token: %v", err)
	}
	l, err := event.ParseLeaf(d.Access.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(l.Writer.Token, "jwt-") || l.Session != "access."+l.Writer.Token {
		t.Errorf("access.read %+v", l)
	}
	if l.Attributes.String("person.issuer") != o.Issuer || l.Attributes.String("person.role") != "qa" {
		t.Errorf("access.read attributes %v", l.Attributes)
	}
	if v, err := s.srv.Vault().Resolve(ctx, l.Tenant, l.Attributes.String("person.pseudonym")); err != nil || v != o.Issuer+" id-quinn" {
		t.Errorf("the person's pseudonym resolves to %q (%v)", v, err)
	}

	// A refusal on the API of a person's access token is recorded in the
	// person's access session, naming them (§11.300(d)).
	if _, err := as(access).Append(ctx, []*event.Request{{Session: "x", Kind: "llm.request", Actor: event.Actor{Type: "agent", ID: "a"}}}); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("quinn appended without the write scope: %v", err)
	}
	denied := readSession(t, s, l.Session)
	var refusals []*event.Leaf
	for _, d := range denied {
		if d.Kind == identity.KindDenied {
			refusals = append(refusals, d)
		}
	}
	if len(refusals) != 1 || refusals[0].Attributes.String("access.detail") != "POST /v1/events: 403" {
		t.Fatalf("the refusal of quinn's append: %+v", refusals)
	}
	if r := refusals[0]; r.Attributes.String("person.issuer") != o.Issuer || r.Attributes.String("person.role") != "qa" {
		t.Errorf("the refusal's person: %v", r.Attributes)
	} else if v, err := s.srv.Vault().Resolve(ctx, r.Tenant, r.Attributes.String("person.pseudonym")); err != nil || v != o.Issuer+" id-quinn" {
		t.Errorf("the refusal's pseudonym resolves to %q (%v)", v, err)
	}

	key, kid := o.SigningKey(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwtClaims(t, access)
	for _, c := range []struct {
		name string
		tok  string
		want error
	}{
		{"an ID token", idToken, client.ErrUnauthenticated},
		{"expired", signJWT(t, key, kid, claims, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), client.ErrUnauthenticated},
		{"another audience", signJWT(t, key, kid, claims, map[string]any{"aud": []string{"another-api"}}), client.ErrUnauthenticated},
		{"another key", signJWT(t, other, kid, claims, nil), client.ErrUnauthenticated},
		{"another issuer", signJWT(t, key, kid, claims, map[string]any{"iss": "http://127.0.0.1:1"}), client.ErrUnauthenticated},
		{"no role", func() string { a, _ := o.Tokens(t, "nemo"); return a }(), client.ErrForbidden},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := as(c.tok).Payload(ctx, first.Index); !errors.Is(err, c.want) {
				t.Fatalf("Payload = %v, want %v", err, c.want)
			}
		})
	}

	// A verified token that maps to no role is refused, and recorded as the
	// person's failed sign-in.
	failures := func() (out []*event.Leaf) {
		for _, l := range readSession(t, s, identity.SessionSignInFailures) {
			if l.Attributes.String("access.reason") == identity.ReasonNoRole {
				out = append(out, l)
			}
		}
		return out
	}
	if f := failures(); len(f) != 1 || f[0].Kind != identity.KindSignInFailed || f[0].Attributes.String("access.detail") != "GET /v1/events/"+strconv.FormatUint(first.Index, 10)+"/payload: 403" {
		t.Fatalf("the refusal of nemo's token: %+v", f)
	} else if v, err := s.srv.Vault().Resolve(ctx, f[0].Tenant, f[0].Attributes.String("person.pseudonym")); err != nil || v != o.Issuer+" id-nemo" {
		t.Errorf("the failed sign-in's pseudonym resolves to %q (%v)", v, err)
	}

	// The provider removes quinn's group: her next token has no role.
	o.SetGroups("id-quinn")
	next, _ := o.Tokens(t, "quinn")
	if _, err := as(next).Sessions(ctx, api.SessionSearch{}); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("a token issued after the group was removed: %v", err)
	}
	// The token issued while the group was mapped carries the group in its
	// claims, which the server maps at each request: it keeps its role
	// until it expires, and is refused from then on.
	if _, err := as(access).Payload(ctx, first.Index); err != nil {
		t.Errorf("the token issued before the group was removed, before its expiry: %v", err)
	}
	exp, ok := claims["exp"].(float64)
	if !ok {
		t.Fatalf("the access token has no exp: %v", claims)
	}
	if d := time.Until(time.Unix(int64(exp), 0)); d <= 0 || d > time.Hour {
		t.Fatalf("the access token expires in %v", d)
	}
	skip.Store(int64(time.Until(time.Unix(int64(exp), 0)) - time.Second))
	if _, err := as(access).Payload(ctx, first.Index); err != nil {
		t.Errorf("the token a second before its expiry: %v", err)
	}
	skip.Store(int64(time.Until(time.Unix(int64(exp), 0)) + time.Second))
	if _, err := as(access).Payload(ctx, first.Index); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("the token a second after its expiry: %v, want %v", err, client.ErrUnauthenticated)
	}
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// signJWT signs claims, with changes, as a JWT with key under kid.
func signJWT(t *testing.T, key *rsa.PrivateKey, kid string, claims, changes map[string]any) string {
	t.Helper()
	c := map[string]any{}
	for k, v := range claims {
		c[k] = v
	}
	for k, v := range changes {
		c[k] = v
	}
	payload, _ := json.Marshal(c)
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := sg.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

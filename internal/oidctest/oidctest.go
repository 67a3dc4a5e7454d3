// Package oidctest starts an OpenID provider that this project did not
// write, for tests: zitadel/oidc's op package (discovery, authorization
// with PKCE, the token endpoint, ID and JWT access tokens signed with its
// RSA key, codes used once, end-session) with its example storage and
// login page, in process. What is ours is the users table, a groups claim
// in the tokens read from a table the tests change (a group removed at the
// provider), the client's post-logout redirect URI and a note of the
// sessions it ended. Test only.
package oidctest

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The provider's client and users.
const (
	ClientID     = "llmaudit-console"
	ClientSecret = "console-secret-for-tests"
	Password     = "verysecure"
)

// Users are the provider's users: username, subject, groups.
var Users = []struct {
	Name, Subject string
	Groups        []string
}{
	{"ada", "id-ada", []string{"clinic-a-qa"}},
	{"quinn", "id-quinn", []string{"clinic-a-qa"}},
	{"nemo", "id-nemo", []string{"other-team"}},
}

// OP is a running provider.
type OP struct {
	// Issuer is its issuer URL (http://127.0.0.1:PORT).
	Issuer string
	// Redirect is the client's redirect URI.
	Redirect string
	users    *users
	store    groupStorage
}

type users struct {
	mu     sync.Mutex
	users  map[string]*storage.User
	groups map[string][]string
	ended  []string
}

func (u *users) GetUserByID(id string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.users[id]
}

func (u *users) GetUserByUsername(name string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, x := range u.users {
		if x.Username == name {
			return x
		}
	}
	return nil
}

func (u *users) ExampleClientID() string { return storage.ServiceUserID }

func (u *users) groupsOf(id string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	g := slices.Clone(u.groups[id])
	if g == nil {
		g = []string{}
	}
	return g
}

// groupStorage is the example storage with a groups claim in ID tokens
// and JWT access tokens, the console's client as it needs it, and a note
// of the sessions ended.
type groupStorage struct {
	*storage.Storage
	users  *users
	logout string
}

func (g groupStorage) SetUserinfoFromRequest(ctx context.Context, ui *zoidc.UserInfo, token op.IDTokenRequest, scopes []string) error {
	if err := g.Storage.SetUserinfoFromRequest(ctx, ui, token, scopes); err != nil {
		return err
	}
	ui.AppendClaims("groups", g.users.groupsOf(token.GetSubject()))
	return nil
}

func (g groupStorage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	claims, err := g.Storage.GetPrivateClaimsFromScopes(ctx, userID, clientID, scopes)
	if err != nil {
		return nil, err
	}
	if claims == nil {
		claims = map[string]any{}
	}
	claims["groups"] = g.users.groupsOf(userID)
	return claims, nil
}

func (g groupStorage) TerminateSession(ctx context.Context, userID, clientID string) error {
	g.users.mu.Lock()
	g.users.ended = append(g.users.ended, userID)
	g.users.mu.Unlock()
	return g.Storage.TerminateSession(ctx, userID, clientID)
}

// consoleClient is the example's web client with the console's
// post-logout redirect URI registered and JWT access tokens.
type consoleClient struct {
	op.Client
	logout string
}

func (c consoleClient) PostLogoutRedirectURIs() []string { return []string{c.logout} }

func (c consoleClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

func (g groupStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := g.Storage.GetClientByClientID(ctx, id)
	if err == nil && id == ClientID {
		return consoleClient{Client: c, logout: g.logout}, nil
	}
	return c, err
}

// Start starts a provider whose client ClientID redirects to redirect (a
// console's .../sso/callback; its post-logout redirect URI is the
// console's root).
func Start(t testing.TB, redirect string) *OP {
	t.Helper()
	us := &users{users: map[string]*storage.User{}, groups: map[string][]string{}}
	for _, u := range Users {
		us.users[u.Subject] = &storage.User{ID: u.Subject, Username: u.Name, Password: Password, FirstName: strings.ToUpper(u.Name[:1]) + u.Name[1:],
			LastName: "Tester", Email: u.Name + "@clinic-a.example", EmailVerified: true}
		us.groups[u.Subject] = slices.Clone(u.Groups)
	}
	storage.RegisterClients(storage.WebClient(ClientID, ClientSecret, redirect))
	st := groupStorage{Storage: storage.NewStorage(us), users: us, logout: strings.TrimSuffix(redirect, "sso/callback")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &OP{Issuer: "http://" + ln.Addr().String(), Redirect: redirect, users: us, store: st}
	hs := httptest.NewUnstartedServer(exampleop.SetupServer(o.Issuer, st, nil, false))
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	return o
}

// SetGroups sets a user's groups (by subject) at the provider.
func (o *OP) SetGroups(subject string, groups ...string) {
	o.users.mu.Lock()
	defer o.users.mu.Unlock()
	o.users.groups[subject] = groups
}

// Ended lists the subjects whose sessions the provider ended
// (end-session), in order.
func (o *OP) Ended() []string {
	o.users.mu.Lock()
	defer o.users.mu.Unlock()
	return slices.Clone(o.users.ended)
}

// SigningKey is the provider's signing key and its key id.
func (o *OP) SigningKey(t testing.TB) (*rsa.PrivateKey, string) {
	t.Helper()
	sk, err := o.store.SigningKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return sk.Key().(*rsa.PrivateKey), sk.ID()
}

// Tokens signs user in by the authorization code flow, as a script
// would with a browser, and returns the provider's token response: the
// access token (a JWT) and the ID token.
func (o *OP) Tokens(t testing.TB, user string) (access, id string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	var code string
	hc := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), o.Redirect) {
			code = r.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	q := url.Values{"client_id": {ClientID}, "response_type": {"code"}, "scope": {"openid profile"}, "redirect_uri": {o.Redirect},
		"state": {"state-for-a-script"}, "nonce": {"nonce-for-a-script"}}
	res, err := hc.Get(o.Issuer + "/auth?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	// The login page: the auth request's id is in its URL.
	reqID := res.Request.URL.Query().Get("authRequestID")
	if reqID == "" {
		t.Fatalf("no login page: %s", res.Request.URL)
	}
	res, err = hc.PostForm(o.Issuer+"/login/username", url.Values{"id": {reqID}, "username": {user}, "password": {Password}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if code == "" {
		t.Fatalf("no code for %s (%s)", user, res.Status)
	}
	req, _ := http.NewRequest(http.MethodPost, o.Issuer+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {o.Redirect}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(ClientID, ClientSecret)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tok struct {
		Access string `json:"access_token"`
		ID     string `json:"id_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("token endpoint: %s %v", res.Status, err)
	}
	if strings.Count(tok.Access, ".") != 2 {
		t.Fatal(fmt.Sprintf("the access token is not a JWT: %q", tok.Access))
	}
	return tok.Access, tok.ID
}

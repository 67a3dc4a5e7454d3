package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/oidctest"
)

// TestOIDCFlags: the client secret file, the role mapping and the other
// OIDC flags are checked at start; API access tokens of the provider work
// with the mapping, which SIGHUP reloads (a file that does not check keeps
// the mapping in force).
func TestOIDCFlags(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	o := oidctest.Start(t, "https://log.example/console/sso/callback")
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	qa := "roles:\n  - {name: qa, match: [clinic-a-qa], tenant: default, scopes: [read]}\n"
	roles := write("roles.yaml", qa, 0o644)
	secret := write("secret", oidctest.ClientSecret+"\n", 0o600)
	open := write("open-secret", oidctest.ClientSecret, 0o644)
	bad := write("bad.yaml", "roles:\n  - {name: qa, match: [g], scopes: [read]}\n", 0o644)
	sso := func(extra ...string) []string {
		return append([]string{"--oidc-issuer", o.Issuer, "--oidc-client-id", oidctest.ClientID, "--oidc-client-secret-file", secret,
			"--oidc-redirect-url", o.Redirect, "--oidc-roles", roles}, extra...)
	}
	for _, c := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"a secret readable by others", append(sso(), "--oidc-client-secret-file", open), "mode 0600"},
		{"a mapping that does not check", append(sso(), "--oidc-roles", bad), "tenant: required"},
		{"a redirect that is not the callback", append(sso(), "--oidc-redirect-url", "https://log.example/console/"), "sso/callback"},
		{"no client secret", []string{"--oidc-issuer", o.Issuer, "--oidc-client-id", oidctest.ClientID, "--oidc-roles", roles}, "--oidc-client-secret-file"},
		{"the API audience is the client id", append(sso(), "--oidc-api-audience", oidctest.ClientID), "must not be the console's client id"},
		{"no token sign-in and no OIDC", []string{"--console-token-signin=false"}, "needs OIDC sign-in"},
		{"no roles", []string{"--oidc-issuer", o.Issuer, "--oidc-api-audience", "api"}, "--oidc-roles"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.Command(bin, append([]string{"--data", filepath.Join(dir, "data-"+strings.ReplaceAll(c.name, " ", "-")), "--listen", "127.0.0.1:0"}, c.flags...)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), c.want) {
				t.Fatalf("log-server started (%v): %s", err, out)
			}
		})
	}

	// With OIDC on, the token sign-in (break-glass) stays on by default:
	// the form is there and a posted form reaches the check of its CSRF
	// token; --console-token-signin=false takes the form away and refuses
	// a posted token before any check.
	for _, c := range []struct {
		name     string
		extra    []string
		form     bool
		posted   int
		postText string
	}{
		{"default", nil, true, http.StatusForbidden, "did not come from this console"},
		{"off", []string{"--console-token-signin=false"}, false, http.StatusForbidden, "turned off"},
	} {
		t.Run("token sign-in "+c.name, func(t *testing.T) {
			p := startWith(t, bin, filepath.Join(dir, "data-token-"+c.name), nil, sso(c.extra...)...)
			res, err := http.Get(p.url + "/console/")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if got := strings.Contains(string(b), `name="token"`); got != c.form || !strings.Contains(string(b), "sso/start") {
				t.Errorf("the sign-in page (token form %v, want %v):\n%s", got, c.form, b)
			}
			res, err = http.PostForm(p.url+"/console/login", url.Values{"token": {"lat_whatever"}})
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != c.posted || !strings.Contains(string(b), c.postText) {
				t.Errorf("a posted token = %d, want %d with %q:\n%s", res.StatusCode, c.posted, c.postText, b)
			}
		})
	}

	// API access tokens (without the console's sign-in, so that the
	// provider's client id may be the API's audience here).
	p := startWith(t, bin, filepath.Join(dir, "data"), nil, "--oidc-issuer", o.Issuer, "--oidc-roles", roles, "--oidc-api-audience", oidctest.ClientID)
	tok, _ := o.Tokens(t, "quinn")
	status := func() int {
		req, _ := http.NewRequest(http.MethodGet, p.url+"/v1/sessions", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if s := status(); s != http.StatusOK {
		t.Fatalf("quinn's access token: %d", s)
	}
	// A mapping that does not check is not loaded.
	write("roles.yaml", "roles: [", 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	if s := status(); s != http.StatusOK {
		t.Fatalf("after a broken mapping was sent: %d", s)
	}
	// One without quinn's group is.
	write("roles.yaml", strings.Replace(qa, "clinic-a-qa", "clinic-a-qa-v2", 1), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for status() != http.StatusForbidden {
		if time.Now().After(deadline) {
			t.Fatal("the mapping reloaded on SIGHUP still gives quinn a role")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

package console_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/console"
	"github.com/llmaudittrail/llmaudittrail/identity"
)

// accounts is People that notes the account events and makes no clients.
type accounts struct {
	mu sync.Mutex
	a  []identity.Account
}

func (p *accounts) PersonClient(string, identity.Person, identity.Role) *client.Client { return nil }

func (p *accounts) RecordAccount(_ context.Context, a identity.Account) error {
	p.mu.Lock()
	p.a = append(p.a, a)
	p.mu.Unlock()
	return nil
}

// TestConsoleSignInRateLimited: the token form (POST /login) and the end
// of an OIDC sign-in (/sso/callback) take from the same per-address
// limit as its start: past the burst they answer 429 with Retry-After,
// per client address (another address still gets in; an IPv6 /64 is one
// address).
func TestConsoleSignInRateLimited(t *testing.T) {
	_, vkey, err := note.GenerateKey(rand.Reader, "log.example")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := note.NewVerifier(vkey)
	people := &accounts{}
	c, err := console.New(console.Config{
		Client: func(token string) *client.Client { c, _ := client.New("http://127.0.0.1:1"); return c },
		Key:    key, People: people, SignInBurst: 3, Logger: slog.New(slog.DiscardHandler),
		OIDC: &console.OIDC{Issuer: "http://127.0.0.1:1", ClientID: "console", RedirectURL: "http://127.0.0.1:2/console/sso/callback",
			Roles: func() *identity.Mapping { return nil }},
	})
	if err != nil {
		t.Fatal(err)
	}
	send := func(from, method, path string) *httptest.ResponseRecorder {
		var r *http.Request
		if method == http.MethodPost {
			// No form token: refused (403) after the limit is taken.
			r = httptest.NewRequest(method, path, strings.NewReader(url.Values{"token": {"lat_x"}}.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			r = httptest.NewRequest(method, path, nil)
		}
		r.RemoteAddr = from
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		return w
	}
	for _, tc := range []struct {
		name, method, path string
		from               []string // the addresses of the attempts, in order
		under              int      // the answer under the limit
	}{
		{"token form", http.MethodPost, "/console/login", []string{"192.0.2.1:1000", "192.0.2.1:1001", "192.0.2.1:1002", "192.0.2.1:1003"}, http.StatusForbidden},
		{"callback", http.MethodGet, "/console/sso/callback?state=x&code=y", []string{"192.0.2.2:1000", "192.0.2.2:1001", "192.0.2.2:1002", "192.0.2.2:1003"}, http.StatusBadRequest},
		{"callback, one IPv6 /64", http.MethodGet, "/console/sso/callback?state=x&code=y", []string{"[2001:db8::1]:1", "[2001:db8::2]:1", "[2001:db8::ffff:3]:1", "[2001:db8::4]:1"}, http.StatusBadRequest},
	} {
		other := "198.51.100." + strconv.Itoa(len(tc.path)+len(tc.from[0])) + ":1"
		t.Run(tc.name, func(t *testing.T) {
			for i, from := range tc.from {
				w := send(from, tc.method, tc.path)
				if i < 3 {
					if w.Code != tc.under {
						t.Fatalf("attempt %d from %s: %d, want %d", i+1, from, w.Code, tc.under)
					}
					continue
				}
				ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
				if w.Code != http.StatusTooManyRequests || err != nil || ra < 1 {
					t.Fatalf("attempt %d from %s: %d, Retry-After %q; want 429 with Retry-After", i+1, from, w.Code, w.Header().Get("Retry-After"))
				}
			}
			// Another address is not limited by this one's attempts.
			if w := send(other, tc.method, tc.path); w.Code != tc.under {
				t.Errorf("another address: %d, want %d", w.Code, tc.under)
			}
		})
	}
}

// Package console is the auditor console: the log in a browser for
// quality reviewers, auditors and signers. It shows the log's health,
// finds sessions, shows a session's timeline with every event's
// verification state, an event's leaf, proof and receipt, opens payloads
// (each read is logged), lets a signer sign, computes compliance reports,
// and lists monitor alerts and replay verdicts.
//
// It is a consumer of the log: it reads and writes only through client,
// with each user's own token, and verifies checkpoints, inclusion proofs
// and chains itself with the log's key and witness policy. So it runs in
// the log server's process (cmd/log-server mounts it at /console/) or as a
// process of its own.
//
// Pages are rendered on the server with html/template from embedded
// templates; there is no JavaScript and nothing is loaded from elsewhere.
// Every value from the log is attacker-controlled and shown as text
// (text.go); the Content-Security-Policy allows no script at all. A user
// signs in with a token, which stays on the server: the browser holds only
// a random session id in an HttpOnly, SameSite=Strict cookie (Secure under
// TLS). Every POST carries a CSRF token bound to the sign-in.
package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/time/rate"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Path is the prefix the console serves under.
const Path = "/console/"

// Defaults.
const (
	// DefaultIdleTimeout ends a sign-in after this long without a request.
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultMaxAge ends a sign-in this long after it began.
	DefaultMaxAge = 12 * time.Hour
	// DefaultMaxUsers caps the sign-ins held at once; beyond it the one
	// idle longest is signed out.
	DefaultMaxUsers = 1000
	// MaxFormBytes caps a form posted to the console.
	MaxFormBytes = 64 << 10
	// MaxTokenBytes caps a token pasted into the sign-in form.
	MaxTokenBytes = 1024
)

// Config configures a Console; zero values take the defaults above.
type Config struct {
	// Client returns a client of the log that authenticates with token
	// (required). In the log server's process: server.UserClient; in a
	// process of its own, a client.New(url, client.WithToken(token)).
	Client func(token string) *client.Client
	// Key verifies the log's checkpoints (required).
	Key note.Verifier
	// Policy, if set, is the witness policy every checkpoint must meet;
	// the console shows which witnesses cosigned.
	Policy *checkpoint.Policy
	// Chromium names the browser that prints PDF reports (default:
	// chromium on PATH).
	Chromium string
	// SecureCookies marks cookies Secure even on plain HTTP, for a
	// console behind a TLS-terminating proxy. Under TLS they always are.
	SecureCookies bool
	// IdleTimeout and MaxAge end a sign-in (DefaultIdleTimeout,
	// DefaultMaxAge).
	IdleTimeout, MaxAge time.Duration
	// MaxUsers caps the sign-ins held at once (DefaultMaxUsers).
	MaxUsers int
	// OIDC, if set, signs people in through an OpenID provider (sso.go),
	// with People to act for them.
	OIDC *OIDC
	// People acts for people signed in through the provider and records
	// sign-ins, sign-outs, failures and refusals in the log (required
	// with OIDC): the log server (server.Server) the console runs in.
	// Without OIDC it records token sign-ins, if set.
	People People
	// DisableTokenSignIn turns the token sign-in off. It stays on by
	// default as the break-glass way in when the provider is down.
	DisableTokenSignIn bool
	// SignInRate and SignInBurst limit sign-in attempts per client
	// address (DefaultSignInRate, DefaultSignInBurst).
	SignInRate  rate.Limit
	SignInBurst int
	Logger      *slog.Logger
}

// Console is the console's HTTP handler, serving everything under Path.
type Console struct {
	cfg    Config
	mux    *http.ServeMux
	pages  map[string]*template.Template
	users  *users
	sso    *sso // nil without OIDC
	limits *signInLimits
	static fs.FS
	logger *slog.Logger
	health *samples

	reportMu sync.Mutex // one report computed at a time
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// ErrConfig is wrapped by New for an incomplete configuration.
var ErrConfig = errors.New("console configuration")

// New returns a console.
func New(cfg Config) (*Console, error) {
	switch {
	case cfg.Client == nil:
		return nil, fmt.Errorf("%w: a way to make a client of the log is required", ErrConfig)
	case cfg.Key == nil:
		return nil, fmt.Errorf("%w: the log's verifier key is required", ErrConfig)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxUsers <= 0 {
		cfg.MaxUsers = DefaultMaxUsers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SignInRate <= 0 {
		cfg.SignInRate = DefaultSignInRate
	}
	if cfg.SignInBurst <= 0 {
		cfg.SignInBurst = DefaultSignInBurst
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, mux: http.NewServeMux(), static: static, logger: cfg.Logger, health: newSamples(),
		limits: newSignInLimits(cfg.SignInRate, cfg.SignInBurst)}
	c.users = newUsers(cfg, func(u *user, reason string) { c.signedOut(context.Background(), u, reason) })
	if cfg.OIDC != nil {
		if cfg.People == nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, errNoPeople)
		}
		if c.sso, err = newSSO(*cfg.OIDC); err != nil {
			return nil, err
		}
	} else if cfg.DisableTokenSignIn {
		return nil, fmt.Errorf("%w: with the token sign-in off, OIDC is the only way in and must be configured", ErrConfig)
	}
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	m := c.mux
	m.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, Path, http.StatusSeeOther) })
	m.HandleFunc("GET /console/{$}", c.home)
	m.HandleFunc("POST /console/login", c.login)
	if c.sso != nil {
		m.HandleFunc("GET /console/sso/start", c.ssoStart)
		m.HandleFunc("GET /console/sso/callback", c.ssoCallback)
	}
	m.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(c.static)))
	m.Handle("POST /console/logout", c.user(c.logout))
	m.Handle("GET /console/health", c.user(c.healthPage))
	m.Handle("GET /console/sessions/{session}", c.user(c.timelinePage))
	m.Handle("POST /console/sessions/{session}/payloads", c.user(c.timelinePayloads))
	m.Handle("GET /console/entries", c.user(c.jumpToEntry))
	m.Handle("GET /console/entries/{index}", c.user(c.entryPage))
	m.Handle("GET /console/entries/{index}/receipt", c.user(c.receiptDownload))
	m.Handle("GET /console/entries/{index}/proof", c.user(c.receiptDownload))
	m.Handle("POST /console/entries/{index}/payload", c.user(c.openPayload))
	m.Handle("POST /console/entries/{index}/disclosure", c.user(c.discloseFields))
	m.Handle("POST /console/entries/{index}/sign", c.user(c.sign))
	m.Handle("GET /console/signatures/{index}/export", c.user(c.signatureExport))
	m.Handle("GET /console/reports", c.user(c.reportsPage))
	m.Handle("POST /console/reports", c.user(c.generateReport))
	m.Handle("GET /console/reports/{id}", c.user(c.reportPage))
	m.Handle("GET /console/reports/{id}/view", c.user(c.reportView))
	m.Handle("GET /console/reports/{id}/download/{format}", c.user(c.reportDownload))
	c.searchRoutes(m)
}

// contentSecurityPolicy allows the console's own style sheet and images
// and forms posted to itself; no script, no frames, no other origin.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP serves the console: security headers on every answer, then
// the CSRF check of every POST, then the page.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// A browser says where a request comes from; a cross-site one is
		// refused before anything else (the CSRF token is checked too).
		if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
			c.fail(w, r, nil, http.StatusForbidden, "This form was posted from another site.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
		if err := r.ParseForm(); err != nil {
			c.fail(w, r, nil, http.StatusRequestEntityTooLarge, "The form could not be read or is too large.")
			return
		}
	}
	c.mux.ServeHTTP(w, r)
}

// page is what every template gets.
type page struct {
	Title string
	Nav   string // the current section
	User  *user
	CSRF  string
	// Notice and Error are one-line messages at the top.
	Notice, Error string
	Data          any
}

var funcs = template.FuncMap{
	"line":      event.SafeText,
	"multiline": event.SafeBlock,
	"short":     short,
	"when":      when,
	"clip":      event.Shorten,
	"join":      strings.Join,
}

// parsePages parses each page template with the layout.
func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", n, err)
		}
		out[base] = t
	}
	return out, nil
}

// render writes a page with status.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		panic("console: no template " + name)
	}
	if p.User != nil {
		p.CSRF = p.User.csrf
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout.html", p); err != nil {
		c.logger.Error("console: rendering a page", "page", name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// fail answers with an error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, u *user, status int, msg string) {
	c.render(w, r, status, "error", page{Title: http.StatusText(status), User: u, Error: msg})
}

// failErr answers for an error of the log: what the user can act on, in
// words.
func (c *Console) failErr(w http.ResponseWriter, r *http.Request, u *user, what string, err error) {
	status, msg := http.StatusBadGateway, fmt.Sprintf("%s: %v", what, err)
	switch {
	case errors.Is(err, errNotVisible), errors.Is(err, client.ErrNotFound):
		status, msg = http.StatusNotFound, what+": not found, or not visible to your token."
	case errors.Is(err, client.ErrForbidden):
		status, msg = http.StatusForbidden, what+": your token lacks the scope (or tenant) for this. "+clientMessage(err)
	case errors.Is(err, client.ErrUnauthenticated):
		status, msg = http.StatusUnauthorized, what+": the log no longer accepts your token (revoked?). Sign in again."
	case errors.Is(err, client.ErrOverloaded):
		status, msg = http.StatusServiceUnavailable, what+": the log is busy; try again in a moment."
	case isServerFailure(err):
		status, msg = http.StatusBadGateway, what+": the log server could not serve it (it answered "+err.Error()+"). Its own log says why; a server that cannot prove an entry refuses it, so its storage may be damaged."
	case r.Context().Err() != nil:
		return
	}
	if status == http.StatusBadGateway {
		c.logger.Warn("console: a request to the log failed", "what", what, "error", err)
	}
	c.fail(w, r, u, status, msg)
}

// isServerFailure reports whether err is the log server's own failure
// (500), not a refusal or an overload.
func isServerFailure(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.StatusCode == http.StatusInternalServerError
}

// clientMessage is the log server's own message of an error answer.
func clientMessage(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Message
	}
	return ""
}

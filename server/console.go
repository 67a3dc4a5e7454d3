package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/go-chi/chi/v5"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
)

// The auditor console (package console) is a consumer of the log: it reads
// only through the public API with each user's own token, as it would if it
// ran as a process of its own. The server cannot import it (a consumer is
// above the entry layer), so the command that composes both hands it over
// as a ConsoleFactory.

// ConsolePath is where the console is served.
const ConsolePath = "/console/"

// ConsoleFactory builds the console of an open server: typically
// console.New with s.UserClient as its way to reach the log and
// s.VerifierKey() and s.Policy() as what it verifies the log with.
type ConsoleFactory func(s *Server) (http.Handler, error)

// mountConsole serves the console built by Config.Console at /console/.
// routes cannot fail, so a console that cannot be built answers 503 and
// the server's log says why.
func (s *Server) mountConsole(r chi.Router) {
	if s.cfg.Console == nil {
		return
	}
	h, err := s.cfg.Console(s)
	if err != nil {
		s.logger.Error("the console could not start", "error", err)
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "the console could not start; the log server's log says why", http.StatusServiceUnavailable)
		})
	}
	r.Handle("/console", h)
	r.Handle(ConsolePath+"*", h)
}

// UserClient returns a client of this server that calls its handler in
// process and sends token as its bearer token. Unlike LocalClient it has no
// privilege of its own: the server authenticates token and answers with
// exactly that token's rights (401 for an unknown one), and whatever it
// reads or discloses is recorded as read by that token. Each token is its
// own client for the server's per-client read limits.
func (s *Server) UserClient(token string) *client.Client {
	h := sha256.Sum256([]byte(token))
	c, err := client.New("http://log-server.console", client.WithToken(token),
		client.WithHTTPClient(&http.Client{Transport: inProcess{s: s, addr: "console-" + hex.EncodeToString(h[:6])}}))
	if err != nil {
		panic(err) // a constant URL
	}
	return c
}

// inProcess serves requests with the server's handler: as the server
// itself (internal, LocalClient) or as the holder of the request's token
// (UserClient).
type inProcess struct {
	s        *Server
	addr     string
	internal bool
	// person, if set, is the person the request acts for (PersonClient).
	person *auth.Principal
}

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	// The request is new: mask what the caller's context may carry from
	// the request it serves, the in-process mark (set only for the server's
	// own requests) and chi's routing state (which chi would reuse, method
	// and all, for this request).
	var mark any
	if t.internal {
		mark = true
	}
	ctx := context.WithValue(r.Context(), internalKey{}, mark)
	ctx = context.WithValue(ctx, personKey{}, t.person)
	ctx = context.WithValue(ctx, chi.RouteCtxKey, (*chi.Context)(nil))
	r = r.Clone(ctx)
	r.RemoteAddr = t.addr
	if r.Body == nil {
		r.Body = http.NoBody
	}
	w := httptest.NewRecorder()
	t.s.handler.ServeHTTP(w, r)
	res := w.Result()
	res.Request = r
	if t.person != nil && (res.StatusCode == http.StatusForbidden || res.StatusCode == http.StatusUnauthorized) {
		t.s.recordDenied(r, t.person, res.StatusCode)
	}
	if res.Body == nil {
		res.Body = io.NopCloser(bytes.NewReader(nil))
	}
	return res, nil
}

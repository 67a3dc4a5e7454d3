// Package servertest starts a log server in process for tests: the server
// on a fresh data directory, served on a loopback port, its admin token,
// and tokens, token files and clients on demand; closed when the test
// ends. Tests that drive the server through HTTP start here rather than
// wiring server.Open, httptest and the admin token by hand.
package servertest

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// Server is a log server started for a test.
type Server struct {
	Srv *server.Server
	HS  *httptest.Server
	URL string
	Dir string
	// Admin is the admin token (global, every scope); AdminFile is its 0600
	// file; LogPub the file of the log's verifier key.
	Admin, AdminFile, LogPub string

	tb   testing.TB
	once sync.Once
}

// An Option changes how Start serves the server.
type Option func(*options)

type options struct {
	wrap     func(http.Handler) http.Handler
	listener net.Listener
}

// WithHandler serves wrap(the server's handler) instead of the handler
// (a test that replaces some of what the log serves).
func WithHandler(wrap func(http.Handler) http.Handler) Option {
	return func(o *options) { o.wrap = wrap }
}

// WithListener serves on l instead of a new loopback listener.
func WithListener(l net.Listener) Option {
	return func(o *options) { o.listener = l }
}

// Start opens a server on a fresh data directory with short intervals
// (checkpoints every 100 ms, batches of 2 ms) and mod's changes (mod may
// prepare cfg.DataDir, or name another), serves it on a loopback port, and
// closes both when the test ends. Its log goes to the file
// LLMAUDIT_TEST_SERVER_LOG names (appended), if set.
func Start(tb testing.TB, mod func(*server.Config), opts ...Option) *Server {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg := server.Config{DataDir: tb.TempDir(), CheckpointInterval: 100 * time.Millisecond, BatchMaxAge: 2 * time.Millisecond, Logger: logger(tb)}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := server.Open(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	h := srv.Handler()
	if o.wrap != nil {
		h = o.wrap(h)
	}
	hs := httptest.NewUnstartedServer(h)
	if o.listener != nil {
		hs.Listener.Close()
		hs.Listener = o.listener
	}
	hs.Start()
	s := &Server{Srv: srv, HS: hs, Dir: cfg.DataDir, tb: tb,
		AdminFile: filepath.Join(cfg.DataDir, server.AdminToken), LogPub: filepath.Join(cfg.DataDir, server.LogPubFile)}
	s.URL = s.HS.URL
	tb.Cleanup(s.Close)
	tok, err := os.ReadFile(s.AdminFile)
	if err != nil {
		tb.Fatal(err)
	}
	s.Admin = strings.TrimSpace(string(tok))
	return s
}

func logger(tb testing.TB) *slog.Logger {
	name := os.Getenv("LLMAUDIT_TEST_SERVER_LOG")
	if name == "" {
		return slog.New(slog.DiscardHandler)
	}
	f, err := os.OpenFile(name, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", tb.Name())
}

// Close stops serving and closes the server (once; also at the end of the
// test).
func (s *Server) Close() {
	s.once.Do(func() {
		s.HS.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Srv.Close(ctx); err != nil {
			s.tb.Errorf("closing the log server: %v", err)
		}
	})
}

// Token creates a token.
func (s *Server) Token(spec auth.Spec) string {
	s.tb.Helper()
	tok, _, err := s.Srv.Tokens().Create(context.Background(), spec)
	if err != nil {
		s.tb.Fatal(err)
	}
	return tok
}

// TokenFile creates a token and writes it to a 0600 file, whose path it
// returns.
func (s *Server) TokenFile(spec auth.Spec) string {
	s.tb.Helper()
	p := filepath.Join(s.tb.TempDir(), spec.Name+".token")
	if err := os.WriteFile(p, []byte(s.Token(spec)), 0o600); err != nil {
		s.tb.Fatal(err)
	}
	return p
}

// Client is a client of the server with token.
func (s *Server) Client(token string, opts ...client.Option) *client.Client {
	s.tb.Helper()
	c, err := client.New(s.URL, append([]client.Option{client.WithToken(token)}, opts...)...)
	if err != nil {
		s.tb.Fatal(err)
	}
	return c
}

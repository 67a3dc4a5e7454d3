package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/console"
	"github.com/llmaudittrail/llmaudittrail/identity"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
	"github.com/llmaudittrail/llmaudittrail/internal/keyfile"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// consoleOptions are the console's flags.
type consoleOptions struct {
	on           bool
	chromium     string
	tokenSignIn  bool
	oidcIssuer   string
	oidcClientID string
	oidcSecret   string // the client secret's file
	oidcRedirect string
	oidcRoles    string // the role mapping file
	oidcName     string
	oidcScopes   string
	apiAudience  string // API access tokens of the provider
	mapping      atomic.Pointer[identity.Mapping]
	clientSecret string
	oidcOn       bool
}

// check reads the OIDC client secret (a 0600 file) and the role mapping
// at start: a mistake stops the server before it serves. The console's
// sign-in is on with --oidc-client-id, API access tokens with
// --oidc-api-audience; both need the issuer and the role mapping.
func (o *consoleOptions) check() error {
	o.oidcOn = o.oidcClientID != "" || o.oidcSecret != "" || o.oidcRedirect != ""
	if !o.oidcOn && !o.tokenSignIn {
		return errors.New("--console-token-signin=false needs OIDC sign-in (--oidc-issuer, --oidc-client-id, ...)")
	}
	if !o.oidcOn && o.apiAudience == "" {
		if o.oidcIssuer != "" || o.oidcRoles != "" {
			return errors.New("--oidc-issuer and --oidc-roles need --oidc-client-id (console sign-in) or --oidc-api-audience (API access tokens)")
		}
		return nil
	}
	if o.oidcIssuer == "" || o.oidcRoles == "" {
		return errors.New("OIDC needs --oidc-issuer and --oidc-roles")
	}
	if o.oidcOn {
		if !o.on {
			return errors.New("--oidc-client-id configures the console's sign-in, and --console=false turns the console off")
		}
		if o.oidcClientID == "" || o.oidcSecret == "" || o.oidcRedirect == "" {
			return errors.New("OIDC sign-in needs --oidc-issuer, --oidc-client-id, --oidc-client-secret-file, --oidc-redirect-url and --oidc-roles")
		}
		if !strings.HasSuffix(o.oidcRedirect, console.Path+"sso/callback") {
			return fmt.Errorf("--oidc-redirect-url %q: the console's callback ends in %ssso/callback", o.oidcRedirect, console.Path)
		}
		if o.apiAudience == o.oidcClientID {
			return errors.New("--oidc-api-audience must not be the console's client id: an ID token's audience is the client id")
		}
		b, err := keyfile.Read(o.oidcSecret)
		if err != nil {
			return fmt.Errorf("--oidc-client-secret-file: %w", err)
		}
		if o.clientSecret = strings.TrimSpace(string(b)); o.clientSecret == "" {
			return fmt.Errorf("--oidc-client-secret-file: %s is empty", o.oidcSecret)
		}
	}
	return o.loadRoles()
}

// accessTokens is the server's configuration of API access tokens, nil
// without --oidc-api-audience.
func (o *consoleOptions) accessTokens() *server.AccessTokens {
	if o.apiAudience == "" {
		return nil
	}
	return &server.AccessTokens{Issuer: o.oidcIssuer, Audience: o.apiAudience, Roles: o.mapping.Load}
}

// loadRoles reads and checks the role mapping; the mapping in force
// changes only when the new one is valid.
func (o *consoleOptions) loadRoles() error {
	text, err := cli.ReadFile(o.oidcRoles, maxConfigBytes)
	if err != nil {
		return fmt.Errorf("--oidc-roles: %w", err)
	}
	m, err := identity.ParseMapping(text, auth.Scopes())
	if err != nil {
		return fmt.Errorf("--oidc-roles %s: %w", o.oidcRoles, err)
	}
	o.mapping.Store(m)
	return nil
}

// watchRoles reloads the role mapping on SIGHUP; an invalid file keeps the
// mapping in force and is logged.
func (o *consoleOptions) watchRoles(logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if err := o.loadRoles(); err != nil {
				logger.Error("the role mapping was not reloaded; the one in force stays", "error", err)
				continue
			}
			logger.Info("role mapping reloaded", "file", o.oidcRoles, "roles", len(o.mapping.Load().Roles()))
		}
	}()
}

// consoleFactory builds the auditor console of the server once its log is
// open (nil with --console=false): it reads the log in process, through
// each user's own token or, for a person signed in through the identity
// provider, with their role's rights, and verifies with the log's key and
// policy.
func consoleFactory(o *consoleOptions, logger *slog.Logger) server.ConsoleFactory {
	if o.mapping.Load() != nil {
		o.watchRoles(logger)
	}
	if !o.on {
		return nil
	}
	return func(s *server.Server) (http.Handler, error) {
		key, err := checkpoint.NewVerifier(s.VerifierKey())
		if err != nil {
			return nil, err
		}
		cfg := console.Config{Client: s.UserClient, Key: key, Policy: s.Policy(), Chromium: o.chromium, Logger: logger,
			People: s, DisableTokenSignIn: !o.tokenSignIn}
		if o.oidcOn {
			cfg.OIDC = &console.OIDC{Issuer: o.oidcIssuer, ClientID: o.oidcClientID, ClientSecret: o.clientSecret,
				RedirectURL: o.oidcRedirect, Name: o.oidcName, Roles: o.mapping.Load}
			if o.oidcScopes != "" {
				cfg.OIDC.Scopes = strings.Fields(strings.ReplaceAll(o.oidcScopes, ",", " "))
			}
		}
		return console.New(cfg)
	}
}

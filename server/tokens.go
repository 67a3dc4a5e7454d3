package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Token lifecycle in the log. Tokens are made and revoked with the
// log-server token command, on the state database, while the server may be
// running; the server appends access.token_created and access.token_revoked
// (session access.tokens, in the token's tenant) for every change, at
// start, every auth.CacheTTL, and before it serves a token whose creation
// it has not recorded yet: every write in the log comes after the event
// that says which token it is and what it may do. A crash between an event
// and its note in the state database repeats the event at the next start.

// Kinds of the token lifecycle events.
const (
	KindTokenCreated = "access.token_created"
	KindTokenRevoked = "access.token_revoked"
	tokenSession     = event.SessionTokens
)

var serverWriter = event.Writer{Token: ServerTokenID, Via: event.ViaServer}

func jsonAttrs(kv map[string]any) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(kv))
	for k, v := range kv {
		b, _ := json.Marshal(v)
		out[k] = b
	}
	return out
}

// logTokens records every token change not in the log yet. It holds a lock
// that every instance of the log takes, so that a change is recorded once.
func (s *Server) logTokens(ctx context.Context) error {
	lk, err := s.backend.State.Lock(ctx, 30*time.Second, "server.tokens")
	if err != nil {
		return fmt.Errorf("recording token changes: %w", err)
	}
	defer lk.Unlock()
	changes, err := s.tokens.Unlogged(ctx)
	if err != nil {
		return fmt.Errorf("listing token changes: %w", err)
	}
	for _, c := range changes {
		kind := KindTokenCreated
		if c.Revoked {
			kind = KindTokenRevoked
		}
		scopes, actors := c.Scopes, c.Actors
		if actors == nil {
			actors = []string{}
		}
		if _, err := s.log.Append(ctx, c.Tenant, serverWriter, []*event.Request{{
			Session: tokenSession, Kind: kind, Actor: event.ServerActor,
			Attributes: jsonAttrs(map[string]any{"token.id": c.ID, "token.name": c.Name, "token.tenant": c.Tenant,
				"token.scopes": scopes, "token.global": c.Global, "token.actors": actors, "token.at": c.At}),
		}}); err != nil {
			return fmt.Errorf("recording %s of token %s: %w", kind, c.ID, err)
		}
		if err := s.tokens.MarkLogged(ctx, c.ID, c.Revoked); err != nil {
			return err
		}
		if !c.Revoked {
			s.loggedTokens.Store(c.ID, true)
		}
	}
	return nil
}

// ensureLogged makes sure the creation of p's token is in the log before
// p is served.
func (s *Server) ensureLogged(ctx context.Context, p *auth.Principal) error {
	if _, ok := s.loggedTokens.Load(p.ID); ok || p == s.internal || p.Person != nil {
		return nil
	}
	if err := s.logTokens(ctx); err != nil {
		return err
	}
	s.loggedTokens.Store(p.ID, true)
	return nil
}

// watchTokens records token changes until ctx ends.
func (s *Server) watchTokens(ctx context.Context) {
	t := time.NewTicker(auth.CacheTTL)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.logTokens(ctx); err != nil && ctx.Err() == nil {
				s.logger.Error("recording token changes", "error", err)
			}
		}
	}
}

// internalKey marks a request made in process by LocalClient.
type internalKey struct{}

// LocalClient is a client of this server that calls its handler in
// process, as the server itself: a log-wide reader and auditor named
// ServerTokenID. Its payload reads are appended as access.read like any
// other. Only code in this process can make such requests.
func (s *Server) LocalClient() *client.Client {
	c, err := client.New("http://log-server.internal", client.WithHTTPClient(&http.Client{Transport: inProcess{s: s, addr: "in-process", internal: true}}))
	if err != nil {
		panic(err) // a constant URL
	}
	return c
}

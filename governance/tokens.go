package governance

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

// Token changes in the log. Tokens are made and revoked with the log-server
// token command, on the state database, while the server may be running;
// governance appends access.token_created and access.token_revoked (session
// event.SessionTokens, in the token's tenant) for every change: at start
// (RecordTokens), every auth.CacheTTL (WatchTokens), and before it serves a
// token whose creation it has not recorded yet (EnsureToken): every write
// in the log comes after the event that says which token it is and what it
// may do. A crash between an event and its note in the state database
// repeats the event at the next start.

// tokenLock makes every instance record a change once.
const tokenLock = "server.tokens"

// RecordTokens records every token change not in the log yet. Without a
// token store (Config.Tokens) it does nothing.
func (c *Clerk) RecordTokens(ctx context.Context) error {
	if c.cfg.Tokens == nil {
		return nil
	}
	unlock, err := c.log.Lock(ctx, tokenLock)
	if err != nil {
		return fmt.Errorf("recording token changes: %w", err)
	}
	defer unlock()
	changes, err := c.cfg.Tokens.Unlogged(ctx)
	if err != nil {
		return fmt.Errorf("listing token changes: %w", err)
	}
	server := auditlog.Reader{TokenID: c.cfg.ServerToken}
	for _, ch := range changes {
		kind := event.KindTokenCreated
		if ch.Revoked {
			kind = event.KindTokenRevoked
		}
		actors := ch.Actors
		if actors == nil {
			actors = []string{}
		}
		if _, err := c.log.Append(ctx, ch.Tenant, server.Writer(), []*event.Request{{
			Session: event.SessionTokens, Kind: kind, Actor: event.ServerActor,
			Attributes: jsonAttrs(map[string]any{event.AttrTokenID: ch.ID, event.AttrTokenName: ch.Name, event.AttrTokenTenant: ch.Tenant,
				event.AttrTokenScopes: ch.Scopes, event.AttrTokenGlobal: ch.Global, event.AttrTokenActors: actors, event.AttrTokenAt: ch.At}),
		}}); err != nil {
			return fmt.Errorf("recording %s of token %s: %w", kind, ch.ID, err)
		}
		if err := c.cfg.Tokens.MarkLogged(ctx, ch.ID, ch.Revoked); err != nil {
			return err
		}
		if !ch.Revoked {
			c.recorded.Store(ch.ID, true)
		}
	}
	return nil
}

// EnsureToken makes sure that the creation of the token id is in the log
// before the token is served: at once when this Clerk recorded it or saw it
// recorded, else by RecordTokens.
func (c *Clerk) EnsureToken(ctx context.Context, id string) error {
	if _, ok := c.recorded.Load(id); ok {
		return nil
	}
	if err := c.RecordTokens(ctx); err != nil {
		return err
	}
	c.recorded.Store(id, true)
	return nil
}

// WatchTokens records token changes every auth.CacheTTL (the time within
// which a token change takes effect) until ctx ends; failures are logged.
func (c *Clerk) WatchTokens(ctx context.Context) {
	t := time.NewTicker(auth.CacheTTL)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.RecordTokens(ctx); err != nil && ctx.Err() == nil {
				c.logger.Error("recording token changes", "error", err)
			}
		}
	}
}

// jsonAttrs makes attributes of values encoded as JSON.
func jsonAttrs(kv map[string]any) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(kv))
	for k, v := range kv {
		b, _ := json.Marshal(v)
		out[k] = b
	}
	return out
}

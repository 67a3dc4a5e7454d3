package governance

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/retention"
)

// ErrNoRetention: the Clerk was configured without a retention store (or,
// for Erase and RecordRetention, without floors).
var ErrNoRetention = errors.New("retention and holds are not configured")

// target checks t and returns the subject's pseudonym ("" for a session).
// An unknown subject is log.ErrNotFound.
func (c *Clerk) target(ctx context.Context, tenant string, t api.Target) (string, error) {
	switch {
	case (t.Session == "") == (t.Subject == ""):
		return "", fmt.Errorf("%w: name a session or a subject, not both", event.ErrInvalidEvent)
	case t.Session != "":
		if !event.ValidID(t.Session) {
			return "", fmt.Errorf("%w: invalid session id", event.ErrInvalidEvent)
		}
		return "", nil
	}
	if !event.ValidID(t.Subject) {
		return "", fmt.Errorf("%w: invalid subject", event.ErrInvalidEvent)
	}
	return c.log.Pseudonym(ctx, tenant, t.Subject)
}

// PlaceHold puts a legal hold on a session or subject of the reader's
// tenant and appends hold.placed. While it is in force nothing it covers
// can be erased. Errors: ErrNoRetention, event.ErrInvalidEvent (no reason,
// a bad target), log.ErrNotFound (an unknown subject).
func (c *Clerk) PlaceHold(ctx context.Context, r auditlog.Reader, t api.Target, reason string) (*api.Hold, event.Appended, error) {
	if c.cfg.Retention == nil {
		return nil, event.Appended{}, ErrNoRetention
	}
	if strings.TrimSpace(reason) == "" {
		return nil, event.Appended{}, fmt.Errorf("%w: a hold needs a reason", event.ErrInvalidEvent)
	}
	ps, err := c.target(ctx, r.Tenant, t)
	if err != nil {
		return nil, event.Appended{}, err
	}
	unlock, err := c.log.Lock(ctx, eraseLock)
	if err != nil {
		return nil, event.Appended{}, err
	}
	h, err := c.cfg.Retention.Place(ctx, r.Tenant, t.Session, ps, event.Clip(reason, 1024))
	unlock()
	if err != nil {
		return nil, event.Appended{}, err
	}
	a, err := c.record(ctx, r.Tenant, r, &event.Request{
		Session: event.SessionHolds, Kind: event.KindHoldPlaced, Actor: r.Actor(),
		Attributes: strAttrs(event.AttrHoldID, h.ID, event.AttrHoldSession, h.Session, event.AttrHoldSubject, h.Subject, event.AttrHoldReason, h.Reason),
	})
	return h, a, err
}

// ReleaseHold ends a hold of the reader's tenant and appends hold.released.
// An unknown hold is log.ErrNotFound.
func (c *Clerk) ReleaseHold(ctx context.Context, r auditlog.Reader, id string) (*api.Hold, event.Appended, error) {
	if c.cfg.Retention == nil {
		return nil, event.Appended{}, ErrNoRetention
	}
	h, err := c.cfg.Retention.Release(ctx, r.Tenant, id)
	if errors.Is(err, retention.ErrNotFound) {
		return nil, event.Appended{}, fmt.Errorf("%w: no hold %s in tenant %s", auditlog.ErrNotFound, id, r.Tenant)
	}
	if err != nil {
		return nil, event.Appended{}, err
	}
	a, err := c.record(ctx, r.Tenant, r, &event.Request{
		Session: event.SessionHolds, Kind: event.KindHoldReleased, Actor: r.Actor(),
		Attributes: strAttrs(event.AttrHoldID, h.ID, event.AttrHoldSession, h.Session, event.AttrHoldSubject, h.Subject),
	})
	return h, a, err
}

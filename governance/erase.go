package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/retention"
)

// eraseLock serialises erasures and hold placements (in every instance), so
// that an erasure never interleaves with a hold it must respect.
const eraseLock = "log.erase"

// ErrLegalHold: a legal hold stops the erasure.
var ErrLegalHold = errors.New("a legal hold is in force")

// RetentionError is returned (ErrRetentionFloor) when an erasure falls
// inside the retention floor; Until is when the floor ends.
type RetentionError struct {
	Floor retention.Period
	Until time.Time
}

func (e *RetentionError) Error() string {
	return fmt.Sprintf("inside the retention floor of %s, which ends %s", e.Floor, e.Until.Format(time.RFC3339))
}

// ErrRetentionFloor is matched by a *RetentionError.
var ErrRetentionFloor = errors.New("inside the retention floor")

// Is makes errors.Is(err, ErrRetentionFloor) true.
func (e *RetentionError) Is(target error) bool { return target == ErrRetentionFloor }

// Erasure is an erasure done.
type Erasure struct {
	Sessions []string
	Subject  string // pseudonym, when a subject was erased
	Payloads int
	Override bool
	// Forgotten: the vault's write-ahead log was truncated and the
	// journal's released records removed, so no earlier copy of the erased
	// data is left in them (log.Erased).
	Forgotten bool
	Event     event.Appended
}

// Erase destroys the data of a session, or of a person (its pseudonym
// mapping and every session where it appears, as subject or as
// on_behalf_of): their data keys, hence payloads and commitment salts, and
// the mapping (log.ErasePayloads). The leaves and every proof stay valid. A
// legal hold on any of those sessions, or on any person who appears in
// them, refuses it (ErrLegalHold), so does the retention floor of those
// sessions (ErrRetentionFloor, naming when it ends) unless overridden; a
// refused erasure destroys and appends nothing. The storage then forgets
// the erased data (the vault's write-ahead log, the journal's released
// records), and an erasure event records what was erased on which legal
// basis. Other errors: ErrNoRetention, event.ErrInvalidEvent (no legal
// basis, a bad target), log.ErrNotFound (an unknown session or subject).
func (c *Clerk) Erase(ctx context.Context, r auditlog.Reader, req api.ErasureRequest) (*Erasure, error) {
	if c.cfg.Retention == nil || c.cfg.Floors == nil {
		return nil, ErrNoRetention
	}
	if !event.ValidID(req.LegalBasis) {
		return nil, fmt.Errorf("%w: legal_basis is required (an id such as gdpr-art17-1a)", event.ErrInvalidEvent)
	}
	ps, err := c.target(ctx, r.Tenant, req.Target)
	if err != nil {
		return nil, err
	}
	unlock, err := c.log.Lock(ctx, eraseLock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// The index says where a person appears, in every role (subject or
	// on_behalf_of): it must cover every acknowledged write first.
	if err := c.log.WaitIndexed(ctx); err != nil {
		return nil, err
	}
	idx := c.log.Index()
	sessions := []string{req.Session}
	if ps != "" {
		if sessions, err = idx.SessionsOf(ctx, r.Tenant, ps); err != nil {
			return nil, err
		}
	}
	// A hold on a person covers every session they appear in, whichever
	// way the erasure names the data.
	people, err := idx.People(ctx, r.Tenant, sessions)
	if err != nil {
		return nil, err
	}
	if ps != "" && !slices.Contains(people, ps) {
		people = append(people, ps)
	}
	holds, err := c.cfg.Retention.Held(ctx, r.Tenant, sessions, people)
	if err != nil {
		return nil, err
	}
	if len(holds) > 0 {
		ids := make([]string, len(holds))
		for i, h := range holds {
			ids[i] = h.ID
		}
		return nil, fmt.Errorf("%w: %s", ErrLegalHold, strings.Join(ids, ", "))
	}
	// The floor covers the sessions, and the pseudonym mapping through
	// them: the mapping is what gives meaning to their leaves.
	floor, _ := c.cfg.Floors.For(r.Tenant)
	latest, any, err := idx.LatestTime(ctx, r.Tenant, sessions)
	if err != nil {
		return nil, err
	}
	if !any && req.Session != "" {
		return nil, fmt.Errorf("%w: no session %s in tenant %s", auditlog.ErrNotFound, req.Session, r.Tenant)
	}
	override := req.OverrideReason != ""
	if until := floor.End(latest); any && time.Now().Before(until) && !override {
		return nil, &RetentionError{Floor: floor, Until: until}
	}
	e, err := c.log.ErasePayloads(ctx, r.Tenant, sessions, ps)
	if err != nil {
		return nil, err
	}
	// The keys are gone: from here on the erasure is recorded whatever
	// happens.
	attrs := strAttrs(event.AttrErasureLegalBasis, req.LegalBasis, event.AttrErasureReason, event.Clip(req.Reason, 1024),
		event.AttrErasureSession, req.Session, event.AttrErasureSubject, ps, event.AttrErasureOverrideReason, event.Clip(req.OverrideReason, 1024),
		event.AttrErasureFloor, floor.String())
	attrs[event.AttrErasureSessions] = jsonStrings(sessions)
	attrs[event.AttrErasurePayloads] = json.RawMessage(strconv.Itoa(e.Payloads))
	attrs[event.AttrErasureOverride] = json.RawMessage(strconv.FormatBool(override))
	attrs[event.AttrErasureWALTruncated] = json.RawMessage(strconv.FormatBool(e.Forgotten))
	a, err := c.record(ctx, r.Tenant, r, &event.Request{Session: event.SessionErasures, Kind: event.KindErasure, Actor: r.Actor(), Attributes: attrs})
	if err != nil {
		return nil, err
	}
	return &Erasure{Sessions: sessions, Subject: ps, Payloads: e.Payloads, Override: override, Forgotten: e.Forgotten, Event: a}, nil
}

func jsonStrings(ss []string) json.RawMessage {
	if ss == nil {
		ss = []string{}
	}
	b, _ := json.Marshal(ss)
	return b
}

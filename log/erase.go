package log

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
	"github.com/llmaudittrail/llmaudittrail/retention"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// Outcomes of erasure and holds.
var (
	// ErrNoRetention: the log was opened without a retention store.
	ErrNoRetention = errors.New("retention and holds are not configured")
	// ErrLegalHold: a legal hold stops the erasure.
	ErrLegalHold = errors.New("a legal hold is in force")
)

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

// eraseLock serialises erasures and hold placements (in every instance), so
// that an erasure never interleaves with a hold it must respect.
const eraseLock = "log.erase"

// Sessions of the server's own events (reserved in the event package).
const (
	erasureSession   = event.SessionErasures
	retentionSession = event.SessionRetention
)

// RecordRetention appends a retention.set event for each tenant (and
// "default", for the default floor) whose floor differs from the one last
// recorded, so that the log says which floor was in force when. tenants
// lists the tenants to record besides the default.
func (l *Log) RecordRetention(ctx context.Context, tokenID string) error {
	if l.cfg.Retention == nil || l.cfg.Floors == nil {
		return nil
	}
	// Instances that start at once record a change once.
	unlock, err := l.Lock(ctx, "log.retention")
	if err != nil {
		return err
	}
	defer unlock()
	rules := l.cfg.Floors
	tenants := []string{"default"}
	for t := range rules.Tenants {
		if !slices.Contains(tenants, t) {
			tenants = append(tenants, t)
		}
	}
	slices.Sort(tenants[1:])
	for _, t := range tenants {
		floor, profiles := rules.For(t)
		if t == "default" {
			floor, profiles = rules.Default, rules.DefaultProfiles
		}
		f, p := floor.String(), strings.Join(profiles, ",")
		if of, op, err := l.cfg.Retention.Recorded(ctx, t); err != nil {
			return err
		} else if of == f && op == p || of == "" && f == "0d" && p == "" {
			// Unchanged, or never configured: a log without compliance
			// profiles records no floor.
			continue
		}
		scope := "tenant"
		if t == "default" {
			scope = "default"
		}
		if _, err := l.serverEvent(ctx, t, Reader{TokenID: tokenID}, &event.Request{
			Session: retentionSession, Kind: "retention.set", Actor: serverActor,
			Attributes: map[string]json.RawMessage{
				"retention.floor":    jsonString(f),
				"retention.profiles": jsonStrings(profiles),
				"retention.scope":    jsonString(scope),
			},
		}); err != nil {
			return err
		}
		if err := l.cfg.Retention.Record(ctx, t, f, p); err != nil {
			return err
		}
	}
	return nil
}

func jsonStrings(ss []string) json.RawMessage {
	if ss == nil {
		ss = []string{}
	}
	b, _ := json.Marshal(ss)
	return b
}

// resolve checks t and returns the subject's pseudonym ("" for a session).
func (l *Log) resolve(ctx context.Context, tenant string, t api.Target) (string, error) {
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
	return l.Pseudonym(ctx, tenant, t.Subject)
}

// Erasure is an erasure done.
type Erasure struct {
	Sessions []string
	Subject  string // pseudonym, when a subject was erased
	Payloads int
	Override bool
	// Forgotten: the vault's write-ahead log was truncated, so no earlier
	// page image of the erased data is left in it.
	Forgotten bool
	Event     event.Appended
}

// Erase destroys the data of a session, or of a person (its pseudonym
// mapping and every session where it appears, as subject or as
// on_behalf_of): their data keys, hence payloads and commitment salts, and
// the mapping. The leaves and every proof stay valid. A legal hold on any
// of those sessions, or on any person who appears in them, refuses it
// (ErrLegalHold), so does the retention floor of those sessions
// (ErrRetentionFloor, naming when it ends) unless overridden; a refused
// erasure destroys and appends nothing. The vault then checkpoints its
// write-ahead log so that nothing of the erased data is left in the
// database files, and an erasure event records what was erased on which
// legal basis.
func (l *Log) Erase(ctx context.Context, r Reader, req api.ErasureRequest) (*Erasure, error) {
	if l.cfg.Retention == nil || l.cfg.Floors == nil {
		return nil, ErrNoRetention
	}
	if !event.ValidID(req.LegalBasis) {
		return nil, fmt.Errorf("%w: legal_basis is required (an id such as gdpr-art17-1a)", event.ErrInvalidEvent)
	}
	ps, err := l.resolve(ctx, r.Tenant, req.Target)
	if err != nil {
		return nil, err
	}
	unlock, err := l.Lock(ctx, eraseLock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// The index says where a person appears, in every role (subject or
	// on_behalf_of): it must cover every acknowledged write first.
	if err := l.WaitIndexed(ctx); err != nil {
		return nil, err
	}
	sessions := []string{req.Session}
	if ps != "" {
		if sessions, err = l.index.SessionsOf(ctx, r.Tenant, ps); err != nil {
			return nil, err
		}
	}
	// A hold on a person covers every session they appear in, whichever
	// way the erasure names the data.
	people, err := l.index.People(ctx, r.Tenant, sessions)
	if err != nil {
		return nil, err
	}
	if ps != "" && !slices.Contains(people, ps) {
		people = append(people, ps)
	}
	holds, err := l.cfg.Retention.Held(ctx, r.Tenant, sessions, people)
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
	floor, _ := l.cfg.Floors.For(r.Tenant)
	latest, any, err := l.index.LatestTime(ctx, r.Tenant, sessions)
	if err != nil {
		return nil, err
	}
	if !any && req.Session != "" {
		return nil, fmt.Errorf("%w: no session %s in tenant %s", ErrNotFound, req.Session, r.Tenant)
	}
	override := req.OverrideReason != ""
	if until := floor.End(latest); any && time.Now().Before(until) && !override {
		return nil, &RetentionError{Floor: floor, Until: until}
	}
	n := 0
	for _, s := range sessions {
		k, err := l.vault.EraseSession(ctx, r.Tenant, s)
		if err != nil && !errors.Is(err, vault.ErrNotFound) {
			return nil, err
		}
		n += k
	}
	if ps != "" {
		if err := l.vault.ErasePseudonym(ctx, r.Tenant, ps); err != nil && !errors.Is(err, vault.ErrNotFound) {
			return nil, err
		}
	}
	// The keys are gone: from here on the erasure is recorded whatever
	// happens. A checkpoint blocked by readers (after the busy timeout) is
	// retried; if it still fails, the event and the answer say so, and the
	// next erasure or the vault's close truncates the WAL.
	forgotten := false
	for try := 0; try < 3 && !forgotten; try++ {
		if err := l.vault.Forget(ctx); errors.Is(err, vault.ErrNoForget) {
			break
		} else if err != nil {
			l.logger.Warn("erasure: truncating the vault's write-ahead log", "try", try+1, "error", err)
			continue
		}
		forgotten = true
	}
	// The journal still holds the erased payloads sealed, with their
	// wrapped keys, until their records are dropped: drop them now.
	if forgotten {
		if err := l.waitJournal(ctx); err != nil {
			forgotten = false
		} else if err := l.journal.Forget(ctx); err != nil {
			l.logger.Warn("erasure: removing released journal records", "error", err)
			forgotten = false
		}
	}
	attrs := strAttrs("erasure.legal_basis", req.LegalBasis, "erasure.reason", event.Clip(req.Reason, 1024),
		"erasure.session", req.Session, "erasure.subject", ps, "erasure.override_reason", event.Clip(req.OverrideReason, 1024),
		"erasure.floor", floor.String())
	attrs["erasure.sessions"] = jsonStrings(sessions)
	attrs["erasure.payloads"] = json.RawMessage(strconv.Itoa(n))
	attrs["erasure.override"] = json.RawMessage(strconv.FormatBool(override))
	attrs["erasure.wal_truncated"] = json.RawMessage(strconv.FormatBool(forgotten))
	a, err := l.serverEvent(ctx, r.Tenant, r, &event.Request{Session: erasureSession, Kind: "erasure", Actor: tokenActor(r), Attributes: attrs})
	if err != nil {
		return nil, err
	}
	return &Erasure{Sessions: sessions, Subject: ps, Payloads: n, Override: override, Forgotten: forgotten, Event: a}, nil
}

// WaitIndexed waits (DefaultSessionWait at most) until the session index
// covers every write acknowledged so far (every entry sequenced).
func (l *Log) WaitIndexed(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, DefaultSessionWait)
	defer cancel()
	if err := l.waitJournal(wctx); err != nil {
		return fmt.Errorf("waiting for acknowledged events to be sequenced: %w", err)
	}
	size, err := l.reader.NextIndex(ctx)
	if err != nil {
		return err
	}
	if err := l.index.WaitFor(wctx, size); err != nil {
		return fmt.Errorf("waiting for the session index: %w", err)
	}
	return nil
}

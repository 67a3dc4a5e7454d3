package governance

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/event"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

// retentionLock makes instances that start at once record a change once.
const retentionLock = "log.retention"

// RecordRetention appends a retention.set event for each tenant (and
// "default", for the default floor) whose floor in force (Config.Floors)
// differs from the one last recorded, so that the log says which floor was
// in force when. Without a retention store or floors it does nothing.
func (c *Clerk) RecordRetention(ctx context.Context) error {
	if c.cfg.Retention == nil || c.cfg.Floors == nil {
		return nil
	}
	unlock, err := c.log.Lock(ctx, retentionLock)
	if err != nil {
		return err
	}
	defer unlock()
	rules := c.cfg.Floors
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
		if of, op, err := c.cfg.Retention.Recorded(ctx, t); err != nil {
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
		if _, err := c.record(ctx, t, auditlog.Reader{TokenID: c.cfg.ServerToken}, &event.Request{
			Session: event.SessionRetention, Kind: event.KindRetentionSet, Actor: event.ServerActor,
			Attributes: map[string]json.RawMessage{
				event.AttrRetentionFloor:    jsonString(f),
				event.AttrRetentionProfiles: jsonStrings(profiles),
				event.AttrRetentionScope:    jsonString(scope),
			},
		}); err != nil {
			return err
		}
		if err := c.cfg.Retention.Record(ctx, t, f, p); err != nil {
			return err
		}
	}
	return nil
}

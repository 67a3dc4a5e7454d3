// Package retention keeps the retention duties of a log: the floor below
// which no record may be erased (per compliance profile, per tenant) and the
// legal holds that stop any erasure. A floor can be raised above its
// profiles' minimum, never set below it; the strictest profile wins. The
// profiles and their floors are those registered in package profile.
package retention

import (
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"

	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/period"
	"github.com/llmaudittrail/llmaudittrail/profile"
)

// Period is a retention period in calendar years, months and days.
type Period = period.Period

// ParsePeriod reads "7y", "6m", "30d" or a sum such as "1y6m".
func ParsePeriod(s string) (Period, error) { return period.Parse(s) }

// ParseProfiles reads a comma-separated list of profile names, each
// registered (package profile: the compliance package registers its
// profiles when the program links it); an unknown one is a
// *profile.UnknownError, which lists the registered names.
func ParseProfiles(s string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if _, ok := profile.Lookup(f); !ok {
			return nil, profile.Unknown(f)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// Floor is the retention floor of the profiles, raised to raise if that is
// longer: the strictest wins. A raise below the profiles' minimum is an
// error, and so is a profile that is not registered.
func Floor(profiles []string, raise *Period) (Period, error) {
	var f Period
	for _, name := range profiles {
		p, ok := profile.Lookup(name)
		if !ok {
			return f, profile.Unknown(name)
		}
		if p.Floor.Longer(f) {
			f = p.Floor
		}
	}
	if raise != nil {
		if f.Longer(*raise) {
			return f, fmt.Errorf("retention %s is below the %s the profiles %v require; a floor can be raised, never lowered", raise, f, profiles)
		}
		f = *raise
	}
	return f, nil
}

// Config is the retention part of the compliance configuration file
// (--compliance-config), a YAML document:
//
//	profiles: [NAME, ...]           # registered profiles, for every tenant
//	retention: 8y                   # optional: a longer floor
//	tenants:
//	  clinic-a: {profiles: [NAME], retention: 10y}
//
// Other top-level keys belong to the compliance reports and are ignored here.
type Config struct {
	Profiles  []string
	Retention *Period
	Tenants   map[string]TenantConfig
}

// TenantConfig is a tenant's own profiles and floor.
type TenantConfig struct {
	Profiles  []string
	Retention *Period
}

// ParseConfig reads the retention part of a compliance configuration.
func ParseConfig(data []byte) (*Config, error) {
	var raw struct {
		Profiles  []string `yaml:"profiles"`
		Retention string   `yaml:"retention"`
		Tenants   map[string]struct {
			Profiles  []string `yaml:"profiles"`
			Retention string   `yaml:"retention"`
		} `yaml:"tenants"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("compliance config: %w", err)
	}
	c := &Config{Tenants: map[string]TenantConfig{}}
	var err error
	if c.Profiles, err = ParseProfiles(strings.Join(raw.Profiles, ",")); err != nil {
		return nil, fmt.Errorf("compliance config: %w", err)
	}
	if raw.Retention != "" {
		p, err := ParsePeriod(raw.Retention)
		if err != nil {
			return nil, fmt.Errorf("compliance config: %w", err)
		}
		c.Retention = &p
	}
	for t, tc := range raw.Tenants {
		if !event.ValidID(t) {
			return nil, fmt.Errorf("compliance config: tenant %q is not a valid id", t)
		}
		var out TenantConfig
		if out.Profiles, err = ParseProfiles(strings.Join(tc.Profiles, ",")); err != nil {
			return nil, fmt.Errorf("compliance config: tenant %s: %w", t, err)
		}
		if tc.Retention != "" {
			p, err := ParsePeriod(tc.Retention)
			if err != nil {
				return nil, fmt.Errorf("compliance config: tenant %s: %w", t, err)
			}
			out.Retention = &p
		}
		c.Tenants[t] = out
	}
	return c, nil
}

// Rules are the floors in force: each tenant's and the default.
type Rules struct {
	Default         Period
	DefaultProfiles []string
	Tenants         map[string]Period
	TenantProfiles  map[string][]string
}

// Rules checks c with the default profiles (the --compliance flag) and
// returns the floors in force. A tenant's floor is at least the default's.
func (c *Config) Rules(defaultProfiles []string) (*Rules, error) {
	profiles := append(slices.Clone(defaultProfiles), c.Profiles...)
	def, err := Floor(profiles, c.Retention)
	if err != nil {
		return nil, err
	}
	r := &Rules{Default: def, DefaultProfiles: profiles, Tenants: map[string]Period{}, TenantProfiles: map[string][]string{}}
	for t, tc := range c.Tenants {
		tp := append(slices.Clone(profiles), tc.Profiles...)
		f, err := Floor(tp, tc.Retention)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t, err)
		}
		if def.Longer(f) {
			f = def
		}
		r.Tenants[t], r.TenantProfiles[t] = f, tp
	}
	return r, nil
}

// For returns tenant's floor and profiles.
func (r *Rules) For(tenant string) (Period, []string) {
	if f, ok := r.Tenants[tenant]; ok {
		return f, r.TenantProfiles[tenant]
	}
	return r.Default, r.DefaultProfiles
}

// Hold is a legal hold on a session or a data subject (pseudonym), as the
// HTTP API carries it.
type Hold = api.Hold

// Errors of the store.
var (
	ErrNotFound = errors.New("no such hold")
)

// Store keeps holds and the floors last recorded in the log, in a SQL
// database (the server's state database).
type Store struct{ db *sqldb.DB }

// Schema is the tables of holds and floors (sqldb's portable DDL);
// SchemaVersion is pinned in the database.
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS holds (
  id {id} PRIMARY KEY, tenant {id} NOT NULL, session {id}, subject {id}, reason {text} NOT NULL,
  placed_at {time} NOT NULL, released_at {time}){table}`,
	`CREATE TABLE IF NOT EXISTS retention_floors (tenant {id} PRIMARY KEY, floor {name} NOT NULL, profiles {text} NOT NULL){table}`,
}

// SchemaVersion is the version of Schema.
const SchemaVersion = 1

// Open creates the tables in db if needed.
func Open(db *sqldb.DB) (*Store, error) {
	if _, err := db.Schema(context.Background(), "retention", SchemaVersion, Schema...); err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Place records a hold on a session or subject of tenant.
func (s *Store) Place(ctx context.Context, tenant, session, subject, reason string) (*Hold, error) {
	b := make([]byte, 12)
	rand.Read(b)
	h := &Hold{ID: "hold_" + hex.EncodeToString(b), Tenant: tenant, Session: session, Subject: subject, Reason: reason, PlacedAt: time.Now().UTC().Format(time.RFC3339)}
	_, err := s.db.ExecContext(ctx, `INSERT INTO holds (id, tenant, session, subject, reason, placed_at) VALUES (?, ?, NULLIF(?, ''), NULLIF(?, ''), ?, ?)`,
		h.ID, tenant, session, subject, reason, h.PlacedAt)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	return h, nil
}

// Release ends a hold of tenant.
func (s *Store) Release(ctx context.Context, tenant, id string) (*Hold, error) {
	var h Hold
	var sess, subj sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT session, subject, reason, placed_at FROM holds WHERE id = ? AND tenant = ? AND released_at IS NULL`, id, tenant).Scan(&sess, &subj, &h.Reason, &h.PlacedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE holds SET released_at = ? WHERE id = ?`, time.Now().UTC().Format(time.RFC3339), id); err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	h.ID, h.Tenant, h.Session, h.Subject = id, tenant, sess.String, subj.String
	return &h, nil
}

// Held returns the active holds of tenant on any of sessions or subjects
// (pseudonyms).
func (s *Store) Held(ctx context.Context, tenant string, sessions, subjects []string) ([]Hold, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, session, subject, reason, placed_at FROM holds WHERE tenant = ? AND released_at IS NULL`, tenant)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	defer rows.Close()
	var out []Hold
	for rows.Next() {
		var h Hold
		var sess, subj sql.NullString
		if err := rows.Scan(&h.ID, &sess, &subj, &h.Reason, &h.PlacedAt); err != nil {
			return nil, err
		}
		h.Tenant, h.Session, h.Subject = tenant, sess.String, subj.String
		if (h.Session != "" && slices.Contains(sessions, h.Session)) || (h.Subject != "" && slices.Contains(subjects, h.Subject)) {
			out = append(out, h)
		}
	}
	return out, rows.Err()
}

// Recorded returns the floor last recorded for tenant ("" if none).
func (s *Store) Recorded(ctx context.Context, tenant string) (floor, profiles string, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT floor, profiles FROM retention_floors WHERE tenant = ?`, tenant).Scan(&floor, &profiles)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil
	}
	return floor, profiles, err
}

// Record notes the floor now recorded in the log for tenant.
func (s *Store) Record(ctx context.Context, tenant, floor, profiles string) error {
	_, err := s.db.ExecContext(ctx, s.db.Upsert("retention_floors", []string{"tenant", "floor", "profiles"}, []string{"tenant"}, []string{"floor", "profiles"}), tenant, floor, profiles)
	return err
}

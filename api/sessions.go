package api

import (
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Session search: GET /v1/sessions.

// Session search limits.
const (
	// DefaultSessionSearchLimit is the page size of a search without limit.
	DefaultSessionSearchLimit = 50
	// MaxSessionSearchLimit is the largest page of a search.
	MaxSessionSearchLimit = 200
	// maxSearchValue caps a filter's value.
	maxSearchValue = 256
)

// SessionSearch selects sessions. Every filter that is set must hold.
type SessionSearch struct {
	// Tenant, for a log-wide token, restricts the search to one tenant
	// (default: every tenant). A tenant's token searches its own tenant;
	// naming another is 403.
	Tenant string
	// From and To select sessions with an event in [From, To) (server
	// time); either may be zero.
	From, To time.Time
	// Agent is an agent's id: the actor id of an event of actor type
	// agent, or a gen_ai.agent.id attribute.
	Agent string
	// Subject is a data subject's pseudonym (as leaves carry it).
	Subject string
	// Model is a gen_ai.request.model or gen_ai.response.model.
	Model string
	// Kind is an event kind that occurs in the session.
	Kind string
	// HasAlert and HasSignature, if set, select sessions with (or
	// without) a monitor.alert or human.signature event about one of
	// their entries.
	HasAlert, HasSignature *bool
	// Limit caps the sessions answered (DefaultSessionSearchLimit, at
	// most MaxSessionSearchLimit).
	Limit int
	// Cursor is the Next of the previous page.
	Cursor string
}

// SessionSummary is one session found: where it is in the log, when, who
// and what.
type SessionSummary struct {
	Tenant  string `json:"tenant"`
	Session string `json:"session"`
	// Events counts the session's events (its last seq + 1).
	Events     uint64 `json:"events"`
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"`
	FirstTime  string `json:"first_time"`
	LastTime   string `json:"last_time"`
	// Agents and Models are the agents and models seen in the session.
	Agents []string `json:"agents"`
	Models []string `json:"models"`
	// Alerts and Signatures count the monitor.alert and human.signature
	// events about the session's entries.
	Alerts     int `json:"alerts"`
	Signatures int `json:"signatures"`
}

// SessionList is the body of GET /v1/sessions: sessions, the most recent
// (by their latest entry) first.
type SessionList struct {
	Sessions []SessionSummary `json:"sessions"`
	// Next, when present, is the cursor of the next page.
	Next string `json:"next,omitempty"`
}

// Values is q as the query string of GET /v1/sessions.
func (q SessionSearch) Values() url.Values {
	v := url.Values{}
	set := func(k, x string) {
		if x != "" {
			v.Set(k, x)
		}
	}
	set("tenant", q.Tenant)
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	set("agent", q.Agent)
	set("subject", q.Subject)
	set("model", q.Model)
	set("kind", q.Kind)
	if q.HasAlert != nil {
		v.Set("has_alert", strconv.FormatBool(*q.HasAlert))
	}
	if q.HasSignature != nil {
		v.Set("has_signature", strconv.FormatBool(*q.HasSignature))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	set("cursor", q.Cursor)
	return v
}

// ParseSessionSearch reads a session search from a query string, strictly:
// each parameter once, none unknown; the limit defaults and is capped.
func ParseSessionSearch(v url.Values) (SessionSearch, error) {
	q := SessionSearch{Limit: DefaultSessionSearchLimit}
	for k, vs := range v {
		if len(vs) != 1 {
			return q, fmt.Errorf("%s: give it once", k)
		}
		x := vs[0]
		if len(x) > maxSearchValue {
			return q, fmt.Errorf("%s: longer than %d bytes", k, maxSearchValue)
		}
		var err error
		switch k {
		case "tenant":
			q.Tenant = x
		case "from":
			q.From, err = time.Parse(time.RFC3339Nano, x)
		case "to":
			q.To, err = time.Parse(time.RFC3339Nano, x)
		case "agent":
			q.Agent = x
		case "subject":
			q.Subject = x
		case "model":
			q.Model = x
		case "kind":
			q.Kind = x
		case "has_alert", "has_signature":
			var b bool
			if b, err = strconv.ParseBool(x); err == nil {
				if k == "has_alert" {
					q.HasAlert = &b
				} else {
					q.HasSignature = &b
				}
			}
		case "limit":
			q.Limit, err = strconv.Atoi(x)
			if err == nil && (q.Limit < 1 || q.Limit > MaxSessionSearchLimit) {
				err = fmt.Errorf("want 1-%d", MaxSessionSearchLimit)
			}
		case "cursor":
			q.Cursor = x
		default:
			return q, fmt.Errorf("unknown parameter %q", k)
		}
		if err != nil {
			return q, fmt.Errorf("%s: %v", k, err)
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		return q, fmt.Errorf("to must be after from")
	}
	return q, nil
}

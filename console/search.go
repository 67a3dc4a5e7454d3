package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Finding sessions (GET /v1/sessions through the client) and the alerts
// and replay verdicts the log holds.

func (c *Console) searchRoutes(m *http.ServeMux) {
	m.Handle("GET /console/sessions", c.user(c.sessionsPage))
	m.Handle("GET /console/alerts", c.user(c.alertsPage))
}

// kinds are offered in the search form (any kind may be typed).
var kinds = []string{event.KindLLMRequest, event.KindLLMResponse, event.KindLLMContent, event.KindLLMSpan, event.KindToolCall, event.KindToolResult,
	event.KindAgentInvoke, event.KindAgentCreate, event.KindAgentDecision, event.KindHumanSignature,
	event.KindConfigChange, event.KindAccessRead, event.KindErasure, event.KindReportIssued, event.KindMonitorAlert, event.KindReplayVerdict, event.KindCaptureGap}

type sessionsData struct {
	// Form echoes the query.
	Form struct {
		Tenant, From, To, Agent, Subject, Model, Kind, HasAlert, HasSignature string
	}
	Kinds    []string
	Sessions []sessionRow
	Searched bool
	// Next is the link to the next page; First to the first.
	Next, First string
}

type sessionRow struct {
	api.SessionSummary
	Link string
}

// sessionsPage lists sessions, filtered, a page at a time.
func (c *Console) sessionsPage(w http.ResponseWriter, r *http.Request, u *user) {
	v := r.URL.Query()
	d := sessionsData{Kinds: kinds}
	f := &d.Form
	f.Tenant, f.From, f.To = strings.TrimSpace(v.Get("tenant")), v.Get("from"), v.Get("to")
	f.Agent, f.Subject, f.Model, f.Kind = strings.TrimSpace(v.Get("agent")), strings.TrimSpace(v.Get("subject")), strings.TrimSpace(v.Get("model")), strings.TrimSpace(v.Get("kind"))
	f.HasAlert, f.HasSignature = v.Get("has_alert"), v.Get("has_signature")
	q := api.SessionSearch{Tenant: f.Tenant, Agent: f.Agent, Subject: f.Subject, Model: f.Model, Kind: f.Kind,
		Cursor: v.Get("cursor"), Limit: 25}
	bad := func(msg string) {
		c.render(w, r, http.StatusBadRequest, "sessions", page{Title: "Sessions", Nav: "sessions", User: u, Error: msg, Data: d})
	}
	if f.From != "" {
		t, err := time.Parse(time.DateOnly, f.From)
		if err != nil {
			bad("Give the first day as YYYY-MM-DD.")
			return
		}
		q.From = t
	}
	if f.To != "" {
		t, err := time.Parse(time.DateOnly, f.To)
		if err != nil {
			bad("Give the last day as YYYY-MM-DD.")
			return
		}
		q.To = t.AddDate(0, 0, 1)
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.To.After(q.From) {
		bad("The last day is before the first.")
		return
	}
	for _, x := range []struct {
		s   string
		dst **bool
	}{{f.HasAlert, &q.HasAlert}, {f.HasSignature, &q.HasSignature}} {
		switch x.s {
		case "yes":
			*x.dst = new(true)
		case "no":
			*x.dst = new(false)
		}
	}
	if f.Tenant != "" && !event.ValidID(f.Tenant) {
		bad("That is not a tenant id.")
		return
	}
	list, err := u.log.Sessions(r.Context(), q)
	if err != nil {
		c.failErr(w, r, u, "Searching sessions", err)
		return
	}
	d.Searched = true
	for _, s := range list.Sessions {
		d.Sessions = append(d.Sessions, sessionRow{SessionSummary: s, Link: sessionLink(s.Tenant, s.Session)})
	}
	if list.Next != "" {
		nv := url.Values{}
		for k, x := range v {
			if k != "cursor" && len(x) > 0 && x[0] != "" {
				nv.Set(k, x[0])
			}
		}
		nv.Set("cursor", list.Next)
		d.Next = Path + "sessions?" + nv.Encode()
	}
	if q.Cursor != "" {
		v.Del("cursor")
		d.First = Path + "sessions?" + v.Encode()
	}
	c.render(w, r, http.StatusOK, "sessions", page{Title: "Sessions", Nav: "sessions", User: u, Data: d})
}

// alertView is a monitor.alert event, verified, and what it is about.
type alertView struct {
	Event     uint64
	Badge     badge
	Time      string
	Rule      string
	Severity  string
	Message   string
	Source    string
	About     *uint64 // the entry the alert is about
	Session   string  // and its session
	AboutLink string
}

// verdictView is a replay.verdict event, verified.
type verdictView struct {
	Event       uint64
	Badge       badge
	Time        string
	Verdict     string
	Session     string
	SessionLink string
	First       *uint64 // the first divergent request's entry
	FirstCode   string
	FirstPath   string
	Differences string
}

type alertsData struct {
	Alerts   []alertView
	Verdicts []verdictView
	// Total counts the alert events found; only the newest are read.
	Total, Read int
	Err         string
}

// maxAlertsPage caps the alerts (and verdicts) the alerts page reads.
const maxAlertsPage = 200

func (c *Console) alertsPage(w http.ResponseWriter, r *http.Request, u *user) {
	d, err := c.collectAlerts(r.Context(), u, maxAlertsPage)
	if err != nil {
		c.failErr(w, r, u, "Finding alerts", err)
		return
	}
	c.render(w, r, http.StatusOK, "alerts", page{Title: "Alerts and replay verdicts", Nav: "alerts", User: u, Data: d})
}

// located is an event found in a session listing.
type located struct {
	tenant string
	index  uint64
}

// findKind lists the newest entries of kind (up to max) in the sessions
// that hold it, and how many there are in those sessions' listings read.
func findKind(ctx context.Context, log *client.Client, kind string, max int) ([]located, int, error) {
	var found []located
	q := api.SessionSearch{Kind: kind, Limit: 100}
	for pages := 0; pages < 10; pages++ {
		l, err := log.Sessions(ctx, q)
		if err != nil {
			return nil, 0, err
		}
		for _, s := range l.Sessions {
			from := uint64(0)
			if s.Events > uint64(4*max) {
				from = s.Events - uint64(4*max)
			}
			for {
				p, err := log.Session(ctx, s.Session, client.SessionQuery{Tenant: s.Tenant, FromSeq: from, Limit: 1000})
				if err != nil {
					return nil, 0, err
				}
				for _, e := range p.Events {
					if e.Kind == kind {
						found = append(found, located{tenant: s.Tenant, index: e.Index})
					}
				}
				if len(p.Events) < 1000 {
					break
				}
				from = p.Events[len(p.Events)-1].Seq + 1
			}
		}
		if l.Next == "" || len(found) >= 4*max {
			break
		}
		q.Cursor = l.Next
	}
	sort.Slice(found, func(i, j int) bool { return found[i].index > found[j].index })
	total := len(found)
	if len(found) > max {
		found = found[:max]
	}
	return found, total, nil
}

// collectAlerts reads and verifies the newest monitor alerts and replay
// verdicts the user may read.
func (c *Console) collectAlerts(ctx context.Context, u *user, max int) (*alertsData, error) {
	d := &alertsData{}
	alerts, total, err := findKind(ctx, u.log, event.KindMonitorAlert, max)
	if err != nil {
		return nil, err
	}
	d.Total = total
	for _, a := range alerts {
		v, err := c.verifyEntry(ctx, u.log, a.index, false)
		if err != nil {
			d.Alerts = append(d.Alerts, alertView{Event: a.index, Badge: badge{Reasons: []string{event.SafeText(err.Error())}}})
			continue
		}
		av := alertView{Event: a.index, Badge: v.Badge}
		if l := v.Leaf; l != nil {
			av.Time, av.Rule, av.Severity = l.Time, event.SafeText(l.Attributes.String(event.AttrMonitorRule)), event.SafeText(l.Attributes.String(event.AttrMonitorSeverity))
			av.Message, av.Source = event.SafeText(l.Attributes.String(event.AttrMonitorMessage)), event.SafeText(l.Attributes.String(event.AttrMonitorSource))
			if i, ok := l.Attributes.Uint(event.AttrMonitorIndex); ok {
				av.About, av.AboutLink = &i, fmt.Sprintf("%sentries/%d", Path, i)
			}
			av.Session = event.SafeText(l.Attributes.String(event.AttrMonitorSession))
		}
		d.Alerts = append(d.Alerts, av)
	}
	d.Read = len(d.Alerts)
	verdicts, _, err := findKind(ctx, u.log, event.KindReplayVerdict, max)
	if err != nil {
		return nil, err
	}
	for _, x := range verdicts {
		v, err := c.verifyEntry(ctx, u.log, x.index, false)
		if err != nil {
			d.Verdicts = append(d.Verdicts, verdictView{Event: x.index, Badge: badge{Reasons: []string{event.SafeText(err.Error())}}})
			continue
		}
		vv := verdictView{Event: x.index, Badge: v.Badge}
		if l := v.Leaf; l != nil {
			vv.Time, vv.Verdict = l.Time, event.SafeText(l.Attributes.String(event.AttrReplayVerdict))
			if s := l.Attributes.String(event.AttrReplaySession); event.ValidID(s) {
				vv.Session, vv.SessionLink = s, sessionLink(l.Tenant, s)
			}
			if i, ok := l.Attributes.Uint(event.AttrReplayFirstIndex); ok {
				vv.First = &i
			}
			vv.FirstCode, vv.FirstPath = event.SafeText(l.Attributes.String(event.AttrReplayFirstCode)), event.SafeText(l.Attributes.String(event.AttrReplayFirstPath))
			if n, ok := l.Attributes.Uint(event.AttrReplayDifferences); ok {
				vv.Differences = fmt.Sprint(n)
			}
		}
		d.Verdicts = append(d.Verdicts, vv)
	}
	return d, nil
}

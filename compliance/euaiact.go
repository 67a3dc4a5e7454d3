package compliance

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/period"
	"github.com/llmaudittrail/llmaudittrail/profile"
)

// EUAIActParams are the parameters of eu-ai-act's controls.
type EUAIActParams struct {
	// TwoPersonTools (Art. 14(5)) need approvals by two distinct people
	// before the call.
	TwoPersonTools []string `json:"two_person_tools" yaml:"two_person_tools"`
	// IncidentDeadlines (Art. 73) by incident.classification; "default"
	// for the rest.
	IncidentDeadlines map[string]Duration `json:"incident_deadlines" yaml:"incident_deadlines"`
	// MaxCaptureOutage is the longest total capture outage (capture.gap)
	// in the period that still counts as automatic logging (Art. 12(1)).
	MaxCaptureOutage Duration `json:"max_capture_outage" yaml:"max_capture_outage"`
	// MonitorStatusInterval: the monitor must have reported
	// (monitor.status) at least this often over the period (Art. 72); a gap
	// of twice it fails.
	MonitorStatusInterval Duration `json:"monitor_status_interval" yaml:"monitor_status_interval"`
}

// euAIAct is Regulation (EU) 2024/1689, the AI Act, for high-risk AI
// systems: automatic logging (Art. 12), human oversight (Art. 14), logs kept
// at least six months (Art. 19, 26(6)), post-market monitoring (Art. 72)
// and serious incidents (Art. 73).
var euAIAct = Profile{
	Profile: profile.Profile{
		Name: "eu-ai-act", Title: "Regulation (EU) 2024/1689 (AI Act), high-risk AI systems: logging, oversight, monitoring, incidents",
		Floor: period.Period{Months: 6}, Basis: "Regulation (EU) 2024/1689 Art. 19(1), 26(6): logs at least six months",
	},
	Defaults: func(p *Params) {
		p.TwoPersonTools = []string{}
		p.IncidentDeadlines = map[string]Duration{
			"default": Duration(15 * 24 * time.Hour), "widespread": Duration(2 * 24 * time.Hour),
			"critical_infrastructure": Duration(2 * 24 * time.Hour), "death": Duration(10 * 24 * time.Hour),
		}
		p.MaxCaptureOutage = 0
		p.MonitorStatusInterval = Duration(time.Hour)
	},
	Check: func(p *Params) error {
		if p.MaxCaptureOutage < 0 || p.MonitorStatusInterval <= 0 {
			return errors.New("max_capture_outage must be 0 or more and monitor_status_interval positive")
		}
		if _, ok := p.IncidentDeadlines["default"]; !ok {
			return errors.New("incident_deadlines: a default is required")
		}
		if err := checkNames(p.TwoPersonTools); err != nil {
			return err
		}
		if p.TwoPersonTools == nil {
			p.TwoPersonTools = []string{}
		}
		slices.Sort(p.TwoPersonTools)
		return nil
	},
	Controls: []Control{
		{"euaia-art12.1", "Regulation (EU) 2024/1689 Art. 12(1)", "Automatic recording of events over the period", func(c *collector) ControlResult {
			var off offenses
			for _, g := range c.gaps {
				off.add(g.offense("capture outage of %s", gapDuration(g)))
			}
			ev := Evidence{Counts: map[string]int{"entries_in_period": c.inPeriod, "capture_gaps": len(c.gaps)},
				Facts: map[string]any{"outage": c.outage.String(), "max_outage": c.p.MaxCaptureOutage.String()}}
			if c.inPeriod == 0 {
				return notSatisfied("nothing was recorded in the period", ev)
			}
			if c.outage <= time.Duration(c.p.MaxCaptureOutage) {
				off = offenses{}
			}
			return verdict("events were recorded over the period, with no capture outage beyond the allowed", "%d capture outages, "+c.outage.String()+" in all", off, ev)
		}},
		{"euaia-art12.2", "Regulation (EU) 2024/1689 Art. 12(2)", "Events to identify risk situations and substantial modifications", func(c *collector) ControlResult {
			r := c.modelChanges()
			r.Evidence.Facts = map[string]any{"alerts_by_rule": c.alerts}
			return r
		}},
		{"euaia-art14", "Regulation (EU) 2024/1689 Art. 14(4), 14(5)", "Human oversight", func(c *collector) ControlResult {
			ev := Evidence{Counts: map[string]int{"override_and_stop_events": c.oversight, "two_person_calls": c.twoCalls}, Facts: map[string]any{"two_person_tools": c.p.TwoPersonTools}}
			if len(c.p.TwoPersonTools) == 0 && c.oversight == 0 {
				return notApplicable("no two-person rule is configured and no oversight event is in the period", ev)
			}
			return verdict("oversight events are recorded and every two-person call was approved by two distinct people", "%d calls without two distinct approvers", c.twoPerson, ev)
		}},
		{"euaia-art19", "Regulation (EU) 2024/1689 Art. 19(1), 26(6)", "Logs kept at least six months", func(c *collector) ControlResult {
			off, facts, reason := c.retentionCheck()
			ev := Evidence{Facts: facts}
			if reason != "" {
				ev.offending(off)
				return notSatisfied(reason, ev)
			}
			return verdict("the retention floor in force is at least six months", "%d floors below six months", off, ev)
		}},
		{"euaia-art72", "Regulation (EU) 2024/1689 Art. 72", "Post-market monitoring", func(c *collector) ControlResult {
			ev := Evidence{Counts: map[string]int{"monitor_status_events": len(c.statuses)}, Facts: map[string]any{"alerts_by_rule": c.alerts, "interval": c.p.MonitorStatusInterval.String()}}
			if len(c.statuses) == 0 {
				return notSatisfied("no monitor.status event in the period: nothing shows a monitor ran", ev)
			}
			end := c.q.To
			if c.lastTime.Before(end) {
				end = c.lastTime
			}
			gap, prev := time.Duration(0), c.q.From
			for _, t := range append(slices.Clone(c.statuses), end) {
				gap, prev = max(gap, t.Sub(prev)), t
			}
			ev.Facts["longest_gap"] = gap.Round(time.Second).String()
			if gap > 2*time.Duration(c.p.MonitorStatusInterval) {
				return notSatisfied(fmt.Sprintf("the monitor did not report for %s (interval %s)", gap.Round(time.Second), c.p.MonitorStatusInterval), ev)
			}
			return verdict("the monitor reported over the whole period", "", offenses{}, ev)
		}},
		{"euaia-art73", "Regulation (EU) 2024/1689 Art. 73", "Reporting of serious incidents", func(c *collector) ControlResult {
			ev := Evidence{Counts: map[string]int{"incidents": len(c.incidentIDs)}, Facts: map[string]any{"deadlines": c.p.IncidentDeadlines}}
			if len(c.incidentIDs) == 0 {
				return notApplicable("no serious incident in the period", ev)
			}
			end := c.q.To
			if c.lastTime.Before(end) {
				end = c.lastTime
			}
			var off offenses
			pending := []string{}
			for _, id := range c.incidentIDs {
				in := c.incidents[id]
				d, ok := c.p.IncidentDeadlines[in.class]
				if !ok {
					d = c.p.IncidentDeadlines["default"]
				}
				due := in.aware.Add(time.Duration(d))
				switch {
				case in.notified != nil && in.notified.After(due):
					off.add(in.e.offense("incident %s (%s) notified %s, after its deadline %s", id, in.class, in.notified.Format(time.RFC3339), due.Format(time.RFC3339)))
				case in.notified == nil && end.After(due):
					off.add(in.e.offense("incident %s (%s) overdue: aware %s, deadline %s, not notified", id, in.class, in.aware.Format(time.RFC3339), due.Format(time.RFC3339)))
				case in.notified == nil:
					pending = append(pending, fmt.Sprintf("%s due %s", id, due.Format(time.RFC3339)))
				}
			}
			ev.Facts["pending"] = pending
			return verdict("every serious incident was notified within its deadline (or is not yet due)", "%d incidents notified late or overdue", off, ev)
		}},
	},
}

func gapDuration(g *entry) string {
	first, ok1 := g.leaf.Attributes.Time(event.AttrCaptureGapFirstTime)
	last, ok2 := g.leaf.Attributes.Time(event.AttrCaptureGapLastTime)
	if !ok1 || !ok2 {
		return "unknown length"
	}
	return max(last.Sub(first), time.Second).Round(time.Second).String()
}

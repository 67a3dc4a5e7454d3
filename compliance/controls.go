package compliance

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/period"
	"github.com/llmaudittrail/llmaudittrail/signature"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// Profile is a list of controls.
type Profile struct {
	Name, Title string
	// Floor is the retention floor the profile requires.
	Floor    period.Period
	Controls []Control
}

// Control is one control of a profile: its id, the rule it stands for,
// and the evaluator that computes its evidence from the verified entries.
type Control struct {
	ID, Citation, Title string
	Eval                func(c *collector) ControlResult
}

// Profiles are the compliance profiles.
var Profiles = []Profile{part11, sox, euAIAct}

// ProfileNames lists the profiles' names.
func ProfileNames() []string {
	var out []string
	for _, p := range Profiles {
		out = append(out, p.Name)
	}
	return out
}

func profileByName(name string) (Profile, bool) {
	for _, p := range Profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

// verdict is a control's result: satisfied when nothing offends and
// nothing kept it from being evaluated.
func verdict(ok, bad string, off offenses, ev Evidence) ControlResult {
	ev.offending(off)
	if off.n > 0 {
		if ev.Summary == "" {
			ev.Summary = fmt.Sprintf(bad, off.n)
		}
		return ControlResult{Status: NotSatisfied, Evidence: ev}
	}
	if ev.Summary == "" {
		ev.Summary = ok
	}
	return ControlResult{Status: Satisfied, Evidence: ev}
}

func notSatisfied(reason string, ev Evidence) ControlResult {
	ev.Summary = reason
	return ControlResult{Status: NotSatisfied, Evidence: ev}
}

func notApplicable(reason string, ev Evidence) ControlResult {
	ev.Summary = reason
	return ControlResult{Status: NotApplicable, Evidence: ev}
}

// integrity: the tree verified against a checkpoint that meets the
// policy (if one is required).
func (c *collector) integrity() (off offenses, reason string) {
	for _, f := range c.audit.Findings {
		if !integrityRules[f.Rule] && f.Rule != verify.RuleWitnessQuorum {
			continue
		}
		if f.Index != nil {
			off.add(Offense{Index: *f.Index, Reason: f.Rule + ": " + f.Message})
		} else if reason == "" {
			reason = f.Rule + ": " + f.Message
		}
	}
	if c.consistencyErr != nil && reason == "" {
		reason = "the period's range is not consistent with the checkpoint: " + c.consistencyErr.Error()
	}
	if c.p.RequireWitnessQuorum && !c.quorum && reason == "" {
		reason = "the checkpoint does not meet a witness policy (none given, or no quorum): nobody independent cosigned it"
	}
	return off, reason
}

func (c *collector) auditCounts() map[string]int {
	return map[string]int{"entries_verified": int(c.audit.Entries), "bundles": c.audit.Bundles, "tiles_compared": c.audit.Tiles}
}

// chainOffenses are the audit's session-chain findings in scope.
func (c *collector) chainOffenses() offenses {
	var off offenses
	for _, f := range c.audit.Findings {
		if f.Rule != "session.chain" || f.Index == nil {
			continue
		}
		if c.q.Tenant != "*" && f.Tenant != c.q.Tenant {
			continue
		}
		off.add(Offense{Index: *f.Index, Reason: f.Message})
	}
	return off
}

func (c *collector) sigOffenses(codes ...string) offenses {
	var off offenses
	for _, i := range sortedKeys(c.sigProblems) {
		p := c.sigProblems[i]
		if slices.Contains(codes, p.Code) && c.inPeriodIndex(i) {
			off.add(Offense{Index: i, Reason: p.Message})
		}
	}
	return off
}

// inPeriodIndex reports whether the signature-related entry at i is one of
// the period's (manifested) or, for enrollments, any in scope.
func (c *collector) inPeriodIndex(i uint64) bool {
	_, ok := c.sigAt[i]
	if ok {
		return true
	}
	p := c.sigProblems[i]
	return p.Code == signature.ProblemReenrolled || p.Code == signature.ProblemKeyReused || p.Code == signature.ProblemMalformed
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func byIndex(off offenses) offenses {
	off.list = slices.Clone(off.list)
	sort.SliceStable(off.list, func(i, j int) bool { return off.list[i].Index < off.list[j].Index })
	return off
}

// retentionCheck: the floor in force for the report's tenants at the
// checkpoint is at least min.
func (c *collector) retentionCheck(min period.Period) (off offenses, facts map[string]any, reason string) {
	facts = map[string]any{"required_floor": min.String()}
	tenants := []string{c.q.Tenant}
	if c.q.Tenant == "*" {
		tenants = []string{"default"}
		for _, f := range c.floors {
			if f.scope == "tenant" && !slices.Contains(tenants, f.tenant) {
				tenants = append(tenants, f.tenant)
			}
		}
	}
	inForce := map[string]string{}
	for _, t := range tenants {
		f, ok := c.floorAt(t, c.size)
		if !ok {
			reason = fmt.Sprintf("no retention floor is recorded for tenant %s (retention.set): the log was not run with this profile", t)
			continue
		}
		inForce[t] = f.String()
		if min.Longer(f) {
			last := c.latestFloor(t)
			off.add(Offense{Index: last.index, Reason: fmt.Sprintf("tenant %s: floor %s is below the %s the profile requires", t, f, min)})
		}
	}
	facts["floors_in_force"] = inForce
	return off, facts, reason
}

func (c *collector) latestFloor(tenant string) floorSet {
	var last floorSet
	for _, f := range c.floors {
		if (f.tenant == tenant && f.scope == "tenant") || (f.scope == "default" && last.scope != "tenant") {
			last = f
		}
	}
	return last
}

// modelChanges are the model changes without a config.change (11.10(k),
// Art. 12(2)).
func (c *collector) modelChanges() ControlResult {
	return verdict("every model change of an agent is declared by a config.change before it", "%d model change(s) without a config.change",
		c.undeclared, Evidence{Counts: map[string]int{"config_changes": len(c.configs), "llm_requests": c.byKind["llm.request"]}})
}

// --- 21 CFR Part 11 ---

var part11 = Profile{
	Name: "part11", Title: "FDA 21 CFR Part 11: electronic records and electronic signatures", Floor: period.Period{Years: 7},
	Controls: []Control{
		{"part11-11.10a", "21 CFR 11.10(a)", "Validation: ability to discern invalid or altered records", func(c *collector) ControlResult {
			off, reason := c.integrity()
			ev := Evidence{Counts: c.auditCounts(), Facts: map[string]any{"witness_quorum": c.quorum}}
			if reason != "" {
				ev.offending(off)
				return notSatisfied(reason, ev)
			}
			return verdict("every entry re-hashes into the checkpoint's root and every tile matches; the checkpoint is cosigned where a witness quorum is required",
				"%d altered entries", off, ev)
		}},
		{"part11-11.10b", "21 CFR 11.10(b)", "Accurate and complete copies of records", func(c *collector) ControlResult {
			var off offenses
			for _, f := range c.audit.Findings {
				if f.Rule == verify.RuleMalformedEntry && f.Index != nil {
					off.add(Offense{Index: *f.Index, Reason: f.Message})
				}
			}
			ev := Evidence{Counts: map[string]int{"entries_in_log": int(c.size), "entries_read": int(c.audit.Entries), "entries_in_period": c.inPeriod}}
			if c.audit.Entries != c.size {
				return notSatisfied(fmt.Sprintf("read %d of the log's %d entries", c.audit.Entries, c.size), ev)
			}
			return verdict("every entry of the log up to the checkpoint was read and is a well-formed record; the report counts every entry of the period",
				"%d entries are not well-formed records", off, ev)
		}},
		{"part11-11.10c", "21 CFR 11.10(c)", "Protection and retention of records", retentionControl(period.Period{Years: 7})},
		{"part11-11.10d", "21 CFR 11.10(d), (g)", "Access limited to authorized individuals; authority checks", func(c *collector) ControlResult {
			off := join(c.noWriter, c.badTokens, c.sigOffenses(signature.ProblemNotEnrolled, signature.ProblemRevoked, signature.ProblemWrongKey))
			return verdict("every record names the token that wrote it, logged before its use and not revoked; every signature is by a signer enrolled and not revoked at the time",
				"%d records by an unknown, revoked or unnamed writer, or signatures without authority", byIndex(off),
				Evidence{Counts: map[string]int{"entries_in_period": c.inPeriod, "tokens_known": len(c.tokens)}})
		}},
		{"part11-11.10e", "21 CFR 11.10(e)", "Secure, computer-generated, time-stamped audit trail", func(c *collector) ControlResult {
			off := join(c.badCorrects, c.chainOffenses(), c.noWriter)
			ev := Evidence{Counts: map[string]int{"corrections": c.corrections, "entries_in_period": c.inPeriod},
				Facts: map[string]any{"times": "assigned by the log server at write", "start_size": c.startSize, "end_size": c.size}}
			if c.consistencyErr != nil {
				ev.offending(off)
				return notSatisfied("the period's range is not consistent with the checkpoint: "+c.consistencyErr.Error(), ev)
			}
			return verdict("times are the server's, corrections are new entries pointing back, every session's seq/prev chain is complete, and the period's range is consistent with the checkpoint",
				"%d breaks of the trail", byIndex(off), ev)
		}},
		{"part11-11.10f", "21 CFR 11.10(f)", "Operational system checks: permitted sequencing of steps", func(c *collector) ControlResult {
			ev := Evidence{Counts: map[string]int{"gated_calls": c.gateCalls}, Facts: map[string]any{"gates": c.p.Gates}}
			if len(c.p.Gates) == 0 {
				return notApplicable("no sequencing gates are configured (controls.gates)", ev)
			}
			return verdict("every gated tool call follows the signature its gate requires", "%d gated tool calls without the required signature before them", c.gated, ev)
		}},
		{"part11-11.10k", "21 CFR 11.10(k)", "Change control of systems documentation", func(c *collector) ControlResult {
			return c.modelChanges()
		}},
		{"part11-11.50", "21 CFR 11.50", "Signature manifestations", func(c *collector) ControlResult {
			ev := Evidence{Counts: map[string]int{"signatures": len(c.manifestations)}}
			if len(c.manifestations) == 0 {
				return notApplicable("no signatures in the period", ev)
			}
			var off offenses
			for _, m := range c.manifestations {
				if m.PrintedName == "" || m.Time == "" || m.Meaning == "" {
					off.add(Offense{Index: m.Index, Reason: "the signature does not show printed name, time and meaning"})
				}
			}
			off = join(off, c.sigOffenses(signature.ProblemName))
			return verdict("every signature shows the signer's printed name as enrolled, the date and time, and the meaning (listed in the report)",
				"%d signatures without a complete manifestation", byIndex(off), ev)
		}},
		{"part11-11.70", "21 CFR 11.70", "Signature/record linking", func(c *collector) ControlResult {
			ev := Evidence{Counts: map[string]int{"signatures": len(c.manifestations)}}
			if len(c.manifestations) == 0 {
				return notApplicable("no signatures in the period", ev)
			}
			off := c.sigOffenses(signature.ProblemSignature, signature.ProblemRecord, signature.ProblemOrigin, signature.ProblemReplay,
				signature.ProblemOrder, signature.ProblemSigner, signature.ProblemMalformed)
			return verdict("every signature verifies over a statement naming this log and the signed record's index and leaf hash, proved against the checkpoint",
				"%d signatures that do not link to their record", off, ev)
		}},
		{"part11-11.100", "21 CFR 11.100", "Signatures unique to one individual, identity verified", func(c *collector) ControlResult {
			off := join(c.sigOffenses(signature.ProblemReenrolled, signature.ProblemKeyReused), c.enrollments)
			return verdict("no signer id is enrolled twice, no key serves two signers, and every enrollment names who verified the identity",
				"%d breaches of uniqueness or identity verification", byIndex(off), Evidence{})
		}},
		{"part11-11.200", "21 CFR 11.200(a)", "Signature components and continuous sessions", func(c *collector) ControlResult {
			ev := Evidence{Counts: map[string]int{"signatures": len(c.manifestations)}, Facts: map[string]any{"session_idle": c.p.SessionIdle.String(), "session_max": c.p.SessionMax.String()}}
			if len(c.manifestations) == 0 {
				return notApplicable("no signatures in the period", ev)
			}
			return verdict("every session's first signing used every component, later ones the secret within the session's limits",
				"%d signings outside the component rules", c.components, ev)
		}},
		{"part11-11.300", "21 CFR 11.300(b)-(d)", "Controls for identification codes and passwords", func(c *collector) ControlResult {
			var off offenses
			for _, e := range c.locks {
				if !c.alertedLock[e.index] {
					off.add(e.offense("signer %s was locked out and no monitor alert (signer.locked) names it", e.leaf.Attributes.String(signature.AttrSigner)))
				}
			}
			return verdict("failed attempts are logged, and every lock-out was alerted by the monitor",
				"%d lock-outs without a monitor alert", off, Evidence{Counts: map[string]int{
					"failed_attempts": c.failures, "lockouts": len(c.locks), "key_rotations": c.rotations, "revocations": c.revocations}})
		}},
	},
}

// retentionControl: the floor in force is at least the profile's, no
// erasure inside a floor without a logged override, and a sample of
// payloads still decrypts and opens its commitment.
func retentionControl(min period.Period) func(c *collector) ControlResult {
	return func(c *collector) ControlResult {
		off, facts, reason := c.retentionCheck(min)
		off = join(off, c.erasureBad, c.payloadBad)
		overrides := make([]string, 0, len(c.overrides.list))
		for _, o := range c.overrides.list {
			overrides = append(overrides, fmt.Sprintf("entry %d: %s", o.Index, o.Reason))
		}
		facts["overrides"] = overrides
		ev := Evidence{Facts: facts, Counts: map[string]int{"erasures": len(c.erasures), "payloads_sampled": len(c.payloads.items),
			"payloads_read_back": c.payloadOK, "payloads_erased_by_logged_erasure": c.payloadErased}}
		switch {
		case reason != "":
			ev.offending(off)
			return notSatisfied(reason, ev)
		case c.payloadUnread != "":
			ev.offending(off)
			return notSatisfied(c.payloadUnread, ev)
		}
		return verdict("the retention floor in force meets the profile, no erasure fell inside a floor without a logged override, and the sampled payloads decrypt and open their commitments",
			"%d retention failures", byIndex(off), ev)
	}
}

// --- SOX 404 ---

var sox = Profile{
	Name: "sox", Title: "SOX 404 IT general controls and PCAOB AS 1105 / AS 2201 evidence", Floor: period.Period{Years: 7},
	Controls: []Control{
		{"sox-itgc-access", "SOX 404 ITGC: access to programs and data", "Who holds write and admin access, and every change of it logged", func(c *collector) ControlResult {
			holders := []string{}
			for _, id := range sortedStrings(c.tokens) {
				t := c.tokens[id]
				if t.created == nil || t.revoked != nil {
					continue
				}
				if !t.global && c.q.Tenant != "*" && t.tenant != c.q.Tenant {
					continue
				}
				if slices.Contains(t.scopes, "admin") || slices.Contains(t.scopes, "write") {
					holders = append(holders, fmt.Sprintf("%s (%s, tenant %s%s, scopes %s)", id, t.name, t.tenant, map[bool]string{true: ", global"}[t.global], strings.Join(t.scopes, ",")))
				}
			}
			return verdict("every write in the period was made with a token whose creation was logged before and which was not revoked; the holders of write and admin tokens are listed",
				"%d writes with a token not in the log or revoked", c.badTokens, Evidence{Facts: map[string]any{"write_and_admin_tokens": holders}})
		}},
		{"sox-itgc-change", "SOX 404 ITGC: program change", "Configuration changes approved by another person before they take effect", func(c *collector) ControlResult {
			var off offenses
			n := 0
			for _, cc := range c.configs {
				if cc.e.when != during {
					continue
				}
				n++
				if cc.approvedBy == "" {
					off.add(cc.e.offense("config.change by %s is not approved by someone else before it took effect", cc.author))
				}
			}
			off = join(off, c.unapprovedUse)
			return verdict("every configuration change was approved by someone other than its author before it took effect, and agents used only the approved models",
				"%d unapproved changes or uses", byIndex(off), Evidence{Counts: map[string]int{"config_changes": n}})
		}},
		{"sox-itgc-sod", "SOX 404 ITGC: segregation of duties", "No actor or writer approves its own output", func(c *collector) ControlResult {
			return verdict("no approval in the period is by the actor or token that made the approved record", "%d self-approvals",
				byIndex(c.selfApprov), Evidence{Counts: map[string]int{"approvals": c.approvalsN}})
		}},
		{"sox-itgc-operations", "SOX 404 ITGC: computer operations", "Capture, witnessing and monitoring ran over the period", func(c *collector) ControlResult {
			var off offenses
			for _, g := range c.gaps {
				off.add(g.offense("capture gap: %s", g.leaf.Attributes.String("capture.gap.error")))
			}
			ev := Evidence{Counts: map[string]int{"capture_gaps": len(c.gaps), "monitor_status_events": len(c.statuses)}, Facts: map[string]any{"alerts_by_rule": c.alerts, "witness_quorum": c.quorum}}
			switch {
			case c.p.RequireWitnessQuorum && !c.quorum:
				ev.offending(off)
				return notSatisfied("the checkpoint is not cosigned as a witness policy requires", ev)
			case len(c.statuses) == 0:
				ev.offending(off)
				return notSatisfied("no monitor.status event in the period: nothing shows the monitor ran", ev)
			}
			return verdict("no capture gap, the checkpoint is witnessed, and the monitor reported over the period", "%d capture gaps", off, ev)
		}},
		{"sox-as1105", "PCAOB AS 1105.10", "Completeness and accuracy of the information produced", func(c *collector) ControlResult {
			integ, reason := c.integrity()
			off := join(integ, c.chainOffenses(), c.inclusionBad)
			ev := Evidence{Counts: c.auditCounts(), InclusionProofs: c.proofs,
				Facts: map[string]any{"start_size": c.startSize, "end_size": c.size}}
			if reason != "" {
				ev.offending(off)
				return notSatisfied(reason, ev)
			}
			return verdict("the period's range is consistent with the checkpoint, the sampled inclusion proofs verify, and no session has a sequence gap",
				"%d completeness or accuracy failures", byIndex(off), ev)
		}},
		{"sox-as2201-benchmark", "PCAOB AS 2201.B28-B31", "Benchmarking: approved configuration unchanged over a consistency-proven interval", func(c *collector) ControlResult {
			agents := map[string]bool{}
			for a := range c.startConfig {
				agents[a] = true
			}
			for a := range c.approved {
				agents[a] = true
			}
			ev := Evidence{Facts: map[string]any{}}
			if len(agents) == 0 {
				return notApplicable("no approved configuration in the log", ev)
			}
			var off offenses
			cfgs := map[string]string{}
			for _, a := range sortedStringKeys(agents) {
				end := ""
				var at uint64
				if cc := c.approved[a]; cc != nil {
					end, at = cc.hash, cc.e.index
				}
				cfgs[a] = end
				if start, ok := c.startConfig[a]; !ok || start != end {
					off.add(Offense{Index: at, Reason: fmt.Sprintf("agent %s: the approved configuration changed in the period (%q to %q): benchmarking does not apply", a, start, end)})
				}
			}
			ev.Facts["approved_configuration_sha256"] = cfgs
			return verdict("each agent's approved configuration hash is the same at both ends of the consistency-proven range", "%d agents whose configuration changed", off, ev)
		}},
	},
}

// --- EU AI Act ---

var euAIAct = Profile{
	Name: "eu-ai-act", Title: "Regulation (EU) 2024/1689 (AI Act), high-risk AI systems: logging, oversight, monitoring, incidents", Floor: period.Period{Months: 6},
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
			off, facts, reason := c.retentionCheck(period.Period{Months: 6})
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
	first, ok1 := g.leaf.Attributes.Time("capture.gap.first_time")
	last, ok2 := g.leaf.Attributes.Time("capture.gap.last_time")
	if !ok1 || !ok2 {
		return "unknown length"
	}
	return max(last.Sub(first), time.Second).Round(time.Second).String()
}

func sortedStrings[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortedStringKeys(m map[string]bool) []string { return sortedStrings(m) }

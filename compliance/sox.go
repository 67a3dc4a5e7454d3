package compliance

import (
	"fmt"
	"slices"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/period"
	"github.com/llmaudittrail/llmaudittrail/profile"
)

// SOXParams are the parameters of sox's controls.
type SOXParams struct {
	// ApprovalOutcomes are the agent.decision outcomes that count as an
	// approval (segregation of duties).
	ApprovalOutcomes []string `json:"approval_outcomes" yaml:"approval_outcomes"`
}

// sox is SOX 404's IT general controls (access, change, segregation of
// duties, operations) and the evidence PCAOB AS 1105 and AS 2201 ask of the
// information produced: audit records kept 7 years.
var sox = Profile{
	Profile: profile.Profile{
		Name: "sox", Title: "SOX 404 IT general controls and PCAOB AS 1105 / AS 2201 evidence",
		Floor: period.Period{Years: 7}, Basis: "SOX §802 / 17 CFR 210.2-06: audit records 7 years",
	},
	Defaults: func(p *Params) { p.ApprovalOutcomes = []string{"approved", "approve"} },
	Check:    func(p *Params) error { return checkNames(p.ApprovalOutcomes) },
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
			ev := Evidence{Counts: map[string]int{"config_changes": n, "approved_configurations": len(c.approved), "llm_requests": c.byKind[event.KindLLMRequest]}}
			switch {
			case off.n > 0:
			case n == 0 && len(c.approved) == 0:
				return notApplicable(fmt.Sprintf("no evidence to judge: no configuration change in the period and no approved configuration in the log, "+
					"so nothing says which models and system prompts are approved (%d model calls in the period); record config.change events and approve them with a signature", c.byKind[event.KindLLMRequest]), ev)
			case n == 0:
				ev.Summary = "no configuration change in the period; agents with an approved configuration used only its model and system prompt"
			default:
				ev.Summary = "every configuration change in the period was approved by someone other than its author before it took effect, and agents with an approved configuration used only its model and system prompt"
			}
			return verdict("", "%d unapproved changes or uses", byIndex(off), ev)
		}},
		{"sox-itgc-sod", "SOX 404 ITGC: segregation of duties", "No actor or writer approves its own output", func(c *collector) ControlResult {
			ev := Evidence{Counts: map[string]int{"approvals": c.approvalsN}}
			if c.approvalsN == 0 {
				return notApplicable("no evidence to judge: no approval (an approved signature, or an agent.decision with an approval outcome) in the period", ev)
			}
			return verdict("no approval in the period is by the actor or token that made the approved record", "%d self-approvals", byIndex(c.selfApprov), ev)
		}},
		{"sox-itgc-operations", "SOX 404 ITGC: computer operations", "Capture, witnessing and monitoring ran over the period", func(c *collector) ControlResult {
			var off offenses
			for _, g := range c.gaps {
				off.add(g.offense("capture gap: %s", g.leaf.Attributes.String(event.AttrCaptureGapError)))
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
			off := join(integ, c.chainOffenses(), c.bodyOffenses(), c.inclusionBad)
			ev := Evidence{Counts: c.auditCounts(), InclusionProofs: c.proofs,
				Facts: map[string]any{"start_size": c.startSize, "end_size": c.size}}
			if reason != "" {
				ev.offending(off)
				return notSatisfied(reason, ev)
			}
			return verdict("the period's range is consistent with the checkpoint, the sampled inclusion proofs verify, and no session has a sequence gap",
				"%d completeness or accuracy failures", byIndex(off), ev)
		}},
		{"sox-as2201-benchmark", "PCAOB AS 2201.B28-B31", "Benchmarking: each agent's configuration its approved baseline over a consistency-proven interval, changed only by approved changes", func(c *collector) ControlResult {
			// An agent's baseline is its approved configuration at the
			// period's start; an approved change in the period starts a new
			// one (the auditor tests it anew). An unapproved change breaks it.
			agents := map[string]bool{}
			for a := range c.startConfig {
				agents[a] = true
			}
			for _, cc := range c.configs {
				if cc.e.when == during && cc.agentID != "" {
					agents[cc.agent] = true
				}
			}
			ev := Evidence{Facts: map[string]any{}}
			if len(agents) == 0 {
				return notApplicable("no evidence to judge: no approved configuration at the period's start and no configuration change in it, so no baseline to benchmark", ev)
			}
			var off offenses
			baselines, end := map[string][]string{}, map[string]string{}
			changes := 0
			for _, a := range sortedStringKeys(agents) {
				list := []string{}
				if h, ok := c.startConfig[a]; ok {
					list = append(list, fmt.Sprintf("%s at the period's start", h))
				}
				for _, cc := range c.configs {
					if cc.e.when != during || cc.agent != a {
						continue
					}
					changes++
					if cc.approvedBy == "" {
						off.add(cc.e.offense("agent %s: the configuration changed to %q without an approval by someone other than its author before it took effect: the baseline does not hold", cc.agentID, cc.hash))
						continue
					}
					list = append(list, fmt.Sprintf("%s from entry %d, approved by %s at entry %d", cc.hash, cc.e.index, cc.approvedBy, cc.approvedAt))
				}
				baselines[a] = list
				if cc := c.approved[a]; cc != nil {
					end[a] = cc.hash
				}
			}
			ev.Facts["baselines"], ev.Facts["approved_configuration_sha256"] = baselines, end
			ev.Counts = map[string]int{"agents": len(agents), "config_changes": changes}
			return verdict("each agent ran its approved baseline over the consistency-proven range; every configuration change in it was approved and starts a new baseline",
				"%d unapproved configuration changes", byIndex(off), ev)
		}},
	},
}

package compliance

// What the profiles' controls share: verdicts, and evidence that more than
// one profile looks at (integrity, chains, signatures, retention, model
// changes).

import (
	"fmt"
	"slices"
	"sort"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/signature"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

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
		reason = "the checkpoint does not meet a witness policy (none given, or no quorum): nobody independent cosigned it. " +
			"What satisfies it: a witness that cosigns the log's checkpoints (cmd/witness, or any C2SP tlog-witness), the log started with --witness-policy naming it, and the same policy given to the report (--witness-policy): docs/witness.md"
	}
	return off, reason
}

// auditCounts are the audit's counts: the entries of the report's tree
// verified (a pinned report's checkpoint verifies more), and the bundles
// and tiles read to verify the checkpoint's.
func (c *collector) auditCounts() map[string]int {
	return map[string]int{"entries_verified": int(c.entriesRead()), "bundles": c.audit.Bundles, "tiles_compared": c.audit.Tiles}
}

// entriesRead are the entries of the report's tree that the audit read.
func (c *collector) entriesRead() uint64 { return min(c.audit.Entries, c.size) }

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

// bodyOffenses are the audit's findings about the bodies of a log of leaf
// version 3 (withheld, not the envelope's, tagged for nobody): of the
// report's tenant and the log-wide records in a tenant's report (the
// audit reads those only: tenantKeys), of every entry in a report of
// every tenant.
func (c *collector) bodyOffenses() offenses {
	var off offenses
	for _, f := range c.audit.Findings {
		if bodyRules[f.Rule] && f.Index != nil {
			off.add(Offense{Index: *f.Index, Reason: f.Rule + ": " + f.Message})
		}
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
// checkpoint is at least the profile's.
func (c *collector) retentionCheck() (off offenses, facts map[string]any, reason string) {
	min := c.floor
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

// retentionControl: the floor in force is at least the profile's, no
// erasure inside a floor without a logged override, and a sample of
// payloads still decrypts and opens its commitment.
func retentionControl(c *collector) ControlResult {
	off, facts, reason := c.retentionCheck()
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

// modelChanges are the model changes without a config.change (11.10(k),
// Art. 12(2)).
func (c *collector) modelChanges() ControlResult {
	return verdict("every model change of an agent is declared by a config.change before it", "%d model change(s) without a config.change",
		c.undeclared, Evidence{Counts: map[string]int{"config_changes": len(c.configs), "llm_requests": c.byKind[event.KindLLMRequest]}})
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

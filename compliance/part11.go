package compliance

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/period"
	"github.com/llmaudittrail/llmaudittrail/profile"
	"github.com/llmaudittrail/llmaudittrail/signature"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// Part11Params are the parameters of part11's controls.
type Part11Params struct {
	// Gates (21 CFR 11.10(f)): a tool call of Tools, or an agent.decision
	// with a decision.outcome of Outcomes, needs, earlier in its session, a
	// valid human signature with Meaning.
	Gates []Gate `json:"gates" yaml:"gates"`
	// SessionIdle and SessionMax are the signing-session limits the server
	// enforces (21 CFR 11.200): in-session signings are checked against
	// them.
	SessionIdle Duration `json:"session_idle" yaml:"session_idle"`
	SessionMax  Duration `json:"session_max" yaml:"session_max"`
}

// Gate is one 11.10(f) sequencing rule.
type Gate struct {
	Tools []string `json:"tools" yaml:"tools"`
	// Outcomes gate agent.decision events by their decision.outcome (an
	// approval an agent records), as Tools gate tool calls.
	Outcomes []string `json:"outcomes,omitempty" yaml:"outcomes"`
	Meaning  string   `json:"meaning" yaml:"meaning"`
}

// approvalGate is what a log running part11 enables (Enable): an agent's
// approval only after a person's approved signature in its session, the
// report's side of the monitor's medical mode (RuleParams).
var approvalGate = Gate{Tools: []string{}, Outcomes: []string{"approved", "approve"}, Meaning: "approved"}

// part11 is FDA 21 CFR Part 11, electronic records and electronic
// signatures: records kept 7 years by configuration, and the controls of
// 11.10, 11.50, 11.70, 11.100, 11.200 and 11.300 over the verified entries.
var part11 = Profile{
	Profile: profile.Profile{
		Name: "part11", Title: "FDA 21 CFR Part 11: electronic records and electronic signatures",
		Floor: period.Period{Years: 7}, Basis: "21 CFR Part 11 §11.10(c): records retained, by configuration 7 years",
	},
	Defaults: func(p *Params) {
		p.Gates = []Gate{}
		p.SessionIdle = Duration(15 * time.Minute)
		p.SessionMax = Duration(8 * time.Hour)
	},
	// A log running part11 gates agents' approvals on a person's signature
	// (11.10(f)), in its reports and in its monitor (the shipped rule
	// pack's approval.unsigned).
	Enable: func(p *Params) {
		if !slices.ContainsFunc(p.Gates, func(g Gate) bool { return reflect.DeepEqual(g, approvalGate) }) {
			p.Gates = append(p.Gates, approvalGate)
		}
	},
	RuleParams: map[string]any{"medical_mode": true},
	Check: func(p *Params) error {
		if p.SessionIdle <= 0 || p.SessionMax < p.SessionIdle {
			return errors.New("session_idle must be positive and session_max at least as long")
		}
		for i := range p.Gates {
			g := &p.Gates[i]
			if len(g.Tools)+len(g.Outcomes) == 0 || g.Meaning == "" {
				return fmt.Errorf("gates[%d]: name tools or outcomes, and a meaning", i)
			}
			if g.Tools == nil {
				g.Tools = []string{}
			}
		}
		if p.Gates == nil {
			p.Gates = []Gate{}
		}
		return nil
	},
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
			off = join(off, c.bodyOffenses())
			ev := Evidence{Counts: map[string]int{"entries_in_log": int(c.size), "entries_read": int(c.entriesRead()), "entries_in_period": c.inPeriod}}
			if c.entriesRead() < c.size {
				return notSatisfied(fmt.Sprintf("read %d of the log's %d entries", c.entriesRead(), c.size), ev)
			}
			return verdict("every entry of the log up to the checkpoint was read and is a well-formed record; the report counts every entry of the period",
				"%d entries are not well-formed records, or their bodies were withheld or are not the ones their envelopes commit to", byIndex(off), ev)
		}},
		{"part11-11.10c", "21 CFR 11.10(c)", "Protection and retention of records", retentionControl},
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
			unanswered, open := c.unanswered()
			ev := Evidence{Counts: map[string]int{"gated_calls": c.gateCalls, "gated_results": c.answered, "gated_calls_open": open},
				Facts: map[string]any{"gates": c.p.Gates}}
			if len(c.p.Gates) == 0 {
				return notApplicable("no sequencing gates are configured (controls.gates)", ev)
			}
			return verdict("every gated tool call and approval follows the signature its gate requires, and every gated tool call whose session went back to the model has its result (a tool.result bound to it by call id, posted by the agent or derived by the capture)",
				"%d gated tool calls or approvals out of sequence: without the required signature before them, or their session went on without their result", byIndex(join(c.gated, unanswered)), ev)
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

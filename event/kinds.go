package event

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Who may append which kinds through the event API. Kinds not in the table
// are open to any token with the write scope; a kind with a scope of its own
// needs that scope and not write (a monitor's token appends its alerts and
// nothing else); the server's own events
// (disclosures, signatures, erasures, ...) are appended by the server alone,
// and a few kinds need a scope of their own. This is the one table of it.
//
// A pattern "x.*" matches x and every kind below it.
var reservedKinds = []struct {
	pattern string
	scope   string // "" : only the server itself appends it
	why     string
}{
	{"access.*", "", "payload reads are recorded by the server"},
	{"erasure.*", "", "erasures are recorded by the server"},
	{"hold.*", "", "legal holds are recorded by the server"},
	{"retention.*", "", "retention floors are recorded by the server"},
	{"compliance.*", "", "the compliance configuration is recorded by the server"},
	{"signer.*", "", "signer enrollment, rotation and revocation are recorded by the server"},
	{"signature.*", "", "signature attempts are recorded by the server"},
	{KindHumanSignature, "", "electronic signatures are made through POST /v1/signatures"},
	{"report.*", "", "reports are issued by the server"},
	{"timestamp.*", "", "timestamp tokens and timestamp authority outages are recorded by the server"},
	{KindMonitorAlert, ScopeMonitor, "monitor alerts need a token with the monitor scope"},
	{KindMonitorStatus, ScopeMonitor, "monitor status events need a token with the monitor scope"},
	{KindReplayVerdict, ScopeAudit, "replay verdicts need a token with the audit scope"},
}

// Scopes named by the table (the auth package defines the full set).
const (
	ScopeWrite   = "write"
	ScopeMonitor = "monitor"
	ScopeAudit   = "audit"
)

// ErrNoScope is returned by Permit for a kind open to the write scope, to
// a token without it.
var ErrNoScope = errors.New("token lacks the \"write\" scope")

// AppendScopes are the scopes of which a token needs one to append through
// the event API at all (Permit decides per kind).
func AppendScopes() []string {
	out := []string{ScopeWrite}
	for _, r := range reservedKinds {
		if r.scope != "" && !slices.Contains(out, r.scope) {
			out = append(out, r.scope)
		}
	}
	return out
}

// ErrReservedKind is returned by Permit for a kind the caller may not
// append.
var ErrReservedKind = errors.New("reserved event kind")

func kindMatches(pattern, kind string) bool {
	if p, ok := strings.CutSuffix(pattern, ".*"); ok {
		return kind == p || strings.HasPrefix(kind, p+".")
	}
	return kind == pattern
}

// Permit reports whether a client whose token holds the scopes has may
// append an event of kind through the event API: nil, or an error wrapping
// ErrReservedKind or ErrNoScope that says why not.
func Permit(kind string, has func(scope string) bool) error {
	for _, r := range reservedKinds {
		if !kindMatches(r.pattern, kind) {
			continue
		}
		if r.scope != "" && has(r.scope) {
			return nil
		}
		return fmt.Errorf("%w: %s: %s", ErrReservedKind, kind, r.why)
	}
	if !has(ScopeWrite) {
		return fmt.Errorf("%w: %s", ErrNoScope, kind)
	}
	return nil
}

// ServerOnly reports whether kind is appended only by the server itself.
func ServerOnly(kind string) bool {
	for _, r := range reservedKinds {
		if kindMatches(r.pattern, kind) {
			return r.scope == ""
		}
	}
	return false
}

// Sessions the server writes in its own name, in any tenant: its account
// of payload reads and token changes (access.*), legal holds, erasures,
// retention floors, the compliance configuration, signers (signer.*),
// reports and RFC 3161 timestamps of checkpoints. No token appends to
// them, through the event API or the capture proxies, and no token writes
// as the server's own actor: a reader of the log can trust that events
// there, and events by ServerActor, are the server's. This is the one
// table of it, beside the kinds above.
const (
	SessionTokens     = "access.tokens"
	SessionHolds      = "holds"
	SessionErasures   = "erasures"
	SessionRetention  = "retention"
	SessionCompliance = "compliance"
	SessionReports    = "reports"
	SessionTimestamps = "timestamps"
)

// AccessSession is the session of the reads and disclosures made with the
// token tokenID.
func AccessSession(tokenID string) string { return "access." + tokenID }

// SignerSession is the session of the signer id's lifecycle events.
func SignerSession(id string) string { return "signer." + id }

// MonitorPrefix begins the session and the actor id of a monitor's own
// events (monitor.INSTANCE), and ActorSystem is their actor type.
const (
	MonitorPrefix = "monitor."
	ActorSystem   = "system"
)

// ServerActor is the actor of the events the server appends on its own
// account (retention floors, token changes, failed signatures, reports).
var ServerActor = Actor{Type: ActorSystem, ID: "log-server"}

var reservedSessions = []struct{ pattern, why string }{
	{"access.*", "payload reads and token changes are recorded by the server"},
	{SessionHolds, "legal holds are recorded by the server"},
	{SessionErasures, "erasures are recorded by the server"},
	{SessionRetention, "retention floors are recorded by the server"},
	{SessionCompliance, "the compliance configuration is recorded by the server"},
	{"signer.*", "signer lifecycle events are recorded by the server"},
	{SessionReports, "issued reports are recorded by the server"},
	{SessionTimestamps, "timestamp tokens are recorded by the server"},
}

// ErrReservedSession is returned by PermitSession for an event in a
// session, or by an actor, that only the server writes.
var ErrReservedSession = errors.New("reserved session")

// PermitSession reports whether a token may append an event in session
// as actor (through the event API or the capture proxies): nil, or an
// error wrapping ErrReservedSession that says why not.
func PermitSession(session string, actor Actor) error {
	for _, r := range reservedSessions {
		if kindMatches(r.pattern, session) {
			return fmt.Errorf("%w: %s: %s", ErrReservedSession, session, r.why)
		}
	}
	if actor.Type == ServerActor.Type && actor.ID == ServerActor.ID {
		return fmt.Errorf("%w: actor %s %s is the server's own", ErrReservedSession, actor.Type, actor.ID)
	}
	return nil
}

// Event kinds that more than one package writes or reads, each named
// once (a kind one package alone owns is declared there: identity's
// sign-ins, signature's signer lifecycle, profile's compliance.config).
// The values are the wire format.
const (
	// Captured by the proxies, the Go hook and the MCP capture (package
	// capture), and reported over OTLP (package otlp).
	KindLLMRequest  = "llm.request"
	KindLLMResponse = "llm.response"
	// KindLLMRefused: a request the capture refused to forward because it
	// could not read it as the upstream would.
	KindLLMRefused = "llm.refused"
	// KindLLMContent: the GenAI log records of a span, reported over OTLP.
	KindLLMContent = "llm.content"
	// KindLLMSpan: an inference span reported over OTLP of a call the
	// capture observed too (the agent's traceparent links them), in place
	// of its llm.request and llm.response, so the call is counted once.
	KindLLMSpan = "llm.span"
	// KindAgentInvoke, KindAgentCreate: agent spans reported over OTLP
	// (invoke_agent, create_agent).
	KindAgentInvoke = "agent.invoke"
	KindAgentCreate = "agent.create"
	KindToolCall    = "tool.call"
	KindToolResult  = "tool.result"
	KindToolDenied  = "tool.denied"
	KindCaptureGap  = "capture.gap"
	// KindCaptureTunnel: one CONNECT tunnel through the interception proxy
	// to a host it does not record (its bytes are never read): the host
	// and port asked for, the address dialled, the bytes each way, the
	// duration and how it ended (capture.outcome: closed, idle_timeout,
	// refused, unreachable).
	KindCaptureTunnel = "capture.tunnel"
	KindMCPInitialize = "mcp.initialize"
	KindMCPToolsList  = "mcp.tools_list"
	// KindMCPRefused: a client message refused because the capture could
	// not read it as the MCP server would.
	KindMCPRefused   = "mcp.refused"
	KindResourceRead = "resource.read"
	KindPromptGet    = "prompt.get"

	// The server's account of payload reads and token changes
	// (access.* sessions; the sign-in kinds are package identity's).
	KindAccessRead    = "access.read"
	KindAccessResolve = "access.resolve"
	KindTenantKeyRead = "access.tenant_key"

	// RFC 3161 time-stamp tokens on published checkpoints (package tsa
	// appends them, in SessionTimestamps of the default tenant).
	KindTimestampIssued = "timestamp.issued"
	KindTimestampFailed = "timestamp.failed"
	KindTokenCreated    = "access.token_created"
	KindTokenRevoked    = "access.token_revoked"

	// Governance records (package governance), each in its session:
	// legal holds (SessionHolds), erasures with their legal basis
	// (SessionErasures), the retention floor in force for a tenant or the
	// default (SessionRetention), compliance reports anchored by their
	// digest (SessionReports); token changes above go in SessionTokens.
	KindHoldPlaced   = "hold.placed"
	KindHoldReleased = "hold.released"
	KindErasure      = "erasure"
	KindRetentionSet = "retention.set"
	KindReportIssued = "report.issued"

	// The monitor's alerts and status, replay verdicts, electronic
	// signatures (the signer.* kinds are package signature's).
	KindMonitorAlert   = "monitor.alert"
	KindMonitorStatus  = "monitor.status"
	KindReplayVerdict  = "replay.verdict"
	KindHumanSignature = "human.signature"

	// Written by agents and people through the event API and read by the
	// compliance reports, the console and replay.
	KindAgentDecision    = "agent.decision"
	KindConfigChange     = "config.change"
	KindHumanOverride    = "human.override"
	KindHumanStop        = "human.stop"
	KindIncidentReported = "incident.reported"
	KindIncidentNotified = "incident.notified"
)

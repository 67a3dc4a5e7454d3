package compliance

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/period"
	"github.com/llmaudittrail/llmaudittrail/signature"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// collector reads the verified entries in order and keeps what the
// controls need: one pass, bounded state (per session, signer, agent,
// token and sampled entry, not per entry).
type collector struct {
	q    Query
	p    Params
	size uint64
	root []byte
	// floor is the retention floor the report's profile requires
	// (retentionCheck).
	floor period.Period

	audit  *verify.Report
	quorum bool

	// the period's range
	rng                 *compact.Range
	started             bool
	startSize           uint64
	startRoot           []byte
	consistency         [][]byte
	consistencyErr      error
	inclusion, payloads sample
	proofs              []InclusionProof
	inclusionBad        offenses
	payloadSession      map[uint64]string
	payloadOK           int
	payloadErased       int
	payloadBad          offenses
	payloadUnread       string

	inScope, inPeriod int
	byKind            map[string]int

	// signatures
	sigs           *signature.Checker
	sigProblems    map[uint64]signature.Problem
	sigAt          map[uint64]int // signature event index -> position in manifestations (in period)
	manifestations []Manifestation
	// approvals: signed record index -> the valid signatures of it
	approvals map[uint64][]approval
	// valid signatures per tenant/session, for gates and two-person rules
	sessionSigs map[string][]approval
	// signing sessions: digest -> last use
	signSessions map[string]*signSession
	components   offenses // 11.200
	enrollments  offenses // 11.100: enrolled without identity_verified_by
	locks        []*entry // signer.locked in the period
	failures     int
	rotations    int
	revocations  int

	// who made each entry (by index; 0 is "unknown"), for approvals
	records []recordInfo
	names   []string
	nameID  map[string]uint32

	// mine marks the entries of the report (visit), a bit each
	mine []uint64

	// tokens (the tenant's and the global ones)
	tokens map[string]*tokenInfo

	// writers and corrections in the period
	noWriter    offenses
	badCorrects offenses
	badTokens   offenses // writer token not logged, or revoked before use
	corrections int

	// change control
	configs       []*configChange
	declared      map[string]string // tenant/agent -> model declared by the latest config.change
	approved      map[string]*configChange
	lastModel     map[string]string // tenant/agent -> model last used
	undeclared    offenses          // model changes without a config.change
	unapprovedUse offenses          // models used that are not the approved configuration
	periodSeen    bool
	startConfig   map[string]string // tenant/agent -> approved config hash at the period's start

	// gates, two-person rule, segregation of duties
	gated     offenses
	gateCalls int
	// the gated tool calls of the period and their results (11.10(f)):
	// open calls per tenant/session by their key (callKey), removed when
	// their tool.result comes; nameCalls and nameResults number the calls
	// and results without a call id per tenant/session and tool name, to
	// bind them by name and order
	openCalls   map[string]map[string]*openCall
	nameCalls   map[string]int
	nameResults map[string]int
	answered    int
	twoPerson   offenses
	twoCalls    int
	selfApprov  offenses
	approvalsN  int

	// retention
	floors         []floorSet
	sessionLast    map[string]time.Time // tenant/session -> latest event time
	erasures       []*entry
	erasedSessions map[string]bool
	erasureBad     offenses
	overrides      offenses

	// operations
	gaps        []*entry
	outage      time.Duration
	statuses    []time.Time
	alerts      map[string]int       // rule -> alerts in the period
	alertedLock map[uint64]bool      // signer.locked indices that have a monitor.alert
	oversight   int                  // human.override, human.stop
	incidents   map[string]*incident // id -> incident
	lastTime    time.Time            // of the latest entry read
	incidentIDs []string
}

// openCall is a gated tool call of the period whose tool.result has not
// been read yet.
type openCall struct {
	e      *entry
	tool   string
	callID string
	// wentOn is the index of a later llm.request of the session (0: none
	// yet): the agent went back to the model without the call's result.
	wentOn uint64
}

type approval struct {
	sigIndex, record uint64
	signer, name     string
	meaning          string
	writer           string
	session          string // tenant/session of the signature event
}

type signSession struct {
	first, last time.Time
	signer      string
}

type recordInfo struct {
	actor, writer uint32 // into collector.names
}

type tokenInfo struct {
	created, revoked *uint64
	name             string
	tenant           string
	scopes           []string
	global           bool
}

type configChange struct {
	e             *entry
	author, agent string // agent: tenant/agent id
	agentID       string // config.agent
	model, hash   string
	prompt        string // config.prompt_sha256
	approvedBy    string
	approvedAt    uint64
	tookEffect    *uint64
}

type floorSet struct {
	index  uint64
	tenant string
	scope  string
	floor  period.Period
	text   string
	at     time.Time
}

type incident struct {
	e             *entry
	class         string
	aware         time.Time
	notified      *time.Time
	notifiedIndex uint64
}

func newCollector(q Query, p Params, origin string, size uint64, root []byte) *collector {
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	return &collector{
		q: q, p: p, size: size, root: root, rng: rf.NewEmptyRange(0),
		inclusion: sample{k: p.SampleSize}, payloads: sample{k: p.SampleSize}, payloadSession: map[uint64]string{},
		byKind: map[string]int{}, sigs: signature.NewChecker(origin), sigProblems: map[uint64]signature.Problem{},
		sigAt: map[uint64]int{}, approvals: map[uint64][]approval{}, sessionSigs: map[string][]approval{},
		signSessions: map[string]*signSession{}, records: make([]recordInfo, size), names: []string{""}, nameID: map[string]uint32{"": 0},
		tokens: map[string]*tokenInfo{}, declared: map[string]string{}, approved: map[string]*configChange{},
		lastModel: map[string]string{}, startConfig: map[string]string{}, sessionLast: map[string]time.Time{},
		erasedSessions: map[string]bool{}, alerts: map[string]int{}, alertedLock: map[uint64]bool{}, incidents: map[string]*incident{},
		openCalls: map[string]map[string]*openCall{}, nameCalls: map[string]int{}, nameResults: map[string]int{},
	}
}

// id interns a name.
func (c *collector) id(s string) uint32 {
	if v, ok := c.nameID[s]; ok {
		return v
	}
	v := uint32(len(c.names))
	c.names = append(c.names, s)
	c.nameID[s] = v
	return v
}

// record returns who made the entry at index ("" if not of the scope).
func (c *collector) record(index uint64) (actor, writer string, ok bool) {
	if index >= uint64(len(c.records)) || c.records[index] == (recordInfo{}) {
		return "", "", false
	}
	r := c.records[index]
	return c.names[r.actor], c.names[r.writer], true
}

// see reads one entry (in index order): every entry of the report's
// tenant, and the log-wide records (event.LogWide).
func (c *collector) see(e *entry) {
	l := e.leaf
	a := l.Attributes
	c.lastTime = maxTime(c.lastTime, e.time)
	c.seeLogWide(e)
	if !e.scoped {
		return
	}
	c.inScope++
	skey := l.Tenant + "/" + l.Session
	if e.when == during {
		if !c.periodSeen {
			c.periodSeen = true
			for agent, cc := range c.approved {
				c.startConfig[agent] = cc.hash
			}
		}
		c.inPeriod++
		c.byKind[l.Kind]++
		c.inclusion.offer(c.root, "inclusion", e.index, e.hash)
		if l.Payload != nil {
			c.payloads.offer(c.root, "payload", e.index, e.hash)
			c.payloadSession[e.index] = skey
		}
		c.seeWriter(e)
		if l.Corrects != nil {
			c.corrections++
			if *l.Corrects >= e.index {
				c.badCorrects.add(e.offense("corrects entry %d, which does not come before it", *l.Corrects))
			}
		}
	}
	if e.index < uint64(len(c.records)) {
		c.records[e.index] = recordInfo{actor: c.id(l.Actor.ID), writer: c.id(writerToken(l))}
	}
	if e.when != after {
		c.sessionLast[skey] = maxTime(c.sessionLast[skey], e.time)
	}
	if c.sigs.Wants(l.Kind) {
		c.seeSignature(e)
	}
	agent := l.Tenant + "/" + l.Actor.ID
	switch l.Kind {
	case signature.KindEnrolled:
		if e.when == during && a.String(signature.AttrVerifiedBy) == "" {
			c.enrollments.add(e.offense("enrolled without identity_verified_by"))
		}
	case signature.KindKeyRotated:
		if e.when == during {
			c.rotations++
		}
	case signature.KindRevoked:
		if e.when == during {
			c.revocations++
		}
	case signature.KindFailed:
		if e.when == during {
			c.failures++
		}
	case signature.KindLocked:
		if e.when == during {
			c.locks = append(c.locks, e)
		}
	case event.KindConfigChange:
		cc := &configChange{e: e, author: l.Actor.ID, agent: l.Tenant + "/" + a.String(event.AttrConfigAgent), agentID: a.String(event.AttrConfigAgent),
			model: a.String(event.AttrConfigModel), hash: a.String(event.AttrConfigSHA256), prompt: a.String(event.AttrConfigPromptSHA256)}
		c.configs = append(c.configs, cc)
		if cc.model != "" && a.String(event.AttrConfigAgent) != "" {
			c.declared[cc.agent] = cc.model
		}
	case event.KindLLMRequest:
		c.seeModel(e, agent, a.String(event.AttrGenAIRequestModel))
		c.seePrompt(e, agent, a.String(event.AttrCaptureSystemPromptSHA256))
		for _, oc := range c.openCalls[skey] {
			if oc.wentOn == 0 {
				oc.wentOn = e.index
			}
		}
	case event.KindToolCall:
		c.seeToolCall(e, skey, a.String(event.AttrGenAIToolName))
	case event.KindToolResult:
		c.seeToolResult(e, skey)
	case event.KindAgentDecision:
		if outcome := a.String(event.AttrDecisionOutcome); outcome != "" {
			c.gate(e, skey, "agent.decision "+outcome, func(g Gate) bool { return slices.Contains(g.Outcomes, outcome) })
		}
		if r, ok := a.Uint(event.AttrDecisionRecord); ok && slices.Contains(c.p.ApprovalOutcomes, a.String(event.AttrDecisionOutcome)) && e.when == during {
			c.approvalsN++
			if actor, _, ok := c.record(r); ok && actor == l.Actor.ID {
				c.selfApprov.add(e.offense("actor %s approves its own entry %d", l.Actor.ID, r))
			}
		}
	case event.KindErasure:
		c.seeErasure(e)
	case event.KindCaptureGap:
		if e.when == during {
			c.gaps = append(c.gaps, e)
			first, ok1 := a.Time(event.AttrCaptureGapFirstTime)
			last, ok2 := a.Time(event.AttrCaptureGapLastTime)
			if ok1 && ok2 && !last.Before(first) {
				c.outage += max(last.Sub(first), time.Second)
			} else {
				c.outage += time.Second
			}
		}
	case event.KindHumanOverride, event.KindHumanStop:
		if e.when == during {
			c.oversight++
		}
	case event.KindIncidentReported:
		id := a.String(event.AttrIncidentID)
		aware, ok := a.Time(event.AttrIncidentAwareAt)
		if !ok {
			aware = e.time
		}
		if id != "" && e.when == during && c.incidents[id] == nil {
			c.incidents[id] = &incident{e: e, class: a.String(event.AttrIncidentClassification), aware: aware}
			c.incidentIDs = append(c.incidentIDs, id)
		}
	case event.KindIncidentNotified:
		if in := c.incidents[a.String(event.AttrIncidentID)]; in != nil && in.notified == nil {
			t := e.time
			in.notified, in.notifiedIndex = &t, e.index
		}
	}
}

func writerToken(l *event.Leaf) string {
	if l.Writer == nil {
		return ""
	}
	return l.Writer.Token
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// seeLogWide reads the kinds that describe the log, its tokens and its
// monitor: of the report's tenant, or log-wide records.
func (c *collector) seeLogWide(e *entry) {
	l, a := e.leaf, e.leaf.Attributes
	switch l.Kind {
	case event.KindTokenCreated, event.KindTokenRevoked:
		id := a.String(event.AttrTokenID)
		t := c.tokens[id]
		if t == nil {
			t = &tokenInfo{}
			c.tokens[id] = t
		}
		i := e.index
		if l.Kind == event.KindTokenCreated {
			if t.created == nil {
				t.created = &i
			}
			t.name, t.tenant, t.scopes, t.global = a.String(event.AttrTokenName), a.String(event.AttrTokenTenant), a.Strings(event.AttrTokenScopes), a.Bool(event.AttrTokenGlobal)
		} else if t.revoked == nil {
			t.revoked = &i
		}
	case event.KindMonitorStatus:
		if e.when == during {
			c.statuses = append(c.statuses, e.time)
		}
	case event.KindMonitorAlert:
		if e.when == during {
			c.alerts[a.String(event.AttrMonitorRule)]++
		}
		if a.String(event.AttrMonitorRule) == signature.KindLocked {
			if i, ok := a.Uint(event.AttrMonitorIndex); ok {
				c.alertedLock[i] = true
			}
		}
	case event.KindRetentionSet:
		if f, err := period.Parse(a.String(event.AttrRetentionFloor)); err == nil {
			c.floors = append(c.floors, floorSet{index: e.index, tenant: l.Tenant, scope: a.String(event.AttrRetentionScope), floor: f, text: f.String(), at: e.time})
		}
	}
}

// seeWriter checks who wrote an in-period entry: a writer is named, and
// its token was in the log (created, not revoked) before the entry.
func (c *collector) seeWriter(e *entry) {
	l := e.leaf
	if l.Writer == nil || l.Writer.Token == "" {
		c.noWriter.add(e.offense("no writer: the leaf does not say which token wrote it"))
		return
	}
	if l.Writer.Via == "server" && l.Writer.Token == serverToken {
		return
	}
	t := c.tokens[l.Writer.Token]
	switch {
	case t == nil || t.created == nil:
		c.badTokens.add(e.offense("written by token %s, whose creation is not in the log before it", l.Writer.Token))
	case t.revoked != nil && *t.revoked < e.index:
		c.badTokens.add(e.offense("written by token %s after its revocation at %d", l.Writer.Token, *t.revoked))
	}
}

// serverToken is the writer token of the server's own events.
const serverToken = "log-server"

func (c *collector) sigProblem(p signature.Problem) {
	if _, ok := c.sigProblems[p.Index]; !ok {
		c.sigProblems[p.Index] = p
	}
	if i, ok := c.sigAt[p.Index]; ok {
		c.manifestations[i].Valid, c.manifestations[i].Problem = false, p.Message
	}
	// An approval that turns out not to link to its record is withdrawn.
	for r, as := range c.approvals {
		c.approvals[r] = slices.DeleteFunc(as, func(a approval) bool { return a.sigIndex == p.Index })
	}
}

func (c *collector) seeSignature(e *entry) {
	l := e.leaf
	if c.sigs == nil {
		return
	}
	prob := c.sigs.See(e.index, l)
	if prob != nil {
		c.sigProblems[e.index] = *prob
	}
	if l.Kind != event.KindHumanSignature {
		return
	}
	st, _, err := signature.FromLeaf(l)
	if e.when == during {
		m := Manifestation{Index: e.index, Signer: l.Actor.ID, Valid: prob == nil}
		if err == nil {
			m.Signer, m.PrintedName, m.Meaning, m.Reason, m.Time, m.Record, m.RecordLeafHash = st.Signer, st.PrintedName, st.Meaning, st.Reason, st.Time, st.Index, st.LeafHash
		}
		if prob != nil {
			m.Problem = prob.Message
		}
		c.sigAt[e.index] = len(c.manifestations)
		c.manifestations = append(c.manifestations, m)
		c.seeComponents(e, st)
	}
	if prob != nil || err != nil {
		return
	}
	ap := approval{sigIndex: e.index, record: st.Index, signer: st.Signer, name: st.PrintedName, meaning: st.Meaning,
		writer: writerToken(l), session: l.Tenant + "/" + l.Session}
	c.approvals[st.Index] = append(c.approvals[st.Index], ap)
	c.sessionSigs[ap.session] = append(c.sessionSigs[ap.session], ap)
	if e.when == during && st.Meaning == "approved" {
		c.approvalsN++
		if actor, writer, ok := c.record(st.Index); ok && (actor == st.Signer || (writer != "" && writer == ap.writer && writer != serverToken)) {
			c.selfApprov.add(e.offense("%s approves entry %d, which they wrote (actor %s, token %s)", st.Signer, st.Index, actor, writer))
		}
	}
	c.approveConfig(e, ap)
}

// seeComponents checks 21 CFR 11.200(a)(1) on a signature in the period:
// the first signing of a session with every component, later ones within
// the session's limits.
func (c *collector) seeComponents(e *entry, st *signature.Statement) {
	a := e.leaf.Attributes
	comp, sess := a.String(signature.AttrComponents), a.String(signature.AttrSession)
	if comp == "" || sess == "" {
		c.components.add(e.offense("the signature does not record the components used"))
		return
	}
	key := e.leaf.Tenant + "/" + sess
	s := c.signSessions[key]
	switch {
	case comp == "signer+secret":
		c.signSessions[key] = &signSession{first: e.time, last: e.time, signer: e.leaf.Actor.ID}
		return
	case comp != "secret":
		c.components.add(e.offense("unknown components %q", comp))
	case s == nil:
		c.components.add(e.offense("a secret-only signing with no earlier signing of all components in its session"))
	case s.signer != e.leaf.Actor.ID:
		c.components.add(e.offense("a secret-only signing in a session of another signer (%s)", s.signer))
	case e.time.Sub(s.last) > time.Duration(c.p.SessionIdle):
		c.components.add(e.offense("a secret-only signing %s after the session's last one (idle limit %s)", e.time.Sub(s.last).Round(time.Second), c.p.SessionIdle))
	case e.time.Sub(s.first) > time.Duration(c.p.SessionMax):
		c.components.add(e.offense("a secret-only signing %s into its session (limit %s)", e.time.Sub(s.first).Round(time.Second), c.p.SessionMax))
	}
	if s != nil {
		s.last = e.time
	}
}

// approveConfig records the approval of a config.change by someone other
// than its author, before the change took effect.
func (c *collector) approveConfig(e *entry, ap approval) {
	if ap.meaning != "approved" {
		return
	}
	for _, cc := range c.configs {
		if cc.e.index != ap.record || cc.approvedBy != "" {
			continue
		}
		switch {
		case ap.signer == cc.author:
			// self-approval: does not count (and the SoD control lists it)
		case cc.tookEffect != nil && *cc.tookEffect < e.index:
			// approved after it took effect: does not count
		default:
			cc.approvedBy, cc.approvedAt = ap.signer, e.index
			if cc.agent != "" {
				c.approved[cc.agent] = cc
			}
		}
	}
}

// seeModel checks an LLM request's model against the agent's declared and
// approved configuration.
func (c *collector) seeModel(e *entry, agent, model string) {
	if model == "" {
		return
	}
	last := c.lastModel[agent]
	c.lastModel[agent] = model
	// The first use of a model after a change makes the change take effect.
	for _, cc := range c.configs {
		if cc.agent == agent && cc.model == model && cc.tookEffect == nil && cc.e.index < e.index {
			i := e.index
			cc.tookEffect = &i
		}
	}
	if e.when != during {
		return
	}
	if d, ok := c.declared[agent]; ok {
		if d != model {
			c.undeclared.add(e.offense("agent %s uses model %s; its configuration declares %s", e.leaf.Actor.ID, model, d))
		}
	} else if last != "" && last != model {
		c.undeclared.add(e.offense("agent %s changed model from %s to %s with no config.change", e.leaf.Actor.ID, last, model))
	}
	if cc := c.approved[agent]; cc != nil && cc.model != "" && cc.model != model {
		c.unapprovedUse.add(e.offense("agent %s uses model %s; the last approved configuration (entry %d) is %s", e.leaf.Actor.ID, model, cc.e.index, cc.model))
	} else if cc == nil && c.hasConfig(agent) {
		c.unapprovedUse.add(e.offense("agent %s uses model %s with no approved configuration", e.leaf.Actor.ID, model))
	}
}

// seePrompt compares a request's system-prompt digest (as capture records
// it) with the last approved configuration's.
func (c *collector) seePrompt(e *entry, agent, digest string) {
	if e.when != during || digest == "" {
		return
	}
	if cc := c.approved[agent]; cc != nil && cc.prompt != "" && cc.prompt != digest {
		c.unapprovedUse.add(e.offense("agent %s runs with system prompt %s; the last approved configuration (entry %d) has %s", e.leaf.Actor.ID, digest[:min(16, len(digest))], cc.e.index, cc.prompt[:min(16, len(cc.prompt))]))
	}
}

func (c *collector) hasConfig(agent string) bool {
	return slices.ContainsFunc(c.configs, func(cc *configChange) bool { return cc.agent == agent })
}

// seeToolCall applies the 11.10(f) gates and the two-person rule.
func (c *collector) seeToolCall(e *entry, skey, tool string) {
	c.seeGatedCall(e, skey, tool)
	if e.when != during || tool == "" {
		return
	}
	c.gate(e, skey, "tool "+tool+" called", func(g Gate) bool { return slices.Contains(g.Tools, tool) })
	if slices.Contains(c.p.TwoPersonTools, tool) {
		c.twoCalls++
		people := map[string]bool{}
		for _, a := range c.sessionSigs[skey] {
			if a.meaning == "approved" {
				people[strings.ToLower(a.signer)+"\x00"+strings.ToLower(a.name)] = true
			}
		}
		signers, names := map[string]bool{}, map[string]bool{}
		for k := range people {
			id, name, _ := strings.Cut(k, "\x00")
			signers[id], names[name] = true, true
		}
		if len(signers) < 2 || len(names) < 2 {
			c.twoPerson.add(e.offense("tool %s called with approvals by %d distinct person(s), want 2", tool, min(len(signers), len(names))))
		}
	}
}

// gatedTool reports whether a gate names the tool.
func (c *collector) gatedTool(tool string) bool {
	return tool != "" && slices.ContainsFunc(c.p.Gates, func(g Gate) bool { return slices.Contains(g.Tools, tool) })
}

// callKey is what binds a tool.call and its tool.result in a session: the
// MCP call's event id (the result's capture.tool_call.id), else the call
// id the model gave (gen_ai.tool.call.id, on the call and on the result
// whether the agent posted it or the capture derived it from the next
// request), else the tool's name and the number of calls (results) of that
// name without an id before it in the session (a Gemini functionCall
// without an id): call names one side, result the other.
func (c *collector) callKey(e *entry, skey string, result bool) string {
	a := e.leaf.Attributes
	name := a.String(event.AttrGenAIToolName)
	mcp := a.String(event.AttrMCPServer) != ""
	switch {
	case result && a.String(event.AttrCaptureToolCallID) != "":
		return "event:" + a.String(event.AttrCaptureToolCallID)
	case !result && mcp:
		return "event:" + e.leaf.ID
	case mcp:
		return ""
	case a.String(event.AttrGenAIToolCallID) != "":
		return "call:" + a.String(event.AttrGenAIToolCallID)
	case !c.gatedTool(name):
		return ""
	}
	counts := c.nameCalls
	if result {
		counts = c.nameResults
	}
	k := skey + "\x00" + name
	n := counts[k]
	counts[k] = n + 1
	return "name:" + name + "#" + strconv.Itoa(n)
}

// seeGatedCall opens a gated tool call of the period: its tool.result is
// expected before the session goes back to the model.
func (c *collector) seeGatedCall(e *entry, skey, tool string) {
	key := c.callKey(e, skey, false)
	if e.when != during || !c.gatedTool(tool) || key == "" {
		return
	}
	if c.openCalls[skey] == nil {
		c.openCalls[skey] = map[string]*openCall{}
	}
	c.openCalls[skey][key] = &openCall{e: e, tool: tool, callID: e.leaf.Attributes.String(event.AttrGenAIToolCallID)}
}

// seeToolResult closes the gated call a tool.result answers.
func (c *collector) seeToolResult(e *entry, skey string) {
	key := c.callKey(e, skey, true)
	calls := c.openCalls[skey]
	if key == "" || calls[key] == nil {
		return
	}
	delete(calls, key)
	if len(calls) == 0 {
		delete(c.openCalls, skey)
	}
	c.answered++
}

// unanswered are the gated calls of the period whose session went back to
// the model and that have no tool.result up to the checkpoint; open counts
// the others without one (the session has not gone on: still running, or
// the session ended there).
func (c *collector) unanswered() (off offenses, open int) {
	var missing []*openCall
	for _, calls := range c.openCalls {
		for _, oc := range calls {
			if oc.wentOn == 0 {
				open++
			} else {
				missing = append(missing, oc)
			}
		}
	}
	// In index order, so that the offenses kept (MaxOffending) are the
	// same in every computation.
	slices.SortFunc(missing, func(a, b *openCall) int { return cmp.Compare(a.e.index, b.e.index) })
	for _, oc := range missing {
		id := "no call id: bound by name and order"
		if oc.callID != "" {
			id = "call id " + oc.callID
		}
		off.add(oc.e.offense("tool %s called (%s) and session %s went back to the model (entry %d) with no tool.result of the call",
			oc.tool, id, oc.e.leaf.Session, oc.wentOn))
	}
	return off, open
}

// gate applies the 11.10(f) gates that match to an in-period entry: what
// (a tool call, an approval) needs a valid signature with the gate's
// meaning before it in its session.
func (c *collector) gate(e *entry, skey, what string, match func(Gate) bool) {
	if e.when != during {
		return
	}
	for _, g := range c.p.Gates {
		if !match(g) {
			continue
		}
		c.gateCalls++
		if !slices.ContainsFunc(c.sessionSigs[skey], func(a approval) bool { return a.meaning == g.Meaning }) {
			c.gated.add(e.offense("%s with no valid %q signature before it in session %s", what, g.Meaning, e.leaf.Session))
		}
	}
}

// seeErasure checks an erasure against the retention floor in force.
func (c *collector) seeErasure(e *entry) {
	a := e.leaf.Attributes
	for _, s := range a.Strings(event.AttrErasureSessions) {
		c.erasedSessions[e.leaf.Tenant+"/"+s] = true
	}
	if s := a.String(event.AttrErasureSession); s != "" {
		c.erasedSessions[e.leaf.Tenant+"/"+s] = true
	}
	if e.when != during {
		return
	}
	c.erasures = append(c.erasures, e)
	if a.Bool(event.AttrErasureOverride) {
		c.overrides.add(e.offense("erasure inside the retention floor by override: %s", a.String(event.AttrErasureOverrideReason)))
		return
	}
	floor, ok := c.floorAt(e.leaf.Tenant, e.index)
	if !ok {
		return
	}
	for _, s := range a.Strings(event.AttrErasureSessions) {
		last, ok := c.sessionLast[e.leaf.Tenant+"/"+s]
		if ok && e.time.Before(floor.End(last)) {
			c.erasureBad.add(e.offense("session %s erased without an override inside the floor %s, which ends %s", s, floor, floor.End(last).Format(time.RFC3339)))
		}
	}
}

// floorAt is the floor in force for tenant at index: the latest
// retention.set of the tenant, else of the default scope.
func (c *collector) floorAt(tenant string, index uint64) (period.Period, bool) {
	var own, def *floorSet
	for i := range c.floors {
		f := &c.floors[i]
		if f.index >= index {
			break
		}
		switch {
		case f.tenant == tenant && f.scope == "tenant":
			own = f
		case f.scope == "default":
			def = f
		}
	}
	switch {
	case own != nil:
		return own.floor, true
	case def != nil:
		return def.floor, true
	}
	return period.Period{}, false
}

// intact reports whether the audit found the tree as the checkpoint says.
func (c *collector) intact() bool {
	for _, f := range c.audit.Findings {
		if integrityRules[f.Rule] {
			return false
		}
	}
	return true
}

// integrityRules are the audit findings that mean the log was altered or
// does not match its checkpoint.
var integrityRules = map[string]bool{
	verify.RuleCheckpointSignature: true, verify.RuleFork: true, verify.RuleEntryMismatch: true,
	verify.RuleTileMismatch: true, verify.RuleSplitView: true,
}

package capture

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
	"github.com/llmaudittrail/llmaudittrail/llmapi"
)

// JSON-RPC error codes the capture answers with (the implementation-defined
// server error range).
const (
	RPCNotRecorded = -32001 // fail-closed: the tools/call could not be recorded
	RPCDenied      = -32002 // the audit policy denies the tool
	RPCBadUpstream = -32003 // the MCP server's answer or endpoint was not passed on
)

// JSON-RPC's own error codes, for messages the capture refuses.
const (
	RPCParseError     = -32700 // not strict JSON
	RPCInvalidRequest = -32600 // ambiguous JSON, or not a JSON-RPC message
)

// ToolPolicy decides whether an agent may call a tool (before the call is
// forwarded); why is recorded and answered when it may not.
type ToolPolicy func(agent *Agent, server, tool string) (ok bool, why string)

// rpcMessage is a JSON-RPC 2.0 message, any of request, notification or
// response.
type rpcMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

type rpcError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (m *rpcMessage) isRequest() bool  { return m.Method != "" && len(m.ID) > 0 }
func (m *rpcMessage) isResponse() bool { return m.Method == "" && len(m.ID) > 0 }

// errShape: a message that is none of request, notification, response.
var errShape = errors.New("not a JSON-RPC request, notification or response")

// shape checks that m is one of the JSON-RPC message kinds: a request or
// notification (method, params an object or array, no result or error), or
// a response (an id and exactly one of result and error); an id is a string
// or a number (null only in a response).
func (m *rpcMessage) shape() error {
	if len(m.ID) > 0 {
		switch c := m.ID[0]; {
		case c == '"', c == '-', c >= '0' && c <= '9':
		case c == 'n' && m.Method == "":
		default:
			return fmt.Errorf("%w: the id is not a string or a number", errShape)
		}
	}
	if len(m.Params) > 0 && m.Params[0] != '{' && m.Params[0] != '[' {
		return fmt.Errorf("%w: params is not an object or array", errShape)
	}
	switch {
	case m.Method != "" && (len(m.Result) > 0 || m.Error != nil):
		return fmt.Errorf("%w: a method with a result or an error", errShape)
	case m.Method == "" && len(m.ID) == 0:
		return fmt.Errorf("%w: no method and no id", errShape)
	case m.Method == "" && (len(m.Result) > 0) == (m.Error != nil):
		return fmt.Errorf("%w: a response needs exactly one of result and error", errShape)
	}
	return nil
}

// rpcElem is one message of what was read off the wire: its bytes and,
// unless err says why it cannot be read, the message.
type rpcElem struct {
	raw []byte
	m   rpcMessage
	err error
}

// readMessages reads one JSON-RPC message or a batch with the strict
// reader (strictjson.Unmarshal: what the capture reads is what the peer
// reads, or err is set). Each element of a batch is read on its own; an
// array that is not JSON is one element that cannot be read.
func readMessages(raw []byte) (elems []rpcElem, batch bool) {
	t := bytes.Trim(raw, " \t\r\n")
	if len(t) > 0 && t[0] == '[' {
		parts, err := splitBatch(t)
		if err != nil {
			return []rpcElem{{raw: raw, err: err}}, false
		}
		elems = make([]rpcElem, len(parts))
		for i, p := range parts {
			elems[i].raw = p
			elems[i].m, elems[i].err = readMessage(p)
		}
		return elems, true
	}
	m, err := readMessage(raw)
	return []rpcElem{{raw: raw, m: m, err: err}}, false
}

func readMessage(raw []byte) (rpcMessage, error) {
	var m rpcMessage
	if err := strictjson.Unmarshal(raw, &m); err != nil {
		return m, err
	}
	return m, m.shape()
}

// splitBatch splits a JSON array into its elements' exact bytes (syntax
// only: each element is judged by readMessage). encoding/json is enough
// here, and wanted: an array has no names to read differently, its
// elements stay raw bytes, and the strict reader over the whole array
// would refuse every element for one bad one, where a batch is judged
// element by element.
func splitBatch(t []byte) ([][]byte, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(t, &parts); err != nil {
		return nil, fmt.Errorf("%w: %v", strictjson.ErrMalformed, err)
	}
	out := make([][]byte, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

// toolCallParams are the params of a tools/call.
type toolCallParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

// readToolCall reads a tools/call's params strictly: this one reading is
// what the tool policy judges and what is recorded.
func readToolCall(raw json.RawMessage) (toolCallParams, error) {
	var params toolCallParams
	if err := strictjson.Unmarshal(raw, &params); err != nil {
		return params, fmt.Errorf("tools/call params: %w", err)
	}
	if params.Name == "" {
		return params, fmt.Errorf("%w: a tools/call without a tool name", errShape)
	}
	return params, nil
}

// messageID is the id of a message that could not be read, when it can be
// told without doubt (one "id" member, no case variant, a string or a
// number), else null.
func messageID(raw []byte) json.RawMessage {
	id, ok := strictjson.Member(raw, "id")
	if !ok || len(id) == 0 || strictjson.Valid(id) != nil {
		return json.RawMessage("null")
	}
	if c := id[0]; c == '"' || c == '-' || c >= '0' && c <= '9' {
		return id
	}
	return json.RawMessage("null")
}

// MustRecord reports whether an MCP client message may be forwarded only
// once the capture has observed it: a tools/call, a notification of a
// method the capture follows, or anything it cannot read strictly (which
// it refuses). The stdio wrapper asks when the log
// server cannot be reached (fail-closed).
func MustRecord(msg []byte) bool {
	elems, _ := readMessages(msg)
	for _, e := range elems {
		if e.err != nil || e.m.Method == "tools/call" || followedNotification(&e.m) != nil {
			return true
		}
	}
	return false
}

func rpcErrorReply(id json.RawMessage, code int, msg string) []byte {
	b, _ := json.Marshal(rpcMessage{JSONRPC: "2.0", ID: id, Error: &rpcError{Code: code, Message: msg}})
	return b
}

// RPCErrorReply is a JSON-RPC error answering the client message msg
// (with its id when it can be told, else null).
func RPCErrorReply(msg []byte, code int, message string) []byte {
	return rpcErrorReply(messageID(msg), code, message)
}

// mcpPending is a request waiting for its response.
type mcpPending struct {
	method, tool string
	name, uri    string // of prompts/get, resources/read
	start        time.Time
	callID       string // the tool.call event's id
	notes        int    // notifications seen while it was pending
}

// mcpConn is the capture's view of one MCP connection (a stdio wrapper or
// a Streamable HTTP session): who it is, which session it records into,
// and the requests in flight.
type mcpConn struct {
	mu      sync.Mutex
	agent   *Agent
	server  string // the upstream's name
	session string
	front   string // "mcp-stdio" or "mcp-http"
	pending map[string]*mcpPending
	used    time.Time
	// relayMu serializes a stdio connection's relay requests; relayNext is
	// the number of the next message not yet observed (api.MCPRelayRequest.Seq),
	// 0 before the first numbered request; relayAt is when the last
	// numbered request came.
	relayMu   sync.Mutex
	relayNext uint64
	relayAt   time.Time
}

// MCPObserver records what an MCP client and server say to each other. It
// is shared by the Streamable HTTP proxy and the stdio relay.
type MCPObserver struct {
	c      *core
	policy ToolPolicy
	binder *ToolCallBinder
}

func newMCPObserver(c *core, policy ToolPolicy, binder *ToolCallBinder) *MCPObserver {
	return &MCPObserver{c: c, policy: policy, binder: binder}
}

func (o *MCPObserver) common(cn *mcpConn) attrs {
	a := attrs{}
	a.set(event.AttrCaptureFront, cn.front)
	a.set(event.AttrCaptureMode, string(o.c.o.mode))
	a.set(event.AttrMCPServer, cn.server)
	return a
}

// payload attaches raw JSON as the event's payload, unless it is larger
// than the capture records.
func (o *MCPObserver) payload(ev *event.Request, a attrs, raw json.RawMessage) {
	if len(raw) == 0 {
		return
	}
	if len(raw) > o.c.o.maxRecordedBytes {
		a.set(event.AttrCapturePayloadDropped, true)
		a.set(event.AttrCapturePayloadBytes, len(raw))
		return
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) == nil {
		ev.Payload = buf.Bytes()
	}
}

// record queues evs behind the connection's earlier records, without
// waiting for them to be durable; a failure is noted as a capture gap.
func (o *MCPObserver) record(cn *mcpConn, evs ...*event.Request) {
	if len(evs) == 0 {
		return
	}
	at := time.Now().UTC() // when they were observed
	o.c.enqueue(cn.agent.Tenant, cn.session, &recordItem{rec: cn.agent.Recorder, evs: evs, failed: func(err error) {
		o.c.logger.Warn("capture: MCP events not recorded; noted as a gap", "session", cn.session, "events", len(evs), "error", err)
		items := make([]gapItem, len(evs))
		for i, ev := range evs {
			items[i] = gapItem{Kind: ev.Kind, Time: at}
		}
		o.c.noteGap(cn.agent.Tenant, cn.agent.Recorder, cn.session, err, items...)
	}})
}

// relayGap records a capture.gap for the messages first to last of a
// stdio connection, numbers that the wrapper skipped: it gave them up (its
// requests failed, or the log server refused them), so they were passed
// on without a record. Its times span from the connection's last numbered
// request to now, when the messages were read.
func (o *MCPObserver) relayGap(cn *mcpConn, first, last uint64) {
	count := last - first + 1
	a := o.common(cn)
	a.set(event.AttrCaptureGapCount, int64(min(count, math.MaxInt64)))
	a.set(event.AttrCaptureGapFirstTime, timeAttr(cn.relayAt))
	a.set(event.AttrCaptureGapLastTime, timeAttr(time.Now().UTC()))
	a.set(event.AttrCaptureGapError, fmt.Sprintf("the MCP wrapper gave up %d message(s) of the connection (numbers %d to %d): its relay requests failed or were refused, and the messages were not recorded", count, first, last))
	payload, _ := json.Marshal(struct {
		First uint64 `json:"first_seq"`
		Last  uint64 `json:"last_seq"`
	}{first, last})
	o.c.logger.Warn("capture: MCP relay messages given up by the wrapper; noted as a gap", "session", cn.session, "messages", count)
	o.record(cn, &event.Request{Session: cn.session, Kind: event.KindCaptureGap, Actor: systemActor, Attributes: a.raw(), Payload: payload})
}

// exactPayload records raw, byte for byte, as ev's payload (a message that
// could not be read strictly is kept as it came), or notes that it was too
// large; it sets ev's attributes from a.
func (o *MCPObserver) exactPayload(ev *event.Request, a attrs, raw []byte) {
	if len(raw) > o.c.o.maxRecordedBytes {
		a.set(event.AttrCapturePayloadDropped, true)
		a.set(event.AttrCapturePayloadBytes, len(raw))
	} else {
		ev.PayloadBase64, ev.MediaType = base64.StdEncoding.EncodeToString(raw), "application/json"
	}
	ev.Attributes = a.raw()
}

// fromClient observes a message from the client before it is forwarded.
// When reply is not nil it is sent back to the client instead of
// forwarding anything (a tool denied, a message refused, or a tools/call
// that could not be recorded, fail-closed); forward is what to send on
// (the message unchanged, or a batch without what was answered).
//
// Every message is read with the strict reader, and what is recorded and
// what the tool policy judges come from that one reading. A message it
// cannot read as the server would (malformed or ambiguous JSON, a member
// of the wrong type, not a JSON-RPC message, a tools/call without a tool
// name) is refused with a JSON-RPC error and recorded as mcp.refused,
// whatever the capture mode: it never reaches the server.
//
// A notification (no id) of a method the capture follows as a request
// (tools/call, resources/read, prompts/get, initialize, tools/list) is
// refused the same way, since the server may act on it: with
// answerNotes, it is answered with a JSON-RPC error whose id is null (the
// Streamable HTTP proxy); without, it gets no answer, as JSON-RPC gives
// none to a notification (the stdio relay).
func (o *MCPObserver) fromClient(ctx context.Context, cn *mcpConn, raw []byte, answerNotes bool) (forward, reply []byte) {
	elems, batch := readMessages(raw)
	cn.mu.Lock()
	cn.used = time.Now()
	cn.mu.Unlock()
	var replies [][]byte
	keep := make([]bool, len(elems))
	for i := range elems {
		e := &elems[i]
		keep[i] = true
		refuse := func(err error) {
			replies, keep[i] = append(replies, o.refuse(cn, e.raw, err)), false
		}
		if e.err != nil {
			refuse(e.err)
			continue
		}
		m := &e.m
		if err := followedNotification(m); err != nil {
			r := o.refuse(cn, e.raw, err)
			if keep[i] = false; answerNotes {
				replies = append(replies, r)
			}
			continue
		}
		if !m.isRequest() {
			continue
		}
		p := &mcpPending{method: m.Method, start: time.Now()}
		switch m.Method {
		case "tools/call":
			params, err := readToolCall(m.Params)
			if err != nil {
				o.c.ended(MCPProvider, CallRefused)
				refuse(err)
				continue
			}
			p.tool = params.Name
			if r := o.toolCall(ctx, cn, m, p, params.Arguments); r != nil {
				replies, keep[i] = append(replies, r), false
				continue
			}
		case "resources/read", "prompts/get":
			var q struct {
				URI  string `json:"uri"`
				Name string `json:"name"`
			}
			if len(m.Params) > 0 {
				if err := strictjson.Unmarshal(m.Params, &q); err != nil {
					refuse(fmt.Errorf("%s params: %w", m.Method, err))
					continue
				}
			}
			p.uri, p.name = q.URI, q.Name
		case "initialize", "tools/list":
		default:
			continue
		}
		cn.mu.Lock()
		cn.pending[string(m.ID)] = p
		cn.mu.Unlock()
	}
	var rest []json.RawMessage
	for i, k := range keep {
		if k {
			rest = append(rest, elems[i].raw)
		}
	}
	switch {
	case len(rest) == len(elems):
		return raw, nil
	case !batch && len(replies) == 0:
		return nil, nil // a notification refused, unanswered
	case !batch:
		return nil, replies[0]
	}
	if len(rest) > 0 {
		forward, _ = json.Marshal(rest)
	}
	if len(replies) == 0 {
		return forward, nil
	}
	reps := make([]json.RawMessage, len(replies))
	for i, r := range replies {
		reps[i] = r
	}
	rb, _ := json.Marshal(reps)
	return forward, rb
}

// followedNotification returns an error when m is a notification (no id)
// of a method the capture follows as a request (responseKinds): the server
// may act on it (run the tool) though nothing would be recorded or judged.
func followedNotification(m *rpcMessage) error {
	if _, ok := responseKinds[m.Method]; ok && len(m.ID) == 0 {
		return fmt.Errorf("%w: a %s without an id (a notification) is not followed, and not forwarded", errShape, m.Method)
	}
	return nil
}

// refuse records a client message that is not forwarded because it cannot
// be read strictly (why), as mcp.refused with its exact bytes, and returns
// the JSON-RPC error that answers it.
func (o *MCPObserver) refuse(cn *mcpConn, raw []byte, why error) []byte {
	a := o.common(cn)
	id := messageID(raw)
	code := RPCInvalidRequest
	if errors.Is(why, strictjson.ErrMalformed) {
		code = RPCParseError
	}
	a.set(event.AttrErrorType, refusedType(why, "message"))
	a.set(event.AttrMCPRefusedReason, event.Clip(why.Error(), 200))
	if string(id) != "null" {
		a.set(event.AttrJSONRPCRequestID, event.Clip(string(id), 128))
	}
	ev := &event.Request{Session: cn.session, Kind: event.KindMCPRefused, Actor: cn.agent.Actor}
	o.exactPayload(ev, a, raw)
	o.c.logger.Warn("capture: MCP message refused: not strict, unambiguous JSON-RPC", "session", cn.session, "error", why)
	o.record(cn, ev)
	return rpcErrorReply(id, code, "LLMAuditTrail: the message was refused and not forwarded, as the audit capture cannot read it as the server would: "+event.Clip(why.Error(), 200))
}

// refuseEndpoint records an SSE endpoint event of the server that was not
// relayed (why) as mcp.refused with error.type foreign_endpoint.
func (o *MCPObserver) refuseEndpoint(cn *mcpConn, raw []byte, why error) {
	a := o.common(cn)
	a.set(event.AttrErrorType, "foreign_endpoint")
	a.set(event.AttrMCPRefusedReason, event.Clip(why.Error(), 200))
	ev := &event.Request{Session: cn.session, Kind: event.KindMCPRefused, Actor: cn.agent.Actor}
	o.exactPayload(ev, a, raw)
	o.c.logger.Warn("capture: MCP endpoint event refused; stream ended", "session", cn.session, "error", why)
	o.record(cn, ev)
}

// unreadableBatch records raw, the server's answer to the batch forwarded
// that could not be read (why), as the response of each request of it
// still pending (error.type malformed_response, the exact bytes).
func (o *MCPObserver) unreadableBatch(cn *mcpConn, forwarded, raw []byte, why error) {
	elems, _ := readMessages(forwarded)
	var evs []*event.Request
	cn.mu.Lock()
	for _, e := range elems {
		if e.err != nil || !e.m.isRequest() {
			continue
		}
		p := cn.pending[string(e.m.ID)]
		if p == nil {
			continue
		}
		delete(cn.pending, string(e.m.ID))
		ev := o.unreadableResponse(cn, e.m.ID, raw, why, p)
		evs = append(evs, ev)
	}
	cn.mu.Unlock()
	o.record(cn, evs...)
}

// toolCall records a tools/call before it is forwarded; a non-nil reply
// answers the client instead.
func (o *MCPObserver) toolCall(ctx context.Context, cn *mcpConn, m *rpcMessage, p *mcpPending, args json.RawMessage) []byte {
	a := o.common(cn)
	a.set(event.AttrGenAIToolName, p.tool)
	a.set(event.AttrGenAIToolCallID, string(m.ID))
	a.set(event.AttrGenAIToolType, "mcp")
	if o.policy != nil {
		if ok, why := o.policy(cn.agent, cn.server, p.tool); !ok {
			a.set(event.AttrMCPDeniedReason, why)
			ev := &event.Request{Session: cn.session, Kind: event.KindToolDenied, Actor: cn.agent.Actor, Attributes: a.raw()}
			o.payload(ev, a, args)
			ev.Attributes = a.raw()
			o.record(cn, ev)
			o.c.ended(MCPProvider, CallDenied)
			return rpcErrorReply(m.ID, RPCDenied, fmt.Sprintf("tool %q is denied by the audit policy: %s", p.tool, why))
		}
	}
	if o.binder != nil {
		if b, ok := o.binder.take(ctx, cn.agent.Tenant, cn.session, p.tool, args, o.c.o.recordTimeout); ok {
			a.set(event.AttrCaptureLLMResponseID, b.response)
			a.set(event.AttrCaptureLLMToolCallID, b.toolCall)
		}
	}
	ev := &event.Request{Session: cn.session, Kind: event.KindToolCall, Actor: cn.agent.Actor}
	o.payload(ev, a, args)
	ev.Attributes = a.raw()
	// Through the session's record queue, behind what the connection
	// recorded before (order kept); fail-closed waits until it is durable.
	it := &recordItem{rec: cn.agent.Recorder, evs: []*event.Request{ev}}
	if o.c.o.mode != FailClosed {
		it.failed = func(err error) {
			o.c.noteGap(cn.agent.Tenant, cn.agent.Recorder, cn.session, err, gapItem{Kind: event.KindToolCall, Time: time.Now().UTC()})
		}
		o.c.enqueue(cn.agent.Tenant, cn.session, it)
		o.c.forwarded(MCPProvider, time.Since(p.start))
		o.c.ended(MCPProvider, CallForwarded)
		return nil
	}
	it.done = make(chan error, 1)
	o.c.enqueue(cn.agent.Tenant, cn.session, it)
	var err error
	select {
	case err = <-it.done:
	case <-ctx.Done():
		err = context.Cause(ctx)
	}
	if err != nil {
		o.c.logger.Warn("capture: tools/call not recorded; refused (fail-closed)", "session", cn.session, "tool", p.tool, "error", err)
		outcome := CallNotRecorded
		if ctx.Err() != nil {
			outcome = OutcomeAborted
		}
		o.c.ended(MCPProvider, outcome)
		return rpcErrorReply(m.ID, RPCNotRecorded, "the audit log could not record this tool call, so it was not made: "+event.Clip(err.Error(), 200))
	}
	p.callID = it.res[0].ID
	o.c.forwarded(MCPProvider, time.Since(p.start))
	o.c.ended(MCPProvider, CallForwarded)
	return nil
}

// fromServer observes a message from the server before it is forwarded
// to the client: responses to the requests it follows are recorded first
// (a failure is noted as a capture gap; a result cannot be unmade). A
// response that cannot be read strictly is still forwarded (the server
// has answered), and recorded, when its id tells which request it answers,
// with error.type ambiguous_response or malformed_response and none of
// what it says read.
func (o *MCPObserver) fromServer(ctx context.Context, cn *mcpConn, raw []byte) {
	elems, _ := readMessages(raw)
	var evs []*event.Request
	cn.mu.Lock()
	cn.used = time.Now()
	for i := range elems {
		e := &elems[i]
		m := &e.m
		if e.err != nil {
			id := messageID(e.raw)
			p := cn.pending[string(id)]
			if p == nil {
				o.c.logger.Warn("capture: unreadable MCP server message passed on, not recorded", "session", cn.session, "error", e.err)
				continue
			}
			delete(cn.pending, string(id))
			ev := o.unreadableResponse(cn, id, e.raw, e.err, p)
			evs = append(evs, ev)
			continue
		}
		if m.Method != "" && len(m.ID) == 0 { // a notification: counted on what is pending
			for _, p := range cn.pending {
				p.notes++
			}
			continue
		}
		if !m.isResponse() {
			continue
		}
		p := cn.pending[string(m.ID)]
		if p == nil {
			continue
		}
		delete(cn.pending, string(m.ID))
		if ev := o.responseEvent(cn, m, p); ev != nil {
			evs = append(evs, ev)
		}
	}
	cn.mu.Unlock()
	// The message goes on now (a result cannot be unmade).
	o.record(cn, evs...)
}

// responseKinds are the events of the responses the capture follows.
var responseKinds = map[string]string{
	"tools/call":     event.KindToolResult,
	"initialize":     event.KindMCPInitialize,
	"tools/list":     event.KindMCPToolsList,
	"resources/read": event.KindResourceRead,
	"prompts/get":    event.KindPromptGet,
}

// unreadableResponse is the event of a response to p that could not be
// read strictly (why): what the request said, the exact bytes, nothing
// read from them.
func (o *MCPObserver) unreadableResponse(cn *mcpConn, id json.RawMessage, raw []byte, why error, p *mcpPending) *event.Request {
	a := o.common(cn)
	a.set(event.AttrCaptureDurationMS, millis(time.Since(p.start)))
	a.set(event.AttrErrorType, refusedType(why, "response"))
	a.set(event.AttrMCPUnreadableReason, event.Clip(why.Error(), 200))
	o.requestAttrs(a, p, id)
	ev := &event.Request{Session: cn.session, Kind: responseKinds[p.method], Actor: cn.agent.Actor}
	o.exactPayload(ev, a, raw)
	return ev
}

// requestAttrs are the attributes of a response event that come from its
// request.
func (o *MCPObserver) requestAttrs(a attrs, p *mcpPending, id json.RawMessage) {
	switch p.method {
	case "tools/call":
		a.set(event.AttrGenAIToolName, p.tool)
		a.set(event.AttrGenAIToolCallID, string(id))
		a.set(event.AttrGenAIToolType, "mcp")
		if p.callID != "" {
			a.set(event.AttrCaptureToolCallID, p.callID)
		}
		if p.notes > 0 {
			a.set(event.AttrMCPNotifications, p.notes)
		}
	case "resources/read":
		a.set(event.AttrMCPResourceURI, p.uri)
	case "prompts/get":
		a.set(event.AttrMCPPromptName, p.name)
	}
}

func (o *MCPObserver) responseEvent(cn *mcpConn, m *rpcMessage, p *mcpPending) *event.Request {
	kind, ok := responseKinds[p.method]
	if !ok {
		return nil
	}
	a := o.common(cn)
	a.set(event.AttrCaptureDurationMS, millis(time.Since(p.start)))
	body := m.Result
	if m.Error != nil {
		a.set(event.AttrErrorType, fmt.Sprintf("jsonrpc.%d", m.Error.Code))
		a.set(event.AttrMCPErrorMessage, m.Error.Message)
		body, _ = json.Marshal(m.Error)
	}
	ev := &event.Request{Session: cn.session, Kind: kind, Actor: cn.agent.Actor}
	o.requestAttrs(a, p, m.ID)
	// What the result says, read strictly; a result that is ambiguous to
	// read (a case variant of a member read) is recorded as such.
	read := func(v any) bool {
		err := strictjson.Unmarshal(m.Result, v)
		if errors.Is(err, strictjson.ErrAmbiguous) {
			a.set(event.AttrErrorType, errAmbiguousResponse)
		}
		return err == nil
	}
	switch {
	case m.Error != nil:
	case p.method == "tools/call":
		var r struct {
			IsError bool `json:"isError"`
		}
		if read(&r) {
			a.set(event.AttrMCPIsError, r.IsError)
			if r.IsError {
				a.set(event.AttrErrorType, "tool_error")
			}
		}
	case p.method == "initialize":
		var r struct {
			ProtocolVersion string                     `json:"protocolVersion"`
			Capabilities    map[string]json.RawMessage `json:"capabilities"`
			ServerInfo      struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"serverInfo"`
		}
		if read(&r) {
			a.set(event.AttrMCPProtocolVersion, r.ProtocolVersion)
			a.set(event.AttrMCPServerName, r.ServerInfo.Name)
			a.set(event.AttrMCPServerVersion, r.ServerInfo.Version)
			caps := make([]string, 0, len(r.Capabilities))
			for k := range r.Capabilities {
				caps = append(caps, k)
			}
			sort.Strings(caps)
			a.set(event.AttrMCPCapabilities, caps)
		}
	case p.method == "tools/list":
		var r struct {
			Tools []json.RawMessage `json:"tools"`
		}
		if read(&r) {
			hashes, all := ToolHashes(r.Tools)
			a.set(event.AttrMCPToolsCount, len(r.Tools))
			a.set(event.AttrMCPToolsSHA256, all)
			a.set(event.AttrMCPToolHashes, hashes)
		}
	}
	o.payload(ev, a, body)
	ev.Attributes = a.raw()
	return ev
}

// ToolHashes hashes each tool definition of a tools/list result: SHA-256
// of its JSON with keys sorted, as "name sha256hex" (at most 64 listed;
// all is the hash over every definition in order), so that a tool whose
// definition changed between two listings shows a changed hash.
func ToolHashes(tools []json.RawMessage) (hashes []string, all string) {
	h := sha256.New()
	for _, t := range tools {
		var v any
		if strictjson.Unmarshal(t, &v) != nil {
			continue
		}
		canon, _ := json.Marshal(v) // maps marshal with sorted keys
		sum := sha256.Sum256(canon)
		h.Write(sum[:])
		var named struct {
			Name string `json:"name"`
		}
		strictjson.Unmarshal(t, &named) // a case variant: no name
		hashes = append(hashes, clean(named.Name, 80)+" "+hex.EncodeToString(sum[:]))
	}
	return hashes, hex.EncodeToString(h.Sum(nil))
}

// ToolCallBinder pairs the tool calls a model asked for (seen by the LLM
// proxy in its responses) with the MCP tools/call that answers them, in
// the same tenant and session: same tool name (llmapi.ToolKey: dots and
// underscores alike) and the same arguments (as JSON values), oldest first.
type ToolCallBinder struct {
	mu    sync.Mutex
	calls map[string][]*boundCall // tenant/session
}

// boundCall is a model's tool call; its indices are known once the
// response that asked for it is recorded (ready closed, ok set).
type boundCall struct {
	name     string
	args     string // canonical JSON
	at       time.Time
	ready    chan struct{}
	once     sync.Once
	ok       bool
	response string // event id of the llm.response
	toolCall string // event id of its tool.call event
}

func (c *boundCall) resolve(response, toolCall string) {
	c.once.Do(func() { c.response, c.toolCall, c.ok = response, toolCall, true; close(c.ready) })
}

func (c *boundCall) fail() { c.once.Do(func() { close(c.ready) }) }

// NewToolCallBinder returns an empty binder; give the same one
// (WithToolCallBinder) to the LLM captures (Proxy, Interceptor, Hook) and
// the MCP capture.
func NewToolCallBinder() *ToolCallBinder { return &ToolCallBinder{calls: map[string][]*boundCall{}} }

const binderMaxPerSession = 256

func canonicalJSON(raw []byte) string {
	var v any
	if len(bytes.TrimSpace(raw)) == 0 || strictjson.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	if m, ok := v.(map[string]any); ok && len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (b *ToolCallBinder) note(tenant, session, name string, args []byte) *boundCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := &boundCall{name: llmapi.ToolKey(name), args: canonicalJSON(args), at: time.Now(), ready: make(chan struct{})}
	k := tenant + "/" + session
	l := append(b.calls[k], c)
	if len(l) > binderMaxPerSession {
		l = l[len(l)-binderMaxPerSession:]
	}
	b.calls[k] = l
	if len(b.calls) > 10_000 { // forget sessions idle for an hour
		for key, calls := range b.calls {
			if time.Since(calls[len(calls)-1].at) > time.Hour {
				delete(b.calls, key)
			}
		}
	}
	return c
}

// take finds and removes the oldest model tool call that the tools/call
// answers, and waits (up to wait) until its indices are known.
func (b *ToolCallBinder) take(ctx context.Context, tenant, session, name string, args []byte, wait time.Duration) (*boundCall, bool) {
	b.mu.Lock()
	k := tenant + "/" + session
	want, a := llmapi.ToolKey(name), canonicalJSON(args)
	var c *boundCall
	for i, x := range b.calls[k] {
		if x.name == want && x.args == a {
			c = x
			b.calls[k] = append(b.calls[k][:i:i], b.calls[k][i+1:]...)
			break
		}
	}
	b.mu.Unlock()
	if c == nil {
		return nil, false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.ready:
	case <-t.C:
	case <-ctx.Done():
	}
	select {
	case <-c.ready:
		return c, c.ok
	default:
		return nil, false
	}
}

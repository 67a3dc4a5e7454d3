package capture

import (
	"context"
	"encoding/base64"
	"errors"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// callSpec describes an attempt as it leaves the agent.
type callSpec struct {
	rec       Recorder
	scope     string // gap scope: one per tenant (proxy) or per Hook
	principal string // call grouping: who calls
	session   string // as given by the client, "" if none
	explicit  string // X-Audit-Call
	actor     event.Actor
	subject   string // the data subject, "" if none
	agentID   string
	upstream  string // the proxy's upstream name, or the Hook's target host
	provider  string // gen_ai.provider.name
	server    string // upstream host
	method    string
	path      string // path at the provider, e.g. /v1/chat/completions
	rawQuery  string
	header    http.Header // as sent by the agent
	body      []byte
	// budget, if set, is where the response's recorded bytes are taken
	// from, for client (see capBuf).
	budget *BodyBudget
	client string
	// hold is what body holds of the budget (nil: nothing); the request's
	// record keeps it until it is done with the bytes.
	hold *bodyHold
	// received is when the attempt reached the capture (zero: when begin
	// was called); see Metrics.Forwarded.
	received time.Time
}

// exchange is one attempt of one call, from its request to the end of its
// response. Its methods are not safe for concurrent use; the front doors
// call them from one goroutine at a time.
type exchange struct {
	c       *core
	rec     Recorder
	scope   string
	actor   event.Actor
	ep      endpoint
	info    requestInfo
	callID  string
	attempt int
	session string
	subject string
	common  attrs // on every event of the attempt
	model   attrs // common, and the model call's (llm.request and llm.response)

	reqRes *event.Appended // the request's record, when FailClosed

	provider string // for Metrics
	// unmeasured: the attempt's outcome was reported to Metrics already
	// (the agent gave up while its request was being recorded).
	unmeasured bool

	start      time.Time
	status     int
	requestID  string
	mediaType  string
	stream     bool
	headersAt  time.Time
	firstChunk time.Time
	length     int64 // Content-Length of the response, -1 if unknown
	parser     *respParser
	body       capBuf
	done       bool
	reserved   *recordItem
	// undelivered: the proxy failed to pass bytes it observed on to the
	// agent.
	undelivered bool
}

// begin records the request event of an attempt (FailClosed: before
// returning; FailOpen: in the background) and returns the exchange that
// follows the attempt. In FailClosed mode an error is a *NotRecordedError,
// or ctx's error if ctx ends first; either way the attempt must not be
// sent.
func (c *core) begin(ctx context.Context, s *callSpec) (*exchange, error) {
	x := &exchange{c: c, rec: s.rec, scope: s.scope, actor: s.actor, provider: s.provider, subject: s.subject, start: time.Now()}
	received := s.received
	if received.IsZero() {
		received = x.start
	}
	x.ep = classify(s.method, s.path, s.header, s.upstream)
	info, refused := parseRequest(x.ep.api, s.body)
	x.info = info
	if x.info.Model == "" && refused == nil {
		x.info.Model = modelFromPath(x.ep.api, s.path)
	}
	x.callID, x.attempt, x.session = c.calls.assign(callRef{
		principal: s.principal, session: s.session, explicit: s.explicit,
		idem: s.header.Get("Idempotency-Key"), retry: retryCount(s.header),
		method: s.method, path: s.path, body: s.body,
	}, time.Now())
	x.body.max = c.o.maxRecordedBytes
	x.body.budget, x.body.client = s.budget, s.client

	// Every event of the attempt carries its call id and attempt number;
	// llm.request and llm.response also name the model call; the rest is
	// said once, by llm.request (leaves stay near 1 KiB).
	a := attrs{}
	a.set(event.AttrCaptureCallID, x.callID)
	a.set(event.AttrCaptureAttempt, x.attempt)
	a.set(event.AttrGenAIAgentID, s.agentID)
	x.common = a
	x.model = a.clone()
	if x.ep.api != apiOther {
		x.model.set(event.AttrGenAIProviderName, s.provider)
		x.model.set(event.AttrGenAIOperationName, x.ep.operation)
	}
	x.model.set(event.AttrGenAIRequestModel, x.info.Model)
	// The agent's trace context, when its HTTP instrumentation sent one:
	// the OTLP receiver links the spans the agent reports for this call to
	// these events (docs/otel.md).
	if trace, span := traceContext(s.header); trace != "" {
		x.model.set(event.AttrOtelTraceID, trace)
		x.model.set(event.AttrOtelParentSpanID, span)
	}

	req := x.model.clone()
	req.set(event.AttrCaptureFront, c.front)
	req.set(event.AttrCaptureMode, string(c.o.mode))
	req.set(event.AttrCaptureUpstream, s.upstream)
	req.set(event.AttrCaptureAPI, x.ep.api)
	req.set(event.AttrServerAddress, s.server)
	req.set(event.AttrHTTPRequestMethod, s.method)
	req.set(event.AttrURLPath, s.path)
	req.set(event.AttrURLQuery, queryAttr(c.o.fingerprintKey, s.rawQuery))
	headerAttrs(req, s.header)
	credentialAttrs(req, c.o.fingerprintKey, s.header)
	if x.info.Stream {
		req.set(event.AttrGenAIRequestStream, true)
	}
	req.set(event.AttrGenAIRequestMaxTokens, x.info.MaxTokens)
	req.set(event.AttrGenAIRequestTemperature, x.info.Temperature)
	req.set(event.AttrGenAIRequestTopP, x.info.TopP)
	req.set(event.AttrGenAIRequestChoiceCount, x.info.ChoiceCount)
	req.set(event.AttrGenAIRequestSeed, x.info.Seed)
	if x.info.SystemPrompt != "" {
		req.set(event.AttrCaptureSystemPromptSHA256, x.info.SystemPrompt)
	}
	if x.info.EncodingFormat != "" {
		req.set(event.AttrGenAIRequestEncodingFormats, []string{x.info.EncodingFormat})
	}
	ev := &event.Request{Session: x.session, Kind: event.KindLLMRequest, Actor: s.actor, Subject: x.subject}
	if refused != nil {
		ev.Kind = event.KindLLMRefused
		req.set(event.AttrErrorType, refusedType(refused, "request"))
		req.set(event.AttrCaptureRefusedReason, event.Clip(refused.Error(), 200))
	}
	var rb capBuf
	rb.max = c.o.maxRecordedBytes
	rb.whole(s.body)
	rb.payload(ev, req, mediaType(s.header.Get("Content-Type"), "application/octet-stream"))
	ev.Attributes = req.raw()

	// The queued record holds the body's bytes (its payload) until it is
	// done with them: so does its share of the budget, also when the call
	// has gone upstream before (fail-open) or was refused.
	s.hold.retain()
	recorded := func([]event.Appended) { s.hold.release() }
	if refused != nil {
		// Never sent, whatever the mode: recorded like a denied tool call,
		// in the session's order, a failure noted as a gap.
		c.logger.Warn("capture: request refused: its body is not strict, unambiguous JSON",
			"session", x.session, "call", x.callID, "error", refused)
		c.enqueue(s.scope, x.session, &recordItem{rec: s.rec, evs: []*event.Request{ev}, recorded: recorded, failed: func(err error) {
			s.hold.release()
			c.noteGap(s.scope, s.rec, x.session, err, x.gapItem(event.KindLLMRefused, "", 0))
		}})
		c.ended(x.provider, CallRefused)
		return nil, &RefusedError{Err: refused}
	}

	// The tool results the agent sends back are recorded first, each once
	// per session (toolresult.go): the tools ran before this request.
	results := c.tools.fresh(ctx, s.scope, x.session, x.info.ToolResults)
	evs := append(x.toolResultEvents(results), ev)
	it := &recordItem{rec: s.rec, evs: evs, recorded: recorded, failed: func(error) {
		s.hold.release()
		c.tools.forget(s.scope, x.session, results)
	}}
	if c.o.mode == FailClosed {
		it.done = make(chan error, 1)
		c.enqueue(s.scope, x.session, it)
		select {
		case err := <-it.done:
			if err != nil {
				c.logger.Warn("capture: request not recorded; refusing the call (fail-closed)",
					"session", x.session, "call", x.callID, "error", err)
				c.ended(x.provider, CallNotRecorded)
				return nil, &NotRecordedError{Err: err}
			}
			x.reqRes = &it.res[len(it.res)-1]
		case <-ctx.Done():
			// The agent gave up (its SDK's timeout, or it went away)
			// before the record was durable: it gets its own error, and a
			// request recorded after all is closed by an aborted response.
			cause := context.Cause(ctx)
			c.ended(x.provider, OutcomeAborted)
			x.unmeasured = true
			c.bg.add()
			go func() {
				defer c.bg.done()
				if <-it.done == nil {
					x.finish(endClient, cause)
				}
			}()
			return nil, ctx.Err()
		}
	} else {
		it.failed = func(err error) {
			s.hold.release()
			c.tools.forget(s.scope, x.session, results)
			c.logger.Warn("capture: request not recorded; forwarded anyway (fail-open)",
				"session", x.session, "call", x.callID, "error", err)
			items := make([]gapItem, 0, len(evs))
			for range results {
				items = append(items, x.gapItem(event.KindToolResult, "", 0))
			}
			c.noteGap(s.scope, s.rec, x.session, err, append(items, x.gapItem(event.KindLLMRequest, "", 0))...)
		}
		c.enqueue(s.scope, x.session, it)
	}
	x.start = time.Now()
	c.forwarded(x.provider, x.start.Sub(received))
	return x, nil
}

// refusedType is error.type of a message refused by the strict reader:
// ambiguous_WHAT (duplicate names, case variants) or malformed_WHAT.
func refusedType(err error, what string) string {
	if errors.Is(err, strictjson.ErrAmbiguous) {
		return "ambiguous_" + what
	}
	return "malformed_" + what
}

// gapItem describes one of the attempt's events that was not recorded. It
// reads only what begin set, so the background request record may call it.
func (x *exchange) gapItem(kind, outcome string, status int) gapItem {
	return gapItem{Kind: kind, Time: time.Now().UTC(), CallID: x.callID, Attempt: x.attempt,
		Model: event.Clip(x.info.Model, 128), Status: status, Outcome: outcome}
}

// response notes the upstream's response head; length is its
// Content-Length, -1 if unknown.
func (x *exchange) response(status int, h http.Header, length int64) {
	x.headersAt = time.Now()
	x.status = status
	x.length = length
	x.body.hint = length
	x.requestID = h.Get("X-Request-Id")
	if x.requestID == "" {
		x.requestID = h.Get("Request-Id")
	}
	ct := h.Get("Content-Type")
	x.mediaType = mediaType(ct, "application/octet-stream")
	if mt, _, _ := mime.ParseMediaType(ct); mt == "text/event-stream" {
		x.stream = true
		x.parser = newRespParser(x.ep.api)
	}
}

// observe sees a chunk of the response body on its way to the agent.
func (x *exchange) observe(p []byte) {
	if len(p) == 0 {
		return
	}
	if x.firstChunk.IsZero() {
		x.firstChunk = time.Now()
	}
	x.body.write(p)
	if x.parser != nil {
		x.parser.Write(p)
	}
}

// endKind says how an attempt ended.
type endKind int

const (
	endEOF      endKind = iota // the response body was read to its end
	endClient                  // the agent went away or stopped reading
	endUpstream                // no response, or its body broke off
)

// finish queues the attempt's llm.response and tool.call events for
// recording; it does not wait. Events that cannot be recorded are noted as a
// gap.
func (x *exchange) finish(how endKind, cause error) {
	if x.done {
		return
	}
	x.done = true
	end := time.Now()
	var sum summary
	switch {
	case x.parser != nil:
		sum = x.parser.summary()
	case x.status != 0 && !x.body.truncated() && (x.ep.api != apiOther || x.status >= 400):
		sum = parseBody(x.ep.api, x.status, x.body.buf)
	}
	// The agent has the whole response when the stream's terminator or the
	// body's last byte reached it (an SDK may stop reading there without
	// waiting for EOF). A chunked JSON body has no length: it is whole once
	// the bytes delivered form a complete JSON object, since a JSON decoder
	// stops there and the closing chunk may not have arrived yet.
	whole := !x.undelivered && (sum.Terminated ||
		(!x.stream && x.length >= 0 && x.body.total == x.length) ||
		(!x.stream && x.length < 0 && !x.body.truncated() && completeJSONObject(x.body.buf)))
	outcome, errType := OutcomeComplete, ""
	switch {
	case x.status == 0 && how == endClient:
		outcome, errType = OutcomeAborted, errorClass(cause, "canceled")
	case x.status == 0:
		outcome, errType = OutcomeUpstreamError, errorClass(cause, "upstream_unreachable")
	case x.status >= 400:
		outcome, errType = OutcomeUpstreamError, sum.ErrorType
		if errType == "" || errType == "error" {
			errType = strconv.Itoa(x.status)
		}
	case how == endClient && !whole:
		outcome, errType = OutcomeAborted, errorClass(cause, "client_closed")
	case how == endUpstream && !whole:
		outcome, errType = OutcomeUpstreamError, "body_interrupted"
		if x.stream {
			errType = "stream_interrupted"
		}
	case x.stream && !sum.Terminated:
		outcome, errType = OutcomeUpstreamError, "stream_truncated"
	}
	if outcome == OutcomeComplete && sum.ErrorType != "" {
		outcome, errType = OutcomeUpstreamError, sum.ErrorType
	}
	if sum.Ambiguous && (outcome == OutcomeComplete || errType == "" || errType == strconv.Itoa(x.status)) {
		// The client read the response, and may have read it otherwise
		// than the capture could: what it says is not recorded as read.
		outcome, errType = OutcomeUpstreamError, errAmbiguousResponse
	}

	if !x.unmeasured {
		x.c.ended(x.provider, outcome)
	}

	a := x.model.clone()
	a.set(event.AttrCaptureOutcome, outcome)
	a.set(event.AttrErrorType, errType)
	if cause != nil && outcome != OutcomeComplete {
		a.set(event.AttrCaptureError, event.Clip(cause.Error(), 256))
	}
	if x.status != 0 {
		a.set(event.AttrHTTPResponseStatusCode, x.status)
	}
	a.set(event.AttrCaptureUpstreamRequestID, x.requestID)
	a.set(event.AttrGenAIResponseID, sum.ResponseID)
	a.set(event.AttrGenAIResponseModel, sum.ResponseModel)
	a.set(event.AttrGenAIResponseFinishReasons, sum.FinishReasons)
	a.set(event.AttrGenAIUsageInputTokens, sum.Usage.Input)
	a.set(event.AttrGenAIUsageOutputTokens, sum.Usage.Output)
	a.set(event.AttrGenAIUsageCacheReadInputTokens, sum.Usage.CacheRead)
	a.set(event.AttrGenAIUsageCacheCreationInputTokens, sum.Usage.CacheCreation)
	a.set(event.AttrGenAIUsageReasoningOutputTokens, sum.Usage.Reasoning)
	if !x.headersAt.IsZero() {
		a.set(event.AttrCaptureTimeToFirstByteMS, millis(x.headersAt.Sub(x.start)))
	}
	if !x.firstChunk.IsZero() && x.stream {
		a.set(event.AttrGenAIResponseTimeToFirstChunk, x.firstChunk.Sub(x.start).Seconds())
	}
	a.set(event.AttrCaptureDurationMS, millis(end.Sub(x.start)))
	if x.stream {
		a.set(event.AttrCaptureStream, true)
		a.set(event.AttrCaptureStreamTerminated, sum.Terminated)
		a.set(event.AttrCaptureStreamEvents, sum.Events)
		if sum.Dropped > 0 {
			a.set(event.AttrCaptureStreamDroppedEvents, sum.Dropped)
		}
	}
	if len(sum.ToolCalls) > 0 {
		a.set(event.AttrCaptureToolCalls, len(sum.ToolCalls))
	}

	resp := &event.Request{Session: x.session, Kind: event.KindLLMResponse, Actor: x.actor, Subject: x.subject}
	if x.status != 0 {
		x.body.payload(resp, a, x.mediaType)
	}
	resp.Attributes = a.raw()
	evs := []*event.Request{resp}
	items := []gapItem{x.gapItem(event.KindLLMResponse, outcome, x.status)}
	for _, t := range sum.ToolCalls {
		ta := x.common.clone()
		ta.set(event.AttrGenAIToolName, t.Name)
		ta.set(event.AttrGenAIToolCallID, t.ID)
		ta.set(event.AttrGenAIToolType, t.Type)
		ev := &event.Request{Session: x.session, Kind: event.KindToolCall, Actor: x.actor, Subject: x.subject, Attributes: ta.raw()}
		if len(t.Args) > 0 {
			mt := "text/plain; charset=utf-8"
			if strictjson.IsJSON(t.Args) {
				mt = "application/json"
			}
			ev.PayloadBase64, ev.MediaType = base64.StdEncoding.EncodeToString(t.Args), mt
		}
		evs = append(evs, ev)
		items = append(items, x.gapItem(event.KindToolCall, "", x.status))
	}
	// The results of these calls, when the agent sends them, are named
	// after them.
	x.c.tools.noteCalls(x.scope, x.session, sum.ToolCalls)
	// The recorded bytes stay taken from the budget until the record is
	// done with them.
	body := &x.body
	failed := func(err error) {
		body.release()
		x.c.logger.Warn("capture: response not recorded; noted as a gap",
			"session", x.session, "call", x.callID, "error", err)
		x.c.noteGap(x.scope, x.rec, x.session, err, items...)
	}
	recorded := func([]event.Appended) { body.release() }
	if b := x.c.o.binder; b != nil && len(sum.ToolCalls) > 0 {
		// The model asked for tools: an MCP tools/call of the same session
		// that answers one is bound to it (see ToolCallBinder).
		pending := make([]*boundCall, len(sum.ToolCalls))
		for i, t := range sum.ToolCalls {
			pending[i] = b.note(x.scope, x.session, t.Name, t.Args)
		}
		recorded = func(res []event.Appended) {
			body.release()
			for i, bc := range pending {
				if i+1 < len(res) {
					bc.resolve(res[0].ID, res[i+1].ID)
				}
			}
		}
		inner := failed
		failed = func(err error) {
			for _, bc := range pending {
				bc.fail()
			}
			inner(err)
		}
	}
	if x.reserved != nil {
		fill(x.reserved, x.rec, evs, failed, recorded)
		return
	}
	x.c.enqueue(x.scope, x.session, &recordItem{rec: x.rec, evs: evs, failed: failed, recorded: recorded})
}

// ending reports whether the response is complete once the bytes observed
// so far reach the agent: its Content-Length is reached, or its stream's
// terminator seen.
func (x *exchange) ending() bool {
	return (x.length >= 0 && x.body.total >= x.length) || (x.parser != nil && x.parser.sum.Terminated)
}

// reserve takes the response's place in the session's record queue now
// (see queue.go); finish fills it.
func (x *exchange) reserve() {
	if x.reserved == nil {
		x.reserved = x.c.reserve(x.scope, x.session)
	}
}

// errorClass names a client- or transport-side failure for error.type.
func errorClass(err error, def string) string {
	var ne net.Error
	switch {
	case err == nil:
		return def
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return def
}

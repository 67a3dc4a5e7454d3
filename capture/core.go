package capture

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

// core is what the proxy and the Hook share: options, call grouping, gap
// tracking and the recording of one attempt (exchange).
type core struct {
	o      options
	front  string // "proxy" or "middleware"
	calls  *callTable
	gaps   *gaps
	logger *slog.Logger

	bg       tracker // queued records
	qmu      sync.Mutex
	queues   map[queueKey]*queue // pending records by session; present while its runner runs
	loopOnce sync.Once
	loopDone chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
}

// tracker counts background work; unlike a sync.WaitGroup it may be waited
// on while work is still being added.
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{}
}

func (t *tracker) add() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
}

// wait waits until no work is in progress.
func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return nil
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newCore(front string, opts []Option, maxRecorded int) (*core, error) {
	o := options{
		mode:             FailClosed,
		maxRequestBytes:  DefaultMaxRequestBytes,
		maxRecordedBytes: maxRecorded,
		recordTimeout:    DefaultRecordTimeout,
		recordLinger:     DefaultRecordLinger,
		retryInterval:    2 * time.Second,
		actor:            auditlog.Actor{Type: "agent", ID: "agent"},
	}
	for _, f := range opts {
		f(&o)
	}
	if _, err := ParseMode(string(o.mode)); err != nil {
		return nil, err
	}
	if o.maxRequestBytes <= 0 || o.maxRecordedBytes <= 0 || o.recordTimeout <= 0 || o.retryInterval <= 0 || o.recordLinger < 0 {
		return nil, errors.New("capture: limits and timeouts must be positive")
	}
	if len(o.fingerprintKey) == 0 {
		o.fingerprintKey = make([]byte, 32)
		rand.Read(o.fingerprintKey)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return &core{o: o, front: front, calls: newCallTable(), gaps: newGaps(), logger: o.logger,
		queues: map[queueKey]*queue{}, stop: make(chan struct{}), loopDone: make(chan struct{})}, nil
}

var systemActor = auditlog.Actor{Type: "system", ID: "capture"}

// record appends evs through rec, carrying the scope's pending gap events
// in the same all-or-nothing batch, ahead of them.
func (c *core) record(ctx context.Context, rec Recorder, scope string, evs []*auditlog.Request) ([]auditlog.Result, error) {
	pend := c.gaps.take(scope, maxGapsPerBatch)
	batch := make([]*auditlog.Request, 0, len(pend)+len(evs))
	if len(pend) > 0 {
		common := attrs{}
		common.set("capture.front", c.front)
		common.set("capture.mode", string(c.o.mode))
		for _, g := range pend {
			batch = append(batch, g.event(systemActor, common))
		}
	}
	batch = append(batch, evs...)
	if len(batch) == 0 {
		return nil, nil
	}
	res, err := rec.Record(ctx, batch)
	if err != nil && len(pend) > 0 && errors.Is(err, auditlog.ErrInvalidEvent) {
		// A gap event we built was refused: never let it block calls.
		c.logger.Error("capture: gap event refused, dropping it", "error", err, "events", len(pend))
		pend = nil
		if len(evs) == 0 {
			return nil, nil
		}
		res, err = rec.Record(ctx, evs)
	}
	if err != nil {
		c.gaps.restore(scope, rec, pend)
		return nil, err
	}
	if len(res) != len(pend)+len(evs) {
		return nil, fmt.Errorf("capture: recorder returned %d results for %d events", len(res), len(pend)+len(evs))
	}
	if len(pend) > 0 {
		n := 0
		for _, g := range pend {
			n += g.count
		}
		c.logger.Info("capture: recorded gaps", "gaps", len(pend), "missed_events", n)
	}
	return res[len(pend):], nil
}

// noteGap remembers events that could not be recorded and makes sure they
// are retried even if no call comes to carry them.
func (c *core) noteGap(scope string, rec Recorder, session string, err error, items ...gapItem) {
	c.gaps.note(scope, rec, session, err, items...)
	c.loopOnce.Do(func() { go c.retryLoop() })
}

func (c *core) retryLoop() {
	defer close(c.loopDone)
	t := time.NewTicker(c.o.retryInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.flushGaps(context.Background())
		}
	}
}

// flushGaps tries to record every pending gap.
func (c *core) flushGaps(ctx context.Context) {
	for scope, rec := range c.gaps.pending() {
		for c.gaps.has(scope) {
			rctx, cancel := context.WithTimeout(ctx, c.o.recordTimeout)
			_, err := c.record(rctx, rec, scope, nil)
			cancel()
			if err != nil {
				break
			}
		}
	}
}

// close waits for background records, tries once more to record pending
// gaps, and reports what stays unrecorded.
func (c *core) close(ctx context.Context) error {
	c.stopOnce.Do(func() { close(c.stop) })
	c.loopOnce.Do(func() { close(c.loopDone) }) // never started
	select {
	case <-c.loopDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := c.bg.wait(ctx); err != nil {
		return fmt.Errorf("capture: waiting for background records: %w", err)
	}
	c.flushGaps(ctx)
	if n := c.gaps.count(); n > 0 {
		c.logger.Error("capture: events missed and no gap event recorded", "missed_events", n)
		return fmt.Errorf("capture: %d missed events are not covered by a recorded capture.gap event", n)
	}
	return nil
}

// callSpec describes an attempt as it leaves the agent.
type callSpec struct {
	rec       Recorder
	scope     string // gap scope: one per tenant (proxy) or per Hook
	principal string // call grouping: who calls
	session   string // as given by the client, "" if none
	explicit  string // X-Audit-Call
	actor     auditlog.Actor
	agentID   string
	upstream  string // the proxy's upstream name, or the Hook's target host
	provider  string // gen_ai.provider.name
	server    string // upstream host
	method    string
	path      string // path at the provider, e.g. /v1/chat/completions
	rawQuery  string
	header    http.Header // as sent by the agent
	body      []byte
}

// exchange is one attempt of one call, from its request to the end of its
// response. Its methods are not safe for concurrent use; the front doors
// call them from one goroutine at a time.
type exchange struct {
	c       *core
	rec     Recorder
	scope   string
	actor   auditlog.Actor
	ep      endpoint
	info    requestInfo
	callID  string
	attempt int
	session string
	common  attrs // on every event of the attempt
	model   attrs // common, and the model call's (llm.request and llm.response)

	reqRes *auditlog.Result // the request's record, when FailClosed

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
	x := &exchange{c: c, rec: s.rec, scope: s.scope, actor: s.actor, start: time.Now()}
	x.ep = classify(s.method, s.path, s.header, s.upstream)
	x.info = parseRequest(x.ep.api, s.body)
	x.callID, x.attempt, x.session = c.calls.assign(callRef{
		principal: s.principal, session: s.session, explicit: s.explicit,
		idem: s.header.Get("Idempotency-Key"), retry: retryCount(s.header),
		method: s.method, path: s.path, body: s.body,
	}, time.Now())
	x.body.max = c.o.maxRecordedBytes

	// Every event of the attempt carries its call id and attempt number;
	// llm.request and llm.response also name the model call; the rest is
	// said once, by llm.request (leaves stay near 1 KiB).
	a := attrs{}
	a.set("capture.call.id", x.callID)
	a.set("capture.attempt", x.attempt)
	a.set("gen_ai.agent.id", s.agentID)
	x.common = a
	x.model = a.clone()
	if x.ep.api != apiOther {
		x.model.set("gen_ai.provider.name", s.provider)
		x.model.set("gen_ai.operation.name", x.ep.operation)
	}
	x.model.set("gen_ai.request.model", x.info.Model)

	req := x.model.clone()
	req.set("capture.front", c.front)
	req.set("capture.mode", string(c.o.mode))
	req.set("capture.upstream", s.upstream)
	req.set("capture.api", x.ep.api)
	req.set("server.address", s.server)
	req.set("http.request.method", s.method)
	req.set("url.path", s.path)
	req.set("url.query", redactQuery(s.rawQuery))
	headerAttrs(req, s.header)
	credentialAttrs(req, c.o.fingerprintKey, s.header)
	if x.info.Stream {
		req.set("gen_ai.request.stream", true)
	}
	req.set("gen_ai.request.max_tokens", x.info.MaxTokens)
	req.set("gen_ai.request.temperature", x.info.Temperature)
	req.set("gen_ai.request.top_p", x.info.TopP)
	req.set("gen_ai.request.choice.count", x.info.ChoiceCount)
	req.set("gen_ai.request.seed", x.info.Seed)
	if x.info.EncodingFormat != "" {
		req.set("gen_ai.request.encoding_formats", []string{x.info.EncodingFormat})
	}
	ev := &auditlog.Request{Session: x.session, Kind: KindRequest, Actor: s.actor}
	var rb capBuf
	rb.max = c.o.maxRecordedBytes
	rb.write(s.body)
	rb.payload(ev, req, mediaType(s.header.Get("Content-Type"), "application/octet-stream"))
	ev.Attributes = req.raw()

	it := &recordItem{rec: s.rec, evs: []*auditlog.Request{ev}}
	if c.o.mode == FailClosed {
		it.done = make(chan error, 1)
		c.enqueue(s.scope, x.session, it)
		select {
		case err := <-it.done:
			if err != nil {
				c.logger.Warn("capture: request not recorded; refusing the call (fail-closed)",
					"session", x.session, "call", x.callID, "error", err)
				return nil, &NotRecordedError{Err: err}
			}
			x.reqRes = &it.res[0]
		case <-ctx.Done():
			// The agent gave up (its SDK's timeout, or it went away)
			// before the record was durable: it gets its own error, and a
			// request recorded after all is closed by an aborted response.
			cause := context.Cause(ctx)
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
			c.logger.Warn("capture: request not recorded; forwarded anyway (fail-open)",
				"session", x.session, "call", x.callID, "error", err)
			c.noteGap(s.scope, s.rec, x.session, err, x.gapItem(KindRequest, "", 0))
		}
		c.enqueue(s.scope, x.session, it)
	}
	x.start = time.Now()
	return x, nil
}

// gapItem describes one of the attempt's events that was not recorded. It
// reads only what begin set, so the background request record may call it.
func (x *exchange) gapItem(kind, outcome string, status int) gapItem {
	return gapItem{Kind: kind, Time: time.Now().UTC(), CallID: x.callID, Attempt: x.attempt,
		Model: truncate(x.info.Model, 128), Status: status, Outcome: outcome}
}

// response notes the upstream's response head; length is its
// Content-Length, -1 if unknown.
func (x *exchange) response(status int, h http.Header, length int64) {
	x.headersAt = time.Now()
	x.status = status
	x.length = length
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

	a := x.model.clone()
	a.set("capture.outcome", outcome)
	a.set("error.type", errType)
	if cause != nil && outcome != OutcomeComplete {
		a.set("capture.error", truncate(cause.Error(), 256))
	}
	if x.status != 0 {
		a.set("http.response.status_code", x.status)
	}
	a.set("capture.upstream.request_id", x.requestID)
	a.set("gen_ai.response.id", sum.ResponseID)
	a.set("gen_ai.response.model", sum.ResponseModel)
	a.set("gen_ai.response.finish_reasons", sum.FinishReasons)
	a.set("gen_ai.usage.input_tokens", sum.Usage.Input)
	a.set("gen_ai.usage.output_tokens", sum.Usage.Output)
	a.set("gen_ai.usage.cache_read.input_tokens", sum.Usage.CacheRead)
	a.set("gen_ai.usage.cache_creation.input_tokens", sum.Usage.CacheCreation)
	a.set("gen_ai.usage.reasoning.output_tokens", sum.Usage.Reasoning)
	if !x.headersAt.IsZero() {
		a.set("capture.time_to_first_byte_ms", millis(x.headersAt.Sub(x.start)))
	}
	if !x.firstChunk.IsZero() && x.stream {
		a.set("gen_ai.response.time_to_first_chunk", x.firstChunk.Sub(x.start).Seconds())
	}
	a.set("capture.duration_ms", millis(end.Sub(x.start)))
	if x.stream {
		a.set("capture.stream", true)
		a.set("capture.stream.terminated", sum.Terminated)
		a.set("capture.stream.events", sum.Events)
		if sum.Dropped > 0 {
			a.set("capture.stream.dropped_events", sum.Dropped)
		}
	}
	if len(sum.ToolCalls) > 0 {
		a.set("capture.tool_calls", len(sum.ToolCalls))
	}

	resp := &auditlog.Request{Session: x.session, Kind: KindResponse, Actor: x.actor}
	if x.status != 0 {
		x.body.payload(resp, a, x.mediaType)
	}
	resp.Attributes = a.raw()
	evs := []*auditlog.Request{resp}
	items := []gapItem{x.gapItem(KindResponse, outcome, x.status)}
	for _, t := range sum.ToolCalls {
		ta := x.common.clone()
		ta.set("gen_ai.tool.name", t.Name)
		ta.set("gen_ai.tool.call.id", t.ID)
		ta.set("gen_ai.tool.type", t.Type)
		ev := &auditlog.Request{Session: x.session, Kind: KindToolCall, Actor: x.actor, Attributes: ta.raw()}
		if len(t.Args) > 0 {
			mt := "text/plain; charset=utf-8"
			if json.Valid(t.Args) {
				mt = "application/json"
			}
			ev.PayloadBase64, ev.MediaType = base64.StdEncoding.EncodeToString(t.Args), mt
		}
		evs = append(evs, ev)
		items = append(items, x.gapItem(KindToolCall, "", x.status))
	}
	failed := func(err error) {
		x.c.logger.Warn("capture: response not recorded; noted as a gap",
			"session", x.session, "call", x.callID, "error", err)
		x.c.noteGap(x.scope, x.rec, x.session, err, items...)
	}
	if x.reserved != nil {
		fill(x.reserved, x.rec, evs, failed)
		return
	}
	x.c.enqueue(x.scope, x.session, &recordItem{rec: x.rec, evs: evs, failed: failed})
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

// capBuf keeps the first max bytes of a body and, once the body outgrows
// them, the SHA-256 of all of it.
type capBuf struct {
	max   int
	buf   []byte
	total int64
	h     hash.Hash
}

func (b *capBuf) write(p []byte) {
	b.total += int64(len(p))
	if b.h == nil {
		if len(b.buf)+len(p) <= b.max {
			b.buf = append(b.buf, p...)
			return
		}
		b.h = sha256.New()
		b.h.Write(b.buf)
		b.buf = append(b.buf, p[:b.max-len(b.buf)]...)
	}
	b.h.Write(p)
}

func (b *capBuf) truncated() bool { return b.h != nil }

// payload puts the body in ev (exact bytes); when it was truncated, its
// full size and digest go in a.
func (b *capBuf) payload(ev *auditlog.Request, a attrs, mt string) {
	if b.total == 0 {
		return
	}
	if b.truncated() {
		// The leaf's payload size is what was kept.
		a.set("capture.body.size", b.total)
		a.set("capture.body.truncated", true)
		a.set("capture.body.sha256", hex.EncodeToString(b.h.Sum(nil)))
	}
	ev.PayloadBase64, ev.MediaType = base64.StdEncoding.EncodeToString(b.buf), mt
}

var mediaTypeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+\-]*/[a-z0-9][a-z0-9!#$&^_.+\-]*$`)

// mediaType normalises a Content-Type for the vault: lower-case type, its
// parameters kept when they are printable ASCII, def when there is none or
// it is malformed.
func mediaType(ct, def string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !mediaTypeRE.MatchString(mt) {
		return def
	}
	if len(params) == 0 {
		return mt
	}
	full := mime.FormatMediaType(mt, params)
	if full == "" || len(full) > 128 || strings.ContainsFunc(full, func(r rune) bool { return r < ' ' || r > '~' }) {
		return mt
	}
	return full
}

// completeJSONObject reports whether b is one whole JSON object (with
// surrounding white space at most). A cut-off object is never valid JSON.
func completeJSONObject(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && t[0] == '{' && json.Valid(t)
}

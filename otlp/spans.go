package otlp

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// What a span is to the audit log.
type spanClass int

const (
	classOther     spanClass = iota // no GenAI meaning: dropped
	classInference                  // llm.request + llm.response
	classTool                       // tool.call + tool.result
	classAgent                      // agent.invoke or agent.create
)

// agentKinds are the events of agent spans, by gen_ai.operation.name.
var agentKinds = map[string]string{"invoke_agent": event.KindAgentInvoke, "create_agent": event.KindAgentCreate}

// inferenceOperations are the gen_ai.operation.name values of inference
// spans.
var inferenceOperations = map[string]bool{"chat": true, "text_completion": true, "generate_content": true, "embeddings": true}

// classify says what a span is, and its gen_ai.operation.name.
func classify(a pcommon.Map) (spanClass, string) {
	op := str(a, event.AttrGenAIOperationName)
	switch {
	case op == "execute_tool":
		return classTool, op
	case inferenceOperations[op]:
		return classInference, op
	case agentKinds[op] != "":
		return classAgent, op
	case op != "":
		return classOther, op // names not known
	}
	switch strings.ToUpper(str(a, "openinference.span.kind")) {
	case "LLM":
		return classInference, "chat"
	case "EMBEDDING":
		return classInference, "embeddings"
	case "TOOL":
		return classTool, "execute_tool"
	case "AGENT":
		return classAgent, "invoke_agent"
	}
	// Older instrumentations (OpenLLMetry) name no operation: a provider
	// and a model make an inference span.
	if str(a, "gen_ai.system", event.AttrGenAIProviderName) != "" && str(a, event.AttrGenAIRequestModel) != "" {
		switch str(a, "llm.request.type") {
		case "completion":
			return classInference, "text_completion"
		case "embedding":
			return classInference, "embeddings"
		}
		return classInference, "chat"
	}
	return classOther, ""
}

// leafAttr is an attribute the leaf may carry, read from the first of
// from that the span has: only structural values (names, ids, counts),
// bounded, never content.
type leafAttr struct {
	key  string
	from []string
	kind byte // 's' string, 'n' number, 'a' list of strings
}

var (
	commonAttrs = []leafAttr{
		{event.AttrGenAIProviderName, []string{event.AttrGenAIProviderName, "gen_ai.system", "llm.provider", "llm.system"}, 's'},
		{event.AttrGenAIAgentName, nil, 's'},
		{event.AttrServerAddress, nil, 's'},
		{event.AttrServerPort, nil, 'n'},
	}
	requestAttrs = []leafAttr{
		{event.AttrGenAIRequestModel, []string{event.AttrGenAIRequestModel, "llm.model_name"}, 's'},
		{event.AttrGenAIRequestMaxTokens, nil, 'n'},
		{event.AttrGenAIRequestTemperature, nil, 'n'},
		{event.AttrGenAIRequestTopP, nil, 'n'},
		{event.AttrGenAIRequestTopK, nil, 'n'},
		{event.AttrGenAIRequestFrequencyPenalty, nil, 'n'},
		{event.AttrGenAIRequestPresencePenalty, nil, 'n'},
		{event.AttrGenAIRequestSeed, nil, 'n'},
		{event.AttrGenAIRequestChoiceCount, nil, 'n'},
		{event.AttrGenAIOutputType, nil, 's'},
	}
	responseAttrs = []leafAttr{
		{event.AttrGenAIResponseModel, []string{event.AttrGenAIResponseModel, "llm.model_name"}, 's'},
		{event.AttrGenAIResponseID, nil, 's'},
		{event.AttrGenAIResponseFinishReasons, nil, 'a'},
		{event.AttrGenAIUsageInputTokens, []string{event.AttrGenAIUsageInputTokens, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"}, 'n'},
		{event.AttrGenAIUsageOutputTokens, []string{event.AttrGenAIUsageOutputTokens, "gen_ai.usage.completion_tokens", "llm.token_count.completion"}, 'n'},
		{event.AttrGenAIUsageCacheReadInputTokens, nil, 'n'},
		{event.AttrGenAIUsageCacheCreationInputTokens, nil, 'n'},
		{event.AttrGenAIResponseTimeToFirstChunk, nil, 'n'},
		{event.AttrErrorType, nil, 's'},
	}
	toolAttrs = []leafAttr{
		{event.AttrGenAIToolName, []string{event.AttrGenAIToolName, "tool.name"}, 's'},
		{event.AttrGenAIToolCallID, []string{event.AttrGenAIToolCallID, "tool_call.id"}, 's'},
		{event.AttrGenAIToolType, nil, 's'},
	}
)

// Bounds of leaf attribute values.
const (
	maxLeafString = 256
	maxLeafList   = 16
	maxListItem   = 64
)

// Traces maps the spans of td for tenant: each inference span to an
// llm.request and an llm.response, each tool execution span to a tool.call
// and a tool.result, in the order of the spans.
func Traces(tenant string, td ptrace.Traces) *Result {
	r := &Result{}
	forEachSpan(td, func(res pcommon.Map, scope pcommon.InstrumentationScope, sp ptrace.Span) {
		mapSpan(r, tenant, res, scope, sp)
	})
	r.noteParents(td)
	return r
}

func mapSpan(r *Result, tenant string, res pcommon.Map, scope pcommon.InstrumentationScope, sp ptrace.Span) {
	a := sp.Attributes()
	class, op := classify(a)
	if class == classOther {
		r.Dropped++
		return
	}
	if sp.TraceID().IsEmpty() || sp.SpanID().IsEmpty() {
		r.reject(fmt.Sprintf("span %q has no trace or span id", clip(sp.Name(), 64)))
		return
	}
	traceID, spanID := sp.TraceID().String(), sp.SpanID().String()
	session := sessionOf(a, traceID)
	actor := actorOf(a, res)

	common := map[string]any{event.AttrGenAIOperationName: op, event.AttrOtelTraceID: traceID, event.AttrOtelSpanID: spanID}
	if !sp.ParentSpanID().IsEmpty() {
		common[event.AttrOtelParentSpanID] = sp.ParentSpanID().String()
	}
	if conv := str(a, event.AttrGenAIConversationID); conv != "" && event.ValidID(conv) {
		common[event.AttrGenAIConversationID] = conv
	}
	if agent := str(a, event.AttrGenAIAgentID); agent != "" && event.ValidID(agent) {
		common[event.AttrGenAIAgentID] = agent
	}
	copyAttrs(common, a, commonAttrs)
	switch class {
	case classTool:
		copyAttrs(common, a, toolAttrs)
	case classAgent:
		copyAttrs(common, a, []leafAttr{{event.AttrGenAIRequestModel, nil, 's'}})
	}
	req, resp := cloneMap(common), cloneMap(common)
	reqKind, respKind := event.KindLLMRequest, event.KindLLMResponse
	if class == classInference {
		copyAttrs(req, a, requestAttrs)
		copyAttrs(resp, a, responseAttrs)
	} else {
		reqKind, respKind = event.KindToolCall, event.KindToolResult
		copyAttrs(resp, a, []leafAttr{{event.AttrErrorType, nil, 's'}})
	}
	if st := sp.Status().Code(); st != ptrace.StatusCodeUnset {
		resp[event.AttrOtelStatusCode] = strings.ToUpper(st.String())
		if st == ptrace.StatusCodeError && resp[event.AttrErrorType] == nil {
			resp[event.AttrErrorType] = errorType(sp)
		}
	}
	if start, end := sp.StartTimestamp(), sp.EndTimestamp(); start != 0 && end >= start {
		resp[event.AttrOtelDurationMS] = math.Round(float64(end-start)/1e3) / 1e3
	}

	c := splitAttributes(a)
	c.addEvents(sp.Events())
	otelReq := map[string]any{"trace_id": traceID, "span_id": spanID, "name": sp.Name(), "kind": sp.Kind().String(),
		"start_time": timeText(sp.StartTimestamp()), "resource": rawMap(res),
		"scope": map[string]any{"name": scope.Name(), "version": scope.Version()}}
	if p, ok := common[event.AttrOtelParentSpanID]; ok {
		otelReq["parent_span_id"] = p
	}
	if ts := sp.TraceState().AsRaw(); ts != "" {
		otelReq["trace_state"] = ts
	}
	otelResp := map[string]any{"trace_id": traceID, "span_id": spanID, "end_time": timeText(sp.EndTimestamp()),
		"status": map[string]any{"code": sp.Status().Code().String(), "message": sp.Status().Message()}}
	reqPayload := map[string]any{"otel": otelReq, "attributes": c.rest, "content": c.input}
	respPayload := map[string]any{"otel": otelResp, "content": c.output}
	if c.events != nil {
		respPayload["events"] = c.events
	}

	at := sp.StartTimestamp().AsTime()
	if class == classAgent {
		// One event: the agent's run (or creation), start to end, with
		// what it was asked and answered in its payload.
		kind := agentKinds[op]
		attrs := cloneMap(common)
		for _, k := range []string{event.AttrOtelStatusCode, event.AttrErrorType, event.AttrOtelDurationMS} {
			if v, ok := resp[k]; ok {
				attrs[k] = v
			}
		}
		for k, v := range otelResp {
			if k != "trace_id" && k != "span_id" {
				otelReq[k] = v
			}
		}
		payload := map[string]any{"otel": otelReq, "attributes": c.rest, "content": map[string]any{"input": c.input, "output": c.output}}
		if c.events != nil {
			payload["events"] = c.events
		}
		ev, err := newEvent(session, kind, actor, attrs, payload)
		if err != nil {
			r.reject(fmt.Sprintf("span %s: %v", spanID, err))
			return
		}
		r.Events = append(r.Events, Event{ID: EventID(tenant, sp.TraceID(), sp.SpanID(), kind, nil, at), Request: ev})
		r.Mapped++
		return
	}
	var evs []Event
	for _, e := range []struct {
		kind    string
		attrs   map[string]any
		payload map[string]any
	}{{reqKind, req, reqPayload}, {respKind, resp, respPayload}} {
		ev, err := newEvent(session, e.kind, actor, e.attrs, e.payload)
		if err != nil {
			r.reject(fmt.Sprintf("span %s: %v", spanID, err))
			return
		}
		evs = append(evs, Event{ID: EventID(tenant, sp.TraceID(), sp.SpanID(), e.kind, nil, at), Request: ev})
	}
	r.Events = append(r.Events, evs...)
	r.Mapped++
	if class == classInference {
		r.noteCall(tenant, session, actor, sp, req, resp, reqPayload, respPayload, at)
	}
}

// newEvent builds one event and checks its session (the one check of the
// engine a span's own data can fail, which would fail the whole request:
// one bad span is rejected alone). Everything else event.Prepare checks
// holds by construction: valid ids (idOf), fixed kinds and attribute
// names, bounded values (leafValue), a JSON payload; the tests and the
// fuzzer hold every mapped event to Prepare.
func newEvent(session, kind string, actor event.Actor, attrs, payload map[string]any) (*event.Request, error) {
	req := &event.Request{Session: session, Kind: kind, Actor: actor, Attributes: make(map[string]json.RawMessage, len(attrs))}
	for k, v := range attrs {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %v", k, err)
		}
		req.Attributes[k] = b
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("payload: %v", err)
	}
	req.Payload = b
	if err := event.PermitSession(session, actor); err != nil {
		return nil, err
	}
	return req, nil
}

// sessionOf is the session of a span: its gen_ai.conversation.id, else
// its trace id. Only the span's own attributes count, so that a span
// exported again lands in the same session.
func sessionOf(a pcommon.Map, traceID string) string {
	if conv := str(a, event.AttrGenAIConversationID, "session.id"); conv != "" {
		return idOf("conv-", conv)
	}
	return traceID
}

// actorOf is the agent of a span: gen_ai.agent.id (of the span, else of the
// resource), else the resource's service.name, else "otel".
func actorOf(a, res pcommon.Map) event.Actor {
	id := str(a, event.AttrGenAIAgentID)
	if id == "" {
		id = str(res, event.AttrGenAIAgentID, "service.name")
	}
	if id == "" {
		id = "otel"
	}
	return event.Actor{Type: "agent", ID: idOf("agent-", id)}
}

// errorType is the error.type of a failed span without one: the type of
// its exception event, else "_OTHER" (the conventions' fallback).
func errorType(sp ptrace.Span) string {
	evs := sp.Events()
	for i := 0; i < evs.Len(); i++ {
		if e := evs.At(i); e.Name() == "exception" {
			if t := str(e.Attributes(), "exception.type"); t != "" {
				return clip(t, maxLeafString)
			}
		}
	}
	return "_OTHER"
}

// str is the first non-empty string value among keys.
func str(a pcommon.Map, keys ...string) string {
	for _, k := range keys {
		if v, ok := a.Get(k); ok && v.Type() == pcommon.ValueTypeStr && v.Str() != "" {
			return v.Str()
		}
	}
	return ""
}

// copyAttrs copies the leaf attributes of list that a has into dst.
func copyAttrs(dst map[string]any, a pcommon.Map, list []leafAttr) {
	for _, la := range list {
		from := la.from
		if from == nil {
			from = []string{la.key}
		}
		for _, k := range from {
			v, ok := a.Get(k)
			if !ok {
				continue
			}
			if x, ok := leafValue(v, la.kind); ok {
				dst[la.key] = x
				break
			}
		}
	}
}

// leafValue is v as a bounded leaf value of kind, if it is one.
func leafValue(v pcommon.Value, kind byte) (any, bool) {
	switch kind {
	case 's':
		if v.Type() == pcommon.ValueTypeStr && v.Str() != "" {
			return clip(v.Str(), maxLeafString), true
		}
	case 'n':
		switch v.Type() {
		case pcommon.ValueTypeInt:
			return v.Int(), true
		case pcommon.ValueTypeDouble:
			if f := v.Double(); !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f, true
			}
		}
	case 'a':
		switch v.Type() {
		case pcommon.ValueTypeStr:
			return []string{clip(v.Str(), maxListItem)}, true
		case pcommon.ValueTypeSlice:
			var out []string
			s := v.Slice()
			for i := 0; i < s.Len() && len(out) < maxLeafList; i++ {
				if s.At(i).Type() == pcommon.ValueTypeStr {
					out = append(out, clip(s.At(i).Str(), maxListItem))
				}
			}
			return out, out != nil
		}
	}
	return nil, false
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

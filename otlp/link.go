package otlp

import (
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// SpanKind is the kind of the one event an inference span becomes when the
// capture observed the same call (Link): the agent's report of it, beside
// the llm.request and llm.response the capture recorded, so that a call is
// counted once.
const SpanKind = event.KindLLMSpan

// Call is an inference span of an export, which the capture may have
// observed too: the agent's HTTP instrumentation sent the trace context of
// the span, or of one of its client spans (Children), with the request
// (the traceparent header, which the capture records as otel.trace_id and
// otel.parent_span_id).
type Call struct {
	TraceID, SpanID string
	// Children are the span ids of the span's children in the same export
	// (the HTTP client spans that sent the request, typically).
	Children []string
	// RequestID is the id of its llm.request (its llm.response's differs
	// only by kind), LinkedID the id of the llm.span it becomes when
	// linked: the receiver keeps what an earlier delivery of the span
	// recorded.
	RequestID, LinkedID string
	first               int // index of its llm.request in Result.Events
	linked              func(CaptureRef) (Event, error)
}

// SpanParent says that a span has a parent: the receiver keeps these for a
// while, for the HTTP client span of a call may arrive in an export before
// its inference span's (it ends first).
type SpanParent struct {
	TraceID, SpanID, ParentID string
}

// CaptureRef is the capture's llm.request of a call.
type CaptureRef struct {
	Index uint64
	ID    string
}

// Link replaces the llm.request and llm.response of r.Calls[i] with one
// llm.span event that names the capture's llm.request of the same call
// (capture.index, capture.event.id) and holds in its payload what the two
// would have held; links must be called in any order, before r.Events is
// used. A call whose event cannot be built keeps its pair.
func (r *Result) Link(i int, ref CaptureRef) error {
	c := &r.Calls[i]
	ev, err := c.linked(ref)
	if err != nil {
		return err
	}
	r.Events[c.first] = ev
	r.Events[c.first+1] = Event{} // removed by Compact
	r.Linked++
	return nil
}

// Omit leaves out the llm.request and llm.response of r.Calls[i] (the log
// holds its llm.span from an earlier delivery).
func (r *Result) Omit(i int) {
	c := &r.Calls[i]
	r.Events[c.first], r.Events[c.first+1] = Event{}, Event{}
}

// Compact removes the events that Link replaced and Omit left out.
func (r *Result) Compact() {
	out := r.Events[:0]
	for _, e := range r.Events {
		if e.Request != nil {
			out = append(out, e)
		}
	}
	r.Events = out
}

// noteCall records an inference span's pair (the last two events of r) as
// a call that Link may merge into one llm.span event.
func (r *Result) noteCall(tenant, session string, actor event.Actor, sp ptrace.Span, req, resp, reqPayload, respPayload map[string]any, at time.Time) {
	attrs := cloneMap(req)
	for k, v := range resp {
		attrs[k] = v
	}
	r.Calls = append(r.Calls, Call{
		TraceID: sp.TraceID().String(), SpanID: sp.SpanID().String(), first: len(r.Events) - 2,
		RequestID: r.Events[len(r.Events)-2].ID, LinkedID: EventID(tenant, sp.TraceID(), sp.SpanID(), SpanKind, nil, at),
		linked: func(ref CaptureRef) (Event, error) {
			a := cloneMap(attrs)
			a[event.AttrCaptureIndex] = ref.Index
			a[event.AttrCaptureEventID] = ref.ID
			payload := map[string]any{"request": reqPayload, "response": respPayload}
			ev, err := newEvent(session, SpanKind, actor, a, payload)
			if err != nil {
				return Event{}, fmt.Errorf("span %s: %v", sp.SpanID(), err)
			}
			return Event{ID: EventID(tenant, sp.TraceID(), sp.SpanID(), SpanKind, nil, at), Request: ev}, nil
		},
	})
}

// noteParents fills r.Parents and each call's Children from the spans of
// td.
func (r *Result) noteParents(td ptrace.Traces) {
	calls := map[[2]string]*Call{}
	for i := range r.Calls {
		calls[[2]string{r.Calls[i].TraceID, r.Calls[i].SpanID}] = &r.Calls[i]
	}
	forEachSpan(td, func(_ pcommon.Map, _ pcommon.InstrumentationScope, sp ptrace.Span) {
		if sp.ParentSpanID().IsEmpty() || sp.TraceID().IsEmpty() || sp.SpanID().IsEmpty() {
			return
		}
		trace, span, parent := sp.TraceID().String(), sp.SpanID().String(), sp.ParentSpanID().String()
		r.Parents = append(r.Parents, SpanParent{trace, span, parent})
		if c := calls[[2]string{trace, parent}]; c != nil && len(c.Children) < maxChildren {
			c.Children = append(c.Children, span)
		}
	})
}

// maxChildren bounds the children of a call looked up.
const maxChildren = 16

func forEachSpan(td ptrace.Traces, f func(res pcommon.Map, scope pcommon.InstrumentationScope, sp ptrace.Span)) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			spans := ss.Spans()
			for k := 0; k < spans.Len(); k++ {
				f(rs.Resource().Attributes(), ss.Scope(), spans.At(k))
			}
		}
	}
}

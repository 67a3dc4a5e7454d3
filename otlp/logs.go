package otlp

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/event"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// Logs maps the GenAI log records of ld for tenant: the records of one
// span (by trace and span id) in one export request become one llm.content
// event in the span's session (gen_ai.conversation.id of the records, else
// the trace id), with the records, bodies and attributes, in its payload.
// Records without GenAI meaning are dropped; a GenAI record with neither a
// span nor a gen_ai.conversation.id is rejected, for there is no session to
// put it in.
func Logs(tenant string, ld plog.Logs) *Result {
	r := &Result{}
	type group struct {
		traceID  pcommon.TraceID
		spanID   pcommon.SpanID
		session  string
		res      pcommon.Map
		scope    pcommon.InstrumentationScope
		records  []any
		digests  [][]byte
		names    []string
		provider string
		agent    string
		first    pcommon.Timestamp
	}
	var groups []*group
	byKey := map[string]*group{}
	rls := ld.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		res := rl.Resource().Attributes()
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			sl := sls.At(j)
			lrs := sl.LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				name := eventName(lr)
				if !genAIRecord(lr, name) {
					r.Dropped++
					continue
				}
				a := lr.Attributes()
				var session string
				switch {
				case str(a, event.AttrGenAIConversationID, "session.id") != "":
					session = idOf("conv-", str(a, event.AttrGenAIConversationID, "session.id"))
				case !lr.TraceID().IsEmpty():
					session = lr.TraceID().String()
				default:
					r.reject(fmt.Sprintf("log record %q has neither a trace id nor a gen_ai.conversation.id", clip(name, 64)))
					continue
				}
				key := session + "/" + lr.TraceID().String() + "/" + lr.SpanID().String()
				g := byKey[key]
				if g == nil {
					g = &group{traceID: lr.TraceID(), spanID: lr.SpanID(), session: session, res: res, scope: sl.Scope(), first: recordTime(lr)}
					byKey[key] = g
					groups = append(groups, g)
				}
				rec := map[string]any{"event_name": name, "time": timeText(lr.Timestamp()), "observed_time": timeText(lr.ObservedTimestamp()),
					"severity": lr.SeverityText(), "attributes": rawMap(a), "body": jsonValue(lr.Body())}
				b, err := json.Marshal(rec)
				if err != nil {
					r.reject(fmt.Sprintf("log record %q: %v", clip(name, 64), err))
					continue
				}
				sum := sha256.Sum256(b)
				g.records = append(g.records, json.RawMessage(b))
				g.digests = append(g.digests, sum[:])
				if name != "" && !slices.Contains(g.names, clip(name, maxListItem)) && len(g.names) < maxLeafList {
					g.names = append(g.names, clip(name, maxListItem))
				}
				if p := str(a, event.AttrGenAIProviderName, "gen_ai.system"); p != "" && g.provider == "" {
					g.provider = clip(p, maxLeafString)
				}
				if ag := str(a, event.AttrGenAIAgentID); ag != "" && g.agent == "" {
					g.agent = ag
				}
				if t := recordTime(lr); t != 0 && (g.first == 0 || t < g.first) {
					g.first = t
				}
				r.Mapped++
			}
		}
	}
	for _, g := range groups {
		attrs := map[string]any{}
		otel := map[string]any{"resource": rawMap(g.res), "scope": map[string]any{"name": g.scope.Name(), "version": g.scope.Version()}}
		if !g.traceID.IsEmpty() {
			attrs[event.AttrOtelTraceID] = g.traceID.String()
			otel["trace_id"] = g.traceID.String()
		}
		if !g.spanID.IsEmpty() {
			attrs[event.AttrOtelSpanID] = g.spanID.String()
			otel["span_id"] = g.spanID.String()
		}
		if g.names != nil {
			attrs[event.AttrOtelEventNames] = g.names
		}
		if g.provider != "" {
			attrs[event.AttrGenAIProviderName] = g.provider
		}
		actor := actorOf(pcommon.NewMap(), g.res)
		if g.agent != "" {
			actor.ID = idOf("agent-", g.agent)
		}
		// The id covers the records: a retry (the same records) is the
		// same event; other records of the span, exported later, another.
		slices.SortFunc(g.digests, func(a, b []byte) int { return strings.Compare(string(a), string(b)) })
		var extra []byte
		for _, d := range g.digests {
			extra = append(extra, d...)
		}
		ev, err := newEvent(g.session, event.KindLLMContent, actor, attrs, map[string]any{"otel": otel, "records": g.records})
		if err != nil {
			r.Mapped -= int64(len(g.records))
			for range g.records {
				r.reject(fmt.Sprintf("log records of span %s: %v", g.spanID, err))
			}
			continue
		}
		r.Events = append(r.Events, Event{ID: EventID(tenant, g.traceID, g.spanID, event.KindLLMContent, extra, g.first.AsTime()), Request: ev})
	}
	return r
}

// eventName is a log record's event name: the field, else the event.name
// attribute (older SDKs).
func eventName(lr plog.LogRecord) string {
	if n := lr.EventName(); n != "" {
		return n
	}
	return str(lr.Attributes(), "event.name")
}

// genAIRecord: a record of a gen_ai.* event, or one carrying GenAI content
// attributes.
func genAIRecord(lr plog.LogRecord, name string) bool {
	if strings.HasPrefix(name, "gen_ai.") {
		return true
	}
	for _, k := range append(slices.Clone(inputKeys), outputKeys...) {
		if _, ok := lr.Attributes().Get(k); ok && strings.HasPrefix(k, "gen_ai.") {
			return true
		}
	}
	return false
}

func recordTime(lr plog.LogRecord) pcommon.Timestamp {
	if lr.Timestamp() != 0 {
		return lr.Timestamp()
	}
	return lr.ObservedTimestamp()
}

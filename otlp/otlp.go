// Package otlp turns what OpenTelemetry-instrumented agents export (OTLP
// traces and logs, protobuf or JSON) into audit events, so that an agent
// already instrumented with the GenAI semantic conventions is audited by
// pointing its exporter at the log server (docs/otel.md).
//
// Spans with GenAI meaning become events; everything else is dropped and
// counted:
//
//   - an inference span (gen_ai.operation.name chat, text_completion,
//     generate_content, embeddings, ...; or an older instrumentation's
//     gen_ai.system with a model; or OpenInference's LLM and EMBEDDING
//     spans) becomes an llm.request and an llm.response event;
//   - a tool execution span (execute_tool, OpenInference TOOL) becomes a
//     tool.call and a tool.result event;
//   - an agent span (invoke_agent, create_agent, OpenInference AGENT)
//     becomes one agent.invoke or agent.create event;
//   - an inference span of a call that the capture proxy observed too (by
//     the traceparent the agent sent) becomes one llm.span event that
//     names the capture's llm.request, so the call is counted once
//     (Result.Link, decided by the receiver);
//   - GenAI log records (gen_ai.* event names: the messages and choices of
//     the older conventions, gen_ai.client.inference.operation.details)
//     become one llm.content event per span and export request;
//   - metrics (gen_ai.client.token.usage, ...) are taken and counted, and
//     become no event (metrics.go).
//
// The leaf carries only an allowlist of structural attributes (model,
// provider, usage, finish reasons, ids, error type, latency, the trace and
// span ids); message content, wherever the agent sent it (span attributes of
// any of the three conventions, span events, log records), and every other
// attribute go into the event's payload, which the log seals in the vault
// behind a commitment.
//
// Every event id is derived from the tenant, the trace and span ids and the
// kind (EventID), and the session from the span's own attributes, so that a
// span exported twice maps to the same events in the same session, which
// the engine appends once (log.AppendOnce).
//
// The package is the mapping and the wire format alone: the server
// authenticates, appends and answers (server/otlp.go). Out the other way,
// Exporter sends verified entries to an OTLP/HTTP logs endpoint as log
// records (export.go; the monitor's --otlp-export).
package otlp

import (
	"errors"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Event is one audit event mapped from OTLP, with the id it must have.
type Event struct {
	ID      string
	Request *event.Request
}

// Result is what a batch of spans or log records maps to.
type Result struct {
	Events []Event
	// Mapped counts the spans or log records that became events; Dropped
	// those without GenAI meaning (not an error: an agent may export all
	// its spans); Rejected those with GenAI meaning that could not be
	// recorded (an invalid trace id, a reserved session, ...), which the
	// answer reports as a partial success.
	Mapped, Dropped, Rejected int64
	// Reasons says why spans or records were rejected, the first few.
	Reasons []string

	// Calls are the inference spans among Events, which the receiver may
	// Link to the calls the capture observed; Parents the parent of every
	// span of the export that has one; Linked how many calls were linked
	// (link.go).
	Calls   []Call
	Parents []SpanParent
	Linked  int64

	// Points counts the data points of a metrics export by metric
	// (metrics.go).
	Points map[string]int64
}

func (r *Result) reject(why string) {
	r.Rejected++
	if len(r.Reasons) < maxReasons {
		r.Reasons = append(r.Reasons, why)
	}
}

const maxReasons = 4

// Errors of the wire format (wire.go): the server answers them with the
// OTLP error form.
var (
	// ErrMalformed: the body is not an OTLP export request in its
	// encoding (400).
	ErrMalformed = errors.New("malformed OTLP request")
	// ErrMediaType: neither application/x-protobuf nor application/json
	// (415).
	ErrMediaType = errors.New("unsupported OTLP content type")
	// ErrContentEncoding: a Content-Encoding other than gzip (415).
	ErrContentEncoding = errors.New("unsupported content encoding")
	// ErrTooLarge: the body, decompressed, exceeds the limit (413).
	ErrTooLarge = errors.New("OTLP request too large")
)

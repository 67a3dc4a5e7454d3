package server

import (
	"context"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/event"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

// logRecorder records capture events into the engine directly, for one
// tenant and writer.
type logRecorder struct {
	log    *auditlog.Log
	tenant string
	writer event.Writer
	traced *tracedTenants
}

// Record returns once the events are durable (the log sequences them
// behind): a fail-closed call waits for no more. A call that carries the
// agent's trace context marks its tenant first, for the OTLP receiver to
// look for it (otlp_link.go).
func (r logRecorder) Record(ctx context.Context, evs []*event.Request) ([]event.Appended, error) {
	if r.traced != nil {
		for _, ev := range evs {
			if _, ok := ev.Attributes[event.AttrOtelTraceID]; ok && ev.Kind == event.KindLLMRequest {
				r.traced.mark(r.tenant)
				break
			}
		}
	}
	return r.log.AppendWait(ctx, r.tenant, r.writer, evs, auditlog.WaitDurable)
}

// Recorder returns a capture.Recorder that appends to this server's log as
// tenant, in process, with events attributed to the token tokenID as
// observed on the capture proxy.
func (s *Server) Recorder(tenant, tokenID string) capture.Recorder {
	return logRecorder{s.log, tenant, event.Writer{Token: tokenID, Via: event.ViaProxy}, &s.traced}
}

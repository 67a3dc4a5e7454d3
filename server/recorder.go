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
}

// Record returns once the events are durable (the log sequences them
// behind): a fail-closed call waits for no more.
func (r logRecorder) Record(ctx context.Context, evs []*event.Request) ([]event.Appended, error) {
	return r.log.AppendWait(ctx, r.tenant, r.writer, evs, auditlog.WaitDurable)
}

// Recorder returns a capture.Recorder that appends to this server's log as
// tenant, in process, with events attributed to the token tokenID as
// observed on the capture proxy.
func (s *Server) Recorder(tenant, tokenID string) capture.Recorder {
	return logRecorder{s.log, tenant, event.Writer{Token: tokenID, Via: event.ViaProxy}}
}

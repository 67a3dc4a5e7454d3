package server

import (
	"context"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/event"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

// logRecorder records capture events into the engine directly, for one
// tenant.
type logRecorder struct {
	log    *auditlog.Log
	tenant string
}

func (r logRecorder) Record(ctx context.Context, evs []*event.Request) ([]event.Appended, error) {
	return r.log.Append(ctx, r.tenant, evs)
}

// Recorder returns a capture.Recorder that appends to this server's log as
// tenant, in process.
func (s *Server) Recorder(tenant string) capture.Recorder { return logRecorder{s.log, tenant} }

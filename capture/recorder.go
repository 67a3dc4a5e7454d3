package capture

import (
	"context"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// HTTPRecorder records by posting to a log server's event API through
// client (POST /v1/events and /v1/events:batch); the client's token needs
// the write scope. Every answer is checked: each leaf hashes to its leaf
// hash and is the event that was sent.
type HTTPRecorder struct{ c *client.Client }

// NewHTTPRecorder returns a Recorder posting through c.
func NewHTTPRecorder(c *client.Client) *HTTPRecorder { return &HTTPRecorder{c: c} }

// Record appends events with client.Append, answered once they are
// durable (?wait=durable).
func (r *HTTPRecorder) Record(ctx context.Context, events []*event.Request) ([]event.Appended, error) {
	ws, err := r.c.Append(ctx, events, client.WaitForDurability())
	if err != nil {
		return nil, err
	}
	out := make([]event.Appended, len(ws))
	for i, w := range ws {
		out[i] = w.Appended
	}
	return out, nil
}

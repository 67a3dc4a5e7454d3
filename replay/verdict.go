package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// VerdictEvent is the replay.verdict event of v: its attributes say what
// was replayed against which checkpoint and how it ended, its payload is
// the verdict itself.
func VerdictEvent(v Verdict) (*event.Request, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	attrs := map[string]any{
		event.AttrReplaySession: v.Session, event.AttrReplayTenant: v.Tenant, event.AttrReplayVerdict: v.Verdict,
		event.AttrReplayCheckpointSize: v.Size, event.AttrReplayCheckpointRoot: v.Root,
		event.AttrReplayRecordedAttempts: v.Recorded, event.AttrReplayServedAttempts: v.Served, event.AttrReplayRequests: v.Requests,
		event.AttrReplayDifferences: len(v.Differences),
	}
	for _, d := range v.Differences {
		if d.Relevance == Decision {
			attrs[event.AttrReplayFirstCode], attrs[event.AttrReplayFirstPath], attrs[event.AttrReplayFirstIndex] = d.Code, d.Path, d.Index
			break
		}
	}
	raw := map[string]json.RawMessage{}
	for k, a := range attrs {
		b, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		raw[k] = b
	}
	session := "replay." + v.Session
	if len(session) > event.MaxIDLength {
		session = session[:event.MaxIDLength]
	}
	session = strings.TrimRight(session, ".-_")
	return &event.Request{Session: session, Kind: event.KindReplayVerdict, Actor: event.Actor{Type: "system", ID: "replay"},
		Attributes: raw, Payload: payload}, nil
}

// AppendVerdict appends v as a replay.verdict event (a token with the
// audit scope), so that a reproduction is itself evidence. With
// client.WaitForCheckpoint the answer carries the event's receipt, whose
// tlog_proof proves the verdict event to anyone with the log's key.
func AppendVerdict(ctx context.Context, c *client.Client, v Verdict, opts ...client.AppendOption) (client.Written, error) {
	ev, err := VerdictEvent(v)
	if err != nil {
		return client.Written{}, err
	}
	w, err := c.Append(ctx, []*event.Request{ev}, opts...)
	if err != nil {
		return client.Written{}, fmt.Errorf("appending the verdict: %w", err)
	}
	return w[0], nil
}

package console

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/replay"
)

// The session timeline is the replay package's: replay.Rebuild verifies
// every event (inclusion under a checkpoint that verifies and meets the
// witness policy, the listing against the log, seq and prev), and
// replay.NewTimeline groups the events into steps. Each event gets a
// badge from that verification; failures are listed with their reason.

// maxTimelineEvents caps the events a timeline page shows (all of them are
// verified).
const maxTimelineEvents = 5000

// maxPayloadShown caps the payload text shown per event on a timeline.
const maxPayloadShown = 2048

type timelineData struct {
	Tenant, Session string
	CP              cpState
	Verified        bool
	Events          int
	Shown           int
	// SessionProblems are failures that concern no one event (the
	// checkpoint); Problems counts every failure.
	SessionProblems []string
	Problems        int
	Steps           []stepView
	FirstTime       string
	LastTime        string
	In, Out         int64
	// Payloads: the payloads were disclosed; Access are the access.read
	// events that recorded it.
	Payloads bool
	Access   []uint64
}

type stepView struct {
	N        int
	Kind     string
	Time     string
	Summary  string
	Verified bool
	Events   []eventView
}

type eventView struct {
	Index, Seq    uint64
	Kind, Time    string
	Actor         string
	Writer        string // how the event came (writer.via) and whose token wrote it
	Badge         badge
	PayloadStatus string
	Payload       string
	Clipped       bool
}

// badgeOf turns a rebuilt event's checks into a badge.
func badgeOf(e *replay.Event, cp cpState) badge {
	if e.Verified() && e.Included && e.Chained {
		d := "included under " + cp.Summary() + "; chain intact"
		if e.Seq == 0 {
			d += " (the session's first event)"
		}
		if e.PayloadStatus == api.PayloadOK {
			d += "; payload opens its commitment"
		}
		return badge{OK: true, Detail: d}
	}
	b := badge{}
	for _, p := range e.Problems {
		r := p.Check + ": " + p.Message
		if p.Expected != "" || p.Found != "" {
			r += fmt.Sprintf(" (expected %s, found %s)", p.Expected, p.Found)
		}
		b.Reasons = append(b.Reasons, event.SafeText(r))
	}
	if len(b.Reasons) == 0 {
		b.Reasons = []string{"not proved: the checkpoint did not verify"}
	}
	return b
}

func (c *Console) timelinePage(w http.ResponseWriter, r *http.Request, u *user) {
	c.timeline(w, r, u, false)
}

// timelinePayloads shows the timeline with every payload disclosed (audit
// scope; the log records one access.read event per page of events).
func (c *Console) timelinePayloads(w http.ResponseWriter, r *http.Request, u *user) {
	c.timeline(w, r, u, true)
}

func (c *Console) timeline(w http.ResponseWriter, r *http.Request, u *user, payloads bool) {
	id := r.PathValue("session")
	tenant := r.URL.Query().Get("tenant")
	if r.Method == http.MethodPost {
		tenant = r.PostFormValue("tenant")
	}
	if !event.ValidID(id) || (tenant != "" && !event.ValidID(tenant)) {
		c.fail(w, r, u, http.StatusBadRequest, "That is not a session id (or tenant) of the log.")
		return
	}
	src := replay.Source{Log: u.log, Key: c.cfg.Key, Policy: c.cfg.Policy, Logger: c.logger}
	s, err := replay.Rebuild(r.Context(), src, replay.Query{Tenant: tenant, Session: id, Payloads: payloads})
	if err != nil {
		what := "Rebuilding session " + event.SafeText(id)
		if payloads {
			what = "Disclosing the payloads of session " + event.SafeText(id)
		}
		c.failErr(w, r, u, what, err)
		return
	}
	cp := c.inspect(s.Checkpoint)
	c.observe(cp)
	tl := replay.NewTimeline(s)
	d := timelineData{Tenant: s.Tenant, Session: id, CP: cp, Verified: s.Verified(), Events: len(s.Events),
		Problems: len(s.Problems), FirstTime: tl.FirstTime, LastTime: tl.LastTime, In: tl.TotalInput, Out: tl.TotalOut,
		Payloads: payloads, Access: s.Access}
	if d.Tenant == "" {
		d.Tenant = tenant
	}
	for _, p := range s.Problems {
		if p.Index == nil {
			d.SessionProblems = append(d.SessionProblems, event.SafeText(p.Check+": "+p.Message))
		}
	}
	byIndex := make(map[uint64]*replay.Event, len(s.Events))
	for _, e := range s.Events {
		byIndex[e.Index] = e
	}
	for _, st := range tl.Steps {
		if d.Shown >= maxTimelineEvents {
			break
		}
		sv := stepView{N: st.N, Kind: st.Kind, Time: st.Time, Summary: event.SafeText(event.Shorten(st.Summary, 600)), Verified: st.Verified}
		for _, i := range st.Events {
			e := byIndex[i]
			if e == nil {
				continue
			}
			ev := eventView{Index: e.Index, Seq: e.Seq, Badge: badgeOf(e, cp), PayloadStatus: e.PayloadStatus}
			if e.Leaf != nil {
				ev.Kind, ev.Time = e.Leaf.Kind, e.Leaf.Time
				ev.Actor = e.Leaf.Actor.Type + " " + e.Leaf.Actor.ID
				ev.Writer = writerText(e.Leaf.Writer)
			}
			if e.Payload != nil {
				ev.Payload, ev.Clipped = payloadText(e.MediaType, e.Payload, maxPayloadShown)
			}
			sv.Events = append(sv.Events, ev)
			d.Shown++
		}
		d.Steps = append(d.Steps, sv)
	}
	title := "Session " + event.SafeText(id)
	c.render(w, r, http.StatusOK, "timeline", page{Title: title, Nav: "sessions", User: u, Data: d})
}

// payloadText renders a payload as text: JSON indented, a response's
// assembled text after it, anything not UTF-8 as a hex dump; clipped to n
// bytes.
func payloadText(mediaType string, p []byte, n int) (string, bool) {
	var s string
	switch {
	case utf8.Valid(p):
		s = pretty(p)
		if text, ok := replay.AssembledText(p); ok && strings.HasPrefix(mediaType, "text/event-stream") {
			s = "assembled text:\n" + text + "\n\nas recorded:\n" + s
		}
	default:
		s = hexDump(p, n)
	}
	clipped := false
	if len(s) > n {
		s, clipped = event.Clip(s, n), true
	}
	return event.SafeBlock(s), clipped
}

// hexDump renders binary data as hex, 32 bytes a line, up to n characters.
func hexDump(p []byte, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "binary, %d bytes:\n", len(p))
	for i := 0; i < len(p) && b.Len() < n; i += 32 {
		fmt.Fprintf(&b, "%08x  % x\n", i, p[i:min(i+32, len(p))])
	}
	return b.String()
}

// writerText says, on every timeline row, how an event came into the log
// and whose token wrote it: the actor is what the writer claims, the
// writer is what the server attests ("via api" for an event a token
// posted, "via proxy" for one the server observed, "via otlp" for one the
// agent reported as OpenTelemetry spans or log records, "via server" for
// its own).
func writerText(w *event.Writer) string {
	if w == nil {
		return "writer not recorded (version 1 leaf)"
	}
	return "via " + w.Via + ", token " + w.Token
}

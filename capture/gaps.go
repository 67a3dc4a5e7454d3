package capture

import (
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Bounds of the gap tracker: memory stays bounded however long recording
// is down.
const (
	maxGapItems     = 256  // missed events listed in one gap's payload
	maxGapSessions  = 4096 // sessions with pending gaps, per scope
	maxGapsPerBatch = 16   // gap events carried by one record
	overflowSession = "capture.gaps"
)

// gapItem is one event that could not be recorded.
type gapItem struct {
	Kind    string    `json:"kind"`
	Time    time.Time `json:"time"`
	CallID  string    `json:"call_id,omitempty"`
	Attempt int       `json:"attempt"`
	Model   string    `json:"model,omitempty"`
	Status  int       `json:"status,omitempty"`
	Outcome string    `json:"outcome,omitempty"`
}

// gap is what a session missed while recording was failing.
type gap struct {
	session     string
	count       int
	first, last time.Time
	kinds       map[string]int
	items       []gapItem
	omitted     int // items beyond maxGapItems, counted only
	lastErr     string
}

func (g *gap) add(items []gapItem, errMsg string) {
	for _, it := range items {
		if g.count == 0 || it.Time.Before(g.first) {
			g.first = it.Time
		}
		if it.Time.After(g.last) {
			g.last = it.Time
		}
		g.count++
		g.kinds[it.Kind]++
		if len(g.items) < maxGapItems {
			g.items = append(g.items, it)
		} else {
			g.omitted++
		}
	}
	if errMsg != "" {
		g.lastErr = errMsg
	}
}

func (g *gap) merge(o *gap) {
	g.count += o.count
	for k, n := range o.kinds {
		g.kinds[k] += n
	}
	take := min(maxGapItems-len(g.items), len(o.items))
	g.items = append(g.items, o.items[:take]...)
	g.omitted += o.omitted + len(o.items) - take
	if g.first.IsZero() || (!o.first.IsZero() && o.first.Before(g.first)) {
		g.first = o.first
	}
	if o.last.After(g.last) {
		g.last = o.last
	}
	if o.lastErr != "" {
		g.lastErr = o.lastErr
	}
}

type scopeGaps struct {
	rec      Recorder
	sessions map[string]*gap
}

// gaps tracks, per scope (a tenant, or a Hook) and session, what could not
// be recorded, until a capture.gap event describing it is recorded.
type gaps struct {
	mu sync.Mutex
	m  map[string]*scopeGaps
}

func newGaps() *gaps { return &gaps{m: map[string]*scopeGaps{}} }

// note records that items of session could not be recorded through rec.
func (g *gaps) note(scope string, rec Recorder, session string, err error, items ...gapItem) {
	if len(items) == 0 {
		return
	}
	msg := ""
	if err != nil {
		msg = event.Clip(err.Error(), 512)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.m[scope]
	if s == nil {
		s = &scopeGaps{sessions: map[string]*gap{}}
		g.m[scope] = s
	}
	s.rec = rec
	ga := s.sessions[session]
	if ga == nil {
		if len(s.sessions) >= maxGapSessions {
			session = overflowSession
			ga = s.sessions[session]
		}
		if ga == nil {
			ga = &gap{session: session, kinds: map[string]int{}}
			s.sessions[session] = ga
		}
	}
	ga.add(items, msg)
}

// take removes and returns up to max pending gaps of scope.
func (g *gaps) take(scope string, max int) []*gap {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.m[scope]
	if s == nil {
		return nil
	}
	var out []*gap
	for _, k := range slices.Sorted(maps.Keys(s.sessions)) {
		if len(out) == max {
			break
		}
		out = append(out, s.sessions[k])
		delete(s.sessions, k)
	}
	if len(s.sessions) == 0 {
		delete(g.m, scope)
	}
	return out
}

// restore puts back gaps that take returned and that were not recorded.
func (g *gaps) restore(scope string, rec Recorder, gs []*gap) {
	if len(gs) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.m[scope]
	if s == nil {
		s = &scopeGaps{rec: rec, sessions: map[string]*gap{}}
		g.m[scope] = s
	}
	for _, ga := range gs {
		if cur := s.sessions[ga.session]; cur != nil {
			ga.merge(cur)
		}
		s.sessions[ga.session] = ga
	}
}

// pending returns the scopes with pending gaps and their recorders.
func (g *gaps) pending() map[string]Recorder {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]Recorder, len(g.m))
	for k, s := range g.m {
		out[k] = s.rec
	}
	return out
}

// has reports whether scope has pending gaps.
func (g *gaps) has(scope string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[scope] != nil
}

// count returns the number of events not yet covered by a recorded gap.
func (g *gaps) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, s := range g.m {
		for _, ga := range s.sessions {
			n += ga.count
		}
	}
	return n
}

// event is the capture.gap event describing ga.
func (ga *gap) event(actor event.Actor, common attrs) *event.Request {
	a := common.clone()
	a.set(event.AttrCaptureGapCount, ga.count)
	a.set(event.AttrCaptureGapFirstTime, timeAttr(ga.first))
	a.set(event.AttrCaptureGapLastTime, timeAttr(ga.last))
	a.set(event.AttrCaptureGapKinds, slices.Sorted(maps.Keys(ga.kinds)))
	for k, n := range ga.kinds {
		a.set("capture.gap.count."+k, n)
	}
	var calls []string
	for _, it := range ga.items {
		if it.CallID != "" && !slices.Contains(calls, it.CallID) {
			calls = append(calls, it.CallID)
		}
	}
	a.set(event.AttrCaptureGapCallIDs, calls)
	a.set(event.AttrCaptureGapError, ga.lastErr)
	payload, _ := json.Marshal(struct {
		Missed  []gapItem `json:"missed"`
		Omitted int       `json:"omitted"`
	}{ga.items, ga.omitted})
	return &event.Request{
		Session: ga.session, Kind: event.KindCaptureGap, Actor: actor,
		Attributes: a.raw(), Payload: payload,
	}
}

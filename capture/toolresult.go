package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Tool results observed in requests. An agent runs the tools a model asks
// for and sends their results back to the model in its next request (an
// OpenAI tool message, an Anthropic tool_result block, a Gemini
// functionResponse part); each format reads them (parseRequest fills
// requestInfo.ToolResults) and the capture records each as a tool.result
// event, in the request's record and just before its llm.request, bound to
// the model's tool call by its call id (gen_ai.tool.call.id).
//
// An agent sends the whole conversation again on every turn, so a session's
// results come again and again: the capture remembers, per session, the
// call ids whose results it has recorded (toolMemory) and records each
// once. What it remembers is bounded; after a restart, or once a session
// was forgotten, the ids recorded before come from the ToolResultHistory,
// when one is given (the log server reads its session index), else the
// results of that session's earlier calls are recorded once more.

const (
	// maxToolResults bounds the results read from one request: the last
	// ones, where the new ones are.
	maxToolResults = 256
	// toolMemorySessions and toolMemoryIDs bound the memory: sessions
	// remembered (idle ones forgotten first) and call ids per session.
	toolMemorySessions = 10_000
	toolMemoryIDs      = 4096
	toolMemoryIdle     = time.Hour
)

// toolResult is one tool result of a request.
type toolResult struct {
	// CallID is the id of the call it answers, "" if the format gives
	// none (a Gemini functionResponse may have no id).
	CallID string
	// Name is the tool's name, "" if the request does not say (then the
	// name of the model's call of that id, if it was recorded).
	Name string
	// Key identifies the result in its session: the call id, or for a
	// result without one the tool's name and the number of results of that
	// name before it in the conversation ("name#2").
	Key string
	// IsError: the agent marked the result as an error (Anthropic's
	// is_error); nil if the format has no such mark.
	IsError *bool
	// Raw is the result as the request carries it: the tool message, block
	// or part, JSON.
	Raw json.RawMessage
}

// ToolResultHistory returns the call ids (toolResult keys) of the
// tool.result events that a session of tenant holds already; the capture
// asks when it has no memory of the session (after a restart), once per
// session.
type ToolResultHistory func(ctx context.Context, tenant, session string) ([]string, error)

// toolKeys numbers results without a call id by name (see toolResult.Key),
// in conversation order.
type toolKeys map[string]int

func (k toolKeys) key(callID, name string) string {
	if callID != "" {
		return callID
	}
	n := k[name]
	k[name] = n + 1
	return name + "#" + strconv.Itoa(n)
}

// keepLast keeps the last maxToolResults results.
func keepLast(rs []toolResult) []toolResult {
	if len(rs) > maxToolResults {
		rs = rs[len(rs)-maxToolResults:]
	}
	return rs
}

// toolMemory is what the capture remembers of each session's tool calls
// and results.
type toolMemory struct {
	mu       sync.Mutex
	sessions map[string]*toolSession // scope \x00 session
	history  ToolResultHistory
}

type toolSession struct {
	used     time.Time
	loaded   bool              // the history was read (or there is none)
	names    map[string]string // call id: tool name, of the model's calls
	nameList []string
	results  map[string]bool // keys of the results recorded (or in flight)
	resList  []string
}

func newToolMemory(h ToolResultHistory) *toolMemory {
	return &toolMemory{sessions: map[string]*toolSession{}, history: h}
}

// session returns the memory of a session, making room for it; call with
// mu held.
func (m *toolMemory) session(scope, session string) *toolSession {
	k := scope + "\x00" + session
	s := m.sessions[k]
	if s == nil {
		if len(m.sessions) >= toolMemorySessions {
			m.evict()
		}
		s = &toolSession{names: map[string]string{}, results: map[string]bool{}}
		m.sessions[k] = s
	}
	s.used = time.Now()
	return s
}

// evict forgets idle sessions, or if none is idle the least recently used
// half.
func (m *toolMemory) evict() {
	now := time.Now()
	for k, s := range m.sessions {
		if now.Sub(s.used) > toolMemoryIdle {
			delete(m.sessions, k)
		}
	}
	if len(m.sessions) < toolMemorySessions {
		return
	}
	times := make([]time.Time, 0, len(m.sessions))
	for _, s := range m.sessions {
		times = append(times, s.used)
	}
	slices.SortFunc(times, time.Time.Compare)
	cut := times[len(times)/2]
	for k, s := range m.sessions {
		if !s.used.After(cut) {
			delete(m.sessions, k)
		}
	}
}

// noteCalls remembers the names of the tool calls a model asked for.
func (m *toolMemory) noteCalls(scope, session string, calls []toolCall) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.session(scope, session)
	for _, c := range calls {
		if c.ID == "" || c.Name == "" {
			continue
		}
		if _, ok := s.names[c.ID]; !ok {
			s.nameList = append(s.nameList, c.ID)
			if len(s.nameList) > toolMemoryIDs {
				delete(s.names, s.nameList[0])
				s.nameList = s.nameList[1:]
			}
		}
		s.names[c.ID] = c.Name
	}
}

// fresh returns the results not recorded yet in the session, and marks
// them as recorded (forget undoes that if they could not be); a result
// without a name is given the name of the model's call it answers.
func (m *toolMemory) fresh(ctx context.Context, scope, session string, rs []toolResult) []toolResult {
	if len(rs) == 0 {
		return nil
	}
	m.load(ctx, scope, session)
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.session(scope, session)
	var out []toolResult
	for _, r := range rs {
		if r.Key == "" || s.results[r.Key] {
			continue
		}
		s.results[r.Key] = true
		s.resList = append(s.resList, r.Key)
		if r.Name == "" {
			r.Name = s.names[r.CallID]
		}
		out = append(out, r)
	}
	if n := len(s.resList) - toolMemoryIDs; n > 0 {
		for _, k := range s.resList[:n] {
			delete(s.results, k)
		}
		s.resList = s.resList[n:]
	}
	return out
}

// load reads the session's recorded results from the history, once.
func (m *toolMemory) load(ctx context.Context, scope, session string) {
	m.mu.Lock()
	s := m.session(scope, session)
	if s.loaded || m.history == nil {
		s.loaded = true
		m.mu.Unlock()
		return
	}
	s.loaded = true
	m.mu.Unlock()
	keys, err := m.history(ctx, scope, session)
	if err != nil {
		// Not read: the session's earlier results may be recorded again.
		m.mu.Lock()
		s.loaded = false
		m.mu.Unlock()
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		if !s.results[k] {
			s.results[k] = true
			s.resList = append(s.resList, k)
		}
	}
}

// forget unmarks results that could not be recorded, so that the next
// request that carries them records them.
func (m *toolMemory) forget(scope, session string, rs []toolResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[scope+"\x00"+session]
	if s == nil {
		return
	}
	for _, r := range rs {
		delete(s.results, r.Key)
	}
}

// toolResultEvents are the tool.result events of the results rs that came
// with an attempt: the attempt's common attributes, the tool's name and
// call id, whether the agent marked it as an error; the result itself is
// the payload, never an attribute.
func (x *exchange) toolResultEvents(rs []toolResult) []*event.Request {
	evs := make([]*event.Request, 0, len(rs))
	for _, r := range rs {
		a := x.common.clone()
		a.set(event.AttrGenAIToolName, r.Name)
		a.set(event.AttrGenAIToolCallID, r.CallID)
		a.set(event.AttrCaptureFront, x.c.front)
		a.set(event.AttrCaptureAPI, x.ep.api)
		a.set(event.AttrCaptureToolResultSource, event.KindLLMRequest)
		if r.IsError != nil {
			a.set(event.AttrCaptureToolResultIsError, *r.IsError)
			if *r.IsError {
				a.set(event.AttrErrorType, "tool_error")
			}
		}
		ev := &event.Request{Session: x.session, Kind: event.KindToolResult, Actor: x.actor, Subject: x.subject}
		var buf bytes.Buffer
		switch {
		case len(r.Raw) > x.c.o.maxRecordedBytes:
			a.set(event.AttrCapturePayloadDropped, true)
			a.set(event.AttrCapturePayloadBytes, len(r.Raw))
		case json.Compact(&buf, r.Raw) == nil:
			ev.Payload = buf.Bytes()
		}
		ev.Attributes = a.raw()
		evs = append(evs, ev)
	}
	return evs
}

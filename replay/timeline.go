package replay

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/llmapi"
	"github.com/llmaudittrail/llmaudittrail/signature"
)

// Timeline is a session as a decision process: calls to models (every
// attempt, grouped by call), the tool calls they asked for, tool results,
// signatures and decisions, capture gaps, in log order.
type Timeline struct {
	Tenant     string    `json:"tenant"`
	Session    string    `json:"session"`
	Size       uint64    `json:"checkpoint_size"`
	Root       string    `json:"checkpoint_root"`
	Events     int       `json:"events"`
	Verified   bool      `json:"verified"`
	Steps      []Step    `json:"steps"`
	Problems   []Problem `json:"problems"`
	Access     []uint64  `json:"access_events,omitempty"`
	FirstTime  string    `json:"first_time,omitempty"`
	LastTime   string    `json:"last_time,omitempty"`
	TotalInput int64     `json:"input_tokens"`
	TotalOut   int64     `json:"output_tokens"`
}

// Step kinds.
const (
	StepCall       = "call"             // a model call: its attempts
	StepToolCall   = event.KindToolCall // a tool the model asked for, or one run over MCP
	StepToolResult = event.KindToolResult
	StepSignature  = "signature"
	StepDecision   = "decision"
	StepGap        = event.KindCaptureGap
	StepEvent      = "event" // any other kind
)

// Step is one entry of the timeline.
type Step struct {
	N        int    `json:"step"`
	Kind     string `json:"kind"`
	Index    uint64 `json:"index"` // the step's first event
	Time     string `json:"time"`
	Verified bool   `json:"verified"`
	Summary  string `json:"summary"`
	Call     *Call  `json:"call,omitempty"`
	// Events are the indices of the step's events (for calls, every
	// request and response).
	Events []uint64 `json:"events"`
	// Answers is, for a tool result, the index of the tool call it
	// answers, when the session holds it.
	Answers *uint64 `json:"answers,omitempty"`
}

// Call is a model call and its attempts (retries included).
type Call struct {
	ID            string    `json:"id"`
	Provider      string    `json:"provider,omitempty"`
	API           string    `json:"api,omitempty"`
	Model         string    `json:"model,omitempty"`
	ResponseModel string    `json:"response_model,omitempty"`
	Stream        bool      `json:"stream,omitempty"`
	Attempts      []Attempt `json:"attempts"`
	ToolCalls     []string  `json:"tool_calls,omitempty"`
}

// Attempt is one HTTP exchange of a call.
type Attempt struct {
	Attempt       int      `json:"attempt"`
	Request       uint64   `json:"request"`
	Response      *uint64  `json:"response,omitempty"`
	Status        int      `json:"status,omitempty"`
	Outcome       string   `json:"outcome,omitempty"`
	Error         string   `json:"error,omitempty"`
	DurationMS    float64  `json:"duration_ms,omitempty"`
	TTFBMS        float64  `json:"time_to_first_byte_ms,omitempty"`
	TTFChunk      float64  `json:"time_to_first_chunk_s,omitempty"`
	InputTokens   int64    `json:"input_tokens,omitempty"`
	OutputTokens  int64    `json:"output_tokens,omitempty"`
	FinishReasons []string `json:"finish_reasons,omitempty"`
}

// NewTimeline builds the timeline of a rebuilt session.
func NewTimeline(s *Session) *Timeline {
	t := &Timeline{Tenant: s.Tenant, Session: s.ID, Size: s.Size, Root: fmt.Sprintf("%x", s.Root), Events: len(s.Events),
		Verified: s.Verified(), Problems: s.Problems, Access: s.Access, Steps: []Step{}}
	if t.Problems == nil {
		t.Problems = []Problem{}
	}
	calls := map[string]int{} // call id -> step position
	var lastCall string
	byID := map[string]uint64{} // event id -> index, for references between events
	// The model's tool calls by call id (gen_ai.tool.call.id), for the
	// results that answer them.
	modelCalls := map[string]uint64{}
	for _, e := range s.Events {
		if e.Leaf != nil {
			byID[e.Leaf.ID] = e.Index
		}
	}
	for _, e := range s.Events {
		l := e.Leaf
		if l == nil {
			t.Steps = append(t.Steps, Step{Kind: StepEvent, Index: e.Index, Verified: false, Summary: "unreadable entry", Events: []uint64{e.Index}})
			continue
		}
		if t.FirstTime == "" {
			t.FirstTime = l.Time
		}
		t.LastTime = l.Time
		switch l.Kind {
		case event.KindLLMRequest, event.KindLLMResponse:
			id := callID(l)
			if id == "" {
				id = fmt.Sprintf("entry-%d", e.Index)
			}
			pos, ok := calls[id]
			if !ok {
				pos = len(t.Steps)
				calls[id] = pos
				t.Steps = append(t.Steps, Step{Kind: StepCall, Index: e.Index, Time: l.Time, Verified: true, Call: &Call{ID: id}})
			}
			st := &t.Steps[pos]
			st.Events = append(st.Events, e.Index)
			st.Verified = st.Verified && e.Verified()
			c := st.Call
			n := int(l.Attributes.Number(event.AttrCaptureAttempt))
			if l.Kind == event.KindLLMRequest {
				c.Provider, c.API, c.Model = l.Attributes.String(event.AttrGenAIProviderName), l.Attributes.String(event.AttrCaptureAPI), l.Attributes.String(event.AttrGenAIRequestModel)
				c.Stream = c.Stream || l.Attributes[event.AttrGenAIRequestStream] == true
				c.Attempts = append(c.Attempts, Attempt{Attempt: n, Request: e.Index})
			} else {
				a := c.attempt(n)
				i := e.Index
				a.Response = &i
				a.Status = int(l.Attributes.Number(event.AttrHTTPResponseStatusCode))
				a.Outcome, a.Error = l.Attributes.String(event.AttrCaptureOutcome), l.Attributes.String(event.AttrErrorType)
				a.DurationMS, a.TTFBMS = l.Attributes.Number(event.AttrCaptureDurationMS), l.Attributes.Number(event.AttrCaptureTimeToFirstByteMS)
				if _, ok := l.Attributes[event.AttrCaptureDurationMS]; !ok {
					a.DurationMS = l.Attributes.Number(event.AttrOtelDurationMS) // reported over OTLP
				}
				a.TTFChunk = l.Attributes.Number(event.AttrGenAIResponseTimeToFirstChunk)
				a.InputTokens, a.OutputTokens = int64(l.Attributes.Number(event.AttrGenAIUsageInputTokens)), int64(l.Attributes.Number(event.AttrGenAIUsageOutputTokens))
				a.FinishReasons = l.Attributes.Strings(event.AttrGenAIResponseFinishReasons)
				t.TotalInput += a.InputTokens
				t.TotalOut += a.OutputTokens
				if m := l.Attributes.String(event.AttrGenAIResponseModel); m != "" {
					c.ResponseModel = m
				}
			}
			lastCall = id
		case event.KindToolCall:
			name := l.Attributes.String(event.AttrGenAIToolName)
			if id := l.Attributes.String(event.AttrGenAIToolCallID); id != "" && l.Attributes.String(event.AttrMCPServer) == "" {
				modelCalls[id] = e.Index
			}
			if pos, ok := calls[l.Attributes.String(event.AttrCaptureCallID)]; ok && l.Attributes.String(event.AttrCaptureCallID) == lastCall {
				t.Steps[pos].Call.ToolCalls = append(t.Steps[pos].Call.ToolCalls, name)
			}
			args := ""
			if e.Payload != nil {
				args = " " + oneLine(e.Payload)
			}
			where := ""
			if srv := l.Attributes.String(event.AttrMCPServer); srv != "" {
				where = " on MCP server " + srv
				if i, ok := byID[l.Attributes.String(event.AttrCaptureLLMResponseID)]; ok {
					where += fmt.Sprintf(", answering the model's request in entry %d", i)
				} else if i, ok := l.Attributes[event.AttrCaptureLLMResponseIndex]; ok {
					// Recorded before events were acknowledged at durability.
					where += fmt.Sprintf(", answering the model's request in entry %v", i)
				}
			}
			t.Steps = append(t.Steps, Step{Kind: StepToolCall, Index: e.Index, Time: l.Time, Verified: e.Verified(), Events: []uint64{e.Index},
				Summary: fmt.Sprintf("%s (%s)%s%s", name, l.Attributes.String(event.AttrGenAIToolCallID), where, args)})
		case event.KindToolResult:
			outcome := "ok"
			if et := l.Attributes.String(event.AttrErrorType); et != "" {
				outcome = "error " + et
			}
			for _, k := range []string{event.AttrCaptureDurationMS, event.AttrOtelDurationMS} {
				if _, ok := l.Attributes[k]; ok {
					outcome += fmt.Sprintf(" after %.0f ms", l.Attributes.Number(k))
				}
			}
			// The tool call it answers: the MCP tool.call's event id, or
			// the model's tool call of the same call id.
			st := Step{Kind: StepToolResult, Index: e.Index, Time: l.Time, Verified: e.Verified(), Events: []uint64{e.Index}}
			if id := l.Attributes.String(event.AttrCaptureToolCallID); id != "" {
				if i, ok := byID[id]; ok {
					st.Answers = &i
				}
			} else if id := l.Attributes.String(event.AttrGenAIToolCallID); id != "" && l.Attributes.String(event.AttrMCPServer) == "" {
				if i, ok := modelCalls[id]; ok {
					st.Answers = &i
				}
			}
			where := ""
			if id := l.Attributes.String(event.AttrGenAIToolCallID); id != "" && l.Attributes.String(event.AttrMCPServer) == "" {
				where = " (" + id + ")"
			}
			if st.Answers != nil {
				where += fmt.Sprintf(", answering entry %d", *st.Answers)
			}
			if l.Attributes.String(event.AttrCaptureToolResultSource) == event.KindLLMRequest {
				where += ", sent to the model"
			}
			res := ""
			if e.Payload != nil {
				res = " " + oneLine(e.Payload)
			}
			st.Summary = fmt.Sprintf("%s%s: %s%s", l.Attributes.String(event.AttrGenAIToolName), where, outcome, res)
			t.Steps = append(t.Steps, st)
		case event.KindLLMContent:
			// Messages an agent reported over OTLP as log records: part of
			// their span's call when it is in the session.
			if pos, ok := calls[callID(l)]; ok {
				st := &t.Steps[pos]
				st.Events = append(st.Events, e.Index)
				st.Verified = st.Verified && e.Verified()
				break
			}
			t.Steps = append(t.Steps, Step{Kind: StepEvent, Index: e.Index, Time: l.Time, Verified: e.Verified(), Events: []uint64{e.Index},
				Summary: fmt.Sprintf("%s by %s %s", l.Kind, l.Actor.Type, l.Actor.ID)})
		case event.KindHumanSignature:
			t.Steps = append(t.Steps, Step{Kind: StepSignature, Index: e.Index, Time: l.Time, Verified: e.Verified(), Events: []uint64{e.Index},
				Summary: fmt.Sprintf("%s (%s) signed entry %v as %s", l.Attributes.String(signature.AttrPrintedName), l.Actor.ID,
					l.Attributes[signature.AttrIndex], l.Attributes.String(signature.AttrMeaning))})
		case event.KindAgentDecision:
			t.Steps = append(t.Steps, Step{Kind: StepDecision, Index: e.Index, Time: l.Time, Verified: e.Verified(), Events: []uint64{e.Index},
				Summary: fmt.Sprintf("%s %s: %s", l.Actor.Type, l.Actor.ID, l.Attributes.String(event.AttrDecisionOutcome))})
		case event.KindCaptureGap:
			t.Steps = append(t.Steps, Step{Kind: StepGap, Index: e.Index, Time: l.Time, Verified: e.Verified(), Events: []uint64{e.Index},
				Summary: "capture gap: " + firstOf(l.Attributes.String(event.AttrCaptureReason), l.Attributes.String(event.AttrCaptureGapError))})
		default:
			t.Steps = append(t.Steps, Step{Kind: StepEvent, Index: e.Index, Time: l.Time, Verified: e.Verified(), Events: []uint64{e.Index},
				Summary: fmt.Sprintf("%s by %s %s", l.Kind, l.Actor.Type, l.Actor.ID)})
		}
	}
	for i := range t.Steps {
		st := &t.Steps[i]
		st.N = i + 1
		if st.Call != nil {
			st.Summary = st.Call.summary()
		}
	}
	return t
}

// callID is the call an event belongs to: the capture's call id, or for
// events reported over OTLP (docs/otel.md) their span.
func callID(l *event.Leaf) string {
	if id := l.Attributes.String(event.AttrCaptureCallID); id != "" {
		return id
	}
	if sp := l.Attributes.String(event.AttrOtelSpanID); sp != "" {
		return "otel-" + l.Attributes.String(event.AttrOtelTraceID) + "-" + sp
	}
	return ""
}

// oneLine is the start of a payload as one line (runs of white space
// folded), for a step's summary.
func oneLine(payload []byte) string {
	return event.Shorten(strings.Join(strings.Fields(string(payload)), " "), 200)
}

func firstOf(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func (c *Call) attempt(n int) *Attempt {
	for i := range c.Attempts {
		if c.Attempts[i].Attempt == n && c.Attempts[i].Response == nil {
			return &c.Attempts[i]
		}
	}
	c.Attempts = append(c.Attempts, Attempt{Attempt: n})
	return &c.Attempts[len(c.Attempts)-1]
}

func (c *Call) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", firstOf(c.Provider, "?"), firstOf(c.API, "?"))
	model := c.Model
	if c.ResponseModel != "" && c.ResponseModel != c.Model {
		model += " → " + c.ResponseModel
	}
	fmt.Fprintf(&b, " %s", model)
	if c.Stream {
		b.WriteString(" (stream)")
	}
	for _, a := range c.Attempts {
		fmt.Fprintf(&b, "; attempt %d: ", a.Attempt)
		switch {
		case a.Response == nil:
			b.WriteString("no response recorded")
		case a.Error != "":
			fmt.Fprintf(&b, "%d %s (%s) after %.0f ms", a.Status, a.Error, a.Outcome, a.DurationMS)
		default:
			fmt.Fprintf(&b, "%d, %d→%d tokens, %.0f ms (first byte %.0f ms)", a.Status, a.InputTokens, a.OutputTokens, a.DurationMS, a.TTFBMS)
			if len(a.FinishReasons) > 0 {
				fmt.Fprintf(&b, ", finish %s", strings.Join(a.FinishReasons, ","))
			}
		}
	}
	if len(c.ToolCalls) > 0 {
		fmt.Fprintf(&b, "; asks for %s", strings.Join(c.ToolCalls, ", "))
	}
	return b.String()
}

// WriteText writes the timeline for a terminal. Every value from the log
// is written as one line of visible text (event.SafeText: control,
// bidirectional and zero-width characters escaped).
func (t *Timeline) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	state := "every event verified"
	if !t.Verified {
		state = fmt.Sprintf("%d problem(s)", len(t.Problems))
	}
	fmt.Fprintf(bw, "session %s (tenant %s): %d events, %s, against checkpoint size %d root %s\n",
		event.SafeText(t.Session), event.SafeText(t.Tenant), t.Events, state, t.Size, t.Root)
	if t.FirstTime != "" {
		fmt.Fprintf(bw, "from %s to %s; %d input and %d output tokens\n", event.SafeText(t.FirstTime), event.SafeText(t.LastTime), t.TotalInput, t.TotalOut)
	}
	for _, st := range t.Steps {
		mark := "ok"
		if !st.Verified {
			mark = "FAILED"
		}
		tm := st.Time
		if ts, err := time.Parse(event.TimeFormat, st.Time); err == nil {
			tm = ts.UTC().Format("15:04:05.000")
		}
		fmt.Fprintf(bw, "%3d  %-12s %-11s #%-6d %-6s %s\n", st.N, tm, st.Kind, st.Index, mark, event.SafeText(st.Summary))
	}
	if len(t.Problems) > 0 {
		fmt.Fprintf(bw, "\nproblems:\n")
		for _, p := range t.Problems {
			fmt.Fprintf(bw, "  %s\n", event.SafeText(p.String()))
		}
	}
	return bw.Flush()
}

// WriteJSON writes the timeline as indented JSON.
func (t *Timeline) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}

// AssembledText is the text a recorded response carried: the message text
// of a JSON response, or the concatenated text deltas of an event stream,
// as the first registered provider format (llmapi) that finds text in it
// reads it. ok is false if none does.
func AssembledText(payload []byte) (text string, ok bool) {
	for _, f := range llmapi.Formats() {
		if text, ok := f.Text(payload); ok {
			return text, true
		}
	}
	return "", false
}

// Pretty indents a JSON payload; anything else is returned as text.
func Pretty(payload []byte) string {
	var out bytes.Buffer
	if json.Indent(&out, payload, "", "  ") == nil {
		return out.String()
	}
	return string(payload)
}

//go:embed templates/timeline.html
var timelineHTML string

var timelineTmpl = template.Must(template.New("timeline").Funcs(template.FuncMap{"line": event.SafeText}).Parse(timelineHTML))

// WriteHTML writes the timeline as a self-contained HTML page (every value
// from the log escaped by html/template, and shown as visible text by
// event.SafeText).
func (t *Timeline) WriteHTML(w io.Writer) error { return timelineTmpl.Execute(w, t) }

package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
)

// usage is token usage as the OpenTelemetry GenAI conventions count it:
// Input includes cached tokens (read and written), Output includes
// reasoning tokens. nil means the response did not say.
type usage struct {
	Input, Output, CacheRead, CacheCreation, Reasoning *int64
}

// toolCall is a tool call the model asked the agent to make.
type toolCall struct {
	ID, Name, Type string
	Args           []byte
}

// summary is what a response says about the call. Everything in it comes
// from unverified upstream output and is recorded as such, next to the
// body it was read from.
type summary struct {
	ResponseID    string
	ResponseModel string
	FinishReasons []string
	Usage         usage
	ToolCalls     []toolCall
	// Terminated: the stream's terminator was seen.
	Terminated bool
	// ErrorType is the error reported in the body or in the stream.
	ErrorType string
	// Events and Dropped count the stream events read and skipped.
	Events, Dropped int
}

// decode unmarshals data into v, keeping what is well typed. It fails only
// on malformed JSON.
func decode(data []byte, v any) bool {
	err := json.Unmarshal(data, v)
	var ute *json.UnmarshalTypeError
	return err == nil || errors.As(err, &ute)
}

// jint is an integer field of upstream JSON: a value of another type is
// ignored (OK false) instead of being read as 0.
type jint struct {
	V  int64
	OK bool
}

func (j *jint) UnmarshalJSON(b []byte) error {
	var n int64
	if json.Unmarshal(b, &n) == nil {
		*j = jint{n, true}
	}
	return nil
}

// p returns a pointer to the value, nil when absent or ill-typed.
func (j jint) p() *int64 {
	if !j.OK {
		return nil
	}
	v := j.V
	return &v
}

// Wire shapes (only the fields we read).
type (
	oaUsage struct {
		PromptTokens        jint `json:"prompt_tokens"`
		CompletionTokens    jint `json:"completion_tokens"`
		InputTokens         jint `json:"input_tokens"`
		OutputTokens        jint `json:"output_tokens"`
		PromptTokensDetails *struct {
			CachedTokens jint `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
		CompletionTokensDetails *struct {
			ReasoningTokens jint `json:"reasoning_tokens"`
		} `json:"completion_tokens_details"`
		InputTokensDetails *struct {
			CachedTokens jint `json:"cached_tokens"`
		} `json:"input_tokens_details"`
		OutputTokensDetails *struct {
			ReasoningTokens jint `json:"reasoning_tokens"`
		} `json:"output_tokens_details"`
	}
	oaToolCall struct {
		Index    jint   `json:"index"`
		ID       string `json:"id"`
		Type     string `json:"type"`
		Function *struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
		Custom *struct {
			Name  string `json:"name"`
			Input string `json:"input"`
		} `json:"custom"`
	}
	oaChoice struct {
		Index   int64 `json:"index"`
		Message *struct {
			ToolCalls []oaToolCall `json:"tool_calls"`
		} `json:"message"`
		Delta *struct {
			ToolCalls []oaToolCall `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	}
	// oaChat is a chat completion, a chat completion chunk, a legacy
	// completion or an embeddings response.
	oaChat struct {
		ID      string          `json:"id"`
		Model   string          `json:"model"`
		Choices []oaChoice      `json:"choices"`
		Usage   *oaUsage        `json:"usage"`
		Error   json.RawMessage `json:"error"`
	}
	oaOutputItem struct {
		Type      string `json:"type"`
		CallID    string `json:"call_id"`
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
		Input     string `json:"input"`
	}
	oaResponse struct {
		ID                string `json:"id"`
		Model             string `json:"model"`
		Status            string `json:"status"`
		IncompleteDetails *struct {
			Reason string `json:"reason"`
		} `json:"incomplete_details"`
		Output []oaOutputItem   `json:"output"`
		Usage  *oaUsage         `json:"usage"`
		Error  *json.RawMessage `json:"error"`
	}
	oaResponseEvent struct {
		Type     string        `json:"type"`
		Response *oaResponse   `json:"response"`
		Item     *oaOutputItem `json:"item"`
		Code     string        `json:"code"`
	}
	anUsage struct {
		InputTokens              jint `json:"input_tokens"`
		OutputTokens             jint `json:"output_tokens"`
		CacheCreationInputTokens jint `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     jint `json:"cache_read_input_tokens"`
		OutputTokensDetails      *struct {
			ThinkingTokens jint `json:"thinking_tokens"`
		} `json:"output_tokens_details"`
	}
	anBlock struct {
		Type  string          `json:"type"`
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	}
	anMessage struct {
		Type       string          `json:"type"`
		ID         string          `json:"id"`
		Model      string          `json:"model"`
		StopReason *string         `json:"stop_reason"`
		Content    []anBlock       `json:"content"`
		Usage      *anUsage        `json:"usage"`
		Error      json.RawMessage `json:"error"`
	}
	anEvent struct {
		Type         string     `json:"type"`
		Message      *anMessage `json:"message"`
		Index        jint       `json:"index"`
		ContentBlock *anBlock   `json:"content_block"`
		Delta        *struct {
			Type        string  `json:"type"`
			PartialJSON string  `json:"partial_json"`
			StopReason  *string `json:"stop_reason"`
		} `json:"delta"`
		Usage *anUsage        `json:"usage"`
		Error json.RawMessage `json:"error"`
	}
)

func (u *oaUsage) toUsage() usage {
	if u == nil {
		return usage{}
	}
	out := usage{Input: u.PromptTokens.p(), Output: u.CompletionTokens.p()}
	if out.Input == nil {
		out.Input = u.InputTokens.p()
	}
	if out.Output == nil {
		out.Output = u.OutputTokens.p()
	}
	if d := u.PromptTokensDetails; d != nil {
		out.CacheRead = d.CachedTokens.p()
	}
	if d := u.InputTokensDetails; d != nil && out.CacheRead == nil {
		out.CacheRead = d.CachedTokens.p()
	}
	if d := u.CompletionTokensDetails; d != nil {
		out.Reasoning = d.ReasoningTokens.p()
	}
	if d := u.OutputTokensDetails; d != nil && out.Reasoning == nil {
		out.Reasoning = d.ReasoningTokens.p()
	}
	return out
}

// errorType reads the type (or else the code) of an error object, or the
// string an error field holds.
func errorType(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ""
	}
	var e struct {
		Type json.RawMessage `json:"type"`
		Code json.RawMessage `json:"code"`
	}
	if raw[0] == '{' && decode(raw, &e) {
		if t := jsonString(e.Type); t != "" {
			return truncate(t, 128)
		}
		if c := jsonString(e.Code); c != "" {
			return truncate(c, 128)
		}
		if n, ok := jsonInt(e.Code); ok {
			return strconv.FormatInt(n, 10)
		}
	}
	return "error"
}

// respParser reads a response body: JSON at once (parseBody) or a stream
// chunk by chunk (Write).
type respParser struct {
	api string
	sum summary
	sse *sseScanner

	finish    map[int64]string       // OpenAI chat: finish reason by choice
	chatTools map[[2]int64]*toolCall // OpenAI chat stream: by (choice, tool index)
	chatOrder [][2]int64             // ... in order of appearance
	blocks    map[int64]*toolCall    // Anthropic stream: tool_use blocks by index
	blockSeen map[int64]bool         // ... whose input has had a delta
	an        anUsage                // Anthropic stream usage, accumulated
	anSeen    bool                   // an holds message_start usage
	items     []toolCall             // Responses stream: function call items
	final     *oaResponse            // Responses stream: the terminal response
	argBytes  int                    // bytes of tool arguments held
}

func newRespParser(api string) *respParser {
	p := &respParser{api: api}
	p.sse = newSSEScanner(maxSSEEvent, p.event)
	return p
}

// Write feeds a chunk of an event stream.
func (p *respParser) Write(b []byte) { p.sse.Write(b) }

// parseBody reads a complete JSON response body (status is its HTTP status).
func parseBody(api string, status int, body []byte) summary {
	var s summary
	if status >= 400 {
		var e struct {
			Error json.RawMessage `json:"error"`
		}
		if decode(body, &e) {
			s.ErrorType = errorType(e.Error)
		}
		return s
	}
	switch api {
	case apiOpenAIChat, apiOpenAICompletions, apiOpenAIEmbeddings:
		var c oaChat
		if !decode(body, &c) {
			return s
		}
		s.ResponseID, s.ResponseModel = c.ID, c.Model
		s.Usage = c.Usage.toUsage()
		s.ErrorType = errorType(c.Error)
		finish := map[int64]string{}
		for _, ch := range c.Choices {
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				finish[ch.Index] = *ch.FinishReason
			}
			if ch.Message != nil {
				for _, tc := range ch.Message.ToolCalls {
					if len(s.ToolCalls) < maxToolCalls {
						s.ToolCalls = append(s.ToolCalls, oaTool(tc))
					}
				}
			}
		}
		s.FinishReasons = sortedReasons(finish)
	case apiOpenAIResponses:
		var r oaResponse
		if decode(body, &r) {
			s.fromResponse(&r)
		}
	case apiAnthropicMessages:
		var m anMessage
		if !decode(body, &m) {
			return s
		}
		s.ResponseID, s.ResponseModel = m.ID, m.Model
		if m.StopReason != nil && *m.StopReason != "" {
			s.FinishReasons = []string{*m.StopReason}
		}
		s.Usage = m.Usage.toUsage()
		s.ErrorType = errorType(m.Error)
		for _, b := range m.Content {
			if b.Type == "tool_use" && len(s.ToolCalls) < maxToolCalls {
				args := []byte(b.Input)
				if len(args) == 0 {
					args = []byte("{}")
				}
				s.ToolCalls = append(s.ToolCalls, toolCall{ID: b.ID, Name: b.Name, Type: "function", Args: args})
			}
		}
	}
	return s
}

func oaTool(tc oaToolCall) toolCall {
	t := toolCall{ID: tc.ID, Type: tc.Type}
	switch {
	case tc.Function != nil:
		t.Name, t.Args = tc.Function.Name, []byte(tc.Function.Arguments)
	case tc.Custom != nil:
		t.Name, t.Args = tc.Custom.Name, []byte(tc.Custom.Input)
	}
	if t.Type == "" {
		t.Type = "function"
	}
	return t
}

func (u *anUsage) toUsage() usage {
	if u == nil {
		return usage{}
	}
	out := usage{Output: u.OutputTokens.p(), CacheRead: u.CacheReadInputTokens.p(), CacheCreation: u.CacheCreationInputTokens.p()}
	if u.InputTokens.OK {
		// The conventions count cache reads and writes as input tokens;
		// Anthropic reports them apart.
		n := u.InputTokens.V + u.CacheReadInputTokens.V + u.CacheCreationInputTokens.V
		out.Input = &n
	}
	if d := u.OutputTokensDetails; d != nil {
		out.Reasoning = d.ThinkingTokens.p()
	}
	return out
}

func (s *summary) fromResponse(r *oaResponse) {
	s.ResponseID, s.ResponseModel = r.ID, r.Model
	switch {
	case r.Status == "incomplete" && r.IncompleteDetails != nil && r.IncompleteDetails.Reason != "":
		s.FinishReasons = []string{r.IncompleteDetails.Reason}
	case r.Status != "":
		s.FinishReasons = []string{r.Status}
	}
	s.Usage = r.Usage.toUsage()
	if r.Error != nil {
		s.ErrorType = errorType(*r.Error)
	}
	s.ToolCalls = s.ToolCalls[:0]
	for _, it := range r.Output {
		if t, ok := responseTool(it); ok && len(s.ToolCalls) < maxToolCalls {
			s.ToolCalls = append(s.ToolCalls, t)
		}
	}
}

func responseTool(it oaOutputItem) (toolCall, bool) {
	switch it.Type {
	case "function_call":
		return toolCall{ID: it.CallID, Name: it.Name, Type: "function", Args: []byte(it.Arguments)}, true
	case "custom_tool_call":
		return toolCall{ID: it.CallID, Name: it.Name, Type: "custom", Args: []byte(it.Input)}, true
	}
	return toolCall{}, false
}

func sortedReasons(m map[int64]string) []string {
	if len(m) == 0 {
		return nil
	}
	idx := make([]int64, 0, len(m))
	for i := range m {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	if len(idx) > maxFinishReasons {
		idx = idx[:maxFinishReasons]
	}
	out := make([]string, len(idx))
	for i, k := range idx {
		out[i] = truncate(m[k], 64)
	}
	return out
}

// event handles one stream event. ev.Data is only valid during the call.
func (p *respParser) event(ev sseEvent) {
	p.sum.Events++
	data := bytes.TrimSpace(ev.Data)
	if bytes.Equal(data, []byte("[DONE]")) {
		p.sum.Terminated = true
		return
	}
	ok := true
	switch p.api {
	case apiOpenAIChat, apiOpenAICompletions:
		ok = p.openAIChunk(data)
	case apiOpenAIResponses:
		ok = p.responsesEvent(data)
	case apiAnthropicMessages:
		ok = p.anthropicEvent(ev.Type, data)
	}
	if !ok {
		p.sum.Dropped++
	}
}

func (p *respParser) holdArgs(n int) bool {
	if p.argBytes+n > maxToolArgBytes {
		return false
	}
	p.argBytes += n
	return true
}

func (p *respParser) openAIChunk(data []byte) bool {
	var c oaChat
	if !decode(data, &c) {
		return false
	}
	if e := errorType(c.Error); e != "" {
		p.sum.ErrorType = e
		return true
	}
	if c.ID != "" {
		p.sum.ResponseID = truncate(c.ID, maxAttrString)
	}
	if c.Model != "" {
		p.sum.ResponseModel = truncate(c.Model, maxAttrString)
	}
	if c.Usage != nil {
		p.sum.Usage = c.Usage.toUsage()
	}
	for _, ch := range c.Choices {
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			if p.finish == nil {
				p.finish = map[int64]string{}
			}
			if len(p.finish) < maxFinishReasons || p.finish[ch.Index] != "" {
				p.finish[ch.Index] = *ch.FinishReason
			}
		}
		if ch.Delta == nil {
			continue
		}
		for _, d := range ch.Delta.ToolCalls {
			k := [2]int64{ch.Index, d.Index.V}
			t, ok := p.chatTools[k]
			if !ok {
				if len(p.chatOrder) >= maxToolCalls {
					continue
				}
				if p.chatTools == nil {
					p.chatTools = map[[2]int64]*toolCall{}
				}
				t = &toolCall{Type: "function"}
				p.chatTools[k] = t
				p.chatOrder = append(p.chatOrder, k)
			}
			if d.ID != "" {
				t.ID = d.ID
			}
			if d.Type != "" {
				t.Type = d.Type
			}
			if f := d.Function; f != nil {
				if f.Name != "" {
					t.Name = f.Name
				}
				if p.holdArgs(len(f.Arguments)) {
					t.Args = append(t.Args, f.Arguments...)
				}
			}
			if c := d.Custom; c != nil {
				if c.Name != "" {
					t.Name = c.Name
				}
				if p.holdArgs(len(c.Input)) {
					t.Args = append(t.Args, c.Input...)
				}
			}
		}
	}
	return true
}

func (p *respParser) responsesEvent(data []byte) bool {
	var e oaResponseEvent
	if !decode(data, &e) {
		return false
	}
	switch e.Type {
	case "response.created", "response.in_progress":
		if e.Response != nil {
			p.sum.ResponseID, p.sum.ResponseModel = truncate(e.Response.ID, maxAttrString), truncate(e.Response.Model, maxAttrString)
		}
	case "response.output_item.done":
		if e.Item != nil && len(p.items) < maxToolCalls {
			if t, ok := responseTool(*e.Item); ok && p.holdArgs(len(t.Args)) {
				p.items = append(p.items, t)
			}
		}
	case "response.completed", "response.incomplete", "response.failed":
		p.sum.Terminated = true
		if e.Response != nil {
			p.final = e.Response
		}
	case "error":
		p.sum.ErrorType = truncate(e.Code, 128)
		if p.sum.ErrorType == "" {
			p.sum.ErrorType = "error"
		}
	}
	return true
}

func (p *respParser) anthropicEvent(typ string, data []byte) bool {
	var e anEvent
	if !decode(data, &e) {
		return false
	}
	if e.Type != "" {
		typ = e.Type
	}
	switch typ {
	case "message_start":
		if m := e.Message; m != nil {
			p.sum.ResponseID, p.sum.ResponseModel = truncate(m.ID, maxAttrString), truncate(m.Model, maxAttrString)
			if m.Usage != nil {
				p.an, p.anSeen = *m.Usage, true
			}
		}
	case "content_block_start":
		if !e.Index.OK || e.ContentBlock == nil || e.ContentBlock.Type != "tool_use" {
			return true
		}
		if p.blocks == nil {
			p.blocks, p.blockSeen = map[int64]*toolCall{}, map[int64]bool{}
		}
		if len(p.blocks) >= maxToolCalls {
			return true
		}
		t := &toolCall{ID: e.ContentBlock.ID, Name: e.ContentBlock.Name, Type: "function"}
		if in := bytes.TrimSpace(e.ContentBlock.Input); len(in) > 0 && p.holdArgs(len(in)) {
			t.Args = append([]byte(nil), in...)
		}
		p.blocks[e.Index.V] = t
	case "content_block_delta":
		if !e.Index.OK || e.Delta == nil || e.Delta.Type != "input_json_delta" {
			return true
		}
		t, ok := p.blocks[e.Index.V]
		if !ok || e.Delta.PartialJSON == "" {
			return true
		}
		// As the SDK accumulators do: the first delta replaces the
		// start block's empty "{}" input.
		if !p.blockSeen[e.Index.V] {
			p.blockSeen[e.Index.V] = true
			p.argBytes -= len(t.Args)
			t.Args = t.Args[:0]
		}
		if p.holdArgs(len(e.Delta.PartialJSON)) {
			t.Args = append(t.Args, e.Delta.PartialJSON...)
		}
	case "message_delta":
		if e.Delta != nil && e.Delta.StopReason != nil && *e.Delta.StopReason != "" {
			p.sum.FinishReasons = []string{truncate(*e.Delta.StopReason, 64)}
		}
		if u := e.Usage; u != nil {
			// Every count in message_delta is a running total for the whole
			// message: it replaces, never adds (as Message.Accumulate does).
			if u.OutputTokens.OK {
				p.an.OutputTokens = u.OutputTokens
			}
			if u.InputTokens.OK {
				p.an.InputTokens = u.InputTokens
			}
			if u.CacheCreationInputTokens.OK {
				p.an.CacheCreationInputTokens = u.CacheCreationInputTokens
			}
			if u.CacheReadInputTokens.OK {
				p.an.CacheReadInputTokens = u.CacheReadInputTokens
			}
			if u.OutputTokensDetails != nil {
				p.an.OutputTokensDetails = u.OutputTokensDetails
			}
			p.anSeen = true
		}
	case "message_stop":
		p.sum.Terminated = true
	case "error":
		p.sum.ErrorType = errorType(e.Error)
	}
	return true
}

// summary returns what the stream said so far.
func (p *respParser) summary() summary {
	s := p.sum
	s.Dropped += p.sse.dropped
	s.ToolCalls = nil
	switch p.api {
	case apiOpenAIChat, apiOpenAICompletions:
		s.FinishReasons = sortedReasons(p.finish)
		for _, k := range p.chatOrder {
			s.ToolCalls = append(s.ToolCalls, *p.chatTools[k])
		}
	case apiOpenAIResponses:
		if p.final != nil {
			id, model := s.ResponseID, s.ResponseModel
			s.fromResponse(p.final)
			if s.ResponseID == "" {
				s.ResponseID = id
			}
			if s.ResponseModel == "" {
				s.ResponseModel = model
			}
			if s.ErrorType == "" {
				s.ErrorType = p.sum.ErrorType
			}
		}
		if len(s.ToolCalls) == 0 {
			s.ToolCalls = slices.Clone(p.items)
		}
	case apiAnthropicMessages:
		if p.anSeen {
			s.Usage = p.an.toUsage()
		}
		idx := make([]int64, 0, len(p.blocks))
		for i := range p.blocks {
			idx = append(idx, i)
		}
		slices.Sort(idx)
		for _, i := range idx {
			t := *p.blocks[i]
			if len(t.Args) == 0 {
				t.Args = []byte("{}")
			}
			s.ToolCalls = append(s.ToolCalls, t)
		}
	}
	return s
}

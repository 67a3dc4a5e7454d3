package capture

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
	"github.com/llmaudittrail/llmaudittrail/llmapi"
)

// Anthropic's Messages API.
const (
	apiAnthropicMessages   = "anthropic.messages"
	flavorAnthropic        = "anthropic"
	anthropicVersionHeader = "Anthropic-Version"
)

// anthropicProvider is Anthropic's API: its own format, its key in
// X-Api-Key, the API version and beta flags in headers that are recorded.
var anthropicProvider = llmapi.Provider{Name: "anthropic", System: "anthropic", Hosts: []string{"api.anthropic.com"}, Upstream: "https://api.anthropic.com",
	Credentials: []string{"X-Api-Key"}, Headers: []string{anthropicVersionHeader, "Anthropic-Beta"}, Format: anthropic{}}

type anthropic struct{}

func (anthropic) Name() string { return flavorAnthropic }

// claims a request with the API version header, which every Anthropic SDK
// sends, or to a host of Anthropic's (its upstream name is claimed through
// the registry).
func (anthropic) claims(h http.Header, hint string) bool {
	return h.Get(anthropicVersionHeader) != "" || strings.Contains(hint, "anthropic.com")
}

func (anthropic) match(p string, _ http.Header, _ string) (string, string, bool) {
	if strings.HasSuffix(p, "/messages") {
		return apiAnthropicMessages, "chat", true
	}
	return "", "", false
}

func (anthropic) parseRequest(_ string, body []byte) (requestInfo, error) {
	var r struct {
		commonRequest
		System   json.RawMessage   `json:"system"`
		Messages []json.RawMessage `json:"messages"`
	}
	if err := decode(body, &r); err != nil {
		return requestInfo{}, err
	}
	if err := r.check(); err != nil {
		return requestInfo{}, err
	}
	info := r.info()
	info.SystemPrompt = promptDigest(contentTexts(r.System))
	info.ToolResults = anToolResults(r.Messages)
	return info, nil
}

// anToolResults are the tool_result content blocks of a conversation
// (tool_use_id, is_error), each named after the tool_use block of that id
// in the conversation, if it holds one. A message or block that cannot be
// read strictly gives none (its bytes are in the request's payload all the
// same).
func anToolResults(msgs []json.RawMessage) []toolResult {
	var blocks []anRequestBlock
	for _, raw := range msgs {
		var m struct {
			Content json.RawMessage `json:"content"`
		}
		var content []json.RawMessage
		if decode(raw, &m) != nil || decode(m.Content, &content) != nil {
			continue // a string content has no blocks
		}
		for _, c := range content {
			var b anRequestBlock
			if decode(c, &b) == nil {
				b.raw = c
				blocks = append(blocks, b)
			}
		}
	}
	names := map[string]string{}
	for _, b := range blocks {
		if b.Type == "tool_use" && b.ID != "" {
			names[b.ID] = b.Name
		}
	}
	var out []toolResult
	for _, b := range blocks {
		if b.Type != "tool_result" || b.ToolUseID == "" {
			continue
		}
		isErr := b.IsError != nil && *b.IsError
		out = append(out, toolResult{CallID: b.ToolUseID, Name: names[b.ToolUseID], Key: b.ToolUseID, IsError: &isErr, Raw: b.raw})
	}
	return keepLast(out)
}

// anRequestBlock is a content block of a request message: a tool_use the
// model asked for, or the tool_result that answers it.
type anRequestBlock struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	ToolUseID string `json:"tool_use_id"`
	IsError   *bool  `json:"is_error"`
	raw       json.RawMessage
}

// ErrorBody is Anthropic's {"type": "error", "error": {"type",
// "message"}}.
func (anthropic) ErrorBody(status int, _ string, message string) []byte {
	type detail struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	b, _ := json.Marshal(struct {
		Type  string `json:"type"`
		Error detail `json:"error"`
	}{"error", detail{anthropicErrorType(status), message}})
	return b
}

// Text is a message's text blocks; of a stream, its text_delta deltas.
func (anthropic) Text(body []byte) (string, bool) {
	var b strings.Builder
	if llmapi.IsJSON(body) {
		var v struct {
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		}
		if strictjson.Unmarshal(body, &v) != nil {
			return "", false
		}
		for _, c := range v.Content {
			if c.Type == "text" {
				b.WriteString(c.Text)
			}
		}
		return b.String(), b.Len() > 0
	}
	for _, d := range llmapi.StreamData(body) {
		var v struct {
			Type  string `json:"type"`
			Delta struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"delta"`
		}
		if strictjson.Unmarshal(d, &v) == nil && v.Type == "content_block_delta" && v.Delta.Type == "text_delta" {
			b.WriteString(v.Delta.Text)
		}
	}
	return b.String(), b.Len() > 0
}

// ToolResult reads a tool_result content block (tool_use_id).
func (anthropic) ToolResult(item any) (string, bool) {
	if m, ok := item.(map[string]any); ok && m["type"] == "tool_result" {
		id, _ := m["tool_use_id"].(string)
		return id, true
	}
	return "", false
}

// IDPrefixes: tool uses (toolu_, srvtoolu_) and messages.
func (anthropic) IDPrefixes() []string { return []string{"toolu", "srvtoolu", "msg"} }

// DecisionFields of the Messages API.
func (anthropic) DecisionFields() []string {
	return []string{"model", "messages", "system", "tools", "tool_choice", "temperature", "top_p", "top_k",
		"max_tokens", "stop_sequences", "thinking"}
}

// anthropicErrorType maps a status to Anthropic's error types
// (https://docs.anthropic.com/en/api/errors).
func anthropicErrorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// Wire shapes (only the fields we read).
type (
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

func (anthropic) parseBody(_ string, body []byte) summary {
	var s summary
	var m anMessage
	if err := decode(body, &m); err != nil {
		s.unreadable(err)
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
	return s
}

func (anthropic) newStream(_ string, p *respParser) streamReader { return &anStream{p: p} }

// anStream reads a Messages stream.
type anStream struct {
	p         *respParser
	blocks    map[int64]*toolCall // tool_use blocks by index
	blockSeen map[int64]bool      // ... whose input has had a delta
	an        anUsage             // usage, accumulated
	anSeen    bool                // an holds message_start usage
}

func (st *anStream) event(typ string, data []byte) bool {
	p := st.p
	var e anEvent
	if err := decode(data, &e); err != nil {
		p.sum.unreadable(err)
		return false
	}
	if e.Type != "" {
		typ = e.Type
	}
	switch typ {
	case "message_start":
		if m := e.Message; m != nil {
			p.sum.ResponseID, p.sum.ResponseModel = event.Clip(m.ID, maxAttrString), event.Clip(m.Model, maxAttrString)
			if m.Usage != nil {
				st.an, st.anSeen = *m.Usage, true
			}
		}
	case "content_block_start":
		if !e.Index.OK || e.ContentBlock == nil || e.ContentBlock.Type != "tool_use" {
			return true
		}
		if st.blocks == nil {
			st.blocks, st.blockSeen = map[int64]*toolCall{}, map[int64]bool{}
		}
		if len(st.blocks) >= maxToolCalls {
			return true
		}
		t := &toolCall{ID: e.ContentBlock.ID, Name: e.ContentBlock.Name, Type: "function"}
		if in := bytes.TrimSpace(e.ContentBlock.Input); len(in) > 0 && p.holdArgs(len(in)) {
			t.Args = append([]byte(nil), in...)
		}
		st.blocks[e.Index.V] = t
	case "content_block_delta":
		if !e.Index.OK || e.Delta == nil || e.Delta.Type != "input_json_delta" {
			return true
		}
		t, ok := st.blocks[e.Index.V]
		if !ok || e.Delta.PartialJSON == "" {
			return true
		}
		// As the SDK accumulators do: the first delta replaces the
		// start block's empty "{}" input.
		if !st.blockSeen[e.Index.V] {
			st.blockSeen[e.Index.V] = true
			p.argBytes -= len(t.Args)
			t.Args = t.Args[:0]
		}
		if p.holdArgs(len(e.Delta.PartialJSON)) {
			t.Args = append(t.Args, e.Delta.PartialJSON...)
		}
	case "message_delta":
		if e.Delta != nil && e.Delta.StopReason != nil && *e.Delta.StopReason != "" {
			p.sum.FinishReasons = []string{event.Clip(*e.Delta.StopReason, 64)}
		}
		if u := e.Usage; u != nil {
			// Every count in message_delta is a running total for the whole
			// message: it replaces, never adds (as Message.Accumulate does).
			if u.OutputTokens.OK {
				st.an.OutputTokens = u.OutputTokens
			}
			if u.InputTokens.OK {
				st.an.InputTokens = u.InputTokens
			}
			if u.CacheCreationInputTokens.OK {
				st.an.CacheCreationInputTokens = u.CacheCreationInputTokens
			}
			if u.CacheReadInputTokens.OK {
				st.an.CacheReadInputTokens = u.CacheReadInputTokens
			}
			if u.OutputTokensDetails != nil {
				st.an.OutputTokensDetails = u.OutputTokensDetails
			}
			st.anSeen = true
		}
	case "message_stop":
		p.sum.Terminated = true
	case "error":
		p.sum.ErrorType = errorType(e.Error)
	}
	return true
}

func (st *anStream) finish(s *summary) {
	if st.anSeen {
		s.Usage = st.an.toUsage()
	}
	idx := make([]int64, 0, len(st.blocks))
	for i := range st.blocks {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		t := *st.blocks[i]
		if len(t.Args) == 0 {
			t.Args = []byte("{}")
		}
		s.ToolCalls = append(s.ToolCalls, t)
	}
}

package capture

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
	"github.com/llmaudittrail/llmaudittrail/llmapi"
)

// OpenAI's APIs (and every OpenAI-compatible server's): chat completions,
// the Responses API, embeddings and legacy completions.
const (
	apiOpenAIChat        = "openai.chat.completions"
	apiOpenAIResponses   = "openai.responses"
	apiOpenAIEmbeddings  = "openai.embeddings"
	apiOpenAICompletions = "openai.completions"
	flavorOpenAI         = "openai"
)

// openAIProvider is OpenAI's API. Its format is the default: every
// OpenAI-compatible server speaks it, and so do Azure OpenAI and Bedrock's
// OpenAI-compatible endpoint (azure.go, bedrock.go).
var openAIProvider = llmapi.Provider{Name: "openai", System: "openai", Hosts: []string{"api.openai.com"}, Upstream: "https://api.openai.com",
	Headers: []string{"Openai-Beta"}, Format: openAI{}}

type openAI struct{}

func (openAI) Name() string { return flavorOpenAI }

// claims nothing: OpenAI's format is the default for unknown APIs.
func (openAI) claims(http.Header, string) bool { return false }

func (openAI) match(p string, _ http.Header, _ string) (string, string, bool) {
	switch {
	case strings.HasSuffix(p, "/chat/completions"):
		return apiOpenAIChat, "chat", true
	case strings.HasSuffix(p, "/responses"):
		return apiOpenAIResponses, "chat", true
	case strings.HasSuffix(p, "/embeddings"):
		return apiOpenAIEmbeddings, "embeddings", true
	case strings.HasSuffix(p, "/completions"):
		return apiOpenAICompletions, "text_completion", true
	}
	return "", "", false
}

// pathModel is an Azure OpenAI deployment (/openai/deployments/NAME/...):
// the model of a request whose body names none.
func (openAI) pathModel(p string) string {
	_, rest, ok := strings.Cut(p, "/openai/deployments/")
	if !ok {
		return ""
	}
	d, _, _ := strings.Cut(rest, "/")
	return d
}

func (openAI) parseRequest(_ string, body []byte) (requestInfo, error) {
	var r struct {
		commonRequest
		MaxCompletionTokens json.RawMessage   `json:"max_completion_tokens"`
		MaxOutputTokens     json.RawMessage   `json:"max_output_tokens"`
		N                   json.RawMessage   `json:"n"`
		Seed                json.RawMessage   `json:"seed"`
		EncodingFormat      json.RawMessage   `json:"encoding_format"`
		Instructions        json.RawMessage   `json:"instructions"`
		Messages            []json.RawMessage `json:"messages"`
		Input               json.RawMessage   `json:"input"`
	}
	if err := decode(body, &r); err != nil {
		return requestInfo{}, err
	}
	if err := r.check(); err != nil {
		return requestInfo{}, err
	}
	// Each message is read as strictly as the body (the raw message is
	// kept: a tool message is a tool result's payload).
	msgs := make([]oaMessage, len(r.Messages))
	for i, raw := range r.Messages {
		if err := decode(raw, &msgs[i]); err != nil {
			return requestInfo{}, err
		}
		msgs[i].raw = raw
	}
	// A string input has no instructions or items; an input whose items
	// cannot all be read is not read at all.
	var rawInput []json.RawMessage
	var input []oaMessage
	if decode(r.Input, &rawInput) == nil {
		input = make([]oaMessage, len(rawInput))
		for i, raw := range rawInput {
			if decode(raw, &input[i]) != nil {
				input = nil
				break
			}
			input[i].raw = raw
		}
	}
	// System instructions: chat's system and developer messages; the
	// Responses API's instructions and system/developer input items.
	var sys []string
	if s := jsonString(r.Instructions); s != "" {
		sys = append(sys, s)
	}
	all := append(msgs, input...)
	for _, m := range all {
		if m.Role == "system" || m.Role == "developer" {
			sys = append(sys, contentTexts(m.Content)...)
		}
	}
	info := r.info(r.MaxCompletionTokens, r.MaxOutputTokens)
	if n, ok := jsonInt(r.N); ok {
		info.ChoiceCount = &n
	}
	if n, ok := jsonInt(r.Seed); ok {
		info.Seed = &n
	}
	info.EncodingFormat = event.Clip(jsonString(r.EncodingFormat), 64)
	info.SystemPrompt = promptDigest(sys)
	info.ToolResults = oaToolResults(all)
	return info, nil
}

// oaToolResults are the tool results of a conversation: chat tool messages
// (role "tool", tool_call_id) and Responses function_call_output and
// custom_tool_call_output items (call_id), each named after the call of
// that id in the conversation (an assistant message's tool_calls, a
// function_call item), if it holds one.
func oaToolResults(msgs []oaMessage) []toolResult {
	names := map[string]string{}
	for _, m := range msgs {
		for _, tc := range m.ToolCalls {
			if f := tc.Function; f != nil && tc.ID != "" {
				names[tc.ID] = f.Name
			} else if c := tc.Custom; c != nil && tc.ID != "" {
				names[tc.ID] = c.Name
			}
		}
		if (m.Type == "function_call" || m.Type == "custom_tool_call") && m.CallID != "" {
			names[m.CallID] = m.Name
		}
	}
	var out []toolResult
	keys := toolKeys{}
	for _, m := range msgs {
		id := ""
		switch {
		case m.Role == "tool":
			id = m.ToolCallID
		case m.Type == "function_call_output" || m.Type == "custom_tool_call_output":
			id = m.CallID
		default:
			continue
		}
		if id == "" {
			continue // a result that answers no call
		}
		out = append(out, toolResult{CallID: id, Name: names[id], Key: keys.key(id, ""), Raw: m.raw})
	}
	return keepLast(out)
}

// ErrorBody is OpenAI's {"error": {"message", "type", "param", "code"}}.
func (openAI) ErrorBody(status int, code, message string) []byte {
	typ := "invalid_request_error"
	if status >= 500 {
		typ = "server_error"
	}
	type detail struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	}
	b, _ := json.Marshal(struct {
		Error detail `json:"error"`
	}{detail{message, typ, nil, code}})
	return b
}

// Text is a chat completion's (or legacy completion's) message contents, a
// Responses output's texts; of a stream, the contents of the chat chunks'
// deltas, or the Responses API's response.output_text.delta events.
func (openAI) Text(body []byte) (string, bool) {
	var b strings.Builder
	if llmapi.IsJSON(body) {
		var v struct {
			Choices []struct {
				Message struct {
					Content json.RawMessage `json:"content"`
				} `json:"message"`
				Text string `json:"text"`
			} `json:"choices"`
			Output []struct {
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			} `json:"output"`
		}
		if strictjson.Unmarshal(body, &v) != nil {
			return "", false
		}
		for _, c := range v.Choices {
			b.WriteString(jsonString(c.Message.Content))
			b.WriteString(c.Text)
		}
		for _, o := range v.Output {
			for _, c := range o.Content {
				b.WriteString(c.Text)
			}
		}
		return b.String(), b.Len() > 0
	}
	for _, d := range llmapi.StreamData(body) {
		var v struct {
			Type    string `json:"type"`
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				Text string `json:"text"`
			} `json:"choices"`
			Delta json.RawMessage `json:"delta"`
		}
		if strictjson.Unmarshal(d, &v) != nil {
			continue
		}
		for _, c := range v.Choices {
			b.WriteString(c.Delta.Content)
			b.WriteString(c.Text)
		}
		if v.Type == "response.output_text.delta" {
			b.WriteString(jsonString(v.Delta))
		}
	}
	return b.String(), b.Len() > 0
}

// ToolResult reads a chat tool message (role "tool", tool_call_id) or a
// Responses function_call_output item (call_id).
func (openAI) ToolResult(item any) (string, bool) {
	m, ok := item.(map[string]any)
	switch {
	case !ok:
		return "", false
	case m["role"] == "tool":
		id, _ := m["tool_call_id"].(string)
		return id, true
	case m["type"] == "function_call_output":
		id, _ := m["call_id"].(string)
		return id, true
	}
	return "", false
}

// IDPrefixes: tool calls (call_, fc_), messages, responses, chat
// completions, web searches and reasoning items.
func (openAI) IDPrefixes() []string {
	return []string{"call", "fc", "msg", "resp", "chatcmpl", "ws", "rs"}
}

// DecisionFields of chat completions, the Responses API and legacy
// completions.
func (openAI) DecisionFields() []string {
	return []string{"model", "messages", "input", "instructions", "tools", "tool_choice", "temperature", "top_p",
		"max_tokens", "max_completion_tokens", "max_output_tokens", "response_format", "text", "stop", "seed", "reasoning",
		"reasoning_effort", "n", "frequency_penalty", "presence_penalty", "logit_bias", "previous_response_id", "prompt",
		"functions", "function_call", "parallel_tool_calls"}
}

// Wire shapes (only the fields we read).
type (
	// oaMessage is a chat message or a Responses input item.
	oaMessage struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		ToolCallID string          `json:"tool_call_id"`
		ToolCalls  []oaToolCall    `json:"tool_calls"`
		Type       string          `json:"type"`
		CallID     string          `json:"call_id"`
		Name       string          `json:"name"`
		raw        json.RawMessage // the message as sent
	}
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

func (openAI) parseBody(api string, body []byte) summary {
	var s summary
	switch api {
	case apiOpenAIChat, apiOpenAICompletions, apiOpenAIEmbeddings:
		var c oaChat
		if err := decode(body, &c); err != nil {
			s.unreadable(err)
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
		if err := decode(body, &r); err != nil {
			s.unreadable(err)
		} else {
			s.fromResponse(&r)
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

func (openAI) newStream(api string, p *respParser) streamReader {
	if api == apiOpenAIResponses {
		return &oaResponsesStream{p: p}
	}
	return &oaChatStream{p: p}
}

// oaChatStream reads chat completion (and legacy completion) chunks.
type oaChatStream struct {
	p         *respParser
	reasons   map[int64]string       // finish reason by choice
	chatTools map[[2]int64]*toolCall // by (choice, tool index)
	chatOrder [][2]int64             // ... in order of appearance
}

func (st *oaChatStream) event(_ string, data []byte) bool {
	p := st.p
	var c oaChat
	if err := decode(data, &c); err != nil {
		p.sum.unreadable(err)
		return false
	}
	if e := errorType(c.Error); e != "" {
		p.sum.ErrorType = e
		return true
	}
	if c.ID != "" {
		p.sum.ResponseID = event.Clip(c.ID, maxAttrString)
	}
	if c.Model != "" {
		p.sum.ResponseModel = event.Clip(c.Model, maxAttrString)
	}
	if c.Usage != nil {
		p.sum.Usage = c.Usage.toUsage()
	}
	for _, ch := range c.Choices {
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			if st.reasons == nil {
				st.reasons = map[int64]string{}
			}
			if len(st.reasons) < maxFinishReasons || st.reasons[ch.Index] != "" {
				st.reasons[ch.Index] = *ch.FinishReason
			}
		}
		if ch.Delta == nil {
			continue
		}
		for _, d := range ch.Delta.ToolCalls {
			k := [2]int64{ch.Index, d.Index.V}
			t, ok := st.chatTools[k]
			if !ok {
				if len(st.chatOrder) >= maxToolCalls {
					continue
				}
				if st.chatTools == nil {
					st.chatTools = map[[2]int64]*toolCall{}
				}
				t = &toolCall{Type: "function"}
				st.chatTools[k] = t
				st.chatOrder = append(st.chatOrder, k)
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

func (st *oaChatStream) finish(s *summary) {
	s.FinishReasons = sortedReasons(st.reasons)
	for _, k := range st.chatOrder {
		s.ToolCalls = append(s.ToolCalls, *st.chatTools[k])
	}
}

// oaResponsesStream reads the Responses API's stream events.
type oaResponsesStream struct {
	p     *respParser
	items []toolCall  // function call items
	final *oaResponse // the terminal response
}

func (st *oaResponsesStream) event(_ string, data []byte) bool {
	p := st.p
	var e oaResponseEvent
	if err := decode(data, &e); err != nil {
		p.sum.unreadable(err)
		return false
	}
	switch e.Type {
	case "response.created", "response.in_progress":
		if e.Response != nil {
			p.sum.ResponseID, p.sum.ResponseModel = event.Clip(e.Response.ID, maxAttrString), event.Clip(e.Response.Model, maxAttrString)
		}
	case "response.output_item.done":
		if e.Item != nil && len(st.items) < maxToolCalls {
			if t, ok := responseTool(*e.Item); ok && p.holdArgs(len(t.Args)) {
				st.items = append(st.items, t)
			}
		}
	case "response.completed", "response.incomplete", "response.failed":
		p.sum.Terminated = true
		if e.Response != nil {
			st.final = e.Response
		}
	case "error":
		p.sum.ErrorType = event.Clip(e.Code, 128)
		if p.sum.ErrorType == "" {
			p.sum.ErrorType = "error"
		}
	}
	return true
}

func (st *oaResponsesStream) finish(s *summary) {
	if st.final != nil {
		id, model := s.ResponseID, s.ResponseModel
		s.fromResponse(st.final)
		if s.ResponseID == "" {
			s.ResponseID = id
		}
		if s.ResponseModel == "" {
			s.ResponseModel = model
		}
		if s.ErrorType == "" {
			s.ErrorType = st.p.sum.ErrorType
		}
	}
	if len(s.ToolCalls) == 0 {
		s.ToolCalls = slices.Clone(st.items)
	}
}

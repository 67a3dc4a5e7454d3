package capture

import (
	"encoding/json"
	"net/http"
	"strings"
)

// API families the recorder understands. Anything else is recorded as a
// plain HTTP exchange (bodies and status, no GenAI attributes).
const (
	apiOther               = "other"
	apiOpenAIChat          = "openai.chat.completions"
	apiOpenAIResponses     = "openai.responses"
	apiOpenAIEmbeddings    = "openai.embeddings"
	apiOpenAICompletions   = "openai.completions"
	apiAnthropicMessages   = "anthropic.messages"
	flavorOpenAI           = "openai"
	flavorAnthropic        = "anthropic"
	maxToolCalls           = 128
	maxToolArgBytes        = 1 << 20
	maxFinishReasons       = 16
	maxAttrString          = 256
	maxSSEEvent            = 4 << 20
	anthropicVersionHeader = "Anthropic-Version"
)

// endpoint is what a request is, as far as recording goes.
type endpoint struct {
	api       string // one of the api* constants
	flavor    string // wire format family: openai or anthropic (error format, parsers)
	operation string // gen_ai.operation.name, "" when unknown
}

// classify names the API of a request from its method, path (relative to the
// provider's base, e.g. /v1/chat/completions) and headers. hint is the
// upstream's name or host, used only to choose the error format of requests
// that are neither.
func classify(method, path string, h http.Header, hint string) endpoint {
	p := strings.TrimRight(path, "/")
	anthropicish := h.Get(anthropicVersionHeader) != "" || hint == "anthropic" || strings.Contains(hint, "anthropic.com")
	flavor := flavorOpenAI
	if anthropicish {
		flavor = flavorAnthropic
	}
	if method != http.MethodPost {
		return endpoint{api: apiOther, flavor: flavor}
	}
	switch {
	case strings.HasSuffix(p, "/chat/completions"):
		return endpoint{api: apiOpenAIChat, flavor: flavorOpenAI, operation: "chat"}
	case strings.HasSuffix(p, "/responses"):
		return endpoint{api: apiOpenAIResponses, flavor: flavorOpenAI, operation: "chat"}
	case strings.HasSuffix(p, "/embeddings"):
		return endpoint{api: apiOpenAIEmbeddings, flavor: flavorOpenAI, operation: "embeddings"}
	case strings.HasSuffix(p, "/completions"):
		return endpoint{api: apiOpenAICompletions, flavor: flavorOpenAI, operation: "text_completion"}
	case strings.HasSuffix(p, "/messages"):
		return endpoint{api: apiAnthropicMessages, flavor: flavorAnthropic, operation: "chat"}
	}
	return endpoint{api: apiOther, flavor: flavor}
}

// requestInfo is what the request body says about the call. Unparseable
// bodies give a zero requestInfo; the body is recorded all the same.
type requestInfo struct {
	Model          string
	Stream         bool
	MaxTokens      *int64
	Temperature    *float64
	TopP           *float64
	ChoiceCount    *int64
	Seed           *int64
	EncodingFormat string
}

// parseRequest reads the GenAI request parameters of body (unverified
// client input: only well-typed fields are used).
func parseRequest(api string, body []byte) requestInfo {
	if api == apiOther || len(body) == 0 {
		return requestInfo{}
	}
	var r struct {
		Model               json.RawMessage `json:"model"`
		Stream              json.RawMessage `json:"stream"`
		MaxTokens           json.RawMessage `json:"max_tokens"`
		MaxCompletionTokens json.RawMessage `json:"max_completion_tokens"`
		MaxOutputTokens     json.RawMessage `json:"max_output_tokens"`
		Temperature         json.RawMessage `json:"temperature"`
		TopP                json.RawMessage `json:"top_p"`
		N                   json.RawMessage `json:"n"`
		Seed                json.RawMessage `json:"seed"`
		EncodingFormat      json.RawMessage `json:"encoding_format"`
	}
	if json.Unmarshal(body, &r) != nil {
		return requestInfo{}
	}
	var info requestInfo
	info.Model = truncate(jsonString(r.Model), maxAttrString)
	info.Stream = jsonBool(r.Stream)
	for _, raw := range []json.RawMessage{r.MaxCompletionTokens, r.MaxOutputTokens, r.MaxTokens} {
		if n, ok := jsonInt(raw); ok {
			info.MaxTokens = &n
			break
		}
	}
	if f, ok := jsonFloat(r.Temperature); ok {
		info.Temperature = &f
	}
	if f, ok := jsonFloat(r.TopP); ok {
		info.TopP = &f
	}
	if n, ok := jsonInt(r.N); ok {
		info.ChoiceCount = &n
	}
	if n, ok := jsonInt(r.Seed); ok {
		info.Seed = &n
	}
	info.EncodingFormat = truncate(jsonString(r.EncodingFormat), 64)
	return info
}

func jsonString(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func jsonBool(raw json.RawMessage) bool {
	var b bool
	return len(raw) > 0 && json.Unmarshal(raw, &b) == nil && b
}

func jsonInt(raw json.RawMessage) (int64, bool) {
	var n int64
	if len(raw) == 0 || json.Unmarshal(raw, &n) != nil {
		return 0, false
	}
	return n, true
}

func jsonFloat(raw json.RawMessage) (float64, bool) {
	var f float64
	if len(raw) == 0 || json.Unmarshal(raw, &f) != nil {
		return 0, false
	}
	return f, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Do not split a UTF-8 sequence.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

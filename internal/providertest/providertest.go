// Package providertest is an upstream that answers like OpenAI and
// Anthropic do, for recording realistic sessions through the capture
// proxy and middleware and for replaying them. Test only.
package providertest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Fake answers like OpenAI and Anthropic do, for recording
// realistic sessions: an alias resolves to its dated snapshot (request
// gpt-4o, response gpt-4o-2024-08-06), usage grows with the conversation
// (about four bytes a token, as the providers' tokenizers give for
// English), a model offered tools asks for each in turn, one per step,
// before it answers, streams are server-sent events with usage at the end,
// and a conversation that mentions "[busy]" is rate limited once (429 with
// retry-after-ms) before it succeeds.
type Fake struct {
	*httptest.Server
	mu       sync.Mutex
	seen     map[string]bool
	reqID    int
	requests int
	// geminiIDs: functionCall parts carry an id (SetGeminiCallIDs).
	geminiIDs bool
}

// SetGeminiCallIDs makes the Gemini answers' functionCall parts carry an
// id, as newer Gemini API versions do (by default they have none, as older
// versions).
func (f *Fake) SetGeminiCallIDs(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.geminiIDs = on
}

// Keys the fake accepts.
const (
	OpenAIKey    = "sk-test-OPENAI-key-9f8e7d6c5b4a3210"
	AnthropicKey = "sk-ant-test-ANTHROPIC-key-0123456789abcdef"
)

// Requests counts the requests the fake received.
func (f *Fake) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

var snapshots = map[string]string{
	"gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
	"claude-sonnet-4-5": "claude-sonnet-4-5-20250929", "claude-haiku-4-5": "claude-haiku-4-5-20251001",
}

// New starts a fake that lives until the test ends.
func New(t testing.TB) *Fake {
	f := &Fake{seen: map[string]bool{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// conversation is what the fake reads from a request, for either API.
type conversation struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Input json.RawMessage `json:"input"` // the Responses API
	Tools []struct {
		Name     string `json:"name"` // Anthropic, Responses
		Function struct {
			Name string `json:"name"`
		} `json:"function"` // Chat Completions
	} `json:"tools"`
}

func (c *conversation) toolNames() []string {
	var out []string
	for _, t := range c.Tools {
		if t.Function.Name != "" {
			out = append(out, t.Function.Name)
		} else if t.Name != "" {
			out = append(out, t.Name)
		}
	}
	return out
}

// results counts the tool results the conversation already holds.
func (c *conversation) results() int {
	n := 0
	for _, m := range c.Messages {
		if m.Role == "tool" {
			n++
		}
		if m.Role == "user" && strings.Contains(string(m.Content), `"tool_result"`) {
			n += strings.Count(string(m.Content), `"tool_result"`)
		}
	}
	return n
}

// next is the model's turn: a tool to call, or "" to answer.
func (c *conversation) next() string {
	tools := c.toolNames()
	if r := c.results(); r < len(tools) {
		return tools[r]
	}
	return ""
}

func (f *Fake) id(prefix string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqID++
	return fmt.Sprintf("%s%06d", prefix, f.reqID)
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	if strings.Contains(r.URL.Path, ":embedContent") || strings.Contains(r.URL.Path, ":batchEmbedContents") {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		if strings.Contains(r.URL.Path, ":batchEmbedContents") {
			io.WriteString(w, `{"embeddings":[{"values":[0.25,-0.5,0.125]}]}`)
		} else {
			io.WriteString(w, `{"embedding":{"values":[0.25,-0.5,0.125]}}`)
		}
		return
	}
	if strings.Contains(r.URL.Path, ":countTokens") {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		io.WriteString(w, fmt.Sprintf(`{"totalTokens":%d}`, len(body)/4))
		return
	}
	if strings.Contains(r.URL.Path, ":generateContent") || strings.Contains(r.URL.Path, ":streamGenerateContent") {
		f.gemini(w, r, body)
		return
	}
	var c conversation
	if err := json.Unmarshal(body, &c); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	// Azure OpenAI: the deployment in the path names the model.
	if _, rest, ok := strings.Cut(r.URL.Path, "/openai/deployments/"); ok && c.Model == "" {
		c.Model, _, _ = strings.Cut(rest, "/")
	}
	anth := strings.HasSuffix(r.URL.Path, "/v1/messages")
	if anth {
		w.Header().Set("Request-Id", f.id("req_011C"))
	} else {
		w.Header().Set("X-Request-Id", f.id("req_"))
	}
	snap, ok := snapshots[c.Model]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"message":"The model does not exist","type":"invalid_request_error","code":"model_not_found"}}`)
		return
	}
	if strings.Contains(string(body), "[busy]") {
		f.mu.Lock()
		first := !f.seen[string(body)]
		f.seen[string(body)] = true
		f.mu.Unlock()
		if first {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After-Ms", "20")
			w.WriteHeader(http.StatusTooManyRequests)
			if anth {
				io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`)
			} else {
				io.WriteString(w, `{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}`)
			}
			return
		}
	}
	in := len(body) / 4
	tool := c.next()
	text := "Based on what I found, here is the answer you asked for, with the details checked against the records."
	if tool != "" {
		text = ""
	}
	out := len(text)/4 + 1
	if tool != "" {
		out += 18
	}
	switch {
	case anth:
		f.anthropic(w, c, snap, tool, text, in, out)
	case strings.HasSuffix(r.URL.Path, "/responses"):
		f.responses(w, snap, tool, text, in, out)
	default:
		f.chat(w, c, snap, tool, text, in, out)
	}
}

func sse(w http.ResponseWriter, events []string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	for _, e := range events {
		io.WriteString(w, e)
		http.NewResponseController(w).Flush()
	}
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func toolArgs(tool string) string { return `{"query":"` + tool + ` for the current case"}` }

func (f *Fake) chat(w http.ResponseWriter, c conversation, snap, tool, text string, in, out int) {
	id := f.id("chatcmpl-")
	usage := fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`, in, out, in+out)
	callID := f.id("call_")
	finish := "stop"
	if tool != "" {
		finish = "tool_calls"
	}
	if !c.Stream {
		msg := `{"role":"assistant","content":` + jsonString(text) + `,"refusal":null,"annotations":[]}`
		if tool != "" {
			msg = `{"role":"assistant","content":null,"refusal":null,"annotations":[],"tool_calls":[{"id":"` + callID + `","type":"function","function":{"name":"` + tool + `","arguments":` + jsonString(toolArgs(tool)) + `}}]}`
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"`+id+`","object":"chat.completion","created":1764600000,"model":"`+snap+`","choices":[{"index":0,"message":`+msg+
			`,"logprobs":null,"finish_reason":"`+finish+`"}],"usage":`+usage+`,"service_tier":"default","system_fingerprint":"fp_07871e2ad8"}`)
		return
	}
	chunk := func(delta, finish string) string {
		if finish == "" {
			finish = "null"
		} else {
			finish = `"` + finish + `"`
		}
		return "data: " + `{"id":"` + id + `","object":"chat.completion.chunk","created":1764600000,"model":"` + snap + `","system_fingerprint":"fp_07871e2ad8","choices":[{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":` + finish + `}],"usage":null}` + "\n\n"
	}
	events := []string{chunk(`{"role":"assistant","content":"","refusal":null}`, "")}
	if tool != "" {
		events = append(events,
			chunk(`{"tool_calls":[{"index":0,"id":"`+callID+`","type":"function","function":{"name":"`+tool+`","arguments":""}}]}`, ""),
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":`+jsonString(toolArgs(tool))+`}}]}`, ""))
	} else {
		for _, word := range strings.SplitAfter(text, " ") {
			events = append(events, chunk(`{"content":`+jsonString(word)+`}`, ""))
		}
	}
	events = append(events, chunk(`{}`, finish),
		"data: "+`{"id":"`+id+`","object":"chat.completion.chunk","created":1764600000,"model":"`+snap+`","system_fingerprint":"fp_07871e2ad8","choices":[],"usage":`+usage+`}`+"\n\n",
		"data: [DONE]\n\n")
	sse(w, events)
}

func (f *Fake) responses(w http.ResponseWriter, snap, tool, text string, in, out int) {
	id := f.id("resp_")
	item := `{"type":"message","id":"` + f.id("msg_") + `","status":"completed","role":"assistant","content":[{"type":"output_text","text":` + jsonString(text) + `,"annotations":[],"logprobs":[]}]}`
	if tool != "" {
		item = `{"type":"function_call","id":"` + f.id("fc_") + `","call_id":"` + f.id("call_") + `","name":"` + tool + `","arguments":` + jsonString(toolArgs(tool)) + `,"status":"completed"}`
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"id":"`+id+`","object":"response","created_at":1764600000,"status":"completed","model":"`+snap+`","output":[`+item+`],`+
		fmt.Sprintf(`"usage":{"input_tokens":%d,"input_tokens_details":{"cached_tokens":0},"output_tokens":%d,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":%d},`, in, out, in+out)+
		`"parallel_tool_calls":true,"tool_choice":"auto","tools":[],"text":{"format":{"type":"text"}},"error":null,"incomplete_details":null}`)
}

func (f *Fake) anthropic(w http.ResponseWriter, c conversation, snap, tool, text string, in, out int) {
	id := f.id("msg_01")
	useID := f.id("toolu_01")
	stop := "end_turn"
	if tool != "" {
		stop = "tool_use"
	}
	if !c.Stream {
		content := `[{"type":"text","text":` + jsonString(text) + `}]`
		if tool != "" {
			content = `[{"type":"text","text":"I'll look that up."},{"type":"tool_use","id":"` + useID + `","name":"` + tool + `","input":` + toolArgs(tool) + `}]`
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"`+id+`","type":"message","role":"assistant","model":"`+snap+`","content":`+content+
			`,"stop_reason":"`+stop+`","stop_sequence":null,`+fmt.Sprintf(`"usage":{"input_tokens":%d,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":%d,"service_tier":"standard"}}`, in, out))
		return
	}
	ev := func(typ, d string) string { return "event: " + typ + "\ndata: " + d + "\n\n" }
	events := []string{
		ev("message_start", `{"type":"message_start","message":{"id":"`+id+`","type":"message","role":"assistant","model":"`+snap+`","content":[],"stop_reason":null,"stop_sequence":null,`+
			fmt.Sprintf(`"usage":{"input_tokens":%d,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}`, in)),
		ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`),
		ev("ping", `{"type":"ping"}`),
	}
	if tool != "" {
		events = append(events,
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I'll look that up."}}`),
			ev("content_block_stop", `{"type":"content_block_stop","index":0}`),
			ev("content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"`+useID+`","name":"`+tool+`","input":{}}}`),
			ev("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":`+jsonString(toolArgs(tool))+`}}`),
			ev("content_block_stop", `{"type":"content_block_stop","index":1}`))
	} else {
		for _, word := range strings.SplitAfter(text, " ") {
			events = append(events, ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`+jsonString(word)+`}}`))
		}
		events = append(events, ev("content_block_stop", `{"type":"content_block_stop","index":0}`))
	}
	events = append(events,
		ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"`+stop+`","stop_sequence":null},`+fmt.Sprintf(`"usage":{"output_tokens":%d}}`, out)),
		ev("message_stop", `{"type":"message_stop"}`))
	sse(w, events)
}

// gemini answers generateContent and streamGenerateContent (alt=sse) as
// the Gemini API does: the model version is the dated one, a request that
// declares functions gets a functionCall part for each in turn.
func (f *Fake) gemini(w http.ResponseWriter, r *http.Request, body []byte) {
	_, rest, _ := strings.Cut(r.URL.Path, "/models/")
	model, method, _ := strings.Cut(rest, ":")
	var req struct {
		Contents []struct {
			Parts []map[string]json.RawMessage `json:"parts"`
		} `json:"contents"`
		Tools []struct {
			FunctionDeclarations []struct {
				Name string `json:"name"`
			} `json:"functionDeclarations"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(body, &req); err != nil || model == "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}`)
		return
	}
	var tools []string
	for _, t := range req.Tools {
		for _, d := range t.FunctionDeclarations {
			tools = append(tools, d.Name)
		}
	}
	answered := 0
	for _, c := range req.Contents {
		for _, p := range c.Parts {
			if _, ok := p["functionResponse"]; ok {
				answered++
			}
		}
	}
	text := "Based on what I found, here is the answer you asked for, with the details checked against the records."
	part := `{"text":` + jsonString(text) + `}`
	finish := "STOP"
	out := len(text)/4 + 1
	if answered < len(tools) {
		f.mu.Lock()
		ids := f.geminiIDs
		f.mu.Unlock()
		id := ""
		if ids {
			id = `"id":"` + f.id("fc_") + `",`
		}
		part = `{"functionCall":{` + id + `"name":"` + tools[answered] + `","args":` + toolArgs(tools[answered]) + `}}`
		out = 18
	}
	in := len(body) / 4
	version := model + "-001"
	usage := fmt.Sprintf(`{"promptTokenCount":%d,"candidatesTokenCount":%d,"totalTokenCount":%d,"thoughtsTokenCount":4}`, in, out, in+out+4)
	id := f.id("gresp_")
	if method == "streamGenerateContent" {
		chunk := func(parts, extra string) string {
			return "data: " + `{"candidates":[{"content":{"parts":[` + parts + `],"role":"model"}` + extra + `,"index":0}],"modelVersion":"` + version + `","responseId":"` + id + `"}` + "\r\n\r\n"
		}
		var events []string
		if answered < len(tools) {
			events = append(events, chunk(part, `,"finishReason":"`+finish+`"`))
		} else {
			words := strings.SplitAfter(text, " ")
			half := len(words) / 2
			events = append(events, chunk(`{"text":`+jsonString(strings.Join(words[:half], ""))+`}`, ""),
				chunk(`{"text":`+jsonString(strings.Join(words[half:], ""))+`}`, `,"finishReason":"`+finish+`"`))
		}
		last := events[len(events)-1]
		events[len(events)-1] = strings.Replace(last, `"modelVersion"`, `"usageMetadata":`+usage+`,"modelVersion"`, 1)
		sse(w, events)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	io.WriteString(w, `{"candidates":[{"content":{"parts":[`+part+`],"role":"model"},"finishReason":"`+finish+`","index":0}],"usageMetadata":`+usage+
		`,"modelVersion":"`+version+`","responseId":"`+id+`"}`)
}

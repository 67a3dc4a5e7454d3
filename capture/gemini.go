package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
	"github.com/llmaudittrail/llmaudittrail/llmapi"
)

// Google's Gemini API (generativelanguage.googleapis.com):
// models/{model}:generateContent, :streamGenerateContent (alt=sse),
// :embedContent, :countTokens. The model is in the path.
const (
	flavorGemini         = "gemini"
	apiGeminiGenerate    = "gemini.generate_content"
	apiGeminiStream      = "gemini.stream_generate_content"
	apiGeminiEmbed       = "gemini.embed_content"
	apiGeminiCountTokens = "gemini.count_tokens"
	geminiAPIKeyHeader   = "X-Goog-Api-Key"
)

// geminiProvider is Google's Gemini API: its own format, its key in
// X-Goog-Api-Key (or the key= query parameter, which is never recorded).
var geminiProvider = llmapi.Provider{Name: "gemini", System: "gcp.gemini", Hosts: []string{"generativelanguage.googleapis.com"},
	Upstream: "https://generativelanguage.googleapis.com", Credentials: []string{geminiAPIKeyHeader}, Format: gemini{}}

type gemini struct{}

func (gemini) Name() string { return flavorGemini }

// claims a request with Google's API key header, or to a Google API host
// (its upstream name is claimed through the registry).
func (gemini) claims(h http.Header, hint string) bool {
	return h.Get(geminiAPIKeyHeader) != "" || strings.Contains(hint, "googleapis.com")
}

// geminiMethod splits ".../models/NAME:method" into its model and method.
func geminiMethod(p string) (model, method string, ok bool) {
	i := strings.LastIndex(p, "/models/")
	if i < 0 {
		if i = strings.LastIndex(p, "/tunedModels/"); i < 0 {
			return "", "", false
		}
		i += len("/tunedModels/")
	} else {
		i += len("/models/")
	}
	model, method, ok = strings.Cut(p[i:], ":")
	return model, method, ok && model != ""
}

func (gemini) match(p string, _ http.Header, _ string) (string, string, bool) {
	_, method, ok := geminiMethod(p)
	if !ok {
		return "", "", false
	}
	switch method {
	case "generateContent":
		return apiGeminiGenerate, "generate_content", true
	case "streamGenerateContent":
		return apiGeminiStream, "generate_content", true
	case "embedContent", "batchEmbedContents":
		return apiGeminiEmbed, "embeddings", true
	case "countTokens":
		return apiGeminiCountTokens, "", true
	}
	return "", "", false
}

// pathModel is the model a request names in its path.
func (gemini) pathModel(p string) string {
	m, _, _ := geminiMethod(p)
	return m
}

type gmPart struct {
	Text         string `json:"text"`
	Thought      bool   `json:"thought"`
	FunctionCall *struct {
		ID   string          `json:"id"`
		Name string          `json:"name"`
		Args json.RawMessage `json:"args"`
	} `json:"functionCall"`
}

type gmContent struct {
	Role  string  `json:"role"`
	Parts gmParts `json:"parts"`
}

// gmParts is a repeated field, which Google's JSON parser also takes as one
// object in place of an array (Google's own samples send "parts": {...}).
type gmParts []gmPart

func (ps *gmParts) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		var p gmPart
		if err := gmDecode(b, &p); err != nil {
			return err
		}
		*ps = gmParts{p}
		return nil
	}
	var s []gmPart
	if err := gmDecode(b, &s); err != nil {
		return err
	}
	*ps = s
	return nil
}

// gmDecode is decode for Google's proto-JSON mapping: a field may be
// spelled by its JSON name (systemInstruction) or its proto name
// (system_instruction), and Gemini acts on either; both in one object are
// ambiguous (strictjson.UnmarshalProto).
func gmDecode(data []byte, v any) error {
	if err := strictjson.UnmarshalProto(data, v); err != nil && !errors.Is(err, strictjson.ErrType) {
		return err
	}
	return nil
}

func (gemini) parseRequest(api string, body []byte) (requestInfo, error) {
	var r struct {
		Contents          []json.RawMessage `json:"contents"`
		SystemInstruction *gmContent        `json:"systemInstruction"`
		GenerationConfig  *struct {
			MaxOutputTokens json.RawMessage `json:"maxOutputTokens"`
			Temperature     json.RawMessage `json:"temperature"`
			TopP            json.RawMessage `json:"topP"`
			CandidateCount  json.RawMessage `json:"candidateCount"`
			Seed            json.RawMessage `json:"seed"`
		} `json:"generationConfig"`
	}
	if err := gmDecode(body, &r); err != nil {
		return requestInfo{}, err
	}
	info := requestInfo{Stream: api == apiGeminiStream}
	if g := r.GenerationConfig; g != nil {
		if n, ok := jsonInt(g.MaxOutputTokens); ok {
			info.MaxTokens = &n
		}
		if f, ok := jsonFloat(g.Temperature); ok {
			info.Temperature = &f
		}
		if f, ok := jsonFloat(g.TopP); ok {
			info.TopP = &f
		}
		if n, ok := jsonInt(g.CandidateCount); ok {
			info.ChoiceCount = &n
		}
		if n, ok := jsonInt(g.Seed); ok {
			info.Seed = &n
		}
	}
	if si := r.SystemInstruction; si != nil {
		var texts []string
		for _, p := range si.Parts {
			if p.Text != "" {
				texts = append(texts, p.Text)
			}
		}
		info.SystemPrompt = promptDigest(texts)
	}
	info.ToolResults = gmToolResults(r.Contents)
	return info, nil
}

// gmToolResults are the functionResponse parts of a conversation: the
// call's id if it has one, and the function's name. A content or part that
// cannot be read strictly gives none (its bytes are in the request's
// payload all the same).
func gmToolResults(contents []json.RawMessage) []toolResult {
	var out []toolResult
	keys := toolKeys{}
	for _, raw := range contents {
		var c struct {
			Parts gmRawParts `json:"parts"`
		}
		if gmDecode(raw, &c) != nil {
			continue
		}
		for _, part := range c.Parts {
			var p struct {
				FunctionResponse *struct {
					ID   string `json:"id"`
					Name string `json:"name"`
				} `json:"functionResponse"`
			}
			if gmDecode(part, &p) != nil || p.FunctionResponse == nil {
				continue
			}
			f := p.FunctionResponse
			if f.ID == "" && f.Name == "" {
				continue
			}
			out = append(out, toolResult{CallID: f.ID, Name: f.Name, Key: keys.key(f.ID, f.Name), Raw: part})
		}
	}
	return keepLast(out)
}

// gmRawParts is gmParts kept as raw JSON, one element per part.
type gmRawParts []json.RawMessage

func (ps *gmRawParts) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		*ps = gmRawParts{append(json.RawMessage(nil), b...)}
		return nil
	}
	var s []json.RawMessage
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*ps = s
	return nil
}

// ErrorBody is Google's {"error": {"code", "message", "status"}}.
func (gemini) ErrorBody(status int, _ string, message string) []byte {
	type detail struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	}
	b, _ := json.Marshal(struct {
		Error detail `json:"error"`
	}{detail{status, message, googleStatus(status)}})
	return b
}

// Text is the candidates' text parts (thoughts left out) of a response, of
// a stream given as a JSON array of chunks, or of an event stream.
func (gemini) Text(body []byte) (string, bool) {
	var chunks []gmResponse
	switch {
	case llmapi.IsJSON(body) && bytes.TrimSpace(body)[0] == '[':
		if gmDecode(body, &chunks) != nil {
			return "", false
		}
	case llmapi.IsJSON(body):
		var r gmResponse
		if gmDecode(body, &r) != nil {
			return "", false
		}
		chunks = []gmResponse{r}
	default:
		for _, d := range llmapi.StreamData(body) {
			var r gmResponse
			if gmDecode(d, &r) == nil {
				chunks = append(chunks, r)
			}
		}
	}
	var b strings.Builder
	for _, r := range chunks {
		for _, c := range r.Candidates {
			if c.Content == nil {
				continue
			}
			for _, p := range c.Content.Parts {
				if !p.Thought {
					b.WriteString(p.Text)
				}
			}
		}
	}
	return b.String(), b.Len() > 0
}

// ToolResult reads a functionResponse part: its id, or the function's name
// if it has none (ids are optional).
func (gemini) ToolResult(item any) (string, bool) {
	m, ok := item.(map[string]any)
	if !ok {
		return "", false
	}
	fr, ok := m["functionResponse"].(map[string]any)
	if !ok {
		if fr, ok = m["function_response"].(map[string]any); !ok {
			return "", false
		}
	}
	if id, _ := fr["id"].(string); id != "" {
		return id, true
	}
	name, _ := fr["name"].(string)
	return name, true
}

// IDPrefixes: none (function call ids carry no prefix).
func (gemini) IDPrefixes() []string { return nil }

// DecisionFields of generateContent, in both spellings of proto JSON (the
// model is in the path, which is compared on its own).
func (gemini) DecisionFields() []string {
	return []string{"contents", "systemInstruction", "system_instruction", "tools", "toolConfig", "tool_config",
		"generationConfig", "generation_config", "safetySettings", "safety_settings", "cachedContent", "cached_content"}
}

// googleStatus maps an HTTP status to Google's canonical error codes.
func googleStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

type gmResponse struct {
	Candidates []struct {
		Content      *gmContent `json:"content"`
		FinishReason string     `json:"finishReason"`
		Index        jint       `json:"index"`
	} `json:"candidates"`
	UsageMetadata *struct {
		PromptTokenCount        jint `json:"promptTokenCount"`
		CandidatesTokenCount    jint `json:"candidatesTokenCount"`
		CachedContentTokenCount jint `json:"cachedContentTokenCount"`
		ThoughtsTokenCount      jint `json:"thoughtsTokenCount"`
	} `json:"usageMetadata"`
	ModelVersion string          `json:"modelVersion"`
	ResponseID   string          `json:"responseId"`
	Error        json.RawMessage `json:"error"`
}

// add folds one response (or stream chunk) into the summary.
func (r *gmResponse) add(s *summary, reasons map[int64]string, holdArgs func(int) bool) {
	if r.ResponseID != "" {
		s.ResponseID = event.Clip(r.ResponseID, maxAttrString)
	}
	if r.ModelVersion != "" {
		s.ResponseModel = event.Clip(r.ModelVersion, maxAttrString)
	}
	if u := r.UsageMetadata; u != nil {
		// The conventions' output includes reasoning; Gemini counts
		// thoughts apart from candidates.
		s.Usage.Input, s.Usage.CacheRead, s.Usage.Reasoning = u.PromptTokenCount.p(), u.CachedContentTokenCount.p(), u.ThoughtsTokenCount.p()
		if u.CandidatesTokenCount.OK || u.ThoughtsTokenCount.OK {
			n := u.CandidatesTokenCount.V + u.ThoughtsTokenCount.V
			s.Usage.Output = &n
		}
	}
	for i, c := range r.Candidates {
		idx := int64(i)
		if c.Index.OK {
			idx = c.Index.V
		}
		if c.FinishReason != "" {
			reasons[idx] = c.FinishReason
		}
		if c.Content == nil {
			continue
		}
		for _, p := range c.Content.Parts {
			if f := p.FunctionCall; f != nil && len(s.ToolCalls) < maxToolCalls {
				args := []byte(f.Args)
				if len(args) == 0 {
					args = []byte("{}")
				}
				if holdArgs != nil && !holdArgs(len(args)) {
					args = []byte("{}")
				}
				s.ToolCalls = append(s.ToolCalls, toolCall{ID: f.ID, Name: f.Name, Type: "function", Args: append([]byte(nil), args...)})
			}
		}
	}
	s.ErrorType = errorType(r.Error)
}

func (gemini) parseBody(_ string, body []byte) summary {
	var s summary
	reasons := map[int64]string{}
	// A stream asked for without alt=sse is a JSON array of chunks.
	var chunks []gmResponse
	if len(body) > 0 && strings.HasPrefix(strings.TrimSpace(string(body[:min(len(body), 16)])), "[") {
		if err := gmDecode(body, &chunks); err != nil {
			s.unreadable(err)
			return s
		}
	} else {
		var r gmResponse
		if err := gmDecode(body, &r); err != nil {
			s.unreadable(err)
			return s
		}
		chunks = []gmResponse{r}
	}
	for i := range chunks {
		chunks[i].add(&s, reasons, nil)
	}
	s.FinishReasons = sortedReasons(reasons)
	return s
}

func (gemini) newStream(_ string, p *respParser) streamReader {
	return &gmStream{p: p, reasons: map[int64]string{}}
}

// gmStream reads a streamGenerateContent event stream: each event is a
// GenerateContentResponse chunk; usage comes with the last ones.
type gmStream struct {
	p       *respParser
	reasons map[int64]string
	calls   []toolCall
}

func (st *gmStream) event(_ string, data []byte) bool {
	var r gmResponse
	if err := gmDecode(data, &r); err != nil {
		st.p.sum.unreadable(err)
		return false
	}
	var s summary
	s.Usage = st.p.sum.Usage
	r.add(&s, st.reasons, st.p.holdArgs)
	st.p.sum.Usage = s.Usage
	if s.ResponseID != "" {
		st.p.sum.ResponseID = s.ResponseID
	}
	if s.ResponseModel != "" {
		st.p.sum.ResponseModel = s.ResponseModel
	}
	if s.ErrorType != "" {
		st.p.sum.ErrorType = s.ErrorType
	}
	st.calls = append(st.calls, s.ToolCalls...)
	if len(st.reasons) > 0 {
		// Gemini streams have no terminator event: a finish reason ends
		// the candidate.
		st.p.sum.Terminated = true
	}
	return true
}

func (st *gmStream) finish(s *summary) {
	s.FinishReasons = sortedReasons(st.reasons)
	s.ToolCalls = append(s.ToolCalls, st.calls...)
}

package capture

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// The formats the capture reads are registered with the providers that
// speak them (registry.go); streamReader is how a format reads a response
// stream.

// streamReader reads the events of one response stream into the parser's
// summary.
type streamReader interface {
	// event reads one event; false means it could not be read (dropped).
	event(typ string, data []byte) bool
	// finish completes the summary from what the stream said.
	finish(s *summary)
}

// API families recorded as a plain HTTP exchange (bodies and status, no
// GenAI attributes), and limits on what is read from responses.
const (
	apiOther         = "other"
	maxToolCalls     = 128
	maxToolArgBytes  = 1 << 20
	maxFinishReasons = 16
	maxAttrString    = 256
	maxSSEEvent      = 4 << 20
)

// endpoint is what a request is, as far as recording goes.
type endpoint struct {
	api       string // e.g. openai.chat.completions, or apiOther
	flavor    string // wire format family: error format, parsers
	operation string // gen_ai.operation.name, "" when unknown
}

// classify names the API of a request from its method, path (relative to the
// provider's base, e.g. /v1/chat/completions) and headers. hint is the
// upstream's name or host: with the headers, it chooses the error format
// of requests that are none of the known APIs.
func classify(method, path string, h http.Header, hint string) endpoint {
	p := strings.TrimRight(path, "/")
	flavor := formats[0].Name()
	named := ""
	if pr, ok := hinted(hint); ok {
		named = pr.Format.Name()
	}
	for _, f := range formats {
		if f.claims(h, hint) || f.Name() == named {
			flavor = f.Name()
			break
		}
	}
	if method != http.MethodPost {
		return endpoint{api: apiOther, flavor: flavor}
	}
	for _, f := range formats {
		if api, op, ok := f.match(p, h, hint); ok {
			return endpoint{api: api, flavor: f.Name(), operation: op}
		}
	}
	return endpoint{api: apiOther, flavor: flavor}
}

// writeProviderError answers an error of the proxy's own in the format the
// agent's SDK expects (flavor's), so that it surfaces as an ordinary API
// error.
func writeProviderError(w http.ResponseWriter, flavor string, status int, code, message string) {
	b := formatNamed(flavor).ErrorBody(status, code, message)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	w.Write(b)
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
	// SystemPrompt is the hex SHA-256 of the request's system (or
	// developer) instructions, "" if it has none: what a change-control
	// check compares with the approved configuration, without the text.
	SystemPrompt string
	// ToolResults are the tool results the conversation carries (the last
	// maxToolResults of them, in order): what the agent tells the model its
	// tools answered (see toolresult.go).
	ToolResults []toolResult
}

// pathModeler is a format whose requests may name the model in the path
// (a model resource, models/NAME:method, or a deployment,
// deployments/NAME/...).
type pathModeler interface{ pathModel(path string) string }

// modelFromPath is the model a request's path names, "" if none.
func modelFromPath(api, path string) string {
	if pm, ok := formatOfAPI(api).(pathModeler); ok {
		return event.Clip(pm.pathModel(path), maxAttrString)
	}
	return ""
}

// parseRequest reads the GenAI request parameters of body (unverified
// client input: only well-typed fields are used). The body of a known API
// is read with decode, as strictly as the upstream could: an error
// (malformed or ambiguous JSON) means that the upstream might read
// something else than what would be recorded, and the request is refused.
// Bodies of other APIs are not read (recorded as they are).
func parseRequest(api string, body []byte) (requestInfo, error) {
	f := formatOfAPI(api)
	if f == nil || len(body) == 0 {
		return requestInfo{}, nil
	}
	return f.parseRequest(api, body)
}

// commonRequest holds the request fields that the providers' chat APIs
// share by name.
type commonRequest struct {
	Model       json.RawMessage `json:"model"`
	Stream      json.RawMessage `json:"stream"`
	MaxTokens   json.RawMessage `json:"max_tokens"`
	Temperature json.RawMessage `json:"temperature"`
	TopP        json.RawMessage `json:"top_p"`
}

// check refuses a model that is not a string: the capture would record
// none, where the upstream might read one (a number as its text, say).
func (r *commonRequest) check() error {
	if m := bytes.TrimSpace(r.Model); len(m) > 0 && m[0] != '"' && !bytes.Equal(m, []byte("null")) {
		return fmt.Errorf("%w: model is not a string", strictjson.ErrType)
	}
	return nil
}

func (r *commonRequest) info(maxTokens ...json.RawMessage) requestInfo {
	var info requestInfo
	info.Model = event.Clip(jsonString(r.Model), maxAttrString)
	info.Stream = jsonBool(r.Stream)
	for _, raw := range append(maxTokens, r.MaxTokens) {
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
	return info
}

// promptDigest hashes instruction texts (joined by newlines).
func promptDigest(texts []string) string {
	if len(texts) == 0 {
		return ""
	}
	h := sha256.Sum256([]byte(strings.Join(texts, "\n")))
	return hex.EncodeToString(h[:])
}

// contentTexts reads a message content: a string, or an array of parts
// whose text parts count.
func contentTexts(raw json.RawMessage) []string {
	if s := jsonString(raw); s != "" {
		return []string{s}
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if decode(raw, &parts) != nil {
		return nil
	}
	var out []string
	for _, p := range parts {
		if p.Text != "" && (p.Type == "text" || p.Type == "input_text") {
			out = append(out, p.Text)
		}
	}
	return out
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
	// Ambiguous: the body, or an event of the stream, was ambiguous JSON
	// (strictjson.ErrAmbiguous) and what it said was not read: the client
	// may read it otherwise than the capture would.
	Ambiguous bool
	// Events and Dropped count the stream events read and skipped.
	Events, Dropped int
}

// decode unmarshals upstream JSON into v with strictjson.Unmarshal,
// keeping what is well typed. It fails (and v is left as it was) on JSON
// that is malformed or ambiguous: what the client reads of such JSON is
// not known, so none of it is recorded as read (see summary.Ambiguous).
func decode(data []byte, v any) error {
	if err := strictjson.Unmarshal(data, v); err != nil && !errors.Is(err, strictjson.ErrType) {
		return err
	}
	return nil
}

// unreadable notes that a body or stream event could not be decoded.
func (s *summary) unreadable(err error) {
	if errors.Is(err, strictjson.ErrAmbiguous) {
		s.Ambiguous = true
	}
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

// errorType reads the type (or else the code) of an error object, or the
// string an error field holds.
func errorType(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ""
	}
	var e struct {
		Type   json.RawMessage `json:"type"`
		Status json.RawMessage `json:"status"` // Google's canonical code (RESOURCE_EXHAUSTED)
		Code   json.RawMessage `json:"code"`
	}
	if raw[0] == '{' {
		if err := decode(raw, &e); err != nil {
			if errors.Is(err, strictjson.ErrAmbiguous) {
				return errAmbiguousResponse
			}
			return "error"
		}
		if t := jsonString(e.Type); t != "" {
			return event.Clip(t, 128)
		}
		if t := jsonString(e.Status); t != "" {
			return event.Clip(t, 128)
		}
		if c := jsonString(e.Code); c != "" {
			return event.Clip(c, 128)
		}
		if n, ok := jsonInt(e.Code); ok {
			return strconv.FormatInt(n, 10)
		}
	}
	return "error"
}

// errAmbiguousResponse is error.type of a response that was ambiguous
// JSON (summary.Ambiguous).
const errAmbiguousResponse = "ambiguous_response"

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
		out[i] = event.Clip(m[k], 64)
	}
	return out
}

// parseBody reads a complete JSON response body (status is its HTTP status).
func parseBody(api string, status int, body []byte) summary {
	if status >= 400 {
		var s summary
		var e struct {
			Error json.RawMessage `json:"error"`
		}
		if err := decode(body, &e); err != nil {
			s.unreadable(err)
		} else {
			s.ErrorType = errorType(e.Error)
		}
		return s
	}
	f := formatOfAPI(api)
	if f == nil {
		return summary{}
	}
	return f.parseBody(api, body)
}

// respParser reads a response stream chunk by chunk (Write) through its
// format's streamReader.
type respParser struct {
	sum      summary
	sse      *sseScanner
	rd       streamReader
	argBytes int // bytes of tool arguments held
}

func newRespParser(api string) *respParser {
	p := &respParser{}
	if f := formatOfAPI(api); f != nil {
		p.rd = f.newStream(api, p)
	}
	p.sse = newSSEScanner(maxSSEEvent, p.event)
	return p
}

// Write feeds a chunk of an event stream.
func (p *respParser) Write(b []byte) { p.sse.Write(b) }

// event handles one stream event. ev.Data is only valid during the call.
func (p *respParser) event(ev sseEvent) {
	p.sum.Events++
	data := bytes.TrimSpace(ev.Data)
	if bytes.Equal(data, []byte("[DONE]")) {
		p.sum.Terminated = true
		return
	}
	if p.rd != nil && !p.rd.event(ev.Type, data) {
		p.sum.Dropped++
	}
}

// holdArgs reserves room for n more bytes of tool arguments.
func (p *respParser) holdArgs(n int) bool {
	if p.argBytes+n > maxToolArgBytes {
		return false
	}
	p.argBytes += n
	return true
}

// summary returns what the stream said so far.
func (p *respParser) summary() summary {
	s := p.sum
	s.Dropped += p.sse.dropped
	s.ToolCalls = nil
	if p.rd != nil {
		p.rd.finish(&s)
	}
	return s
}

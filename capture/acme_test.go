package capture

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/llmapi"
)

// Acme is a provider that exists only in tests, added the way a provider is
// added: this one file, and one registration line (a real provider's is a
// line in registry.go; a test's must be an init function). Its API and
// wire format are made up, so that nothing else in the package can know
// them: TestTestOnlyProvider (registry_test.go) runs it through the proxy,
// the Hook, the interception allowlist and replay.
//
//	POST /v1/acme/generate {"model", "prompt", "turns": [{"kind": "tool_output", "call", "output"}], "stream", ...}
//	→ {"id", "model", "output", "calls": [{"id", "name", "args"}], "usage": {"in", "out"}, "done"}
//	→ (stream) data: {"id", "model", "delta"} ... data: {"done", "usage"} data: [DONE]
//	errors: {"acme_error": {"status", "code", "message"}}
var acmeProvider = llmapi.Provider{Name: "acme", System: "acme.ai", Hosts: []string{"api.acme.test"}, Upstream: "https://api.acme.test",
	Credentials: []string{"Acme-Key"}, Headers: []string{"Acme-Version"}, Format: acme{}}

func init() { register(acmeProvider) }

type acme struct{}

func (acme) Name() string { return "acme" }

func (acme) claims(h http.Header, _ string) bool { return h.Get("Acme-Version") != "" }

func (acme) match(p string, _ http.Header, _ string) (string, string, bool) {
	if strings.HasSuffix(p, "/acme/generate") {
		return "acme.generate", "chat", true
	}
	return "", "", false
}

func (acme) parseRequest(_ string, body []byte) (requestInfo, error) {
	var r struct {
		commonRequest
		System json.RawMessage `json:"system"`
	}
	if err := decode(body, &r); err != nil {
		return requestInfo{}, err
	}
	if err := r.check(); err != nil {
		return requestInfo{}, err
	}
	info := r.info()
	info.SystemPrompt = promptDigest(contentTexts(r.System))
	return info, nil
}

type acmeUsage struct {
	In  jint `json:"in"`
	Out jint `json:"out"`
}

type acmeMessage struct {
	ID     string `json:"id"`
	Model  string `json:"model"`
	Output string `json:"output"`
	Delta  string `json:"delta"`
	Calls  []struct {
		ID   string          `json:"id"`
		Name string          `json:"name"`
		Args json.RawMessage `json:"args"`
	} `json:"calls"`
	Usage *acmeUsage `json:"usage"`
	Done  string     `json:"done"`
}

func (m *acmeMessage) add(s *summary) {
	if m.ID != "" {
		s.ResponseID = m.ID
	}
	if m.Model != "" {
		s.ResponseModel = m.Model
	}
	if m.Usage != nil {
		s.Usage = usage{Input: m.Usage.In.p(), Output: m.Usage.Out.p()}
	}
	if m.Done != "" {
		s.FinishReasons = []string{m.Done}
	}
	for _, c := range m.Calls {
		s.ToolCalls = append(s.ToolCalls, toolCall{ID: c.ID, Name: c.Name, Type: "function", Args: c.Args})
	}
}

func (acme) parseBody(_ string, body []byte) summary {
	var s summary
	var m acmeMessage
	if err := decode(body, &m); err != nil {
		s.unreadable(err)
		return s
	}
	m.add(&s)
	return s
}

func (acme) newStream(_ string, p *respParser) streamReader { return &acmeStream{p: p} }

type acmeStream struct {
	p   *respParser
	sum summary
}

func (st *acmeStream) event(_ string, data []byte) bool {
	var m acmeMessage
	if err := decode(data, &m); err != nil {
		st.p.sum.unreadable(err)
		return false
	}
	m.add(&st.sum)
	st.p.sum.ResponseID, st.p.sum.ResponseModel, st.p.sum.Usage = st.sum.ResponseID, st.sum.ResponseModel, st.sum.Usage
	return true
}

func (st *acmeStream) finish(s *summary) {
	s.FinishReasons = st.sum.FinishReasons
	s.ToolCalls = append(s.ToolCalls, st.sum.ToolCalls...)
}

func (acme) Text(body []byte) (string, bool) {
	var b strings.Builder
	if llmapi.IsJSON(body) {
		var m acmeMessage
		if json.Unmarshal(body, &m) != nil {
			return "", false
		}
		b.WriteString(m.Output)
	} else {
		for _, d := range llmapi.StreamData(body) {
			var m acmeMessage
			if json.Unmarshal(d, &m) == nil {
				b.WriteString(m.Delta)
			}
		}
	}
	return b.String(), b.Len() > 0
}

func (acme) ErrorBody(status int, code, message string) []byte {
	b, _ := json.Marshal(map[string]any{"acme_error": map[string]any{"status": status, "code": code, "message": message}})
	return b
}

func (acme) ToolResult(item any) (string, bool) {
	if m, ok := item.(map[string]any); ok && m["kind"] == "tool_output" {
		id, _ := m["call"].(string)
		return id, true
	}
	return "", false
}

func (acme) IDPrefixes() []string { return []string{"acm"} }

func (acme) DecisionFields() []string {
	return []string{"model", "prompt", "system", "turns", "tools", "temperature"}
}

package capture_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// geminiHeader makes a call to the "local" upstream a Gemini call;
// geminiError is Gemini's error object (keys sorted, message blank).
var (
	geminiHeader = http.Header{"X-Goog-Api-Key": {geminiKey}}
	geminiError  = `{"code":400,"message":"","status":"INVALID_ARGUMENT"}`
)

// TestProxyRefusesAmbiguousBody (issue #24, finding 2): a request body
// that the upstream might read otherwise than the capture (a case variant
// or a duplicate of a field, invalid UTF-8, not JSON) is answered 400 in
// the provider's error format, recorded as llm.refused with its exact
// bytes, and never sent upstream; the same body without the trick goes
// through and is recorded with the model the upstream served.
func TestProxyRefusesAmbiguousBody(t *testing.T) {
	e := newEnv(t, "fail-closed")
	for _, tc := range []struct {
		name, upstream, path, body string
		header                     http.Header
		errType, wantError         string // error.type recorded; the provider's error (keys sorted)
	}{
		{"openai case variant", "openai", "/v1/chat/completions",
			`{"model":"gpt-4o","Model":"approved-model","messages":[{"role":"user","content":"wire-1"}]}`, nil,
			"ambiguous_request", `{"code":"strict_json_required","message":"","param":null,"type":"invalid_request_error"}`},
		{"openai only a case variant", "openai", "/v1/chat/completions",
			`{"MODEL":"approved-model","messages":[{"role":"user","content":"wire-2"}]}`, nil,
			"ambiguous_request", `{"code":"strict_json_required","message":"","param":null,"type":"invalid_request_error"}`},
		{"openai duplicate", "openai", "/v1/chat/completions",
			`{"model":"approved-model","messages":[{"role":"user","content":"wire-3"}],"model":"gpt-4o"}`, nil,
			"ambiguous_request", `{"code":"strict_json_required","message":"","param":null,"type":"invalid_request_error"}`},
		{"openai escaped duplicate", "openai", "/v1/chat/completions",
			`{"model":"approved-model","mod\u0065l":"gpt-4o","messages":[{"role":"user","content":"wire-4"}]}`, nil,
			"ambiguous_request", `{"code":"strict_json_required","message":"","param":null,"type":"invalid_request_error"}`},
		{"openai nested duplicate", "openai", "/v1/chat/completions",
			`{"model":"gpt-4o","messages":[{"role":"system","content":"approved","content":"wire-5 other"}]}`, nil,
			"ambiguous_request", `{"code":"strict_json_required","message":"","param":null,"type":"invalid_request_error"}`},
		{"openai invalid UTF-8", "openai", "/v1/chat/completions",
			"{\"model\":\"gpt-4o\xff\",\"messages\":[{\"role\":\"user\",\"content\":\"wire-6\"}]}", nil,
			"malformed_request", `{"code":"strict_json_required","message":"","param":null,"type":"invalid_request_error"}`},
		{"anthropic case variant", "anthropic", "/v1/messages",
			`{"model":"claude-x","Model":"approved-model","max_tokens":5,"messages":[{"role":"user","content":"wire-7"}]}`,
			http.Header{"Anthropic-Version": {"2023-06-01"}},
			"ambiguous_request", `{"message":"","type":"invalid_request_error"}`},
		{"anthropic system case variant", "anthropic", "/v1/messages",
			`{"model":"claude-x","max_tokens":5,"system":"approved","System":"wire-8 other","messages":[]}`,
			http.Header{"Anthropic-Version": {"2023-06-01"}},
			"ambiguous_request", `{"message":"","type":"invalid_request_error"}`},
		// Google's proto-JSON mapping reads a field by its JSON name and by
		// its proto name: both spellings at once are one field twice.
		{"gemini both spellings", "local", "/v1beta/models/gemini-2.5-flash:generateContent",
			`{"systemInstruction":{"parts":[{"text":"approved"}]},"system_instruction":{"parts":[{"text":"wire-g1 other"}]},"contents":[{"parts":[{"text":"hi"}]}]}`,
			geminiHeader, "ambiguous_request", geminiError},
		{"gemini both spellings, proto name first", "local", "/v1beta/models/gemini-2.5-flash:generateContent",
			`{"generation_config":{"temperature":2},"generationConfig":{"temperature":0},"contents":[{"parts":[{"text":"wire-g2"}]}]}`,
			geminiHeader, "ambiguous_request", geminiError},
		{"gemini nested both spellings", "local", "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
			`{"generationConfig":{"maxOutputTokens":5,"max_output_tokens":8000},"contents":[{"parts":[{"text":"wire-g3"}]}]}`,
			geminiHeader, "ambiguous_request", geminiError},
		{"gemini part both spellings", "local", "/v1beta/models/gemini-2.5-flash:generateContent",
			`{"systemInstruction":{"parts":{"functionCall":{"name":"a"},"function_call":{"name":"b"},"text":"wire-g4"}}}`,
			geminiHeader, "ambiguous_request", geminiError},
		{"gemini case variant of a proto name", "local", "/v1beta/models/gemini-2.5-flash:generateContent",
			`{"System_Instruction":{"parts":[{"text":"wire-g5"}]},"contents":[]}`,
			geminiHeader, "ambiguous_request", geminiError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			session := "wire-" + strings.NewReplacer(" ", "-", ",", "").Replace(tc.name)
			req, _ := http.NewRequest("POST", e.ts.URL+"/proxy/"+tc.upstream+tc.path, strings.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header[k] = v
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Audit-Token", e.writeToken)
			req.Header.Set("X-Audit-Session", session)
			switch tc.upstream {
			case "anthropic":
				req.Header.Set("X-Api-Key", anthropicKey)
			case "openai":
				req.Header.Set("Authorization", "Bearer "+openaiKey)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d %s, want 400", resp.StatusCode, b)
			}
			// The provider's error format, with our message.
			var got struct {
				Type  string         `json:"type"`
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			msg, _ := got.Error["message"].(string)
			if !strings.Contains(msg, "not strict, unambiguous JSON") || !strings.Contains(msg, "nothing was sent upstream") {
				t.Errorf("message %q", msg)
			}
			got.Error["message"] = ""
			if g, _ := json.Marshal(got.Error); string(g) != tc.wantError {
				t.Errorf("error %s, want %s", g, tc.wantError)
			}
			if tc.upstream == "anthropic" && got.Type != "error" {
				t.Errorf("anthropic type %q", got.Type)
			}
			if n := e.up.count(strings.Fields(tc.name)[0]) + e.up.count(session) + len(e.up.find([]byte(tc.body))); n != 0 {
				t.Fatalf("the upstream received %d refused requests", n)
			}
			evs := e.events(session, 1)
			wantKinds(t, evs, "llm.refused")
			wantAttrs(t, evs[0], map[string]any{"error.type": tc.errType, "url.path": tc.path, "capture.upstream": tc.upstream})
			if evs[0].has("gen_ai.request.model") {
				t.Errorf("a refused body names a model: %v", evs[0].Leaf.Attributes)
			}
			if !bytes.Equal(evs[0].Payload, []byte(tc.body)) {
				t.Errorf("payload %q, want the exact body", evs[0].Payload)
			}
		})
	}
	// Nothing refused reached the upstream at all.
	for _, x := range e.up.all() {
		if strings.Contains(string(x.Body), "wire-") {
			t.Fatalf("the upstream received %s", x.Body)
		}
	}
	// Without the trick, the call goes through, recorded with its model.
	req, _ := http.NewRequest("POST", e.ts.URL+"/proxy/openai/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"plain-ok"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Audit-Token", e.writeToken)
	req.Header.Set("X-Audit-Session", "wire-ok")
	req.Header.Set("Authorization", "Bearer "+openaiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || e.up.count("plain-ok") != 1 {
		t.Fatalf("status %d, upstream saw it %d times", resp.StatusCode, e.up.count("plain-ok"))
	}
	evs := e.events("wire-ok", 2)
	wantKinds(t, evs, "llm.request", "llm.response")
	wantAttrs(t, evs[0], map[string]any{"gen_ai.request.model": "gpt-4o"})
}

package capture

import (
	"encoding/json"
	"testing"
)

// TestFormatText: each format's Text (what replay shows as a response's
// assembled text) reads its own bodies, JSON and streamed, and only its
// own.
func TestFormatText(t *testing.T) {
	for _, c := range []struct {
		name, format, body, want string
	}{
		{"openai chat", "openai", `{"choices":[{"message":{"role":"assistant","content":"Hi there."}}]}`, "Hi there."},
		{"openai chat stream", "openai", "data: {\"choices\":[{\"delta\":{\"content\":\"Hi \"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"there.\"}}]}\n\ndata: [DONE]\n\n", "Hi there."},
		{"openai responses", "openai", `{"output":[{"type":"message","content":[{"type":"output_text","text":"Done."}]}]}`, "Done."},
		{"openai responses stream", "openai", "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Do\"}\n\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"ne.\"}\n\n", "Done."},
		{"openai legacy completion", "openai", `{"choices":[{"text":"Once upon"}]}`, "Once upon"},
		{"anthropic", "anthropic", `{"content":[{"type":"thinking","thinking":"hmm"},{"type":"text","text":"Yes."}]}`, "Yes."},
		{"anthropic stream", "anthropic", "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Ye\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"s.\"}}\n\n", "Yes."},
		{"gemini", "gemini", `{"candidates":[{"content":{"role":"model","parts":[{"text":"thinking","thought":true},{"text":"Take it with food."}]}}]}`, "Take it with food."},
		{"gemini parts as one object", "gemini", `{"candidates":[{"content":{"parts":{"text":"One."}}}]}`, "One."},
		{"gemini stream", "gemini", "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Take it \"}]}}]}\r\n\r\ndata: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"with food.\"}]},\"finishReason\":\"STOP\"}]}\r\n\r\n", "Take it with food."},
		{"gemini stream as an array", "gemini", `[{"candidates":[{"content":{"parts":[{"text":"Take it "}]}}]},{"candidates":[{"content":{"parts":[{"text":"with food."}]}}]}]`, "Take it with food."},
		{"anthropic body, openai format", "openai", `{"content":[{"type":"text","text":"Yes."}]}`, ""},
		{"gemini body, anthropic format", "anthropic", `{"candidates":[{"content":{"parts":[{"text":"x"}]}}]}`, ""},
		{"openai stream, gemini format", "gemini", "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n", ""},
		{"not JSON", "gemini", `{"candidates":`, ""},
	} {
		got, ok := formatNamed(c.format).Text([]byte(c.body))
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s: %q, %v; want %q", c.name, got, ok, c.want)
		}
	}
}

// TestFormatToolResult: each format finds its own tool results, and the
// call each answers.
func TestFormatToolResult(t *testing.T) {
	for _, c := range []struct {
		format, item, want string
		ok                 bool
	}{
		{"openai", `{"role":"tool","tool_call_id":"call_abc","content":"21"}`, "call_abc", true},
		{"openai", `{"type":"function_call_output","call_id":"fc_1","output":"21"}`, "fc_1", true},
		{"openai", `{"role":"user","content":"hi"}`, "", false},
		{"anthropic", `{"type":"tool_result","tool_use_id":"toolu_1","content":"21"}`, "toolu_1", true},
		{"anthropic", `{"role":"tool","tool_call_id":"call_abc"}`, "", false},
		{"gemini", `{"functionResponse":{"id":"f1","name":"dose_check","response":{}}}`, "f1", true},
		{"gemini", `{"function_response":{"name":"dose_check","response":{}}}`, "dose_check", true},
		{"gemini", `{"text":"hi"}`, "", false},
		{"gemini", `"a string"`, "", false},
	} {
		var v any
		if err := json.Unmarshal([]byte(c.item), &v); err != nil {
			t.Fatal(err)
		}
		if id, ok := formatNamed(c.format).ToolResult(v); id != c.want || ok != c.ok {
			t.Errorf("%s ToolResult(%s) = %q, %v", c.format, c.item, id, ok)
		}
	}
}

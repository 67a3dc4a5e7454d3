package capture_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	oaoption "github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"google.golang.org/genai"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/internal/providertest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// toolSecret is in every tool's result: it must reach the vault (the
// tool.result payload) and never a leaf.
const toolSecret = "potassium 6.1 mmol/L for patient 4711"

// TestProxyToolResults: an agent on an official SDK runs a two-turn tool
// loop through the proxy (the model asks for a tool, the agent sends its
// result, the model answers), then asks a follow-up question, sending the
// whole conversation again. The session holds the tool.call, then a
// tool.result bound to it by the call id, recorded just before the request
// that carried it, once, although the third request carries it too; the
// result is the payload (in the vault), never in the leaf.
func TestProxyToolResults(t *testing.T) {
	pf := providertest.New(t)
	e := newEnv(t, "fail-closed", func(c *server.Config, _ *httptest.Server) {
		c.Upstreams = map[string]string{"openai": pf.URL, "anthropic": pf.URL, "gemini": pf.URL}
	})
	for _, tc := range []struct {
		name    string
		run     func(t *testing.T, session string)
		isError bool // the agent marks the result as an error (Anthropic)
	}{
		{"openai", func(t *testing.T, session string) { oaTwoTurns(t, e, session) }, false},
		{"anthropic", func(t *testing.T, session string) { anTwoTurns(t, e, session) }, true},
		// Gemini's functionCall has an id in newer API versions, which the
		// agent echoes in its functionResponse; older ones have none on
		// either side.
		{"gemini", func(t *testing.T, session string) { gmTwoTurns(t, e, session) }, false},
		{"gemini-ids", func(t *testing.T, session string) {
			pf.SetGeminiCallIDs(true)
			defer pf.SetGeminiCallIDs(false)
			gmTwoTurns(t, e, session)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			session := "tools-" + tc.name
			tc.run(t, session)
			evs := settled(t, e, session)
			wantKinds(t, evs, "llm.request", "llm.response", "tool.call", "tool.result", "llm.request", "llm.response", "llm.request", "llm.response")
			call, result := evs[2], evs[3]
			// The result's call id is its call's: the id the model gave, or
			// for a Gemini call without one none on either (bound by name
			// and order: TestProxyToolResultsGeminiByOrder).
			if id := call.str("gen_ai.tool.call.id"); result.str("gen_ai.tool.call.id") != id || (id == "") != (tc.name == "gemini") {
				t.Errorf("tool.result call id %q, tool.call's %q", result.str("gen_ai.tool.call.id"), id)
			}
			want := map[string]any{"gen_ai.tool.name": "patient_lookup", "capture.tool_result.source": "llm.request",
				"capture.call.id": evs[4].str("capture.call.id"), "capture.front": "proxy"}
			if tc.isError {
				want["capture.tool_result.is_error"], want["error.type"] = true, "tool_error"
			}
			wantAttrs(t, result, want)
			if result.Leaf.Writer == nil || result.Leaf.Writer.Via != "proxy" {
				t.Errorf("tool.result writer %+v, want via proxy", result.Leaf.Writer)
			}
			if !strings.Contains(string(result.Payload), toolSecret) || result.MediaType != "application/json" {
				t.Errorf("tool.result payload %s (%s) does not hold the result", result.Payload, result.MediaType)
			}
			for _, ev := range evs {
				leaf, _ := json.Marshal(ev.Leaf)
				if strings.Contains(string(leaf), "potassium") {
					t.Errorf("the %s leaf holds the tool's result: %s", ev.Leaf.Kind, leaf)
				}
			}
		})
	}
}

func oaTwoTurns(t *testing.T, e *env, session string) {
	oa := openai.NewClient(oaoption.WithAPIKey(openaiKey), oaoption.WithBaseURL(e.ts.URL+"/proxy/openai/v1/"),
		oaoption.WithHeader(capture.HeaderToken, e.writeToken), oaoption.WithHeader(capture.HeaderSession, session))
	tools := []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "patient_lookup",
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"query": map[string]any{"type": "string"}}}})}
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Check the labs of patient 4711.")}
	call := func() openai.ChatCompletionMessage {
		r, err := oa.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: msgs, Tools: tools})
		if err != nil {
			t.Fatal(err)
		}
		return r.Choices[0].Message
	}
	m := call()
	if len(m.ToolCalls) != 1 {
		t.Fatalf("tool calls %+v", m.ToolCalls)
	}
	msgs = append(msgs, m.ToParam(), openai.ToolMessage(`{"labs":"`+toolSecret+`"}`, m.ToolCalls[0].ID))
	m = call()
	msgs = append(msgs, m.ToParam(), openai.UserMessage("And what does that mean?"))
	if m = call(); len(m.ToolCalls) != 0 || m.Content == "" {
		t.Fatalf("third turn %+v", m)
	}
}

func anTwoTurns(t *testing.T, e *env, session string) {
	an := anthropic.NewClient(anoption.WithAPIKey(anthropicKey), anoption.WithBaseURL(e.ts.URL+"/proxy/anthropic"),
		anoption.WithHeader(capture.HeaderToken, e.writeToken), anoption.WithHeader(capture.HeaderSession, session))
	tools := []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{Name: "patient_lookup",
		InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"query": map[string]any{"type": "string"}}}}}}
	msgs := []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Check the labs of patient 4711."))}
	call := func(stream bool) anthropic.Message {
		p := anthropic.MessageNewParams{Model: "claude-sonnet-4-5", MaxTokens: 1024, Messages: msgs, Tools: tools}
		if !stream {
			r, err := an.Messages.New(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			return *r
		}
		var m anthropic.Message
		s := an.Messages.NewStreaming(context.Background(), p)
		for s.Next() {
			if err := m.Accumulate(s.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := call(true)
	var id string
	for _, b := range m.Content {
		if b.Type == "tool_use" {
			id = b.ID
		}
	}
	if id == "" {
		t.Fatalf("no tool_use in %+v", m.Content)
	}
	msgs = append(msgs, m.ToParam(), anthropic.NewUserMessage(anthropic.NewToolResultBlock(id, "lookup failed: "+toolSecret, true)))
	m = call(false)
	msgs = append(msgs, m.ToParam(), anthropic.NewUserMessage(anthropic.NewTextBlock("And what does that mean?")))
	call(false)
}

func gmTwoTurns(t *testing.T, e *env, session string) {
	ctx := context.Background()
	c, err := genai.NewClient(ctx, &genai.ClientConfig{APIKey: geminiKey, Backend: genai.BackendGeminiAPI, HTTPClient: e.ts.Client(),
		HTTPOptions: genai.HTTPOptions{BaseURL: e.ts.URL + "/proxy/gemini/",
			Headers: http.Header{capture.HeaderToken: {e.writeToken}, capture.HeaderSession: {session}}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &genai.GenerateContentConfig{Tools: []*genai.Tool{{FunctionDeclarations: []*genai.FunctionDeclaration{{Name: "patient_lookup", Description: "Looks a patient up."}}}}}
	contents := []*genai.Content{genai.NewContentFromText("Check the labs of patient 4711.", genai.RoleUser)}
	r, err := c.Models.GenerateContent(ctx, "gemini-2.5-flash", contents, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fc := r.FunctionCalls()
	if len(fc) != 1 {
		t.Fatalf("function calls %+v", fc)
	}
	// The agent echoes the call's id, if it has one.
	contents = append(contents, r.Candidates[0].Content, genai.NewContentFromParts([]*genai.Part{{FunctionResponse: &genai.FunctionResponse{
		ID: fc[0].ID, Name: fc[0].Name, Response: map[string]any{"labs": toolSecret}}}}, genai.RoleUser))
	if r, err = c.Models.GenerateContent(ctx, "gemini-2.5-flash", contents, cfg); err != nil {
		t.Fatal(err)
	}
	contents = append(contents, r.Candidates[0].Content, genai.NewContentFromText("And what does that mean?", genai.RoleUser))
	if _, err = c.Models.GenerateContent(ctx, "gemini-2.5-flash", contents, cfg); err != nil {
		t.Fatal(err)
	}
}

// TestProxyToolResultsAfterRestart: the log server restarts between the
// second and third turn of a tool loop; the capture, which has no memory of
// the session, reads its recorded results from the session index and does
// not record the first result again when the third request resends it.
func TestProxyToolResultsAfterRestart(t *testing.T) {
	pf := providertest.New(t)
	var cfg server.Config
	e := newEnv(t, "fail-closed", func(c *server.Config, _ *httptest.Server) {
		c.Upstreams = map[string]string{"openai": pf.URL}
		cfg = *c
	})
	const session = "tools-restart"
	client := func(url string) openai.Client {
		return openai.NewClient(oaoption.WithAPIKey(openaiKey), oaoption.WithBaseURL(url+"/proxy/openai/v1/"),
			oaoption.WithHeader(capture.HeaderToken, e.writeToken), oaoption.WithHeader(capture.HeaderSession, session))
	}
	tools := []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "patient_lookup"})}
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Check the labs of patient 4711.")}
	call := func(c openai.Client) openai.ChatCompletionMessage {
		r, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: msgs, Tools: tools})
		if err != nil {
			t.Fatal(err)
		}
		return r.Choices[0].Message
	}
	oa := client(e.ts.URL)
	m := call(oa)
	msgs = append(msgs, m.ToParam(), openai.ToolMessage(`{"labs":"`+toolSecret+`"}`, m.ToolCalls[0].ID))
	m = call(oa)
	settled(t, e, session)
	e.close()

	srv, err := server.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Close(context.Background())
	})
	e.srv, e.ts = srv, ts
	msgs = append(msgs, m.ToParam(), openai.UserMessage("And what does that mean?"))
	call(client(ts.URL))
	evs := settled(t, e, session)
	wantKinds(t, evs, "llm.request", "llm.response", "tool.call", "tool.result", "llm.request", "llm.response", "llm.request", "llm.response")
}

// TestProxyToolResultsGeminiByOrder: Gemini functionCalls without an id
// (older API versions), the same function twice: each functionResponse is
// a tool.result of its own, recorded once although later requests resend
// both, with no call id, as its tool.call has none: the n-th result of a
// name answers the n-th call of that name.
func TestProxyToolResultsGeminiByOrder(t *testing.T) {
	pf := providertest.New(t)
	e := newEnv(t, "fail-closed", func(c *server.Config, _ *httptest.Server) {
		c.Upstreams = map[string]string{"gemini": pf.URL}
	})
	const session = "tools-gemini-order"
	ctx := context.Background()
	c, err := genai.NewClient(ctx, &genai.ClientConfig{APIKey: geminiKey, Backend: genai.BackendGeminiAPI, HTTPClient: e.ts.Client(),
		HTTPOptions: genai.HTTPOptions{BaseURL: e.ts.URL + "/proxy/gemini/",
			Headers: http.Header{capture.HeaderToken: {e.writeToken}, capture.HeaderSession: {session}}}})
	if err != nil {
		t.Fatal(err)
	}
	// The fake asks for each declared function in turn: the same one twice.
	decl := &genai.FunctionDeclaration{Name: "patient_lookup", Description: "Looks a patient up."}
	cfg := &genai.GenerateContentConfig{Tools: []*genai.Tool{{FunctionDeclarations: []*genai.FunctionDeclaration{decl, decl}}}}
	contents := []*genai.Content{genai.NewContentFromText("Check the labs of patient 4711, then again.", genai.RoleUser)}
	for turn := range 3 {
		r, err := c.Models.GenerateContent(ctx, "gemini-2.5-flash", contents, cfg)
		if err != nil {
			t.Fatal(err)
		}
		fc := r.FunctionCalls()
		if (len(fc) == 1) != (turn < 2) {
			t.Fatalf("turn %d: function calls %+v", turn, fc)
		}
		contents = append(contents, r.Candidates[0].Content)
		if turn < 2 {
			if fc[0].ID != "" {
				t.Fatalf("the fake gave the call an id %q", fc[0].ID)
			}
			contents = append(contents, genai.NewContentFromFunctionResponse(fc[0].Name, map[string]any{"labs": fmt.Sprintf("result %d", turn)}, genai.RoleUser))
		}
	}
	evs := settled(t, e, session)
	wantKinds(t, evs, "llm.request", "llm.response", "tool.call", "tool.result", "llm.request", "llm.response", "tool.call", "tool.result", "llm.request", "llm.response")
	for i, at := range []int{3, 7} {
		call, result := evs[at-1], evs[at]
		if call.str("gen_ai.tool.call.id") != "" || result.str("gen_ai.tool.call.id") != "" ||
			call.str("gen_ai.tool.name") != "patient_lookup" || result.str("gen_ai.tool.name") != "patient_lookup" {
			t.Errorf("result %d: tool.call %s %q, tool.result %s %q", i, call.str("gen_ai.tool.name"), call.str("gen_ai.tool.call.id"),
				result.str("gen_ai.tool.name"), result.str("gen_ai.tool.call.id"))
		}
		if want := fmt.Sprintf("result %d", i); !strings.Contains(string(result.Payload), want) {
			t.Errorf("result %d: payload %s, want the response %q", i, result.Payload, want)
		}
	}
}

package capture_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/azure"
	oaoption "github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"google.golang.org/genai"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/internal/providertest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

const (
	geminiKey = "AIzaSyTEST-gemini-key-0123456789abcdefXYZ"
	azureKey  = "azure-test-key-5f4e3d2c1b0a99887766554433221100"
)

func newProviderEnv(t *testing.T, opts ...envOpt) (*env, *providertest.Fake) {
	pf := providertest.New(t)
	e := newEnv(t, "fail-closed", append(opts, func(c *server.Config, _ *httptest.Server) {
		c.Upstreams["gemini"] = pf.URL
		c.Upstreams["azure-east"] = pf.URL
	})...)
	return e, pf
}

// listeners runs f with the log server on plain HTTP and on TLS.
func listeners(t *testing.T, f func(t *testing.T, opts ...envOpt)) {
	t.Run("http", func(t *testing.T) { f(t) })
	t.Run("tls", func(t *testing.T) { f(t, withTLS) })
}

// secretNowhere checks that a secret is in no file of the data directory
// (leaves, tiles, vault, indexes, logs).
func secretNowhere(t *testing.T, dir, secret string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the API key", p)
		}
		return nil
	})
}

// TestGeminiSDK: the official Google Go SDK, with only its base URL
// changed, makes a generateContent call that asks for a function, a
// streamed generateContent, through the proxy; the session holds complete
// request/response pairs with the model, usage and the function call, and
// the API key is nowhere in the data directory, also when sent as key=.
func TestGeminiSDK(t *testing.T) { listeners(t, testGeminiSDK) }

func testGeminiSDK(t *testing.T, opts ...envOpt) {
	e, _ := newProviderEnv(t, opts...)
	ctx := context.Background()
	c, err := genai.NewClient(ctx, &genai.ClientConfig{APIKey: geminiKey, Backend: genai.BackendGeminiAPI, HTTPClient: e.ts.Client(),
		HTTPOptions: genai.HTTPOptions{BaseURL: e.ts.URL + "/proxy/gemini/",
			Headers: http.Header{capture.HeaderToken: {e.writeToken}, capture.HeaderSession: {"gem-1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &genai.GenerateContentConfig{SystemInstruction: genai.NewContentFromText("You are a pharmacist's assistant.", genai.RoleUser),
		Tools: []*genai.Tool{{FunctionDeclarations: []*genai.FunctionDeclaration{{Name: "dose_check", Description: "Checks a dose."}}}}}
	r, err := c.Models.GenerateContent(ctx, "gemini-2.5-flash", genai.Text("Is 5 mg of warfarin right?"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fc := r.FunctionCalls(); len(fc) != 1 || fc[0].Name != "dose_check" {
		t.Fatalf("function calls %+v", fc)
	}
	var text strings.Builder
	for chunk, err := range c.Models.GenerateContentStream(ctx, "gemini-2.5-flash", genai.Text("Summarise the label."), nil) {
		if err != nil {
			t.Fatal(err)
		}
		text.WriteString(chunk.Text())
	}
	if !strings.HasPrefix(text.String(), "Based on what I found") {
		t.Fatalf("streamed text %q", text.String())
	}
	if _, err := c.Models.EmbedContent(ctx, "gemini-embedding-001", genai.Text("a label"), nil); err != nil {
		t.Fatal(err)
	}
	if ct, err := c.Models.CountTokens(ctx, "gemini-2.5-flash", genai.Text("a label"), nil); err != nil || ct.TotalTokens <= 0 {
		t.Fatalf("countTokens %+v %v", ct, err)
	}
	evs := e.events("gem-1", 9) // request, response, tool.call; request, response; embed, count
	calls := splitCalls(t, evs)
	if len(calls) != 4 {
		t.Fatalf("%d calls", len(calls))
	}
	wantAttrs(t, calls[2].req, map[string]any{"capture.api": "gemini.embed_content", "gen_ai.operation.name": "embeddings", "gen_ai.request.model": "gemini-embedding-001"})
	wantAttrs(t, calls[3].req, map[string]any{"capture.api": "gemini.count_tokens", "gen_ai.request.model": "gemini-2.5-flash"})
	wantAttrs(t, calls[3].resp, map[string]any{"capture.outcome": "complete", "http.response.status_code": 200})
	wantAttrs(t, calls[0].req, map[string]any{"gen_ai.provider.name": "gcp.gemini", "gen_ai.operation.name": "generate_content",
		"capture.api": "gemini.generate_content", "gen_ai.request.model": "gemini-2.5-flash"})
	if calls[0].req.str("capture.system_prompt.sha256") == "" || !calls[0].req.has("capture.credential.x-goog-api-key") {
		t.Errorf("request attributes %v", calls[0].req.Leaf.Attributes)
	}
	wantAttrs(t, calls[0].resp, map[string]any{"gen_ai.response.model": "gemini-2.5-flash-001", "capture.outcome": "complete", "http.response.status_code": 200})
	if calls[0].resp.num("gen_ai.usage.input_tokens") <= 0 || calls[0].resp.num("gen_ai.usage.output_tokens") != 22 ||
		calls[0].resp.num("gen_ai.usage.reasoning.output_tokens") != 4 || calls[0].resp.strs("gen_ai.response.finish_reasons")[0] != "STOP" {
		t.Errorf("response attributes %v", calls[0].resp.Leaf.Attributes)
	}
	if len(calls[0].tools) != 1 || calls[0].tools[0].str("gen_ai.tool.name") != "dose_check" {
		t.Errorf("tool calls %+v", calls[0].tools)
	}
	wantAttrs(t, calls[1].req, map[string]any{"capture.api": "gemini.stream_generate_content", "gen_ai.request.model": "gemini-2.5-flash"})
	wantAttrs(t, calls[1].resp, map[string]any{"capture.stream": true, "capture.stream.terminated": true, "capture.outcome": "complete"})
	if calls[1].resp.num("gen_ai.usage.input_tokens") <= 0 {
		t.Errorf("stream usage %v", calls[1].resp.Leaf.Attributes)
	}

	// The key as a query parameter: forwarded, never recorded.
	req, _ := http.NewRequest("POST", e.ts.URL+"/proxy/gemini/v1beta/models/gemini-2.5-flash:generateContent?key="+geminiKey,
		strings.NewReader(`{"contents":[{"parts":[{"text":"hi"}]}]}`))
	req.Header.Set(capture.HeaderToken, e.writeToken)
	req.Header.Set(capture.HeaderSession, "gem-2")
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	evs = e.events("gem-2", 2)
	if q := evs[0].str("url.query"); !strings.HasPrefix(q, "key=hmac-sha256:") {
		t.Errorf("url.query %q", q)
	}
	e.close()
	secretNowhere(t, e.dir, geminiKey)
}

// TestGeminiProtoFieldNames: Google's proto-JSON mapping takes a field by
// its JSON name (systemInstruction) or by its proto name
// (system_instruction), and a repeated field as one object in place of an
// array (Google's own curl sample sends "parts": {"text": ...}). The
// capture reads all of them alike: the same system prompt digest and
// generation parameters whatever the spelling. (Both spellings at once are
// refused: TestProxyRefusesAmbiguousBody.)
func TestGeminiProtoFieldNames(t *testing.T) {
	e, _ := newProviderEnv(t)
	bodies := map[string]string{
		"json-names":   `{"systemInstruction":{"parts":[{"text":"You are a cat."}]},"generationConfig":{"maxOutputTokens":64,"temperature":0.5,"topP":0.9,"candidateCount":1,"seed":7},"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`,
		"proto-names":  `{"system_instruction":{"parts":[{"text":"You are a cat."}]},"generation_config":{"max_output_tokens":64,"temperature":0.5,"top_p":0.9,"candidate_count":1,"seed":7},"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`,
		"parts-object": `{"system_instruction":{"parts":{"text":"You are a cat."}},"generationConfig":{"max_output_tokens":64,"temperature":0.5,"topP":0.9,"candidate_count":1,"seed":7},"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`,
	}
	keys := []string{"capture.system_prompt.sha256", "gen_ai.request.max_tokens", "gen_ai.request.temperature",
		"gen_ai.request.top_p", "gen_ai.request.choice.count", "gen_ai.request.seed"}
	var want string
	for _, name := range []string{"json-names", "proto-names", "parts-object"} {
		req, _ := http.NewRequest("POST", e.ts.URL+"/proxy/gemini/v1beta/models/gemini-2.5-flash:generateContent", strings.NewReader(bodies[name]))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Goog-Api-Key", geminiKey)
		req.Header.Set(capture.HeaderToken, e.writeToken)
		req.Header.Set(capture.HeaderSession, "gem-"+name)
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", name, resp.StatusCode)
		}
		evs := e.events("gem-"+name, 2)
		wantKinds(t, evs, "llm.request", "llm.response")
		var got []string
		for _, k := range keys {
			got = append(got, fmt.Sprintf("%s=%v", k, evs[0].Leaf.Attributes[k]))
		}
		g := strings.Join(got, " ")
		if want == "" {
			want = g
			if strings.Contains(g, "<nil>") || !strings.Contains(g, "max_tokens=64 ") || !strings.Contains(g, "temperature=0.5 ") || !strings.Contains(g, "seed=7") {
				t.Fatalf("%s: %s", name, g)
			}
		} else if g != want {
			t.Errorf("%s: %s\nwant (as json-names) %s", name, g, want)
		}
	}
}

// TestAzureOpenAISDK: openai-go's Azure options (endpoint, api-version,
// api-key) through /proxy/azure-east/: the deployment is the request's
// model, the provider azure.ai.openai, the key nowhere.
func TestAzureOpenAISDK(t *testing.T) { listeners(t, testAzureOpenAISDK) }

func testAzureOpenAISDK(t *testing.T, opts ...envOpt) {
	e, _ := newProviderEnv(t, opts...)
	c := openai.NewClient(azure.WithEndpoint(e.ts.URL+"/proxy/azure-east/", "2024-10-21"), azure.WithAPIKey(azureKey), azure.WithUnsafeAllowHTTP(),
		oaoption.WithHTTPClient(e.ts.Client()),
		oaoption.WithHeader(capture.HeaderToken, e.writeToken), oaoption.WithHeader(capture.HeaderSession, "az-1"))
	r, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Check invoice INV-2291.")},
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "invoice_get",
			Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"query": map[string]any{"type": "string"}}}})}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Choices[0].Message.ToolCalls) != 1 {
		t.Fatalf("%+v", r.Choices[0].Message)
	}
	evs := e.events("az-1", 3)
	calls := splitCalls(t, evs)
	wantAttrs(t, calls[0].req, map[string]any{"gen_ai.provider.name": "azure.ai.openai", "capture.api": "openai.chat.completions",
		"gen_ai.request.model": "gpt-4o", "url.path": "/openai/deployments/gpt-4o/chat/completions"})
	if !calls[0].req.has("capture.credential.api-key") || !strings.HasPrefix(calls[0].req.str("url.query"), "api-version=hmac-sha256:") {
		t.Errorf("request attributes %v", calls[0].req.Leaf.Attributes)
	}
	wantAttrs(t, calls[0].resp, map[string]any{"gen_ai.response.model": "gpt-4o-2024-08-06"})
	if len(calls[0].tools) != 1 {
		t.Errorf("tool calls %+v", calls[0].tools)
	}
	// A request whose body names no model: the deployment does.
	req, _ := http.NewRequest("POST", e.ts.URL+"/proxy/azure-east/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
		strings.NewReader(`{"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Api-Key", azureKey)
	req.Header.Set(capture.HeaderToken, e.writeToken)
	req.Header.Set(capture.HeaderSession, "az-2")
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	evs = e.events("az-2", 2)
	if evs[0].str("gen_ai.request.model") != "gpt-4o-mini" {
		t.Errorf("model %q", evs[0].str("gen_ai.request.model"))
	}
	// The /openai/v1/ form: the model is in the body.
	req, _ = http.NewRequest("POST", e.ts.URL+"/proxy/azure-east/openai/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Api-Key", azureKey)
	req.Header.Set(capture.HeaderToken, e.writeToken)
	req.Header.Set(capture.HeaderSession, "az-3")
	if resp, err = e.ts.Client().Do(req); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	evs = e.events("az-3", 2)
	wantAttrs(t, evs[0], map[string]any{"gen_ai.provider.name": "azure.ai.openai", "capture.api": "openai.chat.completions", "gen_ai.request.model": "gpt-4o"})
	wantAttrs(t, evs[1], map[string]any{"gen_ai.response.model": "gpt-4o-2024-08-06"})
	e.close()
	secretNowhere(t, e.dir, azureKey)
}

// npmProbe runs testdata/npm/probe.mjs (the npm SDKs, installed by
// .ci/run with npm ci) against the proxy.
func npmProbe(t *testing.T, e *env, mode, session string) map[string]any {
	t.Helper()
	if _, err := os.Stat("../testdata/npm/node_modules/openai"); err != nil {
		t.Skip("npm ci --prefix testdata/npm (.ci/run does)")
	}
	cmd := exec.Command("node", "../testdata/npm/probe.mjs", mode)
	cmd.Env = append(os.Environ(), "PROXY="+e.ts.URL, "TOKEN="+e.writeToken, "SESSION="+session,
		"GEMINI_API_KEY="+geminiKey, "AZURE_OPENAI_API_KEY="+azureKey)
	if c := e.ts.Certificate(); c != nil { // the log server on TLS: Node trusts its certificate
		ca := filepath.Join(t.TempDir(), "ca.pem")
		os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644)
		cmd.Env = append(cmd.Env, "NODE_EXTRA_CA_CERTS="+ca)
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node probe %s: %v %s %s", mode, err, out, stderr)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("probe output %s", out)
	}
	return v
}

// TestNPMGeminiAndAzure: the npm @google/genai package and the npm openai
// package's AzureOpenAI client, unmodified but for their base URL, through
// the proxy.
func TestNPMGeminiAndAzure(t *testing.T) { listeners(t, testNPMGeminiAndAzure) }

func testNPMGeminiAndAzure(t *testing.T, opts ...envOpt) {
	e, _ := newProviderEnv(t, opts...)
	g := npmProbe(t, e, "gemini", "npm-gem")
	if fc, _ := g["functionCalls"].([]any); len(fc) != 1 || fc[0] != "dose_check" || !strings.HasPrefix(g["streamed"].(string), "Based on") {
		t.Fatalf("gemini: %v", g)
	}
	calls := splitCalls(t, e.events("npm-gem", 5))
	wantAttrs(t, calls[0].req, map[string]any{"gen_ai.provider.name": "gcp.gemini", "gen_ai.request.model": "gemini-2.5-flash", "capture.api": "gemini.generate_content"})
	wantAttrs(t, calls[1].resp, map[string]any{"capture.stream": true, "capture.stream.terminated": true})
	if len(calls[0].tools) != 1 || !slices.Contains(calls[0].req.strs("http.request.header_names"), "x-goog-api-client") {
		t.Errorf("tools %d; request %v", len(calls[0].tools), calls[0].req.Leaf.Attributes)
	}
	a := npmProbe(t, e, "azure", "npm-az")
	if a["model"] != "gpt-4o-2024-08-06" {
		t.Fatalf("azure: %v", a)
	}
	calls = splitCalls(t, e.events("npm-az", 2))
	wantAttrs(t, calls[0].req, map[string]any{"gen_ai.provider.name": "azure.ai.openai", "url.path": "/openai/deployments/gpt-4o/chat/completions", "gen_ai.request.model": "gpt-4o"})
	e.close()
	secretNowhere(t, e.dir, geminiKey)
	secretNowhere(t, e.dir, azureKey)
}

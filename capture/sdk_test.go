package capture_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	oaoption "github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// The Hook's Middleware must have the type both SDKs' option.Middleware
// name (they are aliases of the same function type).
var (
	_ oaoption.Middleware = (*capture.Hook)(nil).Middleware
	_ anoption.Middleware = (*capture.Hook)(nil).Middleware
)

// clients are SDK clients for one front door: "direct" (straight to the
// fake upstream, nothing recorded), "proxy" or "middleware".
type clients struct {
	front   string
	session string
	oa      openai.Client
	local   openai.Client // an OpenAI-compatible upstream by name (proxy only)
	an      anthropic.Client
	hook    *capture.Hook
}

func (e *env) clients(t testing.TB, front, session string) *clients {
	c := &clients{front: front, session: session}
	oaOpts := []oaoption.RequestOption{oaoption.WithAPIKey(openaiKey), oaoption.WithMaxRetries(2)}
	anOpts := []anoption.RequestOption{anoption.WithAPIKey(anthropicKey), anoption.WithMaxRetries(2)}
	switch front {
	case "direct":
		c.oa = openai.NewClient(append(oaOpts, oaoption.WithBaseURL(e.up.URL+"/v1/"))...)
		c.an = anthropic.NewClient(append(anOpts, anoption.WithBaseURL(e.up.URL))...)
	case "proxy":
		c.oa = openai.NewClient(append(oaOpts, oaoption.WithBaseURL(e.ts.URL+"/proxy/openai/v1/"),
			oaoption.WithHeader(capture.HeaderToken, e.writeToken), oaoption.WithHeader(capture.HeaderSession, session))...)
		c.local = openai.NewClient(append(oaOpts, oaoption.WithBaseURL(e.ts.URL+"/proxy/local/v1/"),
			oaoption.WithHeader(capture.HeaderToken, e.writeToken), oaoption.WithHeader(capture.HeaderSession, session))...)
		c.an = anthropic.NewClient(append(anOpts, anoption.WithBaseURL(e.ts.URL+"/proxy/anthropic"),
			anoption.WithHeader(capture.HeaderToken, e.writeToken), anoption.WithHeader(capture.HeaderSession, session))...)
	case "middleware":
		hook, err := capture.NewHook(capture.NewHTTPRecorder(mustClient(e.ts.URL, e.writeToken)),
			capture.WithSession(session), capture.WithLogger(quiet), capture.WithActor(event.Actor{Type: "agent", ID: "go-agent"}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := hook.Close(context.Background()); err != nil {
				t.Errorf("hook.Close: %v", err)
			}
		})
		c.hook = hook
		c.oa = openai.NewClient(append(oaOpts, oaoption.WithBaseURL(e.up.URL+"/v1/"), oaoption.WithMiddleware(hook.Middleware))...)
		c.an = anthropic.NewClient(append(anOpts, anoption.WithBaseURL(e.up.URL), anoption.WithMiddleware(hook.Middleware))...)
	}
	return c
}

func (c *clients) flush(t testing.TB) {
	if c.hook != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.hook.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func chatParams(model, msg string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:               model,
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage(msg)},
		MaxCompletionTokens: openai.Int(64),
		Temperature:         openai.Float(0.5),
	}
}

func streamParams(model, msg string) openai.ChatCompletionNewParams {
	p := chatParams(model, msg)
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	return p
}

func anParams(model, msg string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model: model, MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(msg))},
	}
}

// view functions run one SDK call and return everything the SDK gave the
// caller, for comparison with a direct call.

func oaChat(t testing.TB, c *clients, model, msg string) string {
	r, err := c.oa.Chat.Completions.New(context.Background(), chatParams(model, msg))
	if err != nil {
		t.Fatalf("%s: %v", c.front, err)
	}
	tc := ""
	for _, x := range r.Choices[0].Message.ToolCalls {
		tc += x.ID + ":" + x.Function.Name + ":" + x.Function.Arguments + ";"
	}
	return fmt.Sprintf("%s|%s|%s|%d/%d/%d|%s", r.RawJSON(), r.Choices[0].Message.Content, r.Choices[0].FinishReason,
		r.Usage.PromptTokens, r.Usage.CompletionTokens, r.Usage.PromptTokensDetails.CachedTokens, tc)
}

func oaStream(t testing.TB, c *clients, model, msg string) string {
	s := c.oa.Chat.Completions.NewStreaming(context.Background(), streamParams(model, msg))
	var raw strings.Builder
	acc := openai.ChatCompletionAccumulator{}
	for s.Next() {
		ch := s.Current()
		raw.WriteString(ch.RawJSON())
		acc.AddChunk(ch)
	}
	tc := ""
	if len(acc.Choices) > 0 {
		for _, x := range acc.Choices[0].Message.ToolCalls {
			tc += x.ID + ":" + x.Function.Name + ":" + x.Function.Arguments + ";"
		}
		tc += acc.Choices[0].Message.Content
	}
	return fmt.Sprintf("%s|err=%v|%s|%d/%d", raw.String(), s.Err() != nil, tc, acc.Usage.PromptTokens, acc.Usage.CompletionTokens)
}

func anMessage(t testing.TB, c *clients, model, msg string) string {
	m, err := c.an.Messages.New(context.Background(), anParams(model, msg))
	if err != nil {
		t.Fatalf("%s: %v", c.front, err)
	}
	var parts []string
	for _, b := range m.Content {
		parts = append(parts, b.Type+":"+b.Text+":"+b.ID+":"+b.Name+":"+string(b.Input))
	}
	return fmt.Sprintf("%s|%s|%s|%d/%d", m.RawJSON(), strings.Join(parts, ","), m.StopReason, m.Usage.InputTokens, m.Usage.OutputTokens)
}

func anStream(t testing.TB, c *clients, model, msg string) string {
	s := c.an.Messages.NewStreaming(context.Background(), anParams(model, msg))
	var raw strings.Builder
	acc := anthropic.Message{}
	for s.Next() {
		ev := s.Current()
		raw.WriteString(ev.RawJSON())
		acc.Accumulate(ev)
	}
	var parts []string
	for _, b := range acc.Content {
		parts = append(parts, b.Type+":"+b.Text+":"+b.ID+":"+b.Name+":"+string(b.Input))
	}
	return fmt.Sprintf("%s|err=%v|%s|%s|%d/%d/%d/%d", raw.String(), s.Err() != nil, strings.Join(parts, ","), acc.StopReason,
		acc.Usage.InputTokens, acc.Usage.OutputTokens, acc.Usage.CacheReadInputTokens, acc.Usage.OutputTokensDetails.ThinkingTokens)
}

// call is what the log must hold about one attempt.
type call struct {
	req, resp logged
	tools     []logged
}

// splitCalls groups a session's events by attempt: llm.request,
// llm.response, then its tool.call events.
func splitCalls(t testing.TB, evs []logged) []call {
	t.Helper()
	var out []call
	for i := 0; i < len(evs); {
		if evs[i].Leaf.Kind != event.KindLLMRequest || i+1 >= len(evs) || evs[i+1].Leaf.Kind != event.KindLLMResponse {
			t.Fatalf("events %v: want llm.request, llm.response, tool.call*", kinds(evs))
		}
		c := call{req: evs[i], resp: evs[i+1]}
		i += 2
		for i < len(evs) && evs[i].Leaf.Kind == event.KindToolCall {
			c.tools = append(c.tools, evs[i])
			i++
		}
		out = append(out, c)
	}
	return out
}

// checkCalls verifies every attempt of a session against what the fake
// upstream received and sent: the request payload is the exact body the
// upstream received, the response payload the exact bytes it sent (or, for
// an abandoned stream, a prefix of them), attempts are numbered from 0 and
// share one call id, and the credential was fingerprinted, never recorded.
func checkCalls(t testing.TB, e *env, c *clients, evs []logged, attempts int, complete bool) []call {
	t.Helper()
	calls := splitCalls(t, evs)
	if len(calls) != attempts {
		t.Fatalf("%d attempts recorded (%v), want %d", len(calls), kinds(evs), attempts)
	}
	exs := e.up.find(calls[0].req.Payload)
	if len(exs) != attempts {
		t.Fatalf("the upstream received %d requests with the recorded body, want %d", len(exs), attempts)
	}
	for i, cl := range calls {
		ex := exs[i]
		wantAttrs(t, cl.req, map[string]any{
			"capture.call.id": calls[0].req.str("capture.call.id"), "capture.attempt": i,
			"capture.front": c.front, "http.request.method": "POST", "url.path": ex.Path, "capture.body.size": nil,
		})
		if int(cl.req.Leaf.Payload.Size) != len(ex.Body) {
			t.Errorf("request payload size %d, body %d", cl.req.Leaf.Payload.Size, len(ex.Body))
		}
		if cl.req.Leaf.Session != c.session || cl.resp.Leaf.Session != c.session {
			t.Errorf("session %q, want %q", cl.req.Leaf.Session, c.session)
		}
		if cl.req.MediaType != "application/json" {
			t.Errorf("request media type %q", cl.req.MediaType)
		}
		wantAttrs(t, cl.resp, map[string]any{
			"capture.call.id": calls[0].req.str("capture.call.id"), "capture.attempt": i,
		})
		if cl.resp.num("http.response.status_code") != int64(ex.Status) && !(ex.Status == 0 && cl.resp.num("http.response.status_code") == 200) {
			t.Errorf("status %d, upstream answered %d", cl.resp.num("http.response.status_code"), ex.Status)
		}
		if complete && string(cl.resp.Payload) != string(ex.Sent) {
			t.Errorf("attempt %d: recorded response body differs from what the upstream sent:\n got %q\nwant %q", i, cl.resp.Payload, ex.Sent)
		}
		if !complete && !strings.HasPrefix(string(ex.Sent), string(cl.resp.Payload)) {
			t.Errorf("attempt %d: recorded response %q is not a prefix of what the upstream sent", i, cl.resp.Payload)
		}
		if a := ex.Header.Get("Authorization"); a != "Bearer "+openaiKey && a != "Bearer "+anthropicKey && ex.Header.Get("X-Api-Key") != anthropicKey {
			t.Errorf("the upstream did not receive the provider key")
		}
		for k := range ex.Header {
			if strings.HasPrefix(k, "X-Audit-") {
				t.Errorf("the upstream received our header %s", k)
			}
		}
		if c.front == "proxy" && ex.Header.Get("Accept-Encoding") != "" {
			t.Errorf("the proxy forwarded Accept-Encoding %q", ex.Header.Get("Accept-Encoding"))
		}
		fp := cl.req.str("capture.credential.authorization") + cl.req.str("capture.credential.x-api-key")
		if !strings.HasPrefix(fp, "hmac-sha256:") || len(fp) != len("hmac-sha256:")+32 {
			t.Errorf("credential fingerprint %q", fp)
		}
		for _, ev := range append([]logged{cl.req, cl.resp}, cl.tools...) {
			leaf, _ := json.Marshal(ev.Leaf)
			for _, s := range []string{openaiKey, anthropicKey, "Bearer"} {
				if strings.Contains(string(leaf)+string(ev.Payload), s) {
					t.Errorf("event %d records %q", ev.Index, s)
				}
			}
		}
	}
	return calls
}

// TestSDKs drives the official SDKs through the proxy and the middleware
// against a fake upstream, checks that they see exactly what they see when
// calling the upstream directly, and checks the log.
func TestSDKs(t *testing.T) {
	e := newEnv(t, "fail-closed")
	fronts := []string{"proxy", "middleware"}
	sess := func(name, front string) string {
		return strings.NewReplacer("/", ".", " ", "_").Replace(name) + "." + front
	}

	type tc struct {
		name     string
		view     func(testing.TB, *clients, string, string) string
		model    string
		attempts int
		check    func(t *testing.T, front string, calls []call)
	}
	tests := []tc{{
		name: "openai/chat", view: oaChat, model: "gpt-test", attempts: 1,
		check: func(t *testing.T, front string, calls []call) {
			c := calls[0]
			wantAttrs(t, c.req, map[string]any{
				"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat", "capture.api": "openai.chat.completions",
				"gen_ai.request.model": "gpt-test", "gen_ai.request.max_tokens": 64, "gen_ai.request.stream": nil,
				"capture.mode": "fail-closed", "http.request.header.x-stainless-retry-count": "0",
			})
			if c.req.Leaf.Attributes["gen_ai.request.temperature"] != json.Number("0.5") {
				t.Errorf("temperature %v", c.req.Leaf.Attributes["gen_ai.request.temperature"])
			}
			wantAttrs(t, c.resp, map[string]any{
				"capture.outcome": "complete", "error.type": nil, "http.response.status_code": 200,
				"capture.upstream.request_id": "req_chat_1", "gen_ai.response.id": "chatcmpl-test1",
				"gen_ai.response.model": "gpt-test-2025-01-01", "gen_ai.response.finish_reasons": []string{"stop"},
				"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 5,
				"gen_ai.usage.cache_read.input_tokens": 4, "gen_ai.usage.reasoning.output_tokens": 2,
				"capture.stream": nil, "capture.body.size": nil, "capture.front": nil,
			})
			if !c.resp.has("capture.time_to_first_byte_ms") || !c.resp.has("capture.duration_ms") {
				t.Error("timings missing")
			}
			if c.resp.MediaType != "application/json" {
				t.Errorf("response media type %q", c.resp.MediaType)
			}
		},
	}, {
		name: "openai/chat-stream", view: oaStream, model: "gpt-test", attempts: 1,
		check: func(t *testing.T, front string, calls []call) {
			c := calls[0]
			wantAttrs(t, c.req, map[string]any{"gen_ai.request.stream": true})
			wantAttrs(t, c.resp, map[string]any{
				"capture.outcome": "complete", "capture.stream": true, "capture.stream.terminated": true,
				"capture.stream.events": 6, "gen_ai.response.id": "chatcmpl-s1", "gen_ai.response.finish_reasons": []string{"stop"},
				"gen_ai.usage.input_tokens": 20, "gen_ai.usage.output_tokens": 9,
				"gen_ai.usage.cache_read.input_tokens": 8, "gen_ai.usage.reasoning.output_tokens": 3,
			})
			if c.resp.Leaf.Attributes["gen_ai.response.time_to_first_chunk"] == nil {
				t.Error("time to first chunk missing")
			}
			if c.resp.MediaType != "text/event-stream" {
				t.Errorf("media type %q", c.resp.MediaType)
			}
		},
	}, {
		name: "openai/chat-tools", view: oaChat, model: "gpt-tools", attempts: 1,
		check: func(t *testing.T, front string, calls []call) { checkOATools(t, calls[0]) },
	}, {
		name: "openai/chat-tools-stream", view: oaStream, model: "gpt-tools", attempts: 1,
		check: func(t *testing.T, front string, calls []call) { checkOATools(t, calls[0]) },
	}, {
		name: "openai/retry-500", view: oaChat, model: "gpt-flaky500", attempts: 2,
		check: func(t *testing.T, front string, calls []call) {
			wantAttrs(t, calls[0].resp, map[string]any{"capture.outcome": "upstream_error", "error.type": "server_error", "http.response.status_code": 500})
			wantAttrs(t, calls[0].req, map[string]any{"http.request.header.x-stainless-retry-count": "0"})
			wantAttrs(t, calls[1].req, map[string]any{"http.request.header.x-stainless-retry-count": "1"})
			wantAttrs(t, calls[1].resp, map[string]any{"capture.outcome": "complete", "http.response.status_code": 200})
		},
	}, {
		name: "openai/retry-429-stream", view: oaStream, model: "gpt-flaky429", attempts: 2,
		check: func(t *testing.T, front string, calls []call) {
			wantAttrs(t, calls[0].resp, map[string]any{"capture.outcome": "upstream_error", "error.type": "rate_limit_error", "http.response.status_code": 429})
			wantAttrs(t, calls[1].resp, map[string]any{"capture.outcome": "complete", "capture.stream.terminated": true})
		},
	}, {
		name: "openai/die-mid-stream", view: oaStream, model: "gpt-die", attempts: 1,
		check: func(t *testing.T, front string, calls []call) {
			wantAttrs(t, calls[0].resp, map[string]any{
				"capture.outcome": "upstream_error", "error.type": "stream_interrupted",
				"capture.stream.terminated": false, "capture.stream.events": 2, "gen_ai.response.id": "chatcmpl-s1",
			})
		},
	}, {
		name: "openai/responses", model: "gpt-resp", attempts: 1,
		view: func(t testing.TB, c *clients, model, msg string) string {
			r, err := c.oa.Responses.New(context.Background(), responses.ResponseNewParams{Model: model, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(msg)}})
			if err != nil {
				t.Fatal(err)
			}
			return r.RawJSON() + "|" + r.OutputText() + "|" + r.Output[1].Name
		},
		check: func(t *testing.T, front string, calls []call) { checkResponses(t, calls[0], false) },
	}, {
		name: "openai/responses-stream", model: "gpt-resp", attempts: 1,
		view: func(t testing.TB, c *clients, model, msg string) string {
			s := c.oa.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{Model: model, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(msg)}})
			var raw strings.Builder
			for s.Next() {
				raw.WriteString(s.Current().Type + s.Current().RawJSON())
			}
			return fmt.Sprintf("%s|err=%v", raw.String(), s.Err())
		},
		check: func(t *testing.T, front string, calls []call) { checkResponses(t, calls[0], true) },
	}, {
		name: "openai/embeddings", model: "text-embedding-test", attempts: 1,
		view: func(t testing.TB, c *clients, model, msg string) string {
			r, err := c.oa.Embeddings.New(context.Background(), openai.EmbeddingNewParams{Model: model, Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{msg}}, EncodingFormat: openai.EmbeddingNewParamsEncodingFormatFloat})
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("%s|%v|%d", r.RawJSON(), r.Data[0].Embedding, r.Usage.PromptTokens)
		},
		check: func(t *testing.T, front string, calls []call) {
			wantAttrs(t, calls[0].req, map[string]any{"gen_ai.operation.name": "embeddings", "capture.api": "openai.embeddings", "gen_ai.request.encoding_formats": []string{"float"}})
			wantAttrs(t, calls[0].resp, map[string]any{"capture.outcome": "complete", "gen_ai.response.model": "text-embedding-test-001", "gen_ai.usage.input_tokens": 4, "gen_ai.usage.output_tokens": nil})
		},
	}, {
		name: "anthropic/messages", view: anMessage, model: "claude-test", attempts: 1,
		check: func(t *testing.T, front string, calls []call) {
			wantAttrs(t, calls[0].req, map[string]any{"gen_ai.provider.name": "anthropic", "gen_ai.operation.name": "chat", "capture.api": "anthropic.messages", "gen_ai.request.model": "claude-test", "gen_ai.request.max_tokens": 64})
			// anthropic-sdk-go/v2 sends its API key as Authorization: Bearer.
			if !calls[0].req.has("http.request.header.anthropic-version") || !calls[0].req.has("capture.credential.authorization") {
				t.Error("anthropic-version or the key's fingerprint missing")
			}
			wantAttrs(t, calls[0].resp, map[string]any{
				"capture.outcome": "complete", "capture.upstream.request_id": "req_ant_1", "gen_ai.response.id": "msg_test1",
				"gen_ai.response.model": "claude-test-2025", "gen_ai.response.finish_reasons": []string{"end_turn"},
				// input_tokens includes cache reads and writes: 20 + 7 + 3.
				"gen_ai.usage.input_tokens": 30, "gen_ai.usage.output_tokens": 6,
				"gen_ai.usage.cache_read.input_tokens": 7, "gen_ai.usage.cache_creation.input_tokens": 3,
			})
		},
	}, {
		name: "anthropic/messages-stream", view: anStream, model: "claude-test", attempts: 1,
		check: func(t *testing.T, front string, calls []call) {
			wantAttrs(t, calls[0].resp, map[string]any{
				"capture.outcome": "complete", "capture.stream.terminated": true, "gen_ai.response.id": "msg_s1",
				"gen_ai.response.finish_reasons": []string{"end_turn"},
				// 25 + 10 + 5; output_tokens is the last running total, not 1+7+15.
				"gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 15,
				"gen_ai.usage.cache_read.input_tokens": 10, "gen_ai.usage.cache_creation.input_tokens": 5,
				"gen_ai.usage.reasoning.output_tokens": 4,
			})
		},
	}, {
		name: "anthropic/tools", view: anMessage, model: "claude-tools", attempts: 1,
		check: func(t *testing.T, front string, calls []call) {
			checkTools(t, calls[0], [][3]string{{"toolu_01", "get_weather", `{"city":"Paris"}`}})
			wantAttrs(t, calls[0].resp, map[string]any{"gen_ai.response.finish_reasons": []string{"tool_use"}, "capture.tool_calls": 1})
		},
	}, {
		name: "anthropic/tools-stream", view: anStream, model: "claude-tools", attempts: 1,
		check: func(t *testing.T, front string, calls []call) {
			checkTools(t, calls[0], [][3]string{{"toolu_s1", "get_weather", `{"city": "Paris"}`}})
		},
	}, {
		name: "anthropic/retry-500-stream", view: anStream, model: "claude-flaky500", attempts: 2,
		check: func(t *testing.T, front string, calls []call) {
			wantAttrs(t, calls[0].resp, map[string]any{"capture.outcome": "upstream_error", "error.type": "server_error", "http.response.status_code": 500})
			wantAttrs(t, calls[1].resp, map[string]any{"capture.outcome": "complete"})
		},
	}, {
		name: "anthropic/retry-429", view: anMessage, model: "claude-flaky429", attempts: 2,
		check: func(t *testing.T, front string, calls []call) {
			wantAttrs(t, calls[0].resp, map[string]any{"capture.outcome": "upstream_error", "error.type": "rate_limit_error", "http.response.status_code": 429})
			wantAttrs(t, calls[1].resp, map[string]any{"capture.outcome": "complete"})
		},
	}, {
		name: "anthropic/die-mid-stream", view: anStream, model: "claude-die", attempts: 1,
		check: func(t *testing.T, front string, calls []call) {
			wantAttrs(t, calls[0].resp, map[string]any{
				"capture.outcome": "upstream_error", "error.type": "stream_interrupted", "capture.stream.events": 2,
				"gen_ai.response.id": "msg_s1", "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 1,
			})
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.view(t, e.clients(t, "direct", "unused"), tt.model, tt.name+"/direct")
			if strings.Contains(tt.name, "die") != strings.Contains(want, "err=true") {
				t.Fatalf("direct call: unexpected outcome %s", want)
			}
			for _, front := range fronts {
				t.Run(front, func(t *testing.T) {
					c := e.clients(t, front, sess(tt.name, front))
					got := tt.view(t, c, tt.model, tt.name+"/"+front)
					if got != want {
						t.Fatalf("the SDK saw something else through the %s:\n got %s\nwant %s", front, got, want)
					}
					c.flush(t)
					evs := e.events(c.session, 2*tt.attempts)
					calls := checkCalls(t, e, c, evs, tt.attempts, true)
					tt.check(t, front, calls)
				})
			}
		})
	}

	t.Run("openai-compatible-upstream", func(t *testing.T) {
		c := e.clients(t, "proxy", "compat.proxy")
		want := oaChat(t, e.clients(t, "direct", ""), "gpt-test", "compat/direct")
		r, err := c.local.Chat.Completions.New(context.Background(), chatParams("gpt-test", "compat/proxy"))
		if err != nil || r.RawJSON() != strings.Split(want, "|")[0] {
			t.Fatalf("via /proxy/local: %v", err)
		}
		evs := e.events(c.session, 2)
		calls := checkCalls(t, e, c, evs, 1, true)
		wantAttrs(t, calls[0].req, map[string]any{"gen_ai.provider.name": "local", "capture.upstream": "local", "url.path": "/v1/chat/completions"})
	})

	t.Run("tool-result-via-event-api", func(t *testing.T) {
		// The agent runs the tool and posts its result to the same session.
		session := sess("openai/chat-tools", "proxy")
		calls := splitCalls(t, e.events(session, 4))
		body := `{"session":"` + session + `","kind":"tool.result","actor":{"type":"agent","id":"agent-1"},` +
			`"attributes":{"gen_ai.tool.call.id":"call_abc","gen_ai.tool.name":"get_weather"},"payload":{"temp_c":21}}`
		req, _ := http.NewRequest("POST", e.ts.URL+"/v1/events", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.writeToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /v1/events: %v %v", err, resp.Status)
		}
		resp.Body.Close()
		evs := e.events(session, 5)
		wantKinds(t, evs, "llm.request", "llm.response", "tool.call", "tool.call", "tool.result")
		if evs[4].str("gen_ai.tool.call.id") != calls[0].tools[0].str("gen_ai.tool.call.id") {
			t.Error("the tool result does not name the tool call")
		}
	})

	t.Run("payload-api", func(t *testing.T) {
		evs := e.events(sess("openai/chat", "proxy"), 2)
		for _, ev := range evs {
			if got := e.payloadHTTP(ev); string(got) != string(ev.Payload) {
				t.Errorf("payload of %d through the API differs from the vault's", ev.Index)
			}
		}
	})

	t.Run("same-key-same-fingerprint", func(t *testing.T) {
		a := e.events(sess("openai/chat", "proxy"), 2)[0].str("capture.credential.authorization")
		b := e.events(sess("openai/chat-stream", "proxy"), 2)[0].str("capture.credential.authorization")
		m := e.events(sess("openai/chat", "middleware"), 2)[0].str("capture.credential.authorization")
		if a == "" || a != b {
			t.Errorf("one key, two proxy fingerprints: %q %q", a, b)
		}
		if m == a {
			t.Errorf("the Hook's fingerprint key must be its own (random by default)")
		}
	})

	for _, front := range fronts {
		t.Run("abandoned-stream/openai/"+front, func(t *testing.T) {
			c := e.clients(t, front, "abandon.openai."+front)
			s := c.oa.Chat.Completions.NewStreaming(context.Background(), streamParams("gpt-slow", "abandon/openai/"+front))
			if !s.Next() {
				t.Fatalf("no first chunk: %v", s.Err())
			}
			s.Close()
			select {
			case <-e.up.slowGone:
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream stream was not abandoned")
			}
			c.flush(t)
			calls := checkCalls(t, e, c, e.events(c.session, 2), 1, false)
			wantAttrs(t, calls[0].resp, map[string]any{"capture.outcome": "aborted", "capture.stream.terminated": false, "gen_ai.response.id": "chatcmpl-s1"})
			if et := calls[0].resp.str("error.type"); et != "client_closed" && et != "canceled" {
				t.Errorf("error.type %q", et)
			}
			if len(calls[0].resp.Payload) == 0 {
				t.Error("nothing of the abandoned stream was recorded")
			}
		})
		t.Run("abandoned-stream/anthropic/"+front, func(t *testing.T) {
			c := e.clients(t, front, "abandon.anthropic."+front)
			ctx, cancel := context.WithCancel(context.Background())
			s := c.an.Messages.NewStreaming(ctx, anParams("claude-slow", "abandon/anthropic/"+front))
			if !s.Next() {
				t.Fatalf("no first event: %v", s.Err())
			}
			cancel() // the agent gives up
			for s.Next() {
			}
			s.Close()
			select {
			case <-e.up.slowGone:
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream stream was not abandoned")
			}
			c.flush(t)
			calls := checkCalls(t, e, c, e.events(c.session, 2), 1, false)
			wantAttrs(t, calls[0].resp, map[string]any{"capture.outcome": "aborted", "gen_ai.response.id": "msg_s1"})
		})
	}

	t.Run("no-session-header", func(t *testing.T) {
		// The proxy makes a session, returns it, and keeps a retry in it.
		var hr *http.Response
		c := openai.NewClient(oaoption.WithAPIKey(openaiKey), oaoption.WithBaseURL(e.ts.URL+"/proxy/openai/v1/"),
			oaoption.WithHeader(capture.HeaderToken, e.writeToken), oaoption.WithResponseInto(&hr))
		if _, err := c.Chat.Completions.New(context.Background(), chatParams("gpt-flaky500", "nosession")); err != nil {
			t.Fatal(err)
		}
		session := hr.Header.Get(capture.HeaderSession)
		if !event.ValidID(session) || hr.Header.Get(capture.HeaderCall) == "" || hr.Header.Get(capture.HeaderRequestID) == "" {
			t.Fatalf("response headers %v", hr.Header)
		}
		evs := e.events(session, 4)
		wantKinds(t, evs, "llm.request", "llm.response", "llm.request", "llm.response")
		if evs[0].str("capture.call.id") != evs[2].str("capture.call.id") || evs[2].num("capture.attempt") != 1 {
			t.Error("the retry was not grouped with its call")
		}
	})

	t.Run("auth-errors", func(t *testing.T) {
		for _, tc := range []struct {
			name, token string
			status      int
			code        string
		}{{"missing", "", 401, "missing_audit_token"}, {"unknown", "lat_nope", 401, "invalid_audit_token"}, {"read-only", e.readToken, 403, "insufficient_scope"}} {
			opts := []oaoption.RequestOption{oaoption.WithAPIKey(openaiKey), oaoption.WithBaseURL(e.ts.URL + "/proxy/openai/v1/"), oaoption.WithMaxRetries(0)}
			if tc.token != "" {
				opts = append(opts, oaoption.WithHeader(capture.HeaderToken, tc.token))
			}
			oc := openai.NewClient(opts...)
			_, err := oc.Chat.Completions.New(context.Background(), chatParams("gpt-test", "auth/"+tc.name))
			var oe *openai.Error
			if !errors.As(err, &oe) || oe.StatusCode != tc.status || oe.Code != tc.code || oe.Type != "invalid_request_error" {
				t.Errorf("%s: %v, want an OpenAI %d error with code %s", tc.name, err, tc.status, tc.code)
			}
			ac := anthropic.NewClient(anoption.WithAPIKey(anthropicKey), anoption.WithBaseURL(e.ts.URL+"/proxy/anthropic"), anoption.WithMaxRetries(0), anoption.WithHeader(capture.HeaderToken, tc.token))
			_, err = ac.Messages.New(context.Background(), anParams("claude-test", "auth/"+tc.name))
			var ae *anthropic.Error
			wantType := map[int]string{401: "authentication_error", 403: "permission_error"}[tc.status]
			if !errors.As(err, &ae) || ae.StatusCode != tc.status || !strings.Contains(ae.RawJSON(), `"type":"`+wantType+`"`) {
				t.Errorf("%s: %v, want an Anthropic %d %s", tc.name, err, tc.status, wantType)
			}
			if n := e.up.count("auth/" + tc.name); n != 0 {
				t.Errorf("%s: %d requests reached the upstream", tc.name, n)
			}
		}
	})

	// Last: nothing of the provider keys anywhere in the data directory,
	// with the server running (WAL files present) and after it stopped.
	grepDataDir(t, e.dir, openaiKey, anthropicKey)
	e.close()
	grepDataDir(t, e.dir, openaiKey, anthropicKey)
}

func checkOATools(t *testing.T, c call) {
	checkTools(t, c, [][3]string{{"call_abc", "get_weather", `{"city":"Paris"}`}, {"call_def", "get_time", `{"tz":"CET"}`}})
	wantAttrs(t, c.resp, map[string]any{"gen_ai.response.finish_reasons": []string{"tool_calls"}, "capture.tool_calls": 2})
}

func checkTools(t *testing.T, c call, want [][3]string) {
	t.Helper()
	if len(c.tools) != len(want) {
		t.Fatalf("%d tool.call events, want %d", len(c.tools), len(want))
	}
	for i, w := range want {
		ev := c.tools[i]
		wantAttrs(t, ev, map[string]any{
			"gen_ai.tool.call.id": w[0], "gen_ai.tool.name": w[1], "gen_ai.tool.type": "function",
			"capture.call.id": c.req.str("capture.call.id"), "capture.attempt": 0,
		})
		if string(ev.Payload) != w[2] || ev.MediaType != "application/json" {
			t.Errorf("tool call %d arguments %q (%s), want %q", i, ev.Payload, ev.MediaType, w[2])
		}
	}
}

func checkResponses(t *testing.T, c call, stream bool) {
	t.Helper()
	wantAttrs(t, c.req, map[string]any{"capture.api": "openai.responses", "gen_ai.operation.name": "chat"})
	wantAttrs(t, c.resp, map[string]any{
		"capture.outcome": "complete", "gen_ai.response.id": "resp_1", "gen_ai.response.model": "gpt-test-2025-01-01",
		"gen_ai.response.finish_reasons": []string{"completed"}, "gen_ai.usage.input_tokens": 30, "gen_ai.usage.output_tokens": 11,
		"gen_ai.usage.cache_read.input_tokens": 6, "gen_ai.usage.reasoning.output_tokens": 5,
	})
	if stream {
		wantAttrs(t, c.resp, map[string]any{"capture.stream.terminated": true, "capture.stream.events": 4})
	}
	checkTools(t, c, [][3]string{{"call_r1", "lookup", `{"q":"x"}`}})
}

package capture_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	oaoption "github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/providertest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// The realistic-session fixture: what the capture proxy and middleware
// record when agents built on the official SDKs do ordinary work against
// upstreams that answer like the providers. The monitor's rule pack is
// tested on it (monitor/sessions_test.go). Rebuild it with
// testdata/sessions/rebuild.sh.
const sessionsFixture = "../testdata/sessions/sessions.jsonl"

var updateSessions = flag.Bool("update-sessions", false, "rewrite "+sessionsFixture+" from this recording")

// fixtureEvent is one captured event of the fixture: what the log holds,
// less what the server assigns (index, time, seq, prev, writer, payload
// commitment).
type fixtureEvent struct {
	Session    string         `json:"session"`
	Kind       string         `json:"kind"`
	Actor      event.Actor    `json:"actor"`
	Attributes map[string]any `json:"attributes"`
}

// volatile attributes differ from one recording to the next (timings);
// the comparison with the committed fixture ignores their values.
var volatile = []string{"capture.duration_ms", "capture.time_to_first_byte_ms", "capture.time_to_first_token_ms", "capture.call.id",
	"capture.credential.authorization", "capture.credential.x-api-key", "http.request.header.x-stainless-runtime-version", "gen_ai.response.time_to_first_chunk",
	"capture.upstream"} // the middleware names the upstream by host:port

// agentTools are the tools each scenario's agent offers the model; the
// fake asks for each in turn.
var (
	clinicalTools = []string{"patient.lookup", "drug.interactions", "note.draft"}
	docTools      = []string{"search", "read_file"}
	ledgerTools   = []string{"invoice.get", "journal.post"}
)

type scenario struct {
	session, front string
	run            func(t *testing.T, oa openai.Client, an anthropic.Client)
}

func TestRealisticSessions(t *testing.T) {
	pf := providertest.New(t)
	e := newEnv(t, "fail-closed", func(c *server.Config, _ *httptest.Server) {
		c.Upstreams = map[string]string{"openai": pf.URL, "anthropic": pf.URL}
	})
	scenarios := []scenario{
		{"triage-7f3a", "proxy", func(t *testing.T, oa openai.Client, _ anthropic.Client) {
			oaToolLoop(t, oa, "gpt-4o", "Check the new prescription for patient 4711 against current medication.", clinicalTools, false)
		}},
		{"chat-19c2", "proxy", func(t *testing.T, oa openai.Client, _ anthropic.Client) {
			history := []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are a concise assistant for the support team.")}
			for _, q := range []string{"Summarise ticket 8812.", "What did the customer ask for first?", "Draft a two-line reply."} {
				history = append(history, openai.UserMessage(q))
				msg := oaCall(t, oa, "gpt-4o-mini", history, nil, true)
				history = append(history, msg.ToParam())
			}
		}},
		{"research-a41e", "proxy", func(t *testing.T, _ openai.Client, an anthropic.Client) {
			anToolLoop(t, an, "claude-sonnet-4-5", "Find where the retention policy for lab results is defined.", docTools, true)
		}},
		{"busy-0b7d", "proxy", func(t *testing.T, _ openai.Client, an anthropic.Client) {
			anToolLoop(t, an, "claude-haiku-4-5", "Classify this message as urgent or routine: [busy] chest pain since this morning.", nil, false)
		}},
		{"ledger-5e90", "middleware", func(t *testing.T, oa openai.Client, _ anthropic.Client) {
			oaToolLoop(t, oa, "gpt-4o", "Post invoice INV-2291 to the general ledger.", ledgerTools, true)
		}},
		{"busy-c3d1", "middleware", func(t *testing.T, oa openai.Client, _ anthropic.Client) {
			oaToolLoop(t, oa, "gpt-4o", "[busy] Translate 'the results are normal' into German.", nil, false)
		}},
		{"calc-6d2f", "middleware", func(t *testing.T, _ openai.Client, an anthropic.Client) {
			anToolLoop(t, an, "claude-sonnet-4-5", "What is 17.5% of 2,340 EUR, rounded to cents?", []string{"calculator"}, false)
		}},
		{"brief-8a60", "middleware", func(t *testing.T, oa openai.Client, _ anthropic.Client) {
			r, err := oa.Responses.New(context.Background(), responses.ResponseNewParams{Model: "gpt-4o-mini",
				Instructions: openai.String("Answer in one sentence."),
				Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("What is a tiled transparency log?")}})
			if err != nil {
				t.Fatal(err)
			}
			if r.OutputText() == "" {
				t.Fatal("no output text")
			}
		}},
	}
	var got []fixtureEvent
	for _, sc := range scenarios {
		t.Run(sc.session, func(t *testing.T) {
			oa, an, flush := sdkClients(t, e, pf, sc.front, sc.session)
			sc.run(t, oa, an)
			flush()
		})
		for _, ev := range settled(t, e, sc.session) {
			got = append(got, fixtureEvent{Session: ev.Leaf.Session, Kind: ev.Leaf.Kind, Actor: ev.Leaf.Actor, Attributes: ev.Leaf.Attributes})
		}
	}
	checkRecording(t, got)
	bytesPerCall(t, e, got)

	var buf bytes.Buffer
	for _, ev := range got {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(append(b, '\n'))
	}
	if *updateSessions {
		if err := os.WriteFile(sessionsFixture, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d events to %s", len(got), sessionsFixture)
		return
	}
	want, err := os.ReadFile(sessionsFixture)
	if err != nil {
		t.Fatalf("%v (rebuild it with testdata/sessions/rebuild.sh)", err)
	}
	if a, b := normalize(t, buf.Bytes()), normalize(t, want); a != b {
		t.Fatalf("the recording differs from %s: capture records something else now; rebuild it with testdata/sessions/rebuild.sh and review the diff\n%s",
			sessionsFixture, firstDiff(a, b))
	}
}

// settled reads a session once every request it holds has its response
// (the proxy records a response after the client has it).
func settled(t *testing.T, e *env, session string) []logged {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := e.events(session, 1)
		n := 0
		for _, ev := range evs {
			switch ev.Leaf.Kind {
			case "llm.request":
				n++
			case "llm.response":
				n--
			}
		}
		if n == 0 || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkRecording checks that the recording is what the fixture claims to
// be: dated snapshots in responses, usage, tool calls, streams, a 429
// followed by a success in each busy session.
func checkRecording(t *testing.T, evs []fixtureEvent) {
	t.Helper()
	kinds := map[string]int{}
	var snapshotSeen, streamed, rateLimited bool
	for _, ev := range evs {
		kinds[ev.Kind]++
		a := ev.Attributes
		if ev.Kind == "llm.response" {
			if m, _ := a["gen_ai.response.model"].(string); m != "" && m != a["gen_ai.request.model"] && strings.HasPrefix(m, fmt.Sprint(a["gen_ai.request.model"])+"-") {
				snapshotSeen = true
			}
			if a["http.response.status_code"] == json.Number("429") {
				rateLimited = true
			}
		}
		if a["gen_ai.request.stream"] == true {
			streamed = true
		}
	}
	if kinds["llm.request"] < 15 || kinds["llm.response"] != kinds["llm.request"] || kinds["tool.call"] < 8 || !snapshotSeen || !streamed || !rateLimited {
		t.Fatalf("the recording is not the realistic mix it should be: kinds %v, snapshot %v, streamed %v, rate limited %v", kinds, snapshotSeen, streamed, rateLimited)
	}
}

// normalize renders events without the values of volatile attributes.
func normalize(t *testing.T, data []byte) string {
	t.Helper()
	var lines []string
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var ev fixtureEvent
		d := json.NewDecoder(bytes.NewReader(line))
		d.UseNumber()
		if err := d.Decode(&ev); err != nil {
			t.Fatalf("fixture line %q: %v", line, err)
		}
		for _, k := range volatile {
			if _, ok := ev.Attributes[k]; ok {
				ev.Attributes[k] = "*"
			}
		}
		b, _ := json.Marshal(ev)
		lines = append(lines, string(b))
	}
	return strings.Join(lines, "\n")
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("event %d:\n recorded %s\n fixture  %s", i, x, y)
		}
	}
	return ""
}

// sdkClients are the official SDKs' clients for one front door: the
// capture proxy (with the session header) or the Go middleware (straight
// to the provider).
func sdkClients(t *testing.T, e *env, pf *providertest.Fake, front, session string) (openai.Client, anthropic.Client, func()) {
	oaOpts := []oaoption.RequestOption{oaoption.WithAPIKey(openaiKey), oaoption.WithMaxRetries(2)}
	anOpts := []anoption.RequestOption{anoption.WithAPIKey(anthropicKey), anoption.WithMaxRetries(2)}
	if front == "proxy" {
		oa := openai.NewClient(append(oaOpts, oaoption.WithBaseURL(e.ts.URL+"/proxy/openai/v1/"),
			oaoption.WithHeader(capture.HeaderToken, e.writeToken), oaoption.WithHeader(capture.HeaderSession, session),
			oaoption.WithHeader(capture.HeaderAgent, strings.SplitN(session, "-", 2)[0]+"-bot"))...)
		an := anthropic.NewClient(append(anOpts, anoption.WithBaseURL(e.ts.URL+"/proxy/anthropic"),
			anoption.WithHeader(capture.HeaderToken, e.writeToken), anoption.WithHeader(capture.HeaderSession, session),
			anoption.WithHeader(capture.HeaderAgent, strings.SplitN(session, "-", 2)[0]+"-bot"))...)
		return oa, an, func() {}
	}
	hook, err := capture.NewHook(capture.NewHTTPRecorder(mustClient(e.ts.URL, e.writeToken)), capture.WithSession(session),
		capture.WithLogger(quiet), capture.WithActor(event.Actor{Type: "agent", ID: strings.SplitN(session, "-", 2)[0] + "-bot"}))
	if err != nil {
		t.Fatal(err)
	}
	oa := openai.NewClient(append(oaOpts, oaoption.WithBaseURL(pf.URL+"/v1/"), oaoption.WithMiddleware(hook.Middleware))...)
	an := anthropic.NewClient(append(anOpts, anoption.WithBaseURL(pf.URL), anoption.WithMiddleware(hook.Middleware))...)
	return oa, an, func() {
		if err := hook.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// oaCall makes one Chat Completions call, streamed or not, and returns the
// assistant's message.
func oaCall(t *testing.T, oa openai.Client, model string, msgs []openai.ChatCompletionMessageParamUnion, tools []string, stream bool) openai.ChatCompletionMessage {
	t.Helper()
	p := openai.ChatCompletionNewParams{Model: model, Messages: msgs, MaxCompletionTokens: openai.Int(512)}
	for _, name := range tools {
		p.Tools = append(p.Tools, openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: toolFunction(name),
			Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"query": map[string]any{"type": "string"}}}}))
	}
	if !stream {
		r, err := oa.Chat.Completions.New(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		return r.Choices[0].Message
	}
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	s := oa.Chat.Completions.NewStreaming(context.Background(), p)
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return acc.Choices[0].Message
}

// toolFunction is a tool's name as a function name (the APIs allow no
// dots).
func toolFunction(name string) string { return strings.ReplaceAll(name, ".", "_") }

// toolResult is what the agent's tool returns: a short record, or for
// read_file a document of some 3,500 tokens, so that the conversation's
// input grows by that much in one step, as agents' do.
func toolResult(name string) string {
	if name == "read_file" {
		para := "Section 4.2 Retention of laboratory results. Results are kept for the period the applicable regulation requires, " +
			"counted from the date of the report; corrections are new records that point to the record they correct. "
		b, _ := json.Marshal(map[string]string{"path": "policies/retention.md", "content": strings.Repeat(para, 64)})
		return string(b)
	}
	return `{"result":"` + name + ` returned 3 matching records"}`
}

// oaToolLoop runs an agent's loop: call, run the tools the model asks for,
// call again, until it answers.
func oaToolLoop(t *testing.T, oa openai.Client, model, question string, tools []string, stream bool) {
	t.Helper()
	msgs := []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are a careful agent. Use the tools to check facts."), openai.UserMessage(question)}
	for step := 0; ; step++ {
		if step > len(tools) {
			t.Fatalf("the model kept asking for tools after %d steps", step)
		}
		msg := oaCall(t, oa, model, msgs, tools, stream)
		if len(msg.ToolCalls) == 0 {
			if msg.Content == "" {
				t.Fatal("no answer")
			}
			return
		}
		msgs = append(msgs, msg.ToParam())
		for _, tc := range msg.ToolCalls {
			msgs = append(msgs, openai.ToolMessage(toolResult(tc.Function.Name), tc.ID))
		}
	}
}

func anToolLoop(t *testing.T, an anthropic.Client, model, question string, tools []string, stream bool) {
	t.Helper()
	msgs := []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(question))}
	var tps []anthropic.ToolUnionParam
	for _, name := range tools {
		tps = append(tps, anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{Name: toolFunction(name),
			InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"query": map[string]any{"type": "string"}}}}})
	}
	for step := 0; ; step++ {
		if step > len(tools) {
			t.Fatalf("the model kept asking for tools after %d steps", step)
		}
		p := anthropic.MessageNewParams{Model: anthropic.Model(model), MaxTokens: 1024, Messages: msgs, Tools: tps,
			System: []anthropic.TextBlockParam{{Text: "You are a careful agent. Use the tools to check facts."}}}
		var msg anthropic.Message
		if stream {
			s := an.Messages.NewStreaming(context.Background(), p)
			for s.Next() {
				if err := msg.Accumulate(s.Current()); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
		} else {
			r, err := an.Messages.New(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			msg = *r
		}
		var results []anthropic.ContentBlockParamUnion
		for _, b := range msg.Content {
			if b.Type == "tool_use" {
				results = append(results, anthropic.NewToolResultBlock(b.ID, toolResult(b.Name), false))
			}
		}
		if len(results) == 0 {
			if !slices.ContainsFunc(msg.Content, func(b anthropic.ContentBlockUnion) bool { return b.Type == "text" && b.Text != "" }) {
				t.Fatal("no answer")
			}
			return
		}
		msgs = append(msgs, msg.ToParam(), anthropic.NewUserMessage(results...))
	}
}

// bytesPerCall reports what the recording takes on disk per LLM call
// (request and response events with their payloads): the log's tiles and
// bundles, the vault and the session index, and checks that the vault keeps
// the payloads compressed (they are realistic JSON).
func bytesPerCall(t *testing.T, e *env, got []fixtureEvent) {
	t.Helper()
	calls := 0
	for _, ev := range got {
		if ev.Kind == "llm.request" {
			calls++
		}
	}
	n, size, stored, err := e.srv.Vault().Stats(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stored >= size {
		t.Errorf("the vault stores %d payloads in %d bytes; as given they are %d bytes: not compressed", n, stored, size)
	}
	du := func(paths ...string) int64 {
		var total int64
		for _, p := range paths {
			filepath.Walk(filepath.Join(e.dir, p), func(_ string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					total += fi.Size()
				}
				return nil
			})
		}
		return total
	}
	// The leaves as the log holds them: each in its entry bundle with a
	// 2-byte length, and its hash in a level-0 tile.
	l := e.srv.Log()
	logSize, err := l.Reader().IntegratedSize(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var leafBytes int64
	for i := range logSize {
		b, err := l.ReadLeaf(e.ctx, i, logSize)
		if err != nil {
			t.Fatal(err)
		}
		leafBytes += int64(len(b)) + 2 + 32
	}
	t.Logf("per LLM call (%d calls, %d entries): payloads %d B as given, %d B compressed and sealed in the vault (+12 B nonce); "+
		"leaves %d B in the log; files of this small log: log %d B, vault %d B, index %d B",
		calls, logSize, size/int64(calls), stored/int64(calls), leafBytes/int64(calls),
		du("log")/int64(calls), du("vault.db", "vault.db-wal")/int64(calls), du("index.db", "index.db-wal")/int64(calls))
}

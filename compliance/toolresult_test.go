package compliance

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/providertest"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// proxyAgent is an agent that talks to a fake provider through the log
// server's capture proxy: the proxy records the calls, the tool calls the
// model asks for and the tool results the agent sends back (tool.result,
// writer.via proxy), as it does for any agent.
type proxyAgent struct {
	t     *testing.T
	fx    *servertest.Server
	token string
}

const geminiTestKey = "AIzaSyTEST-gemini-key-0123456789abcdefXYZ"

// post sends one request through the proxy and returns the answer.
func (a *proxyAgent) post(session, path string, body any) map[string]any {
	a.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", a.fx.URL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(capture.HeaderToken, a.token)
	req.Header.Set(capture.HeaderSession, session)
	if strings.HasPrefix(path, "/proxy/gemini/") {
		req.Header.Set("x-goog-api-key", geminiTestKey)
	} else {
		req.Header.Set("Authorization", "Bearer "+providertest.OpenAIKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(out, &m) != nil {
		a.t.Fatalf("%s: %d %s", path, resp.StatusCode, out)
	}
	return m
}

// logged is a session's leaves, and their indices, once the log holds
// want of them.
func (a *proxyAgent) logged(session string, want int) ([]*event.Leaf, []uint64) {
	a.t.Helper()
	ctx := context.Background()
	l := a.fx.Srv.Log()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := l.WaitIndexed(ctx); err != nil {
			a.t.Fatal(err)
		}
		entries, err := l.Index().Session(ctx, server.DefaultTenant, session, 0, 100)
		if err != nil {
			a.t.Fatal(err)
		}
		if len(entries) < want && time.Now().Before(deadline) {
			continue
		}
		size, _ := l.Reader().IntegratedSize(ctx)
		var out []*event.Leaf
		var at []uint64
		for _, en := range entries {
			data, err := l.ReadLeaf(ctx, en.Index, size)
			if err != nil {
				a.t.Fatal(err)
			}
			leaf, err := event.ParseLeaf(data)
			if err != nil {
				a.t.Fatal(err)
			}
			out, at = append(out, leaf), append(at, en.Index)
		}
		return out, at
	}
}

// signLast has dr-ada sign the session's latest llm.response as approved:
// the signature 11.10(f)'s gate wants before the tool is called.
func (a *proxyAgent) signLast(ada string, session string) {
	a.t.Helper()
	ctx := context.Background()
	var last *api.SessionEntry
	for deadline := time.Now().Add(10 * time.Second); last == nil; time.Sleep(20 * time.Millisecond) {
		a.fx.Srv.Log().WaitIndexed(ctx)
		entries, _ := a.fx.Srv.Log().Index().Session(ctx, server.DefaultTenant, session, 0, 100)
		for i := range entries {
			if entries[i].Kind == event.KindLLMResponse {
				last = &entries[i]
			}
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("no llm.response in session %s", session)
		}
	}
	if _, err := a.fx.Client(ada).Sign(ctx, api.SignRequest{Signer: "dr-ada", Secret: "correct horse battery", Index: last.Index, LeafHash: last.LeafHash, Meaning: "approved"}); err != nil {
		a.t.Fatal(err)
	}
}

// kinds are the kinds of leaves, in order.
func kinds(ls []*event.Leaf) string {
	var k []string
	for _, l := range ls {
		k = append(k, l.Kind)
	}
	return strings.Join(k, " ")
}

// TestPart11SequencingUsesDerivedToolResults: 11.10(f) over a log the
// capture proxy wrote. A gated tool (patient_lookup, gated on an approved
// signature by the log's compliance configuration) is called after the
// signature, through the proxy, on OpenAI (bound by call id), Gemini with
// functionCall ids (newer API versions) and Gemini without (bound by name
// and order); the agent sends each result back in its next request, from
// which the proxy derives the tool.result (writer.via proxy), and the
// report over that period is satisfied with every gated call answered. In
// a later session the agent goes back to the model without the result:
// the report over the whole log is not satisfied, and its finding names
// that call.
func TestPart11SequencingUsesDerivedToolResults(t *testing.T) {
	pf := providertest.New(t)
	pf.SetGeminiCallIDs(true)
	rep, err := NewReporter([]byte("controls:\n  gates:\n    - {tools: [patient_lookup], meaning: approved}\n"), "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fx := servertest.Start(t, func(cfg *server.Config) {
		cfg.Compliance, cfg.Reporter = []string{"part11"}, rep
		cfg.Upstreams = map[string]string{"openai": pf.URL, "gemini": pf.URL}
		cfg.CaptureMode = "fail-closed"
	})
	ctx := context.Background()
	admin := fx.Client(fx.Admin)
	if _, err := admin.Enroll(ctx, api.Enrollment{ID: "dr-ada", PrintedName: "Dr. Ada Lovelace", Secret: "correct horse battery", IdentityVerifiedBy: "hr.jones"}); err != nil {
		t.Fatal(err)
	}
	ada := fx.Token(auth.Spec{Name: "ada", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeSign}, Actors: []string{"dr-ada"}})
	a := &proxyAgent{t: t, fx: fx, token: fx.Token(auth.Spec{Name: "agent-1", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeWrite}})}
	from := time.Now().UTC().Add(-time.Minute)

	const chat = "/proxy/openai/v1/chat/completions"
	oaTools := []any{map[string]any{"type": "function", "function": map[string]any{"name": "patient_lookup", "parameters": map[string]any{"type": "object"}}}}
	user := func(text string) map[string]any { return map[string]any{"role": "user", "content": text} }
	// openai runs the loop on Chat Completions; dropResult goes back to
	// the model without the tool's result. It returns the tool call's id.
	openaiLoop := func(session string, dropResult bool) string {
		msgs := []any{user("Summarise the case of patient 4711.")}
		first := a.post(session, chat, map[string]any{"model": "gpt-4o", "messages": msgs})
		msgs = append(msgs, first["choices"].([]any)[0].(map[string]any)["message"], user("Look up the labs."))
		a.signLast(ada, session)
		m := a.post(session, chat, map[string]any{"model": "gpt-4o", "messages": msgs, "tools": oaTools})["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)
		call := m["tool_calls"].([]any)[0].(map[string]any)
		id := call["id"].(string)
		if dropResult {
			msgs = append(msgs, user("Never mind the labs; what is the summary?"))
			a.post(session, chat, map[string]any{"model": "gpt-4o", "messages": msgs})
			return id
		}
		msgs = append(msgs, m, map[string]any{"role": "tool", "tool_call_id": id, "content": `{"labs":"potassium 4.1"}`})
		a.post(session, chat, map[string]any{"model": "gpt-4o", "messages": msgs, "tools": oaTools})
		return id
	}
	gemini := "/proxy/gemini/v1beta/models/gemini-2.5-flash:generateContent"
	gmTools := []any{map[string]any{"functionDeclarations": []any{map[string]any{"name": "patient_lookup", "description": "Looks a patient up."}}}}
	text := func(role, s string) map[string]any {
		return map[string]any{"role": role, "parts": []any{map[string]any{"text": s}}}
	}
	geminiLoop := func(session string) {
		contents := []any{text("user", "Summarise the case of patient 4711.")}
		first := a.post(session, gemini, map[string]any{"contents": contents})
		contents = append(contents, first["candidates"].([]any)[0].(map[string]any)["content"], text("user", "Look up the labs."))
		a.signLast(ada, session)
		r := a.post(session, gemini, map[string]any{"contents": contents, "tools": gmTools})
		content := r["candidates"].([]any)[0].(map[string]any)["content"].(map[string]any)
		fc := content["parts"].([]any)[0].(map[string]any)["functionCall"].(map[string]any)
		fr := map[string]any{"name": fc["name"], "response": map[string]any{"labs": "potassium 4.1"}}
		if id, ok := fc["id"]; ok {
			fr["id"] = id
		}
		contents = append(contents, content, map[string]any{"role": "user", "parts": []any{map[string]any{"functionResponse": fr}}})
		a.post(session, gemini, map[string]any{"contents": contents, "tools": gmTools})
	}

	openaiLoop("rx-openai", false)
	geminiLoop("rx-gemini-id")
	pf.SetGeminiCallIDs(false)
	geminiLoop("rx-gemini")
	// Each session: the plain call, the signature, the call that asks for
	// the tool, the tool.result the proxy derived from the next request,
	// just before it.
	want := "llm.request llm.response human.signature llm.request llm.response tool.call tool.result llm.request llm.response"
	for _, s := range []string{"rx-openai", "rx-gemini-id", "rx-gemini"} {
		ls, _ := a.logged(s, 9)
		if kinds(ls) != want {
			t.Fatalf("%s: %s, want %s", s, kinds(ls), want)
		}
		call, result := ls[5], ls[6]
		if result.Writer == nil || result.Writer.Via != event.ViaProxy || result.Attributes.String(event.AttrCaptureToolResultSource) != event.KindLLMRequest ||
			result.Attributes.String(event.AttrGenAIToolName) != "patient_lookup" {
			t.Errorf("%s: the tool.result is not the proxy's: writer %+v, attributes %s", s, result.Writer, result.Attributes)
		}
		id := call.Attributes.String(event.AttrGenAIToolCallID)
		if got := result.Attributes.String(event.AttrGenAIToolCallID); got != id || (id == "") != (s == "rx-gemini") {
			t.Errorf("%s: tool.result call id %q, its tool.call's %q", s, got, id)
		}
	}
	mid := time.Now().UTC()
	time.Sleep(10 * time.Millisecond)
	dropped := openaiLoop("rx-dropped", true)
	a.logged("rx-dropped", 8)

	src := func() Source {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			cp, _, err := fx.Srv.Log().Checkpoint(ctx)
			size, _ := fx.Srv.Log().Reader().IntegratedSize(ctx)
			if err == nil && cp.Size >= size {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no checkpoint covers the log")
			}
		}
		key, _ := checkpoint.NewVerifier(fx.Srv.VerifierKey())
		return Source{Log: admin, Key: key, Logger: slog.New(slog.DiscardHandler)}
	}()
	report := func(to time.Time) ControlResult {
		t.Helper()
		r, err := ComputeAsConfigured(ctx, src, Query{Profile: "part11", Tenant: server.DefaultTenant, From: from, To: to})
		if err != nil {
			t.Fatal(err)
		}
		return control(r, "part11-11.10f")
	}
	c := report(mid)
	if c.Status != Satisfied || c.Evidence.Counts["gated_calls"] != 3 || c.Evidence.Counts["gated_results"] != 3 || c.Evidence.Counts["gated_calls_open"] != 0 {
		t.Errorf("11.10(f) over the answered calls: %s (%s) %v %+v", c.Status, c.Evidence.Summary, c.Evidence.Counts, c.Evidence.Offending)
	}
	c = report(time.Now().UTC().Add(time.Minute))
	ls, at := a.logged("rx-dropped", 8)
	if kinds(ls) != "llm.request llm.response human.signature llm.request llm.response tool.call llm.request llm.response" {
		t.Fatalf("rx-dropped: %s", kinds(ls))
	}
	if c.Status != NotSatisfied || c.Evidence.OffendingTotal != 1 || c.Evidence.Counts["gated_calls"] != 4 || c.Evidence.Counts["gated_results"] != 3 ||
		c.Evidence.Offending[0].Index != at[5] || !strings.Contains(c.Evidence.Offending[0].Reason, "tool patient_lookup called (call id "+dropped+") and session rx-dropped went back to the model") {
		t.Errorf("11.10(f) with a result missing: %s (%s) %v %+v", c.Status, c.Evidence.Summary, c.Evidence.Counts, c.Evidence.Offending)
	}
}

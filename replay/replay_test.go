package replay_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	oaoption "github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	_ "modernc.org/sqlite"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/internal/providertest"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/replay"
	"github.com/llmaudittrail/llmaudittrail/server"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// world is a log server with the capture proxy in front of a fake
// provider, a write token for the agent and a global read+audit token for
// the auditor.
type world struct {
	t       testing.TB
	srv     *server.Server
	st      *servertest.Server
	ts      *httptest.Server
	up      *providertest.Fake
	dir     string
	write   string
	auditor string
}

func newWorld(t testing.TB, mods ...func(*server.Config)) *world {
	t.Helper()
	up := providertest.New(t)
	st := servertest.Start(t, func(c *server.Config) {
		c.Upstreams = map[string]string{"openai": up.URL, "anthropic": up.URL}
		c.CaptureMode = "fail-closed"
		for _, m := range mods {
			m(c)
		}
	})
	w := &world{t: t, st: st, srv: st.Srv, ts: st.HS, up: up, dir: st.Dir}
	w.write = w.token(auth.Spec{Name: "triage-bot", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeWrite}})
	w.auditor = w.token(auth.Spec{Name: "auditor", Tenant: server.DefaultTenant, Global: true, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	return w
}

func (w *world) token(spec auth.Spec) string { return w.st.Token(spec) }

func (w *world) source(url string) replay.Source {
	c, err := client.New(url, client.WithToken(w.auditor))
	if err != nil {
		w.t.Fatal(err)
	}
	key, err := checkpoint.NewVerifier(w.srv.VerifierKey())
	if err != nil {
		w.t.Fatal(err)
	}
	return replay.Source{Log: c, Key: key}
}

func (w *world) rebuild(session string) *replay.Session {
	w.t.Helper()
	w.settle(session)
	s, err := replay.Rebuild(context.Background(), w.source(w.ts.URL), replay.Query{Session: session, Payloads: true})
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// settle waits until every request of the session has its response (the
// proxy records a response once the agent has it).
func (w *world) settle(session string) {
	w.t.Helper()
	c, _ := client.New(w.ts.URL, client.WithToken(w.auditor))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p, err := c.Session(context.Background(), session, client.SessionQuery{})
		if err == nil {
			n := 0
			for _, e := range p.Events {
				switch e.Kind {
				case "llm.request":
					n++
				case "llm.response":
					n--
				}
			}
			if n == 0 && len(p.Events) > 0 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.t.Fatalf("session %s did not settle", session)
}

// agent is a Go agent on the official openai-go client: it asks the model,
// runs the tools it asks for, sends the results, until the model answers.
type agent struct {
	prompt     string
	toolOutput func(name string) string
	steps      int // calls at most (default 5)
}

func (a agent) run(base string, opts ...oaoption.RequestOption) (string, error) {
	c := openai.NewClient(append([]oaoption.RequestOption{oaoption.WithBaseURL(base), oaoption.WithAPIKey(providertest.OpenAIKey), oaoption.WithMaxRetries(2)}, opts...)...)
	msgs := []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are a pharmacist's assistant."), openai.UserMessage(a.prompt)}
	var tools []openai.ChatCompletionToolUnionParam
	for _, n := range []string{"patient_lookup", "drug_interactions"} {
		tools = append(tools, openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: n,
			Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"query": map[string]any{"type": "string"}}}}))
	}
	steps := a.steps
	if steps == 0 {
		steps = 5
	}
	for step := 0; step < steps; step++ {
		r, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: msgs, Tools: tools})
		if err != nil {
			return "", err
		}
		m := r.Choices[0].Message
		if len(m.ToolCalls) == 0 {
			return m.Content, nil
		}
		msgs = append(msgs, m.ToParam())
		for _, tc := range m.ToolCalls {
			out := `{"records":3}`
			if a.toolOutput != nil {
				out = a.toolOutput(tc.Function.Name)
			}
			msgs = append(msgs, openai.ToolMessage(out, tc.ID))
		}
	}
	return "", errNoAnswer
}

var errNoAnswer = errors.New("no answer")

func (w *world) viaProxy(session string) []oaoption.RequestOption {
	return []oaoption.RequestOption{oaoption.WithHeader(capture.HeaderToken, w.write), oaoption.WithHeader(capture.HeaderSession, session)}
}

func startReplay(t *testing.T, s *replay.Session, opts replay.Options) (*replay.Replayer, *httptest.Server) {
	t.Helper()
	r, err := replay.NewReplayer(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	return r, ts
}

// TestReplayReproducesToolLoop: an openai-go agent's tool loop recorded
// through the capture proxy replays with no upstream call and the same
// answer; changed in one prompt or one tool result it diverges at that
// step, at that field.
func TestReplayReproducesToolLoop(t *testing.T) {
	w := newWorld(t)
	a := agent{prompt: "Check the new prescription for patient 4711."}
	want, err := a.run(w.ts.URL+"/proxy/openai/v1/", w.viaProxy("rx-1")...)
	if err != nil {
		t.Fatal(err)
	}
	s := w.rebuild("rx-1")
	if !s.Verified() || len(s.Events) != 10 { // 3 calls (request, response), 2 tool calls, their 2 results
		t.Fatalf("rebuilt %d events, problems %v", len(s.Events), s.Problems)
	}
	if len(s.Access) != 1 {
		t.Fatalf("payload disclosure recorded by %d access.read events, want 1", len(s.Access))
	}
	calls := w.up.Requests()

	r, ts := startReplay(t, s, replay.Options{})
	got, err := a.run(ts.URL + "/proxy/openai/v1/")
	if err != nil {
		t.Fatal(err)
	}
	<-r.Done()
	v := r.Verdict()
	if got != want || v.Verdict != replay.Reproduced || v.Served != 3 || len(v.Differences) != 0 || w.up.Requests() != calls {
		t.Fatalf("answer %q (recorded %q), verdict %+v, %d upstream calls during the replay", got, want, v, w.up.Requests()-calls)
	}

	// One prompt changed: the first call diverges at the user message.
	r, ts = startReplay(t, s, replay.Options{})
	_, err = agent{prompt: "Check the new prescription for patient 4712."}.run(ts.URL + "/proxy/openai/v1/")
	v = r.Verdict()
	if err == nil || len(v.Differences) != 1 {
		t.Fatalf("err %v, verdict %+v", err, v)
	}
	d := v.Differences[0]
	if v.Verdict != replay.Diverged || d.Step != 1 || d.Index != s.Events[0].Index || d.Path != "messages[1].content" ||
		d.Code != replay.CodeRequestDiffers || d.Relevance != replay.Decision || d.New != "Check the new prescription for patient 4712." {
		t.Fatalf("divergence %+v", d)
	}
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 422 || !strings.Contains(apiErr.Message, "RPL1001 at step 1") || v.Requests != 1 {
		t.Errorf("the agent's SDK error does not say the divergence (%d requests): %v", v.Requests, err)
	}

	// The second tool answers differently: the third call diverges there.
	r, ts = startReplay(t, s, replay.Options{})
	_, err = agent{prompt: a.prompt, toolOutput: func(n string) string {
		if n == "drug_interactions" {
			return `{"records":4}`
		}
		return `{"records":3}`
	}}.run(ts.URL + "/proxy/openai/v1/")
	v = r.Verdict()
	if err == nil || v.Verdict != replay.Diverged || len(v.Differences) != 1 {
		t.Fatalf("err %v, verdict %+v", err, v)
	}
	tl := replay.NewTimeline(s)
	d = v.Differences[0]
	if d.Path != "messages[5].content" || d.Recorded != `{"records":3}` || tl.Steps[d.Step-1].Kind != replay.StepCall || d.Index != tl.Steps[d.Step-1].Index || d.Step == 1 {
		t.Fatalf("divergence %+v; steps %+v", d, tl.Steps)
	}

	// The agent stops early: incomplete. With --all-differences the run
	// goes on past a difference and lists each.
	r, ts = startReplay(t, s, replay.Options{})
	if _, err := (agent{prompt: a.prompt, steps: 1}).run(ts.URL + "/proxy/openai/v1/"); !errors.Is(err, errNoAnswer) {
		t.Fatal(err)
	}
	if v := r.Verdict(); v.Verdict != replay.Incomplete || v.Served != 1 || !strings.Contains(v.Reason, replay.CodeNotRequested) {
		t.Fatalf("verdict %+v", v)
	}
	r, ts = startReplay(t, s, replay.Options{AllDifferences: true, Volatile: []string{"messages[0].content"}})
	if _, err := (agent{prompt: "Check the new prescription for patient 4712."}).run(ts.URL + "/proxy/openai/v1/"); err != nil {
		t.Fatal(err)
	}
	if v := r.Verdict(); v.Verdict != replay.Diverged || len(v.Differences) != 3 || v.Served != 3 {
		t.Fatalf("all differences: %+v", v)
	}

	// The verdict is appended to the log with a token of write and audit
	// scope; a write-only token may not append a replay.verdict.
	vc, _ := client.New(w.ts.URL, client.WithToken(w.token(auth.Spec{Name: "replayer", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeWrite, auth.ScopeAudit}})))
	ev, err := replay.AppendVerdict(context.Background(), vc, r.Verdict())
	if err != nil {
		t.Fatal(err)
	}
	if ev.Index == 0 {
		t.Fatal("no verdict event")
	}
	wc, _ := client.New(w.ts.URL, client.WithToken(w.write))
	if _, err := replay.AppendVerdict(context.Background(), wc, r.Verdict()); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("a write token appended a verdict: %v", err)
	}
}

// TestReplayAnthropicStreamByteForByte: a streamed Anthropic response is
// served again byte for byte, and the SDK assembles the same message.
func TestReplayAnthropicStreamByteForByte(t *testing.T) {
	w := newWorld(t)
	run := func(base string, opts ...anoption.RequestOption) (anthropic.Message, error) {
		c := anthropic.NewClient(append([]anoption.RequestOption{anoption.WithBaseURL(base), anoption.WithAPIKey(providertest.AnthropicKey)}, opts...)...)
		s := c.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{Model: "claude-sonnet-4-5", MaxTokens: 512,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Summarise the retention policy."))}})
		var m anthropic.Message
		for s.Next() {
			if err := m.Accumulate(s.Current()); err != nil {
				return m, err
			}
		}
		return m, s.Err()
	}
	want, err := run(w.ts.URL+"/proxy/anthropic", anoption.WithHeader(capture.HeaderToken, w.write), anoption.WithHeader(capture.HeaderSession, "an-1"))
	if err != nil {
		t.Fatal(err)
	}
	s := w.rebuild("an-1")
	if !s.Verified() {
		t.Fatal(s.Problems)
	}
	var reqBody, recorded []byte
	for _, e := range s.Events {
		switch e.Leaf.Kind {
		case "llm.request":
			reqBody = e.Payload
		case "llm.response":
			recorded = e.Payload
		}
	}
	r, ts := startReplay(t, s, replay.Options{Timing: replay.Timing{Scale: 1}})
	resp, err := http.Post(ts.URL+"/proxy/anthropic/v1/messages", "application/json", bytes.NewReader(reqBody))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, recorded) || resp.Header.Get("Content-Type") != "text/event-stream" || !bytes.Contains(got, []byte("event: message_stop")) {
		t.Fatalf("replayed stream differs:\n got %q\nwant %q", got, recorded)
	}
	if v := r.Verdict(); v.Verdict != replay.Reproduced {
		t.Fatalf("verdict %+v", v)
	}
	_, ts = startReplay(t, s, replay.Options{})
	m, err := run(ts.URL + "/proxy/anthropic")
	if err != nil {
		t.Fatal(err)
	}
	if text, _ := json.Marshal(m.Content); string(text) != mustJSON(want.Content) {
		t.Fatalf("assembled %s, recorded %s", text, mustJSON(want.Content))
	}
	if txt, ok := replay.AssembledText(recorded); !ok || !strings.HasPrefix(txt, "Based on what I found") {
		t.Fatalf("assembled text %q", txt)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// tamper is a malicious or broken server in front of the log: it edits
// the answers to GET /v1/sessions/{id} and .../payloads (read by pages;
// export_test.go tampers with the export).
func tamper(t *testing.T, w *world, edit func(path string, body map[string]any)) *httptest.Server {
	h := w.srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/sessions/") || strings.HasSuffix(r.URL.Path, "/export") {
			h.ServeHTTP(rw, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var body map[string]any
		json.Unmarshal(rec.Body.Bytes(), &body)
		edit(r.URL.Path, body)
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(rec.Code)
		json.NewEncoder(rw).Encode(body)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// TestRebuildCatchesTampering: an event removed from the listing, two
// reordered, a payload altered in the vault or in transit, a listing that
// names another leaf: each is caught with its own check, at its event.
func TestRebuildCatchesTampering(t *testing.T) {
	w := newWorld(t)
	a := agent{prompt: "Check the new prescription for patient 4711."}
	if _, err := a.run(w.ts.URL+"/proxy/openai/v1/", w.viaProxy("rx-2")...); err != nil {
		t.Fatal(err)
	}
	clean := w.rebuild("rx-2")
	if !clean.Verified() {
		t.Fatal(clean.Problems)
	}
	events := func(body map[string]any) []any { evs, _ := body["events"].([]any); return evs }
	check := func(name string, ts *httptest.Server, wantCheck string, wantIndex uint64, wantText string) {
		t.Helper()
		src := w.source(ts.URL)
		src.NoExport = ts != w.ts // the tampering is in the pages
		s, err := replay.Rebuild(context.Background(), src, replay.Query{Session: "rx-2", Payloads: true})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Verified() {
			t.Fatalf("%s: verified", name)
		}
		p := s.Problems[0]
		if p.Check != wantCheck || p.Index == nil || *p.Index != wantIndex || !strings.Contains(p.String(), wantText) {
			t.Fatalf("%s: first problem %s, want %s at entry %d (%q); all: %v", name, p, wantCheck, wantIndex, wantText, s.Problems)
		}
		if _, err := replay.NewReplayer(s, replay.Options{}); !errors.Is(err, replay.ErrNotReplayable) {
			t.Fatalf("%s: a tampered session was accepted for replay: %v", name, err)
		}
	}
	idx := func(i int) uint64 { return clean.Events[i].Index }

	check("removed", tamper(t, w, func(path string, body map[string]any) {
		if !strings.HasSuffix(path, "/payloads") {
			evs := events(body)
			body["events"] = append(evs[:2:2], evs[3:]...)
		}
	}), replay.CheckSeq, idx(3), "expected 2, found 3")
	check("reordered", tamper(t, w, func(path string, body map[string]any) {
		if !strings.HasSuffix(path, "/payloads") {
			evs := events(body)
			evs[2], evs[3] = evs[3], evs[2]
		}
	}), replay.CheckOrder, idx(3), "listed before seq 2, which is listed after it")
	check("altered in transit", tamper(t, w, func(path string, body map[string]any) {
		if strings.HasSuffix(path, "/payloads") {
			e := events(body)[0].(map[string]any)
			e["payload_base64"] = base64.StdEncoding.EncodeToString([]byte(`{"model":"gpt-4o","messages":[]}`))
		}
	}), replay.CheckPayload, idx(0), "does not match its commitment")
	check("another leaf listed", tamper(t, w, func(path string, body map[string]any) {
		if !strings.HasSuffix(path, "/payloads") {
			events(body)[1].(map[string]any)["leaf_hash"] = strings.Repeat("ab", 32)
		}
	}), replay.CheckListing, idx(1), "the listing's leaf hash is not the log's")

	// An insider with the master key rewrites a payload in the vault: the
	// server says so (integrity), and the rebuild fails there.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(w.dir, server.VaultDB))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id := clean.Events[2].Leaf.ID
	if _, err := db.Exec(`DELETE FROM payloads WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	ev := clean.Events[2]
	if err := w.srv.Vault().Put(context.Background(), vault.Record{ID: id, Tenant: ev.Leaf.Tenant, Session: ev.Leaf.Session,
		MediaType: ev.MediaType, Salt: make([]byte, 16), Payload: []byte(`{"edited":true}`)}); err != nil {
		t.Fatal(err)
	}
	check("altered in the vault", w.ts, replay.CheckPayload, idx(2), "the vault's payload does not open the leaf's commitment")
	pages := w.source(w.ts.URL)
	pages.NoExport = true
	if s, err := replay.Rebuild(context.Background(), pages, replay.Query{Session: "rx-2", Payloads: true}); err != nil ||
		s.Via != replay.ViaPages || len(s.Problems) == 0 || s.Problems[0].Check != replay.CheckPayload || *s.Problems[0].Index != idx(2) {
		t.Fatalf("altered in the vault, read by pages: %v, %+v", err, s)
	}
}

// TestTimelineRendersSession: the timeline groups attempts by call (a 429
// and its retry are one call of two attempts), names models, usage and
// tool calls, and renders as text, JSON and HTML with values escaped.
func TestTimelineRendersSession(t *testing.T) {
	w := newWorld(t)
	a := agent{prompt: "[busy] Check <script>alert(1)</script> for patient 4711."}
	if _, err := a.run(w.ts.URL+"/proxy/openai/v1/", w.viaProxy("rx-3")...); err != nil {
		t.Fatal(err)
	}
	s := w.rebuild("rx-3")
	tl := replay.NewTimeline(s)
	first := tl.Steps[0]
	if first.Kind != replay.StepCall || len(first.Call.Attempts) != 2 || first.Call.Attempts[0].Status != 429 || first.Call.Attempts[1].Status != 200 ||
		first.Call.ResponseModel != "gpt-4o-2024-08-06" || len(first.Call.ToolCalls) != 1 {
		t.Fatalf("first step %+v", first.Call)
	}
	var text, js, html bytes.Buffer
	tl.WriteText(&text)
	tl.WriteJSON(&js)
	if err := tl.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"every event verified", "attempt 0: 429", "attempt 1: 200", "gpt-4o → gpt-4o-2024-08-06", "tool.call", "patient_lookup"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text has no %q:\n%s", want, text.String())
		}
	}
	var back replay.Timeline
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Steps) != len(tl.Steps) {
		t.Fatalf("json: %v", err)
	}
	if !strings.Contains(html.String(), `id="state">every event verified`) || !strings.Contains(html.String(), "<td>tool.call</td>") {
		t.Errorf("html:\n%s", html.String())
	}
}

// TestSessionPayloadsAudited: GET /v1/sessions/{id}/payloads needs the
// audit scope, and one access.read event names the session and seq range
// disclosed, its payload every index.
func TestSessionPayloadsAudited(t *testing.T) {
	w := newWorld(t)
	if _, err := (agent{prompt: "Check patient 4711."}).run(w.ts.URL+"/proxy/openai/v1/", w.viaProxy("rx-4")...); err != nil {
		t.Fatal(err)
	}
	w.settle("rx-4")
	reader, _ := client.New(w.ts.URL, client.WithToken(w.token(auth.Spec{Name: "reader", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeRead}})))
	if _, err := reader.SessionPayloads(context.Background(), "rx-4", client.SessionQuery{}); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("a read token: %v", err)
	}
	anon, _ := client.New(w.ts.URL)
	if _, err := anon.SessionPayloads(context.Background(), "rx-4", client.SessionQuery{}); !errors.Is(err, client.ErrUnauthenticated) {
		t.Fatalf("no token: %v", err)
	}
	c := w.source(w.ts.URL).Log
	d, err := c.SessionPayloads(context.Background(), "rx-4", client.SessionQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var want []any
	for _, e := range d.Events {
		if e.Status == api.PayloadOK && e.Err == nil {
			want = append(want, json.Number(strconv.FormatUint(e.Index, 10)))
		}
	}
	if len(want) != len(d.Events) || len(want) < 6 {
		t.Fatalf("%d events, %d disclosed", len(d.Events), len(want))
	}
	var acc *client.Disclosure
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if acc, err = c.Payload(context.Background(), d.Access.Index); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	l := acc.Event
	var listed struct{ Indices []any }
	dec := json.NewDecoder(bytes.NewReader(acc.Payload))
	dec.UseNumber()
	dec.Decode(&listed)
	last := json.Number(strconv.FormatUint(d.Events[len(d.Events)-1].Seq, 10))
	if l.Kind != "access.read" || l.Attributes["access.session"] != "rx-4" || l.Attributes["access.seq_from"] != json.Number("0") ||
		l.Attributes["access.seq_to"] != last || l.Attributes["access.count"] != json.Number(strconv.Itoa(len(want))) || !slices.Equal(listed.Indices, want) {
		t.Fatalf("access event %s %v, payload %s", l.Kind, l.Attributes, acc.Payload)
	}
	if _, err := c.SessionPayloads(context.Background(), "no-such-session", client.SessionQuery{}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
}

// TestReplayKeepsRetries: a call recorded as a 429 and its retry replays
// as the same two attempts: the SDK retries the recorded 429 and gets the
// recorded success.
func TestReplayKeepsRetries(t *testing.T) {
	w := newWorld(t)
	a := agent{prompt: "[busy] Is aspirin safe with warfarin?"}
	want, err := a.run(w.ts.URL+"/proxy/openai/v1/", w.viaProxy("rx-5")...)
	if err != nil {
		t.Fatal(err)
	}
	s := w.rebuild("rx-5")
	tl := replay.NewTimeline(s)
	if n := len(tl.Steps[0].Call.Attempts); n != 2 {
		t.Fatalf("first call has %d attempts", n)
	}
	r, ts := startReplay(t, s, replay.Options{})
	got, err := a.run(ts.URL + "/proxy/openai/v1/")
	if err != nil {
		t.Fatal(err)
	}
	<-r.Done()
	if v := r.Verdict(); got != want || v.Verdict != replay.Reproduced || v.Served != v.Recorded || v.Recorded != 6 { // every request of the conversation carries [busy]: each is rate limited once
		t.Fatalf("answer %q (recorded %q), verdict %+v", got, want, v)
	}
}

// TestTimelineShowsToolResults: a tool loop through the capture proxy
// shows each tool's result as a step after the tool call it answers (bound
// by the call id), with the result's text from the vault, once, though the
// agent sent the first result again with the third request.
func TestTimelineShowsToolResults(t *testing.T) {
	w := newWorld(t)
	a := agent{prompt: "Check the new prescription for patient 4711.", toolOutput: func(n string) string { return `{"tool":"` + n + `","records":3}` }}
	if _, err := a.run(w.ts.URL+"/proxy/openai/v1/", w.viaProxy("rx-tr")...); err != nil {
		t.Fatal(err)
	}
	tl := replay.NewTimeline(w.rebuild("rx-tr"))
	var kinds []string
	calls := map[string]uint64{} // summary prefix (tool name) -> tool.call index
	for _, st := range tl.Steps {
		kinds = append(kinds, st.Kind)
		switch st.Kind {
		case replay.StepToolCall:
			calls[strings.SplitN(st.Summary, " ", 2)[0]] = st.Index
		case replay.StepToolResult:
			name := strings.SplitN(st.Summary, " ", 2)[0]
			call, ok := calls[name]
			if !ok || !strings.Contains(st.Summary, fmt.Sprintf("answering entry %d", call)) || !strings.Contains(st.Summary, `\"tool\":\"`+name+`\"`) {
				t.Errorf("tool result step %q does not show the result of the tool call at %d", st.Summary, call)
			}
		}
	}
	want := []string{replay.StepCall, replay.StepToolCall, replay.StepToolResult, replay.StepCall, replay.StepToolCall, replay.StepToolResult, replay.StepCall}
	if !slices.Equal(kinds, want) {
		t.Fatalf("steps %v, want %v", kinds, want)
	}
}

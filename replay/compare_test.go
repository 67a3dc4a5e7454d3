package replay_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/replay"
)

// synthetic is a verified session of one call per recorded request body.
func synthetic(reqs ...string) *replay.Session {
	s := &replay.Session{Tenant: "t", ID: "s"}
	for i, req := range reqs {
		id := string(rune('a'+i)) + "0000000000000000000000000000000"
		attrs := func(kv ...any) map[string]any {
			m := map[string]any{"capture.call.id": id, "capture.attempt": json.Number("0")}
			for j := 0; j+1 < len(kv); j += 2 {
				m[kv[j].(string)] = kv[j+1]
			}
			return m
		}
		s.Events = append(s.Events,
			&replay.Event{Index: uint64(2 * i), Seq: uint64(2 * i), PayloadStatus: api.PayloadOK, Payload: []byte(req), MediaType: "application/json",
				Leaf: &event.Leaf{Kind: "llm.request", Payload: &event.Commitment{}, Attributes: attrs("gen_ai.provider.name", "openai", "capture.upstream", "openai", "url.path", "/v1/chat/completions")}},
			&replay.Event{Index: uint64(2*i + 1), Seq: uint64(2*i + 1), PayloadStatus: api.PayloadOK, Payload: []byte(`{"ok":true}`), MediaType: "application/json",
				Leaf: &event.Leaf{Kind: "llm.response", Payload: &event.Commitment{}, Attributes: attrs("http.response.status_code", json.Number("200"))}})
	}
	return s
}

func post(t *testing.T, url, body string) int {
	resp, err := http.Post(url+"/proxy/openai/v1/chat/completions", "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestComparison: what normalisation forgives and what it does not.
func TestComparison(t *testing.T) {
	const rec1 = `{"model":"gpt-4o","temperature":1.0,"messages":[{"role":"user","content":"hi"}],"metadata":{"trace":"x1"}}`
	const rec2 = `{"model":"gpt-4o","messages":[{"role":"assistant","tool_calls":[{"id":"call_AAAA1","function":{"name":"a"}},{"id":"call_BBBB2","function":{"name":"b"}}]},` +
		`{"role":"tool","tool_call_id":"call_AAAA1","content":"ra"},{"role":"tool","tool_call_id":"call_BBBB2","content":"rb"}]}`
	cases := []struct {
		name     string
		opts     replay.Options
		new1     string
		new2     string
		verdict  string
		path     string
		code     string
		relevant string
	}{
		{name: "key order, number form, volatile metadata", opts: replay.Options{Volatile: []string{"metadata"}},
			new1: `{"metadata":{"trace":"x2"},"messages":[{"content":"hi","role":"user"}],"temperature":1,"model":"gpt-4o"}`, new2: rec2, verdict: replay.Reproduced},
		{name: "metadata differs: benign", new1: `{"model":"gpt-4o","temperature":1.0,"messages":[{"role":"user","content":"hi"}],"metadata":{"trace":"x2"}}`, new2: rec2,
			verdict: replay.Reproduced, path: "metadata.trace", code: replay.CodeRequestDiffers, relevant: replay.Benign},
		{name: "tool results in another order", new1: rec1,
			new2: `{"model":"gpt-4o","messages":[{"role":"assistant","tool_calls":[{"id":"call_AAAA1","function":{"name":"a"}},{"id":"call_BBBB2","function":{"name":"b"}}]},` +
				`{"role":"tool","tool_call_id":"call_BBBB2","content":"rb"},{"role":"tool","tool_call_id":"call_AAAA1","content":"ra"}]}`, verdict: replay.Reproduced},
		{name: "ids renamed consistently", new1: rec1,
			new2: `{"model":"gpt-4o","messages":[{"role":"assistant","tool_calls":[{"id":"call_ZZZZ1","function":{"name":"a"}},{"id":"call_YYYY2","function":{"name":"b"}}]},` +
				`{"role":"tool","tool_call_id":"call_ZZZZ1","content":"ra"},{"role":"tool","tool_call_id":"call_YYYY2","content":"rb"}]}`, verdict: replay.Reproduced},
		{name: "a result paired with the other call", new1: rec1,
			new2: `{"model":"gpt-4o","messages":[{"role":"assistant","tool_calls":[{"id":"call_ZZZZ1","function":{"name":"a"}},{"id":"call_YYYY2","function":{"name":"b"}}]},` +
				`{"role":"tool","tool_call_id":"call_YYYY2","content":"ra"},{"role":"tool","tool_call_id":"call_ZZZZ1","content":"rb"}]}`,
			verdict: replay.Diverged, path: "messages[1].content", code: replay.CodeRequestDiffers, relevant: replay.Decision},
		{name: "an id the record pairs with another", new1: rec1,
			new2: `{"model":"gpt-4o","messages":[{"role":"assistant","tool_calls":[{"id":"call_ZZZZ1","function":{"name":"a"}},{"id":"call_YYYY2","function":{"name":"b"}}]},` +
				`{"role":"tool","tool_call_id":"call_AAAA1","content":"ra"},{"role":"tool","tool_call_id":"call_YYYY2","content":"rb"}]}`,
			verdict: replay.Diverged, path: "messages[1].tool_call_id", code: replay.CodeUnpairedID, relevant: replay.Decision},
		{name: "model differs", new1: `{"model":"gpt-4o-mini","temperature":1.0,"messages":[{"role":"user","content":"hi"}],"metadata":{"trace":"x1"}}`,
			verdict: replay.Diverged, path: "model", code: replay.CodeRequestDiffers, relevant: replay.Decision},
		{name: "a message more", new1: `{"model":"gpt-4o","temperature":1.0,"messages":[{"role":"user","content":"hi"},{"role":"user","content":"and"}],"metadata":{"trace":"x1"}}`,
			verdict: replay.Diverged, path: "messages[1]", code: replay.CodeRequestDiffers, relevant: replay.Decision},
		{name: "not JSON", new1: `{"model":`, verdict: replay.Diverged, code: replay.CodeNotJSON, relevant: replay.Decision},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := replay.NewReplayer(synthetic(rec1, rec2), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(r)
			defer ts.Close()
			post(t, ts.URL, tc.new1)
			if tc.new2 != "" {
				post(t, ts.URL, tc.new2)
			}
			v := r.Verdict()
			if v.Verdict != tc.verdict {
				t.Fatalf("verdict %+v", v)
			}
			if tc.code == "" {
				if len(v.Differences) != 0 {
					t.Fatalf("differences %+v", v.Differences)
				}
				return
			}
			d := v.Differences[0]
			if d.Code != tc.code || d.Relevance != tc.relevant || (tc.path != "" && d.Path != tc.path) {
				t.Fatalf("divergence %+v", d)
			}
		})
	}
	// One request more than recorded.
	r, _ := replay.NewReplayer(synthetic(rec1), replay.Options{})
	ts := httptest.NewServer(r)
	defer ts.Close()
	post(t, ts.URL, rec1)
	if code := post(t, ts.URL, rec1); code != http.StatusUnprocessableEntity || r.Verdict().Differences[0].Code != replay.CodeUnexpected {
		t.Fatalf("extra request: %d %+v", code, r.Verdict())
	}
	// Another API path.
	r, _ = replay.NewReplayer(synthetic(rec1), replay.Options{})
	ts2 := httptest.NewServer(r)
	defer ts2.Close()
	resp, _ := http.Post(ts2.URL+"/proxy/openai/v1/responses", "application/json", bytes.NewReader([]byte(rec1)))
	resp.Body.Close()
	if d := r.Verdict().Differences; len(d) != 1 || d[0].Code != replay.CodeEndpointDiffers {
		t.Fatalf("another path: %+v", d)
	}
}

// TestTimelineMCPSteps: tool calls observed on the MCP wire and their
// results are steps of their own, the call naming the model request it
// answers.
func TestTimelineMCPSteps(t *testing.T) {
	s := &replay.Session{ID: "s", Events: []*replay.Event{
		{Index: 2, Leaf: &event.Leaf{ID: "0190a1b2c3d4e5f60718293a4b5c6d7e", Kind: "agent.decision"}},
		{Index: 4, Leaf: &event.Leaf{Kind: "tool.call", Attributes: map[string]any{"gen_ai.tool.name": "dose.check", "gen_ai.tool.call.id": "3",
			"mcp.server": "pharmacy", "capture.llm_response.id": "0190a1b2c3d4e5f60718293a4b5c6d7e"}}},
		{Index: 5, Leaf: &event.Leaf{Kind: "tool.result", Attributes: map[string]any{"gen_ai.tool.name": "dose.check", "capture.duration_ms": json.Number("12"),
			"error.type": "tool_error"}}},
	}}
	tl := replay.NewTimeline(s)
	if len(tl.Steps) != 3 || tl.Steps[1].Kind != replay.StepToolCall || tl.Steps[2].Kind != replay.StepToolResult ||
		tl.Steps[1].Summary != "dose.check (3) on MCP server pharmacy, answering the model's request in entry 2" ||
		tl.Steps[2].Summary != "dose.check: error tool_error after 12 ms" {
		t.Fatalf("steps %+v", tl.Steps)
	}
}

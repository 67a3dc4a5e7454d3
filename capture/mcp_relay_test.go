package capture_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// TestMCPRelayEarlierOnce: the stdio relay observes a request's earlier
// messages of the server before its message, and a request tried again
// (the wrapper lost the first answer) is observed once: each call and
// result is in the log once, in the order the wrapper read them, the
// result after its call and before the next call.
func TestMCPRelayEarlierOnce(t *testing.T) {
	e := newEnv(t, "fail-closed")
	post := func(body string) string {
		t.Helper()
		req, _ := http.NewRequest("POST", e.ts.URL+"/v1/mcp/relay", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.writeToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, b)
		}
		return string(b)
	}
	const base = `{"conn":"c1","server":"tools","session":"relay-once",`
	// JSON-RPC id 7 for both calls: the client may use an id again once
	// it has its answer.
	call := func(n string) string {
		return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"n":` + n + `}}}`
	}
	result := func(n string) string {
		return `{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"r` + n + `"}]}}`
	}
	if got := post(base + `"from":"client","seq":1,"message":` + call("1") + `}`); !strings.Contains(got, `"forward"`) {
		t.Fatalf("call 1: %s", got)
	}
	// The result of call 1 goes with call 2; its answer lost, the wrapper
	// sends the result again (numbered 2, as before): not the answer to
	// call 2.
	if got := post(base + `"from":"client","seq":2,"earlier":[` + result("1") + `],"message":` + call("2") + `}`); !strings.Contains(got, `"forward"`) {
		t.Fatalf("call 2: %s", got)
	}
	post(base + `"from":"server","seq":2,"message":` + result("1") + `}`)
	post(base + `"from":"server","seq":4,"message":` + result("2") + `}`)
	post(base + `"from":"server","seq":4,"message":` + result("2") + `}`)
	evs := e.events("relay-once", 4)
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Leaf.Kind)
	}
	if got := strings.Join(kinds, " "); got != "tool.call tool.result tool.call tool.result" {
		t.Fatalf("events %s", got)
	}
	for i := 1; i < 4; i += 2 {
		if evs[i].str(event.AttrCaptureToolCallID) != evs[i-1].Leaf.ID || !bytes.Contains(evs[i].Payload, []byte(`"r`+string(rune('0'+(i+1)/2))+`"`)) {
			t.Fatalf("result %d: %v %s", i, evs[i].Leaf.Attributes, evs[i].Payload)
		}
	}
}

// TestMCPRelayGap: numbers a connection's requests skip are messages the
// wrapper gave up; the relay records a capture.gap naming how many, in
// place in the session's chain (between the records of 2 and 5). The
// first request of a connection has nothing to follow (no gap), and a
// request whose numbers would run past the largest is refused.
func TestMCPRelayGap(t *testing.T) {
	e := newEnv(t, "fail-closed")
	post := func(body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", e.ts.URL+"/v1/mcp/relay", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.writeToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	ok := func(body string) {
		t.Helper()
		if code, got := post(body); code != http.StatusOK {
			t.Fatalf("%s: %d %s", body, code, got)
		}
	}
	call := func(n string) string {
		return `{"jsonrpc":"2.0","id":` + n + `,"method":"tools/call","params":{"name":"echo","arguments":{"n":` + n + `}}}`
	}
	result := func(n string) string {
		return `{"jsonrpc":"2.0","id":` + n + `,"result":{"content":[{"type":"text","text":"r` + n + `"}]}}`
	}
	const base = `{"conn":"c1","server":"tools","session":"relay-gap",`
	ok(base + `"from":"client","seq":1,"message":` + call("1") + `}`)
	ok(base + `"from":"server","seq":2,"message":` + result("1") + `}`)
	// 3 and 4 (call 2 and its result) given up by the wrapper.
	ok(base + `"from":"client","seq":5,"message":` + call("3") + `}`)
	ok(base + `"from":"server","seq":6,"message":` + result("3") + `}`)
	evs := e.events("relay-gap", 5)
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Leaf.Kind)
	}
	if got := strings.Join(kinds, " "); got != "tool.call tool.result capture.gap tool.call tool.result" {
		t.Fatalf("events %s", got)
	}
	g := evs[2]
	if g.num(event.AttrCaptureGapCount) != 2 || !strings.Contains(g.str(event.AttrCaptureGapError), "wrapper gave up 2 message(s)") ||
		g.Leaf.Actor.Type != "system" || !g.has(event.AttrCaptureGapFirstTime) || !g.has(event.AttrCaptureGapLastTime) ||
		string(g.Payload) != `{"first_seq":3,"last_seq":4}` {
		t.Fatalf("gap: %v %s", g.Leaf.Attributes, g.Payload)
	}

	// A connection's first request follows nothing: no gap.
	const fresh = `{"conn":"c2","server":"tools","session":"relay-gap-first",`
	ok(fresh + `"from":"client","seq":7,"message":` + call("1") + `}`)
	ok(fresh + `"from":"server","seq":8,"message":` + result("1") + `}`)
	if evs := e.events("relay-gap-first", 2); len(evs) != 2 || evs[0].Leaf.Kind != "tool.call" || evs[1].Leaf.Kind != "tool.result" {
		t.Fatalf("first request: %d events", len(evs))
	}

	// The number after a request's last must be a number: refused, and
	// nothing observed.
	const big = `{"conn":"c3","server":"tools","session":"relay-gap-big",`
	if code, got := post(big + `"from":"server","seq":18446744073709551614,"earlier":[` + result("1") + `],"message":` + result("2") + `}`); code != http.StatusBadRequest {
		t.Fatalf("seq past the largest: %d %s", code, got)
	}
	if code, got := post(big + `"from":"server","seq":18446744073709551615,"message":` + result("2") + `}`); code != http.StatusBadRequest {
		t.Fatalf("seq at the largest: %d %s", code, got)
	}
	ok(big + `"from":"server","seq":18446744073709551613,"earlier":[` + result("1") + `],"message":` + result("2") + `}`)
}

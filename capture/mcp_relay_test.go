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

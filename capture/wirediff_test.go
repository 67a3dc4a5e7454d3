package capture

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// wireCorpus is adversarial MCP and provider messages: duplicates, case
// variants, escaped names, BOMs, deep nesting, big numbers, surrogates,
// invalid UTF-8, trailing data, NaN, comments.
var wireCorpus = []string{
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}},"model":"gpt-4o"}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"shell.exec","Name":"echo","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"ping","params":{"name":"shell.exec"}}`,
	`{"jsonrpc":"2.0","id":1,"METHOD":"tools/call","params":{"name":"shell.exec"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"shell.exec","arguments":{}},"error":7}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1},"Arguments":{"a":2}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1,"a":2}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"shell.exec"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"na\u006de":"shell.exec","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"\u004eame":"shell.exec","name":"echo"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"\u004eame":"shell.exec"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","n\u0061me":"shell.exec"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"ſame":"x","name":"echo","arguments":{"ſ":1,"s":2}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","argumentſ":{"a":1}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/c\u0061ll","params":{"name":"shell\u002eexec","arguments":{"\ud83d\ude00":"ok"}}}`,
	"\ufeff" + `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"n":1e400,"m":123456789012345678901234567890}}}`,
	`{"jsonrpc":"2.0","id":1e400,"method":"tools/call","params":{"name":"echo","arguments":{"n":-0.0}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo\ud800","arguments":{}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"\udc00":1}}}`,
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\xff\",\"arguments\":{}}}",
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"ech\xc3\",\"arguments\":{}}}",
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}} {"method":"x"}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}//c`,
	`{"jsonrpc":"2.0","id":1,/*c*/"method":"tools/call","params":{"name":"echo"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"n":NaN}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"n":Infinity}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"deep":` + strings.Repeat("[", 900) + strings.Repeat("]", 900) + `}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"deep":` + strings.Repeat("[", 1100) + strings.Repeat("]", 1100) + `}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"t":"a\u0000b\nc"}}}`,
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"t\":\"tab\there\"}}}",
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"t":"x",}}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":[1,2]}}`,
	`{"jsonrpc":"2.0","id":1,"method":["tools/call"],"params":{"name":"shell.exec"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"name"}`,
	`{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call","params":{"name":"echo"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"result":{}}`,
	`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	`{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`,
	`["not","a","message"]`,
	`"tools/call"`,
	`null`,
	``,
	`{"model":"gpt-4o","Model":"approved-model","messages":[]}`,
	`{"model":"approved-model","model":"gpt-4o","messages":[]}`,
	`{"mod\u0065l":"gpt-4o","messages":[]}`,
	`{"model":"gpt-4o","messages":[{"role":"system","content":"a","Content":"b"}]}`,
	`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"a","TEXT":"b"}]}]}`,
	`{"model":"gpt-4o","stream":true,"Stream":false,"messages":[]}`,
	`{"model":"gpt-4o","ſtream":true,"messages":[]}`,
	`{"model":"gpt-4o","temperature":1e999,"messages":[]}`,
	`{"model":5,"messages":[]}`,
	`{"model":"gpt-4o","messages":{}}`,
	"{\"model\":\"gpt-4o\",\"messages\":[],\"x\":\"\xed\xa0\x80\"}",
	`{"model":"gpt\u002d4o","messages":[]}`,
	` {"model":"gpt-4o"} `,
	"{\"model\":\"gpt-4o\"}\u00a0",
}

// ourReading is what the capture reads of a message: a tools/call it
// forwards (method, tool, arguments) and the model of a chat request it
// forwards.
type ourReading struct {
	MCPOK  bool   `json:"mcp_ok"`
	Method string `json:"method"`
	Name   string `json:"name"`
	Args   string `json:"args"` // the raw arguments, base64
	LLMOK  bool   `json:"llm_ok"`
	Model  string `json:"model"`
}

func read(msg []byte) ourReading {
	var r ourReading
	elems, batch := readMessages(msg)
	if !batch && len(elems) == 1 && elems[0].err == nil && elems[0].m.isRequest() {
		m := elems[0].m
		r.MCPOK, r.Method = true, m.Method
		if m.Method == "tools/call" {
			p, err := readToolCall(m.Params)
			r.MCPOK = err == nil
			r.Name, r.Args = p.Name, base64.StdEncoding.EncodeToString(p.Arguments)
		}
	}
	if info, err := parseRequest(apiOpenAIChat, msg); err == nil && len(bytes.TrimSpace(msg)) > 0 {
		r.LLMOK, r.Model = true, info.Model
	}
	return r
}

// nodeReader is what JSON.parse makes of each message, and of what we
// read as its arguments.
const nodeReader = `
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = input.map(({msg, args}) => {
  let v;
  try { v = JSON.parse(Buffer.from(msg, 'base64').toString('utf8')); } catch (e) { return {ok: false}; }
  const r = {ok: true};
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    r.method = v.method;
    r.model = v.model;
    if (v.params !== null && typeof v.params === 'object') {
      r.name = v.params.name;
      r.args = v.params.arguments === undefined ? null : JSON.stringify(v.params.arguments);
    }
  }
  if (args) {
    try { r.ours = JSON.stringify(JSON.parse(Buffer.from(args, 'base64').toString('utf8'))); } catch (e) { r.ours = 'unparseable: ' + e; }
  } else { r.ours = null; }
  return r;
});
process.stdout.write(JSON.stringify(out));
`

// needNode returns node's path, or skips: unless LLMAUDIT_TEST_REQUIRE
// names node, then it fails (as internal/dbtest does for its servers).
func needNode(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err == nil {
		return p
	}
	for _, r := range strings.Split(os.Getenv("LLMAUDIT_TEST_REQUIRE"), ",") {
		if strings.TrimSpace(r) == "node" {
			t.Fatalf("node is required (LLMAUDIT_TEST_REQUIRE=%s) but not available: %v", os.Getenv("LLMAUDIT_TEST_REQUIRE"), err)
		}
	}
	t.Skipf("node is not installed: %v", err)
	return ""
}

// TestWireDifferentialNode (issue #24, finding 2) feeds the corpus to the
// capture's reader and to Node's JSON.parse (what a JavaScript MCP server
// or provider reads) and to encoding/json (what a Go one reads): for every
// message the capture forwards, all read the same method, tool name,
// arguments and model; everything else the capture refuses.
func TestWireDifferentialNode(t *testing.T) {
	node := needNode(t)
	type in struct {
		Msg  string `json:"msg"`
		Args string `json:"args"`
	}
	var ins []in
	ours := make([]ourReading, len(wireCorpus))
	for i, m := range wireCorpus {
		ours[i] = read([]byte(m))
		ins = append(ins, in{Msg: base64.StdEncoding.EncodeToString([]byte(m)), Args: ours[i].Args})
	}
	stdin, _ := json.Marshal(ins)
	cmd := exec.Command(node, "-e", nodeReader)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var theirs []struct {
		OK     bool    `json:"ok"`
		Method any     `json:"method"`
		Name   any     `json:"name"`
		Args   *string `json:"args"`
		Ours   *string `json:"ours"`
		Model  any     `json:"model"`
	}
	if err := json.Unmarshal(out, &theirs); err != nil || len(theirs) != len(wireCorpus) {
		t.Fatalf("node said %d results (%v): %s", len(theirs), err, out)
	}
	forwarded, refused := 0, 0
	for i, m := range wireCorpus {
		o, n := ours[i], theirs[i]
		t.Run(strings.ReplaceAll(trunc(m, 60), "/", "|"), func(t *testing.T) {
			if !o.MCPOK && !o.LLMOK {
				refused++
				return
			}
			forwarded++
			if !n.OK {
				t.Fatalf("we forward %q, which JSON.parse refuses", m)
			}
			// A Go upstream decoding with encoding/json (case-insensitive).
			var gov1 struct {
				Method string `json:"method"`
				Model  string `json:"model"`
				Params struct {
					Name      string          `json:"name"`
					Arguments json.RawMessage `json:"arguments"`
				} `json:"params"`
			}
			json.Unmarshal([]byte(m), &gov1)
			if o.MCPOK {
				if n.Method != o.Method || gov1.Method != o.Method {
					t.Errorf("method: ours %q, node %v, encoding/json %q", o.Method, n.Method, gov1.Method)
				}
				if o.Method == "tools/call" {
					args, _ := base64.StdEncoding.DecodeString(o.Args)
					if n.Name != o.Name || gov1.Params.Name != o.Name {
						t.Errorf("tool name: ours %q, node %v, encoding/json %q", o.Name, n.Name, gov1.Params.Name)
					}
					switch {
					case n.Args == nil && len(args) == 0:
					case n.Args == nil || n.Ours == nil || *n.Args != *n.Ours || !bytes.Equal(gov1.Params.Arguments, args):
						t.Errorf("arguments: ours %s (node reads it as %v), node %v, encoding/json %s", args, strp(n.Ours), strp(n.Args), gov1.Params.Arguments)
					}
				}
			}
			if o.LLMOK && (n.Model != any(o.Model) && !(o.Model == "" && n.Model == nil) || gov1.Model != o.Model) {
				t.Errorf("model: ours %q, node %v, encoding/json %q", o.Model, n.Model, gov1.Model)
			}
		})
	}
	t.Logf("%d messages forwarded, all read alike; %d refused", forwarded, refused)
	if forwarded < 10 || refused < 20 {
		t.Errorf("forwarded %d, refused %d: the corpus no longer tests both sides", forwarded, refused)
	}
}

func strp(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

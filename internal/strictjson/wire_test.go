package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

type wireInner struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

type wireEmbedded struct {
	Model string `json:"model"`
}

type wireMsg struct {
	wireEmbedded
	Method string            `json:"method"`
	ID     json.RawMessage   `json:"id"`
	Params *wireInner        `json:"params"`
	Caps   map[string]any    `json:"caps"`
	List   []wireInner       `json:"list"`
	Skip   string            `json:"-"`
	Plain  int               // JSON name "Plain"
	Raw    map[string]string `json:"raw"`
}

func TestUnmarshal(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     error // nil, ErrMalformed, ErrAmbiguous or ErrType
		method   string
		tool     string
	}{
		{"plain", `{"method":"tools/call","params":{"name":"echo","arguments":{"a":1}}}`, nil, "tools/call", "echo"},
		{"escaped key", `{"m\u0065thod":"x","params":{"na\u006de":"echo"}}`, nil, "x", "echo"},
		{"escaped value", `{"method":"tools\/c\u0061ll"}`, nil, "tools/call", ""},
		{"surrogate pair", `{"method":"\ud83d\ude00"}`, nil, "\U0001F600", ""},
		{"unknown keys of any case", `{"method":"m","other":1,"OTHER":2,"caps":{"A":1,"a":2},"raw":{"K":"v","k":"w"}}`, nil, "m", ""},
		{"Plain field", `{"Plain":1}`, nil, "", ""},
		{"embedded field", `{"model":"x"}`, nil, "", ""},
		{"wrong type kept going", `{"method":5,"params":{"name":"echo"}}`, ErrType, "", "echo"},
		{"duplicate", `{"method":"a","method":"b"}`, ErrAmbiguous, "", ""},
		{"escaped duplicate", `{"method":"a","m\u0065thod":"b"}`, ErrAmbiguous, "", ""},
		{"nested duplicate", `{"params":{"name":"a","arguments":{"x":1,"x":2}}}`, ErrAmbiguous, "", ""},
		{"duplicate in an array", `{"list":[{"name":"a"},{"name":"b","name":"c"}]}`, ErrAmbiguous, "", ""},
		{"duplicate in a map", `{"caps":{"a":1,"a":2}}`, ErrAmbiguous, "", ""},
		{"duplicate among many keys", `{` + manyKeys(40) + `,"k7":0}`, ErrAmbiguous, "", ""},
		{"case variant", `{"Method":"x"}`, ErrAmbiguous, "", ""},
		{"case variant beside", `{"method":"x","METHOD":"y"}`, ErrAmbiguous, "", ""},
		{"escaped case variant", `{"\u004dethod":"x"}`, ErrAmbiguous, "", ""},
		{"nested case variant", `{"params":{"name":"a","Name":"b"}}`, ErrAmbiguous, "", ""},
		{"case variant in an array", `{"list":[{"NAME":"b"}]}`, ErrAmbiguous, "", ""},
		{"Unicode fold (long s)", `{"params":{"name":"a","argumentſ":{}}}`, ErrAmbiguous, "", ""},
		{"Unicode fold (Kelvin)", `{"params":{"name":"a"},"\u212aey":1,"plain":2}`, ErrAmbiguous, "", ""},
		{"embedded case variant", `{"MODEL":"x"}`, ErrAmbiguous, "", ""},
		{"invalid UTF-8", "{\"method\":\"\xff\"}", ErrMalformed, "", ""},
		{"truncated UTF-8", "{\"method\":\"\xc3\"}", ErrMalformed, "", ""},
		{"UTF-8 surrogate", "{\"method\":\"\xed\xa0\x80\"}", ErrMalformed, "", ""},
		{"lone high surrogate", `{"method":"\ud800"}`, ErrMalformed, "", ""},
		{"lone low surrogate", `{"method":"\udc00x"}`, ErrMalformed, "", ""},
		{"high then not low", `{"method":"\ud800\u0041"}`, ErrMalformed, "", ""},
		{"lone surrogate in a key", `{"\ud800":1}`, ErrMalformed, "", ""},
		{"control character", "{\"method\":\"a\tb\"}", ErrMalformed, "", ""},
		{"trailing data", `{"method":"a"} {}`, ErrMalformed, "", ""},
		{"comment", `{"method":"a"}//`, ErrMalformed, "", ""},
		{"NaN", `{"caps":{"n":NaN}}`, ErrMalformed, "", ""},
		{"BOM", "\ufeff{}", ErrMalformed, "", ""},
		{"trailing comma", `{"method":"a",}`, ErrMalformed, "", ""},
		{"too deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), ErrMalformed, "", ""},
		{"empty", ``, ErrMalformed, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m wireMsg
			err := Unmarshal([]byte(tc.in), &m)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Unmarshal(%s) = %v, want %v", tc.in, err, tc.want)
			}
			if tc.want != nil && tc.want != ErrType {
				return
			}
			tool := ""
			if m.Params != nil {
				tool = m.Params.Name
			}
			if m.Method != tc.method || tool != tc.tool {
				t.Errorf("read method %q tool %q, want %q %q", m.Method, tool, tc.method, tc.tool)
			}
		})
	}
	// Deep but within the bound, and big numbers: accepted.
	deep := strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1)
	var v any
	if err := Unmarshal([]byte(`{"a":`+deep+`,"n":1e400,"m":123456789012345678901234567890}`), &v); err != nil {
		// 1e400 does not fit a float64: encoding/json reports a type error
		if !errors.Is(err, ErrType) {
			t.Errorf("deep: %v", err)
		}
	}
	var raw struct {
		N json.RawMessage `json:"n"`
	}
	if err := Unmarshal([]byte(`{"n":1e400}`), &raw); err != nil || string(raw.N) != "1e400" {
		t.Errorf("big number: %s %v", raw.N, err)
	}
	// Not a pointer.
	if err := Unmarshal([]byte(`{}`), wireMsg{}); err == nil {
		t.Error("Unmarshal into a non-pointer")
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + string(rune('0'+i/10)) + string(rune('0'+i%10)) + `":0`)
	}
	return strings.ReplaceAll(b.String(), `"k07"`, `"k7"`)
}

type protoInner struct {
	MaxOutputTokens int `json:"maxOutputTokens"`
	TopP            float64
}

type protoMsg struct {
	SystemInstruction string            `json:"systemInstruction"`
	GenerationConfig  *protoInner       `json:"generationConfig"`
	Parts             []protoInner      `json:"parts"`
	Labels            map[string]string `json:"labels"`
}

// TestUnmarshalProto: a field is read by its JSON name or its proto name,
// never both, nor a case variant of either; Unmarshal knows no aliases.
func TestUnmarshalProto(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     error
		si       string
		max      int
	}{
		{"JSON names", `{"systemInstruction":"a","generationConfig":{"maxOutputTokens":5}}`, nil, "a", 5},
		{"proto names", `{"system_instruction":"a","generation_config":{"max_output_tokens":5}}`, nil, "a", 5},
		{"mixed across objects", `{"system_instruction":"a","generationConfig":{"max_output_tokens":5}}`, nil, "a", 5},
		{"escaped proto name", `{"system_instruction":"a"}`, nil, "a", 0},
		{"in an array", `{"parts":[{"max_output_tokens":3},{"maxOutputTokens":4}]}`, nil, "", 0},
		{"map keys are data", `{"labels":{"system_instruction":"x","systemInstruction":"y"}}`, nil, "", 0},
		{"both", `{"systemInstruction":"a","system_instruction":"b"}`, ErrAmbiguous, "", 0},
		{"both, proto name first", `{"system_instruction":"b","systemInstruction":"a"}`, ErrAmbiguous, "", 0},
		{"both nested", `{"generationConfig":{"maxOutputTokens":5,"max_output_tokens":9}}`, ErrAmbiguous, "", 0},
		{"both in an array", `{"parts":[{"maxOutputTokens":5,"max_output_tokens":9}]}`, ErrAmbiguous, "", 0},
		{"case variant of a proto name", `{"System_Instruction":"a"}`, ErrAmbiguous, "", 0},
		{"case variant of a JSON name", `{"systeminstruction":"a"}`, ErrAmbiguous, "", 0},
		{"proto name twice", `{"system_instruction":"a","system_instruction":"b"}`, ErrAmbiguous, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m protoMsg
			err := UnmarshalProto([]byte(tc.in), &m)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("UnmarshalProto(%s) = %v, want %v", tc.in, err, tc.want)
			}
			if err != nil {
				return
			}
			max := 0
			if m.GenerationConfig != nil {
				max = m.GenerationConfig.MaxOutputTokens
			}
			if m.SystemInstruction != tc.si || max != tc.max {
				t.Errorf("read %q, %d; want %q, %d", m.SystemInstruction, max, tc.si, tc.max)
			}
			if tc.name == "in an array" && (len(m.Parts) != 2 || m.Parts[0].MaxOutputTokens != 3 || m.Parts[1].MaxOutputTokens != 4) {
				t.Errorf("parts %+v", m.Parts)
			}
		})
	}
	// Without the proto mapping a proto name is no field: read as nothing.
	var m protoMsg
	if err := Unmarshal([]byte(`{"system_instruction":"a"}`), &m); err != nil || m.SystemInstruction != "" {
		t.Errorf("Unmarshal read a proto name: %q %v", m.SystemInstruction, err)
	}
	// A field named without capitals, or not in lowerCamelCase, has no alias.
	if protoName("TopP") != "TopP" || protoName("top_p") != "top_p" || protoName("seed") != "seed" || protoName("topP") != "top_p" {
		t.Error("protoName")
	}
}

func TestMember(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{`{"jsonrpc":"2.0","id":7,"method":"x","Method":"y"}`, "7", true},
		{`{"id":"a","params":{"x":1,"x":2}}`, `"a"`, true},
		{`{"id":1,"id":2}`, "", false},
		{`{"id":1,"ID":2}`, "", false},
		{`{"Id":1}`, "", false},
		{`{"\u0069d":3}`, "3", true},
		{`{"id":1`, "", false},
		{`[{"id":1}]`, "", false},
	} {
		got, ok := Member([]byte(tc.in), "id")
		if ok != tc.ok || string(got) != tc.want {
			t.Errorf("Member(%s) = %s %v, want %s %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzUnmarshal: whatever Unmarshal accepts is JSON that encoding/json
// reads, with no object holding a name twice (after unescaping), valid
// UTF-8 throughout, and every field of the struct read exactly as a
// case-sensitive reader (a lookup in the decoded map) reads it.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{
		`{"method":"tools/call","params":{"name":"echo","arguments":{"a":1}}}`,
		`{"method":"a","Method":"b"}`, `{"na\u006de":1,"name":2}`, `{"params":{"name":"x","Name":"y"}}`,
		`{"method":"\ud800"}`, "{\"method\":\"\xff\"}", `{"method":"a"} x`, "\ufeff{}", `[NaN]`,
		`{"model":"x","list":[{"name":"a"}],"caps":{"k":[1,{"z":null}]}}`, `{"argumentſ":1}`, `{"\u212a":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m wireMsg
		err := Unmarshal(data, &m)
		if err != nil && !errors.Is(err, ErrType) {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrAmbiguous) {
				t.Fatalf("error of no class: %v", err)
			}
			return
		}
		if !json.Valid(data) || !utf8.Valid(data) {
			t.Fatalf("accepted %q, which is not valid JSON/UTF-8", data)
		}
		if d := duplicates(t, data); d != "" {
			t.Fatalf("accepted %q with the name %q twice", data, d)
		}
		var obj map[string]any
		if json.Unmarshal(data, &obj) != nil {
			return // not an object
		}
		if s, ok := obj["method"].(string); ok && m.Method != s {
			t.Fatalf("method %q, a case-sensitive reader reads %q", m.Method, s)
		}
		if _, ok := obj["method"]; !ok && m.Method != "" {
			t.Fatalf("method %q read from a case variant of %q", m.Method, data)
		}
		p, _ := obj["params"].(map[string]any)
		name, _ := p["name"].(string)
		if m.Params != nil && m.Params.Name != name {
			t.Fatalf("params.name %q, a case-sensitive reader reads %q", m.Params.Name, name)
		}
		if m.Params != nil && len(m.Params.Arguments) > 0 {
			if _, ok := p["arguments"]; !ok {
				t.Fatalf("arguments read from a case variant in %q", data)
			}
		}
	})
}

// duplicates returns a name that an object of data holds twice, "" if
// none, with encoding/json's tokenizer.
func duplicates(t *testing.T, data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // 1E1000 is JSON, though no float64
	var walk func() string
	walk = func() string {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, _ := dec.Token()
				if seen[k.(string)] {
					return k.(string)
				}
				seen[k.(string)] = true
				if d := walk(); d != "" {
					return d
				}
			}
			dec.Token()
		case json.Delim('['):
			for dec.More() {
				if d := walk(); d != "" {
					return d
				}
			}
			dec.Token()
		}
		return ""
	}
	return walk()
}

// BenchmarkUnmarshal reads a chat completion request of the session
// fixture's size (about 1.8 KiB, twenty short messages) as the capture
// does: strictly, into a struct.
func BenchmarkUnmarshal(b *testing.B) {
	type msg struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	var req struct {
		Model    string `json:"model"`
		Messages []msg  `json:"messages"`
	}
	body := []byte(`{"model":"gpt-4o","messages":[`)
	for i := range 20 {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"role":"user","content":"Summarise the patient's chart for the ward round, with the medication changes since Monday."}`...)
	}
	body = append(body, "]}"...)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := Unmarshal(body, &req); err != nil {
			b.Fatal(err)
		}
	}
}

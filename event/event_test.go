package event

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

func TestDecodeRequestRejects(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"malformed", `{"session":`, "malformed JSON"},
		{"unknown field", `{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"colour":"red"}`, `unknown field "colour"`},
		{"forced seq", `{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"seq":5}`, `field "seq" is assigned by the server`},
		{"forced prev", `{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"prev":"00"}`, `field "prev" is assigned by the server`},
		{"forced time", `{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"time":"x"}`, `field "time" is assigned by the server`},
		{"forced tenant", `{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"tenant":"x"}`, `field "tenant" is assigned by the server`},
		{"trailing", `{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"}} {}`, "trailing data"},
		{"invalid utf8", "{\"session\":\"s\xff\",\"kind\":\"a.b\"}", "not valid UTF-8"},
		{"not an object", `[1,2]`, "malformed JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRequest([]byte(tc.body))
			if !errors.Is(err, ErrInvalidEvent) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeRequest(%q) = %v, want ErrInvalidEvent containing %q", tc.body, err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := func() *Request {
		return &Request{Session: "s-1", Kind: "llm.request", Actor: Actor{Type: "agent", ID: "bot"}}
	}
	for _, tc := range []struct {
		name string
		mod  func(r *Request)
		want string // "" = valid
	}{
		{"valid", func(r *Request) {}, ""},
		{"missing session", func(r *Request) { r.Session = "" }, "session is required"},
		{"bad session", func(r *Request) { r.Session = "a/b" }, "session"},
		{"long session", func(r *Request) { r.Session = strings.Repeat("a", MaxIDLength+1) }, "session"},
		{"missing kind", func(r *Request) { r.Kind = "" }, "kind is required"},
		{"bad kind", func(r *Request) { r.Kind = "LLM" }, "kind"},
		{"bad actor type", func(r *Request) { r.Actor.Type = "robot" }, "actor.type"},
		{"missing actor id", func(r *Request) { r.Actor.ID = "" }, "actor.id"},
		{"attr object", func(r *Request) { r.Attributes = map[string]json.RawMessage{"a": json.RawMessage(`{}`)} }, "objects are not allowed"},
		{"attr null", func(r *Request) { r.Attributes = map[string]json.RawMessage{"a": json.RawMessage(`null`)} }, "null"},
		{"attr nested array", func(r *Request) { r.Attributes = map[string]json.RawMessage{"a": json.RawMessage(`[[1]]`)} }, "nested"},
		{"attr bad name", func(r *Request) { r.Attributes = map[string]json.RawMessage{"a b": json.RawMessage(`1`)} }, "attribute name"},
		{"attr long string", func(r *Request) {
			r.Attributes = map[string]json.RawMessage{"a": json.RawMessage(`"` + strings.Repeat("x", MaxAttrValueLength+1) + `"`)}
		}, "longer than"},
		{"both payloads", func(r *Request) { r.Payload = json.RawMessage(`1`); r.PayloadBase64 = "AA==" }, "not both"},
		{"base64 without type", func(r *Request) { r.PayloadBase64 = "AA==" }, "media_type"},
		{"bad base64", func(r *Request) { r.PayloadBase64 = "!!"; r.MediaType = "application/octet-stream" }, "base64"},
		{"type without payload", func(r *Request) { r.MediaType = "text/plain" }, "without a payload"},
		{"binary payload", func(r *Request) { r.PayloadBase64 = "AAEC"; r.MediaType = "application/octet-stream" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok()
			tc.mod(r)
			_, err := Prepare(r)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidEvent) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate = %v, want ErrInvalidEvent containing %q", err, tc.want)
			}
		})
	}
}

func TestAttributeCanonicalForm(t *testing.T) {
	r := &Request{Session: "s", Kind: "llm.request", Actor: Actor{Type: "agent", ID: "a"},
		Attributes: map[string]json.RawMessage{
			"z":    json.RawMessage(`1.0`),
			"a":    json.RawMessage(`1e3`),
			"m":    json.RawMessage(`0.25`),
			"html": json.RawMessage(`"<b>&"`),
			"arr":  json.RawMessage(`["x", 2, true]`),
		}}
	p, err := Prepare(r)
	if err != nil {
		t.Fatal(err)
	}
	l := &Leaf{V: 1, ID: "i", Kind: r.Kind, Time: "t", Tenant: "t", Session: "s", Actor: r.Actor, Attributes: p.Attributes}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"id":"i","kind":"llm.request","time":"t","tenant":"t","session":"s","seq":0,"actor":{"type":"agent","id":"a"},"attributes":{"a":1000,"arr":["x",2,true],"html":"<b>&","m":0.25,"z":1}}`
	if string(b) != want {
		t.Fatalf("leaf =\n%s\nwant\n%s", b, want)
	}
	if !IsCanonical(b) {
		t.Fatal("IsCanonical(canonical leaf) = false")
	}
	if IsCanonical([]byte(strings.Replace(want, `"seq":0,`, `"seq":0, `, 1))) {
		t.Fatal("IsCanonical accepted non-canonical whitespace")
	}
}

var update = flag.Bool("update", false, "rewrite the test vectors in testdata from buildVector")

// Test vectors: the current leaf format (version 2), and version 1, which
// logs begun before version 2 hold and which still parses.
var vectors = []struct {
	path    string
	version int
}{
	{"../testdata/leaf-vector.json", LeafVersion},
	{"../testdata/leaf-vector-v1.json", LeafVersion1},
}

const vectorPath = "../testdata/leaf-vector.json"

// buildVector builds a test vector from fixed inputs: a leaf of the
// version, its payload and salt, the exact leaf bytes and hash.
func buildVector(t *testing.T, version int) []byte {
	t.Helper()
	payload := `{"model":"gpt-4o","messages":[{"role":"user","content":"Summarise the discharge note."}]}`
	salt, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	l := Leaf{
		V: version, ID: "5f2b8e0c9a7d4e31b6c0a1f2e3d4c5b6", Kind: "llm.request", Time: "2026-11-27T10:00:00.123456789Z",
		Tenant: "clinic-a", Session: "sess-42", Seq: 1,
		Prev:  "b1c2a3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
		Actor: Actor{Type: "agent", ID: "triage-bot", OnBehalfOf: "dr.smith"},
		Attributes: map[string]any{
			"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
		},
		Payload: NewCommitment(salt, []byte(payload), "application/json"),
	}
	comment := "LLMAuditTrail leaf format v1 test vector: see docs/leaf-format.md. Logs begun before version 2 hold such leaves. Rebuild: go test ./event -run TestLeafVector -update (not needed unless the format changes)."
	if version == LeafVersion {
		l.Actor.OnBehalfOf = "ps_2vqjm4sebx5bbwdqh7rbmtll"
		l.Subject = "ps_7bqs4agcvbfbxsa3d2uwyh3o"
		l.Writer = &Writer{Token: "9c41f27a0b5e6d83", Via: ViaProxy}
		comment = "LLMAuditTrail leaf format v2 test vector: see docs/leaf-format.md. Rebuild: go test ./event -run TestLeafVector -update (not needed unless the format changes)."
	}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{
		"comment":     comment,
		"leaf_fields": l, "payload": payload, "salt": hex.EncodeToString(salt),
		"leaf": string(b), "leaf_hash": hex.EncodeToString(LeafHash(b)),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// leafVector is a test vector file.
type leafVector struct {
	Comment     string `json:"comment"`
	Leaf        Leaf   `json:"leaf_fields"`
	PayloadJSON string `json:"payload"`
	SaltHex     string `json:"salt"`
	LeafText    string `json:"leaf"`
	LeafHashHex string `json:"leaf_hash"`
}

func TestLeafVector(t *testing.T) {
	for _, vec := range vectors {
		t.Run(fmt.Sprintf("v%d", vec.version), func(t *testing.T) {
			built := buildVector(t, vec.version)
			if *update {
				if err := os.WriteFile(vec.path, built, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := os.ReadFile(vec.path)
			if err != nil {
				t.Fatal(err)
			}
			// The file is exactly what the code builds today: neither can drift.
			if !bytes.Equal(raw, built) {
				t.Fatalf("%s differs from what buildVector makes now; the leaf format changed? (rebuild with -update only if that was intended)\nfile:\n%s\nbuilt:\n%s", vec.path, raw, built)
			}
			var v leafVector
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			salt, _ := hex.DecodeString(v.SaltHex)
			if got := hex.EncodeToString(Commit(salt, []byte(v.PayloadJSON))); got != v.Leaf.Payload.Digest {
				t.Errorf("commitment = %s, want %s", got, v.Leaf.Payload.Digest)
			}
			if !CheckCommitment(v.Leaf.Payload, salt, []byte(v.PayloadJSON)) {
				t.Error("CheckCommitment(vector) = false")
			}
			if CheckCommitment(v.Leaf.Payload, salt, []byte(v.PayloadJSON+" ")) {
				t.Error("CheckCommitment accepted a different payload")
			}
			b, err := v.Leaf.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != v.LeafText {
				t.Errorf("leaf =\n%s\nwant\n%s", b, v.LeafText)
			}
			if got := hex.EncodeToString(LeafHash(b)); got != v.LeafHashHex {
				t.Errorf("leaf hash = %s, want %s", got, v.LeafHashHex)
			}
			l, err := ParseLeaf([]byte(v.LeafText))
			if err != nil {
				t.Fatal(err)
			}
			if l.V != vec.version || l.Seq != 1 || l.Prev == "" || l.Payload.Size != len(v.PayloadJSON) || !IsCanonical([]byte(v.LeafText)) {
				t.Errorf("ParseLeaf(vector) = %+v", l)
			}
		})
	}
	// Versions are not mixed up: a writer in a v1 leaf, none in a v2 leaf.
	v1, _ := os.ReadFile(vectors[1].path)
	var v leafVector
	json.Unmarshal(v1, &v)
	for name, bad := range map[string]string{
		"v1 with a writer":  strings.Replace(v.LeafText, `,"attributes"`, `,"writer":{"token":"t","via":"api"},"attributes"`, 1),
		"v1 with a subject": strings.Replace(v.LeafText, `,"attributes"`, `,"subject":"ps_x","attributes"`, 1),
		"v2 without writer": strings.Replace(v.LeafText, `{"v":1,`, `{"v":2,`, 1),
		"v2 via elsewhere":  strings.Replace(strings.Replace(v.LeafText, `{"v":1,`, `{"v":2,`, 1), `,"attributes"`, `,"writer":{"token":"t","via":"email"},"attributes"`, 1),
	} {
		if _, err := ParseLeaf([]byte(bad)); err == nil {
			t.Errorf("%s: ParseLeaf accepted %s", name, bad)
		}
	}
}

func TestParseHead(t *testing.T) {
	var v leafVector
	raw, err := os.ReadFile(vectorPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	canonical := []byte(v.LeafText)
	want := Head{ID: "5f2b8e0c9a7d4e31b6c0a1f2e3d4c5b6", Kind: "llm.request", Time: "2026-11-27T10:00:00.123456789Z",
		Tenant: "clinic-a", Session: "sess-42", Seq: 1, Prev: "b1c2a3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"}
	if h, ok := scanHead(canonical); !ok || h != want {
		t.Fatalf("scanHead(vector) = %+v, %v; want %+v", h, ok, want)
	}
	for _, tc := range []struct {
		name string
		data string
		ok   bool
	}{
		{"canonical", v.LeafText, true},
		// Not canonical (white space): the strict path gives the same head.
		{"spaced", strings.Replace(v.LeafText, `"seq":1,`, `"seq": 1,`, 1), true},
		{"escaped session", strings.Replace(v.LeafText, `"sess-42"`, `"sess-42"`, 1), true},
		{"truncated", v.LeafText[:len(v.LeafText)-2], false},
		{"no tenant", strings.Replace(v.LeafText, `"clinic-a"`, `""`, 1), false},
		{"version 9", strings.Replace(v.LeafText, `"v":2`, `"v":9`, 1), false},
		{"leading zero seq", strings.Replace(v.LeafText, `"seq":1,`, `"seq":01,`, 1), false},
		{"not json", "{", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHead([]byte(tc.data))
			if (err == nil) != tc.ok {
				t.Fatalf("ParseHead = %+v, %v; want ok=%v", h, err, tc.ok)
			}
			if tc.ok && h != want {
				t.Fatalf("ParseHead = %+v, want %+v", h, want)
			}
		})
	}
}

func BenchmarkParseHead(b *testing.B) {
	var v leafVector
	raw, _ := os.ReadFile(vectorPath)
	json.Unmarshal(raw, &v)
	d := []byte(v.LeafText)
	b.Run("ParseHead", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseHead(d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParseLeaf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseLeaf(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"session":"s","kind":"llm.request","actor":{"type":"agent","id":"a"},"attributes":{"n":1.5,"s":"x","a":[1,"b"]},"payload":{"x":[1,2]}}`))
	f.Add([]byte(`{"session":"s","kind":"tool.call","actor":{"type":"human","id":"h","on_behalf_of":"p"},"payload_base64":"AAE=","media_type":"application/octet-stream"}`))
	f.Add([]byte(`{"seq":1}`))
	f.Add([]byte("\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRequest(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("error %v does not wrap ErrInvalidEvent", err)
			}
			return
		}
		p, err := Prepare(r)
		if err != nil {
			return
		}
		l := &Leaf{V: LeafVersion, ID: "id", Kind: r.Kind, Time: TimeFormat, Tenant: "t", Session: r.Session, Actor: r.Actor, Subject: r.Subject,
			Writer: &Writer{Token: "t0", Via: ViaAPI}, Attributes: p.Attributes}
		b, err := l.Marshal()
		if err != nil {
			t.Fatalf("valid event does not marshal: %v", err)
		}
		// Every leaf we write must parse back and be canonical.
		if !IsCanonical(b) {
			t.Fatalf("leaf is not canonical: %s", b)
		}
	})
}

func TestPermit(t *testing.T) {
	none := func(string) bool { return false }
	write := func(s string) bool { return s == ScopeWrite }
	monitor := func(s string) bool { return s == ScopeMonitor }
	audit := func(s string) bool { return s == ScopeAudit }
	for _, tc := range []struct {
		kind string
		has  func(string) bool
		ok   bool
	}{
		{"llm.request", write, true},
		{"llm.request", none, false},
		{"llm.request", monitor, false}, // a monitor's token appends its alerts, nothing else
		{"tool.result", write, true},
		{"capture.gap", write, true},
		{"access.read", write, false},
		{"access", none, false},
		{"accessory.x", write, true},
		{"monitor.alert", write, false},
		{"erasure", none, false},
		{"human.signature", audit, false},
		{"signer.enrolled", none, false},
		{"report.issued", monitor, false},
		{"monitor.alert", none, false},
		{"monitor.alert", audit, false},
		{"monitor.alert", monitor, true},
		{"monitor.status", monitor, true},
		{"replay.verdict", monitor, false},
		{"replay.verdict", audit, true},
	} {
		err := Permit(tc.kind, tc.has)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrReservedKind) && !errors.Is(err, ErrNoScope)) {
			t.Errorf("Permit(%s) = %v, want ok=%v", tc.kind, err, tc.ok)
		}
	}
	if !slices.Equal(AppendScopes(), []string{ScopeWrite, ScopeMonitor, ScopeAudit}) {
		t.Errorf("AppendScopes = %v", AppendScopes())
	}
	if !ServerOnly("access.read") || !ServerOnly("compliance.config") || ServerOnly("monitor.alert") || ServerOnly("llm.request") {
		t.Error("ServerOnly does not follow the table")
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	body := []byte(`{"session":"load-1","kind":"llm.request","actor":{"type":"agent","id":"loadgen"},"attributes":{"gen_ai.request.model":"bench-model","gen_ai.usage.input_tokens":7},"payload":{"prompt":"` + strings.Repeat("a", 1000) + `"}}`)
	b.Run("DecodeRequest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeRequest(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("strict keys only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := strictjson.Check(body, requestKeys); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestWriterVia: every way an event reaches the log parses in a version 2
// leaf, and nothing else does.
func TestWriterVia(t *testing.T) {
	for via, ok := range map[string]bool{ViaAPI: true, ViaProxy: true, ViaServer: true, ViaOTLP: true, "email": false, "": false, "OTLP": false} {
		l := &Leaf{V: LeafVersion, ID: "a", Kind: "llm.request", Time: "t", Tenant: "x", Session: "s",
			Actor: Actor{Type: "agent", ID: "b"}, Writer: &Writer{Token: "t", Via: via}}
		b, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseLeaf(b); (err == nil) != ok || ValidVia(via) != ok {
			t.Errorf("via %q: ParseLeaf error %v, ValidVia %v; want valid %v", via, err, ValidVia(via), ok)
		}
	}
}

// plainString returns what json.Unmarshal returns for every string it
// takes, and leaves to json.Unmarshal every other input.
func TestPlainString(t *testing.T) {
	for _, raw := range []string{`""`, `"abc"`, `"gpt-4o"`, `"é ü"`, "\"\xff\"", `"a\"b"`, `"a\\nb"`, "\"a\tb\"", `"\u00e9"`, `"`, `"abc`, `abc"`, `1`, `"a"b"`} {
		checkPlainString(t, []byte(raw))
	}
}

func FuzzPlainString(f *testing.F) {
	for _, s := range []string{`"abc"`, `"a\"b"`, "\"\xff\"", `"é"`, "\"a\x01\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(checkPlainString)
}

func checkPlainString(t *testing.T, raw []byte) {
	got, ok := plainString(raw)
	if !ok {
		return
	}
	var want string
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("plainString(%q) = %q, but json.Unmarshal refuses it: %v", raw, got, err)
	}
	if got != want {
		t.Fatalf("plainString(%q) = %q, json.Unmarshal %q", raw, got, want)
	}
}

// BenchmarkPrepare decodes and prepares an event as the capture proxy posts
// one: GenAI attributes and a 1 KiB JSON payload. cpu-ns/op is the
// process's CPU time per event (garbage collection included), steadier than
// the time on a shared machine.
func BenchmarkPrepare(b *testing.B) {
	defer reportCPU(b)()
	body := []byte(`{"session":"load-1","kind":"llm.request","actor":{"type":"agent","id":"loadgen"},"attributes":{"gen_ai.operation.name":"chat","gen_ai.provider.name":"openai","gen_ai.request.model":"gpt-4o-mini","gen_ai.response.model":"gpt-4o-mini-2024-07-18","gen_ai.usage.input_tokens":712,"gen_ai.usage.output_tokens":64,"gen_ai.response.finish_reasons":["stop"],"stream":false},"payload":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("a", 1000) + `"}]}}`)
	b.ReportAllocs()
	for b.Loop() {
		r, err := DecodeRequest(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Prepare(r); err != nil {
			b.Fatal(err)
		}
	}
}

// reportCPU reports the process's CPU time per iteration when the returned
// function is called.
func reportCPU(b *testing.B) func() {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	start := ru.Utime.Nano() + ru.Stime.Nano()
	return func() {
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		b.ReportMetric(float64(ru.Utime.Nano()+ru.Stime.Nano()-start)/float64(b.N), "cpu-ns/op")
	}
}

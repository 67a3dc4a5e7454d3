package log

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
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
			_, err := validate(r)
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
	p, err := validate(r)
	if err != nil {
		t.Fatal(err)
	}
	l := &Leaf{V: 1, ID: "i", Kind: r.Kind, Time: "t", Tenant: "t", Session: "s", Actor: r.Actor, Attributes: p.attrs}
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

// leafVector is testdata/leaf-vector.json: a leaf built from fixed inputs,
// its exact bytes and hashes, written by testdata/genvec.
type leafVector struct {
	Comment     string `json:"comment"`
	Leaf        Leaf   `json:"leaf_fields"`
	PayloadJSON string `json:"payload"`
	SaltHex     string `json:"salt"`
	LeafText    string `json:"leaf"`
	LeafHashHex string `json:"leaf_hash"`
}

func TestLeafVector(t *testing.T) {
	raw, err := os.ReadFile("../testdata/leaf-vector.json")
	if err != nil {
		t.Fatal(err)
	}
	var v leafVector
	dec := json.NewDecoder(strings.NewReader(string(raw)))
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
	if l.Seq != 1 || l.Prev == "" || l.Payload.Size != len(v.PayloadJSON) {
		t.Errorf("ParseLeaf(vector) = %+v", l)
	}
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
		p, err := validate(r)
		if err != nil {
			return
		}
		l := &Leaf{V: LeafVersion, ID: "id", Kind: r.Kind, Time: TimeFormat, Tenant: "t", Session: r.Session, Actor: r.Actor, Attributes: p.attrs}
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

package event

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestRequestAppendJSON: AppendJSON writes the bytes json.Marshal writes,
// for requests with HTML characters, U+2028, control characters, invalid
// UTF-8, white space in raw values, null and empty attribute values, and
// fails where json.Marshal fails.
func TestRequestAppendJSON(t *testing.T) {
	corrects := uint64(7)
	raws := []string{`{"prompt":"a"}`, `{"a": 1}`, ` [1,2] `, `"x<y"`, `{"s":"a\"b\\"}`, "\"\u2028\"", `{"k":"a&b"}`, `null`, `{"a":"\\u003c"}`,
		"\"\xff\"", `12.5e3`, `{"a":[{"b":{}},[]]}`, `{"a" :true}`, "{\n\"a\":1\n}", `{"a":"x\" y"}`, `{"a":"x\\", "b":1}`, `{"a":"x\\\" z"}`, `["\\",1]`, `["a\"b", "c\"d"]`}
	strs := []string{"", "s", "a<b", "x&y", "é", "\u2028", "\x00", "q\"", "b\\", "\xff", "tab\t", "plain-ascii 123"}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	for i := range 3000 {
		r := &Request{Session: pick(strs), Kind: pick(strs), Actor: Actor{Type: pick(strs), ID: pick(strs), OnBehalfOf: pick(strs)}, Subject: pick(strs),
			PayloadBase64: pick(strs), MediaType: pick(strs)}
		if rng.IntN(2) == 0 {
			r.Payload = json.RawMessage(pick(raws))
		}
		if n := rng.IntN(4); n > 0 {
			r.Attributes = map[string]json.RawMessage{}
			for range n {
				var v json.RawMessage
				if rng.IntN(5) > 0 {
					v = json.RawMessage(pick(raws))
				}
				r.Attributes[pick(strs)] = v
			}
		}
		if rng.IntN(3) == 0 {
			r.Corrects = &corrects
		}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("request %d: json.Marshal: %v", i, err)
		}
		got, err := r.AppendJSON(nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("request %d: AppendJSON\n got %s, %v\nwant %s", i, got, err, want)
		}
		batch := Requests{r, nil, r}
		want, _ = json.Marshal(map[string]any{"events": []*Request(batch)})
		if got, err = batch.AppendJSON(nil); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("batch %d: AppendJSON\n got %s, %v\nwant %s", i, got, err, want)
		}
	}
	for _, bad := range []string{`{"a":}`, `[1,]`, `"open`, "{\"a\":1}x", `<`, `{"a":"tab	in"}`} {
		r := &Request{Session: "s", Kind: "k", Payload: json.RawMessage(bad)}
		if _, err := json.Marshal(r); err == nil {
			t.Fatalf("json.Marshal accepted %q", bad)
		}
		if _, err := r.AppendJSON(nil); err == nil {
			t.Fatalf("AppendJSON accepted the payload %q", bad)
		}
		r.Payload, r.Attributes = nil, map[string]json.RawMessage{"x": json.RawMessage(bad)}
		if _, err := r.AppendJSON(nil); err == nil {
			t.Fatalf("AppendJSON accepted the attribute value %q", bad)
		}
	}
}

func BenchmarkRequestAppendJSON(b *testing.B) {
	payload := json.RawMessage(`{"prompt":"` + string(bytes.Repeat([]byte("a"), 984)) + `"}`)
	r := &Request{Session: "load-abc-12", Kind: KindLLMRequest, Actor: Actor{Type: "agent", ID: "loadgen"},
		Attributes: map[string]json.RawMessage{AttrGenAIRequestModel: json.RawMessage(`"bench-model"`), AttrGenAIUsageInputTokens: json.RawMessage("12345")},
		Payload:    payload}
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(r)
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.AppendJSON(nil)
		}
	})
}

package event

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// slowRequest is decodeRequest's encoding/json path.
func slowRequest(raw []byte) (*Request, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var w wireRequest
	if err := dec.Decode(&w); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, err
	}
	if w.V != nil || w.ID != nil || w.Time != nil || w.Tenant != nil || w.Seq != nil || w.Prev != nil || w.Writer != nil {
		return nil, io.ErrUnexpectedEOF
	}
	return &w.Request, nil
}

var fastRequestSeeds = []string{
	`{"session":"s-1","kind":"llm.request","actor":{"type":"agent","id":"bot","on_behalf_of":"u"},"subject":"p","attributes":{"gen_ai.request.model":"gpt","n":7,"f":1.5,"b":true,"a":["x",1],"e":"é\u00e9"},"payload":{"m":[{"r":"user","c":"hi \"there\""}]}}`,
	` { "session" : "s" , "kind" : "a.b" , "actor" : { } , "attributes" : { } } `,
	`{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"payload_base64":"aGk=","media_type":"text/plain"}`,
	`{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"payload":"text"}`,
	`{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"payload":12}`,
	`{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"payload":null}`,
	`{"session":"s\u0041","kind":"a.b","actor":{"type":"agent","id":"x"}}`,
	`{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"corrects":3}`,
	`{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"seq":3}`,
	`{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"}} {}`,
	`{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"attributes":{"a":tru}}`,
	`{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"attributes":{"a":01}}`,
	`{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"payload":{"a":"\x"}}`,
	`{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"payload":{"a":[1e,-01,"\ud800"]}}`,
	`{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"payload":{"a": "b c" , "d":[1,	2]}}`,
	`{"session":"s","kind":"a.b","actor":{"type":"agent","id":"x"},"payload":["b c",{"d":"\n"}]}`,
	`{}`,
}

// What fastRequest takes, encoding/json decodes to the same Request; where
// encoding/json refuses what fastRequest took, Prepare refuses it.
func FuzzFastRequest(f *testing.F) {
	for _, s := range fastRequestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkFastRequest(t, raw) })
}

func TestFastRequest(t *testing.T) {
	taken := 0
	for _, s := range fastRequestSeeds {
		if checkFastRequest(t, []byte(s)) {
			taken++
		}
	}
	// The common shapes must take the fast path, or it saves nothing.
	if taken < 6 {
		t.Errorf("fastRequest took %d of the seeds, want at least 6", taken)
	}
}

func checkFastRequest(t *testing.T, raw []byte) bool {
	if !utf8.Valid(raw) || strictjson.Check(raw, requestKeys) != nil {
		return false
	}
	fast, ok := fastRequest(raw)
	if !ok {
		return false
	}
	slow, err := slowRequest(raw)
	if err != nil {
		if _, perr := Prepare(fast); perr == nil {
			t.Fatalf("%q: encoding/json refuses it (%v), fastRequest and Prepare take it", raw, err)
		}
		return true
	}
	// Prepare resolves both to the same payload (the fast one may skip
	// compacting a copy).
	pf, errf := Prepare(fast)
	ps, errs := Prepare(slow)
	if (errf == nil) != (errs == nil) || errf == nil && !bytes.Equal(pf.Payload, ps.Payload) {
		t.Fatalf("%q: Prepare of fast %v, of slow %v", raw, errf, errs)
	}
	fast.compact = nil
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q:\nfast %#v\nslow %#v", raw, fast, slow)
	}
	return true
}

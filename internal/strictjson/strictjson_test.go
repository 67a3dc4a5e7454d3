package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

var testRule = &Object{Keys: map[string]*Object{
	"session": nil,
	"actor":   {Keys: map[string]*Object{"type": nil, "id": nil}},
	"attrs":   {AnyKeys: true},
	"payload": nil, // anything, not checked
	"list":    {Keys: map[string]*Object{"a": nil}},
}}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"session":"s","actor":{"type":"agent","id":"a"},"attrs":{"x":1,"X":2},"payload":{"k":1,"k":2}}`, true},
		{` { "list" : [ {"a":1} , {"a":[2, {"z":null}]} ] } `, true},
		{`{"session":"a\"b","attrs":{"q\u0022":true,"q\"2":false}}`, true},
		{`"not an object"`, true},
		{`{}`, true},
		{`{"session":"a","session":"b"}`, false},
		{`{"Session":"b"}`, false},
		{`{"sess\u0069on":"a","session":"b"}`, false}, // the same key, escaped
		{`{"actor":{"type":"agent","Type":"human"}}`, false},
		{`{"actor":{"id":"a","id":"b"}}`, false},
		{`{"attrs":{"x":1,"x":2}}`, false},
		{`{"list":[{"a":1},{"b":2}]}`, false},
		{`{"session":"s"} {}`, false},
		{`{"session":`, false},
		{`{"session" "s"}`, false},
		{`{"session":"s",}`, false},
		{`[1,2`, false},
	} {
		err := Check([]byte(tc.in), testRule)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%s) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

// reference is the same check done with encoding/json's tokenizer: slow,
// but obviously right on JSON.
func reference(data []byte, rule *Object) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var walk func(rule *Object) error
	walk = func(rule *Object) error {
		if rule == nil {
			var skip json.RawMessage
			return dec.Decode(&skip)
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return nil
		}
		if d == '[' {
			for dec.More() {
				if err := walk(rule); err != nil {
					return err
				}
			}
			_, err := dec.Token()
			return err
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			k := kt.(string)
			if seen[k] {
				return ErrKeys
			}
			seen[k] = true
			sub := rule.Values
			if !rule.AnyKeys {
				r, ok := rule.Keys[k]
				if !ok {
					return ErrKeys
				}
				sub = r
			}
			if err := walk(sub); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	if err := walk(rule); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}

// FuzzCheck: on valid JSON, Check agrees with the tokenizer-based
// reference (both accept, or both refuse the keys).
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		`{"session":"s","actor":{"type":"agent","id":"a"},"attrs":{"x":1,"X":2},"payload":{"k":1,"k":2}}`,
		`{"list":[{"a":1},{"a":2}],"session":"\u0073"}`,
		`{"attrs":{"x":1,"x":2}}`, `[{"Session":1}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			Check(data, testRule) // must not panic
			return
		}
		got, want := Check(data, testRule), reference(data, testRule)
		if errors.Is(got, ErrKeys) != errors.Is(want, ErrKeys) || (got == nil) != (want == nil) {
			t.Fatalf("Check(%s) = %v, reference %v", data, got, want)
		}
	})
}

// JSON nested deeper than MaxDepth is refused, and a deep document costs
// memory in proportion to its size (the path of each level used to be
// built for every value, which made 100,000 levels cost gigabytes).
func TestDepth(t *testing.T) {
	nest := func(n int) []byte {
		return []byte(`{"a":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`)
	}
	rule := &Object{Keys: map[string]*Object{"a": nil}}
	if err := Check(nest(MaxDepth-1), rule); err != nil {
		t.Fatalf("%d levels: %v", MaxDepth, err)
	}
	if err := Check(nest(MaxDepth), rule); err == nil {
		t.Fatalf("%d levels accepted", MaxDepth+1)
	}
	deep := nest(100000)
	allocs := testing.AllocsPerRun(3, func() { Check(deep, rule) })
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	Check(deep, rule)
	runtime.ReadMemStats(&ms)
	if got := ms.TotalAlloc - before; got > 1<<20 {
		t.Fatalf("checking 100,000 levels allocated %d bytes (%v allocations)", got, allocs)
	}
}

// A string value is checked as a key is (escapes), without building it: a
// long payload string is not copied.
func TestStringValues(t *testing.T) {
	for _, v := range []string{`"a"`, `"a\"b"`, `"\u00e9\n"`, `"\x"`, `"\u12"`, `"\ud800"`, `"abc`, `"\"`, `"é"`} {
		s1, s2 := scanner{b: []byte(v)}, scanner{b: []byte(v)}
		_, err1 := s1.str()
		err2 := s2.skipStr()
		if (err1 == nil) != (err2 == nil) || s1.i != s2.i {
			t.Errorf("%s: str %v at %d, skipStr %v at %d", v, err1, s1.i, err2, s2.i)
		}
	}
	body := []byte(`{"payload":{"prompt":"` + strings.Repeat("x", 4096) + `"}}`)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range 10 {
		Check(body, nil)
	}
	runtime.ReadMemStats(&m1)
	if n := (m1.TotalAlloc - m0.TotalAlloc) / 10; n >= 1024 {
		t.Errorf("Check of a 4 KiB string value allocates %d bytes, want less than 1 KiB", n)
	}
}

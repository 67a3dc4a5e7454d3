package strictjson

import (
	"errors"
	"testing"
)

func TestCheck(t *testing.T) {
	rule := &Object{Keys: map[string]*Object{
		"session": nil,
		"actor":   {Keys: map[string]*Object{"type": nil, "id": nil}},
		"attrs":   {AnyKeys: true},
		"payload": nil, // anything, not checked
		"list":    {Keys: map[string]*Object{"a": nil}},
	}}
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"session":"s","actor":{"type":"agent","id":"a"},"attrs":{"x":1,"X":2},"payload":{"k":1,"k":2}}`, true},
		{`{"list":[{"a":1},{"a":2}]}`, true},
		{`"not an object"`, true},
		{`{"session":"a","session":"b"}`, false},
		{`{"Session":"b"}`, false},
		{`{"actor":{"type":"agent","Type":"human"}}`, false},
		{`{"actor":{"id":"a","id":"b"}}`, false},
		{`{"attrs":{"x":1,"x":2}}`, false},
		{`{"list":[{"a":1},{"b":2}]}`, false},
		{`{"session":"s"} {}`, false},
		{`{"session":`, false},
	} {
		err := Check([]byte(tc.in), rule)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%s) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && tc.ok == false && !errors.Is(err, ErrKeys) && tc.in != `{"session":` {
			t.Errorf("Check(%s) = %v, want ErrKeys", tc.in, err)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add([]byte(`{"a":{"b":[1,{"c":2}]},"d":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		Check(data, &Object{AnyKeys: true, Values: &Object{AnyKeys: true}})
	})
}

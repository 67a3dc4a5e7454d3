package strictjson

import "testing"

// TestErrorPaths: a refused key is named with the path of its object
// where a rule applies, and without one where none does.
func TestErrorPaths(t *testing.T) {
	open := &Object{Keys: map[string]*Object{"name": nil}, Open: true}
	rule := &Object{Keys: map[string]*Object{
		"actor": {Keys: map[string]*Object{"id": nil}},
		"list":  {Keys: map[string]*Object{"a": {Keys: map[string]*Object{"b": nil}}, "o": open}},
		"attrs": {AnyKeys: true},
		"free":  nil,
	}}
	for in, want := range map[string]string{
		`{"actor":{"ID":1}}`:                     `bad JSON keys: unknown field "ID" in actor (field names are case-sensitive)`,
		`{"list":[{"a":{"b":1,"c":2}}]}`:         `bad JSON keys: unknown field "c" in list[].a (field names are case-sensitive)`,
		`{"list":[1,{"a":[{"b":1,"b":2}]}]}`:     `bad JSON keys: duplicate key "b" in list[].a[]`,
		`{"list":[{"o":{"x":1,"Name":2}}]}`:      `bad JSON keys: key "Name" is a case variant of the field "name" in list[].o`,
		`{"attrs":{"x":{"y":1},"x":2}}`:          `bad JSON keys: duplicate key "x" in attrs`,
		`{"free":{"x":1,"x":2},"actor":{"a":1}}`: `bad JSON keys: unknown field "a" in actor (field names are case-sensitive)`,
		`{"nope":1}`:                             `bad JSON keys: unknown field "nope" (field names are case-sensitive)`,
		`[{"actor":1,"actor":2}]`:                `bad JSON keys: duplicate key "actor" in ]`,
	} {
		err := Check([]byte(in), rule)
		if err == nil || err.Error() != want {
			t.Errorf("Check(%s) = %v, want %s", in, err, want)
		}
	}
	// A path is written only for an error, and a string value is not
	// copied: what is left are the keys that a rule checks (attrs, and
	// the list of keys seen) and the path's steps.
	data := []byte(`{"attrs":{"a":[{"b":"text","c":[1,2,{"d":"e"}]}],"f":"g"}}`)
	if raceEnabled {
		t.Log("allocations not counted under the race detector")
		return
	}
	if n := testing.AllocsPerRun(100, func() { Check(data, rule) }); n > 2 {
		t.Errorf("Check of a valid object: %.0f allocations", n)
	}
}

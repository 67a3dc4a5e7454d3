package strictjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// Wire messages: requests and responses of the LLM providers, MCP's
// JSON-RPC messages. The capture reads them on their way to a program that
// reads them too (an upstream in JavaScript, Python or Go), and what it
// records must be what that program acts on. encoding/json alone cannot
// promise it: it takes the last of duplicate names and matches struct
// fields without regard to case, where JavaScript's JSON.parse and
// Python's json take the last duplicate but match names exactly, and a Go
// upstream using encoding/json matches them in any case:
// {"model":"a","Model":"b"} is model "a" to the first and "b" to the
// second.
//
// Unmarshal therefore accepts only what every such reader reads alike:
//
//   - RFC 8259 JSON, one value, strings of valid UTF-8 without control
//     characters or lone surrogate escapes, no comments, NaN or trailing
//     data, nested at most MaxDepth deep and at most MaxWireBytes long;
//     otherwise an error wrapping ErrMalformed;
//   - no object anywhere with a name twice (names compared after
//     unescaping: "na\u006de" is "name"), and no member whose name equals
//     the JSON name of a struct field of v without regard to case but not
//     exactly ("Model" beside or instead of "model"); otherwise an error
//     wrapping ErrAmbiguous.
//
// After that check, encoding/json's case-insensitive matching can only
// ever match a name exactly, so the decode that follows reads what a
// case-sensitive reader reads, and with no duplicates and valid strings
// what JavaScript and Python read. The rule for v's type is derived from
// it by the same field rules as encoding/json (tags, "-", embedded
// structs); members that are not fields of v (map keys, members not read)
// are data, compared exactly, and never refused for their case. Fields
// whose type decodes itself (json.RawMessage, a json.Unmarshaler) hold
// their value's exact bytes; whoever reads those reads them with
// Unmarshal in turn.
//
// A value of the wrong type for a field (a number where v has a string) is
// not ambiguous: Unmarshal fills v with every well-typed value, as
// encoding/json does, and returns an error wrapping ErrType.
var (
	// ErrMalformed: the data is not strict JSON (see Unmarshal).
	ErrMalformed = errSyntax
	// ErrAmbiguous: readers could differ on the data (see Unmarshal).
	ErrAmbiguous = errors.New("ambiguous JSON")
	// ErrType: a value has the wrong type for its field (see Unmarshal).
	ErrType = errors.New("JSON value of the wrong type")
)

// MaxWireBytes bounds a wire message Unmarshal reads; callers bound their
// bodies lower.
const MaxWireBytes = 64 << 20

// Unmarshal decodes the wire message data into v, a non-nil pointer, which
// it overwrites (never merging into what v held) unless it returns an
// error other than ErrType. See the rules above; errors wrap ErrMalformed,
// ErrAmbiguous or ErrType.
func Unmarshal(data []byte, v any) error { return unmarshal(data, v, false) }

// UnmarshalProto is Unmarshal for messages in the proto3 JSON mapping
// (Google's APIs), whose parsers take a field by its JSON name
// (lowerCamelCase, systemInstruction) or by its proto name (snake_case,
// system_instruction). Every field of v whose JSON name has capitals may
// therefore also be spelled as its proto name: the JSON name with each
// capital lowered after an underscore (a proto name with an underscore
// before a digit, field_1, is not derived). Either spelling is read as the
// field; both in one object are a duplicate (ErrAmbiguous), and so are
// case variants of either.
func UnmarshalProto(data []byte, v any) error { return unmarshal(data, v, true) }

func unmarshal(data []byte, v any, proto bool) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("strictjson: Unmarshal into %T, want a non-nil pointer", v)
	}
	if len(data) > MaxWireBytes {
		return fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrMalformed, len(data), MaxWireBytes)
	}
	t := rv.Type().Elem()
	var path [8]step
	s := scanner{b: data, wire: true, path: path[:0]}
	s.ws()
	err := s.value(ruleFor(t, proto))
	if err == nil {
		if s.ws(); s.i != len(s.b) {
			err = fmt.Errorf("%w: trailing data", errSyntax)
		}
	}
	if err != nil {
		if errors.Is(err, ErrKeys) {
			return fmt.Errorf("%w: %v", ErrAmbiguous, err)
		}
		return err
	}
	if len(s.renames) > 0 {
		data = renamed(data, s.renames)
	}
	fresh := reflect.New(t)
	if err := json.Unmarshal(data, fresh.Interface()); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, ErrAmbiguous) || errors.Is(err, ErrMalformed):
			return err // from a field that decodes itself with Unmarshal
		case !errors.As(err, &te) && !errors.Is(err, ErrType):
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		rv.Elem().Set(fresh.Elem())
		return fmt.Errorf("%w: %v", ErrType, err)
	}
	rv.Elem().Set(fresh.Elem())
	return nil
}

// Valid reports (nil) whether data is what Unmarshal into an any accepts:
// strict JSON without duplicate names.
func Valid(data []byte) error {
	var path [8]step
	s := scanner{b: data, wire: true, path: path[:0]}
	s.ws()
	err := s.value(nil)
	if err == nil {
		if s.ws(); s.i != len(s.b) {
			return fmt.Errorf("%w: trailing data", errSyntax)
		}
		if !IsJSON(data) { // numbers and literals
			return fmt.Errorf("%w: not JSON", errSyntax)
		}
		return nil
	}
	if errors.Is(err, ErrKeys) {
		return fmt.Errorf("%w: %v", ErrAmbiguous, err)
	}
	return err
}

// renamed returns a copy of data with each key spelled as an alias
// replaced by the name of its field, so that encoding/json reads it there.
func renamed(data []byte, rs []rename) []byte {
	out := make([]byte, 0, len(data))
	last := 0
	for _, r := range rs {
		out = append(out, data[last:r.start]...)
		q, _ := json.Marshal(r.name)
		out = append(out, q...)
		last = r.end
	}
	return append(out, data[last:]...)
}

// ruleKey caches rules per type and mapping.
type ruleKey struct {
	t     reflect.Type
	proto bool
}

var rules sync.Map // ruleKey -> *Object (nil: no rule)

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// ruleFor is the Open rule that decoding into t follows: for each struct
// the JSON names of its fields, nil where t decodes no struct.
// With proto, each field's proto name is an alias of its JSON name (see
// UnmarshalProto).
func ruleFor(t reflect.Type, proto bool) *Object {
	k := ruleKey{t, proto}
	if r, ok := rules.Load(k); ok {
		return r.(*Object)
	}
	r := (&ruleBuilder{proto: proto, building: map[reflect.Type]*Object{}}).rule(t)
	rules.Store(k, r)
	return r
}

type ruleBuilder struct {
	proto    bool
	building map[reflect.Type]*Object
}

func (b *ruleBuilder) rule(t reflect.Type) *Object {
	if reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return nil // decodes itself from the raw value
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return b.rule(t.Elem())
	case reflect.Map:
		if v := b.rule(t.Elem()); v != nil {
			return &Object{AnyKeys: true, Values: v}
		}
		return nil
	case reflect.Struct:
		if r, ok := b.building[t]; ok {
			return r // recursive type
		}
		r := &Object{Keys: map[string]*Object{}, Open: true}
		b.building[t] = r
		b.addFields(r, t, 0)
		if b.proto {
			for name := range r.Keys {
				if p := protoName(name); p != name {
					if _, taken := r.Keys[p]; !taken {
						if r.Aliases == nil {
							r.Aliases = map[string]string{}
						}
						r.Aliases[p] = name
					}
				}
			}
		}
		return r
	}
	return nil
}

// protoName is the proto field name a lowerCamelCase JSON name is derived
// from: topP is top_p. Other names (Top, top_p, top) are their own.
func protoName(jsonName string) string {
	if jsonName == "" || !(jsonName[0] >= 'a' && jsonName[0] <= 'z') || strings.Contains(jsonName, "_") {
		return jsonName
	}
	var b strings.Builder
	for _, c := range jsonName {
		if c >= 'A' && c <= 'Z' {
			b.WriteByte('_')
			c += 'a' - 'A'
		}
		b.WriteRune(c)
	}
	return b.String()
}

// addFields adds the JSON names of t's fields to r, embedded structs
// inlined, as encoding/json sees them. (Where encoding/json would drop a
// name that two embedded structs share, r keeps it: refusing more, never
// less.)
func (b *ruleBuilder) addFields(r *Object, t reflect.Type, depth int) {
	if depth > 16 {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				b.addFields(r, ft, depth+1)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		r.Keys[name] = b.rule(f.Type)
	}
}

// Member returns the raw value of the member called name of the JSON
// object data when data is an object with exactly one member of that name
// (compared after unescaping) and none whose name equals it without regard
// to case; the rest of data is not judged beyond its syntax. It reads what
// can be read of a message that was refused, such as the id to answer a
// JSON-RPC error to.
func Member(data []byte, name string) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var val []byte
	n := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		switch {
		case k == name:
			n++
			val = v
		case strings.EqualFold(k, name):
			return nil, false
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') || n != 1 {
		return nil, false
	}
	return val, true
}

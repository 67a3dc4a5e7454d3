// Package strictjson checks the keys of JSON from outside before it is
// decoded with encoding/json, which takes the last of duplicate keys and
// matches struct fields without regard to case: {"session":"a","session":"b"}
// and {"Session":"b"} would both be read as session "b". Check refuses both.
package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Object is the rule for a JSON object: Keys lists the allowed keys (exact
// case) and the rule for each one's value (nil: any value, not checked).
// With AnyKeys set, any key is allowed and Values is the rule for every
// value (nil: any). With Open set, keys not in Keys are allowed too, unless
// they equal one of Keys without regard to case. Either way, no key may
// appear twice. A rule for an object applies to each element of an array
// in its place.
//
// Aliases maps another spelling of a key in Keys to that key (the proto
// name system_instruction of the field systemInstruction): the object may
// hold either spelling, and holding both is a duplicate key. Case variants
// of an alias are refused as those of a key are.
type Object struct {
	Keys    map[string]*Object
	AnyKeys bool
	Values  *Object
	Open    bool
	Aliases map[string]string
}

// ErrKeys is wrapped by every error Check returns for keys; other errors
// are about malformed JSON.
var ErrKeys = errors.New("bad JSON keys")

var errSyntax = errors.New("malformed JSON")

// MaxDepth bounds how deeply arrays and objects may nest. Check refuses
// deeper JSON: scanning it costs time and memory for nothing an audit event
// needs (encoding/json's own bound is 10,000).
const MaxDepth = 1000

// Check scans the JSON value in data and applies rule to it if it is an
// object. Values that are not objects where rule expects one are left to the
// decoder that follows. It scans without building values (keys with escapes
// aside), so it costs a fraction of a decode; data that is not JSON is an
// error, though only the decoder that follows checks every detail (numbers,
// escapes, UTF-8).
func Check(data []byte, rule *Object) error {
	var path [8]step
	s := scanner{b: data, path: path[:0]}
	s.ws()
	if err := s.value(rule); err != nil {
		return err
	}
	s.ws()
	if s.i != len(s.b) {
		return fmt.Errorf("%w: trailing data", errSyntax)
	}
	return nil
}

type scanner struct {
	b     []byte
	i     int
	depth int
	// wire: the stricter rules of Unmarshal (strings are valid UTF-8
	// without lone surrogates, no key twice in any object, rule or not).
	wire bool
	// renames are the keys spelled as an alias, in order (wire).
	renames []rename
	// path is the steps to the value being scanned.
	path []step
}

// rename is a key token at b[start:end] that names the field name.
type rename struct {
	start, end int
	name       string
}

// enter counts one more level of nesting.
func (s *scanner) enter() error {
	if s.depth++; s.depth > MaxDepth {
		return fmt.Errorf("%w: nested more than %d deep at offset %d", errSyntax, MaxDepth, s.i)
	}
	return nil
}

// step is one step of the path to the value being scanned: a key, or an
// array's element.
type step struct {
	key  string
	elem bool
}

// at names where a key of the object being scanned, under rule, was
// refused: " in " and its path (.messages[].content as messages[].content),
// or nothing at the top or where no rule applies (a rule applies to a
// value only if it applies to its parents). The path is written only
// here, for an error.
func (s *scanner) at(rule *Object) string {
	if rule == nil || len(s.path) == 0 {
		return ""
	}
	var b strings.Builder
	for _, st := range s.path {
		if st.elem {
			b.WriteString("[]")
		} else {
			b.WriteString("." + st.key)
		}
	}
	return " in " + b.String()[1:]
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eof() error { return fmt.Errorf("%w: unexpected end", errSyntax) }

// str scans a string at s.i (the opening quote) and returns its contents,
// unescaped if it has escapes.
func (s *scanner) str() (string, error) {
	start := s.i
	escaped, err := s.endStr()
	if err != nil {
		return "", err
	}
	if !escaped {
		return string(s.b[start+1 : s.i-1]), nil
	}
	var out string
	if err := json.Unmarshal(s.b[start:s.i], &out); err != nil {
		return "", fmt.Errorf("%w: %v", errSyntax, err)
	}
	return out, nil
}

// skipStr checks the string at s.i as str does, without building its
// value: a string value is not needed, and copying each one (a payload's
// prompt) was most of what Check allocated.
func (s *scanner) skipStr() error {
	start := s.i
	escaped, err := s.endStr()
	if err != nil {
		return err
	}
	return s.checkEscapes(start, escaped)
}

// endStr moves s.i past the string at s.i and reports whether it has
// escapes. Outside wire mode only its quotes and backslashes matter (a
// payload's strings are most of a body: StringEnd); in wire mode every
// character is checked (wireChar), runs of plain ASCII eight bytes at a
// time.
func (s *scanner) endStr() (escaped bool, err error) {
	if !s.wire {
		end, escaped, _ := StringEnd(s.b, s.i)
		if end < 0 {
			s.i = len(s.b)
			return false, s.eof()
		}
		s.i = end
		return escaped, nil
	}
	s.i++
	for s.i < len(s.b) {
		// Printable ASCII other than quotes and backslashes is itself,
		// whatever follows.
		if s.i += plainRun(s.b[s.i:]); s.i >= len(s.b) {
			break
		}
		n, err := s.wireChar()
		if err != nil {
			return false, err
		}
		if n > 0 { // a multi-byte character, or a surrogate pair's escapes
			escaped = escaped || s.b[s.i] == '\\'
			s.i += n
			continue
		}
		switch s.b[s.i] {
		case '\\':
			escaped = true
			s.i += 2
			continue
		case '"':
			s.i++
			return escaped, nil
		}
		s.i++
	}
	return false, s.eof()
}

// checkEscapes refuses the string at s.b[start:s.i] if it has escapes that
// str's json.Unmarshal refuses.
func (s *scanner) checkEscapes(start int, escaped bool) error {
	if escaped && !IsJSON(s.b[start:s.i]) {
		var out string
		return fmt.Errorf("%w: %v", errSyntax, json.Unmarshal(s.b[start:s.i], &out))
	}
	return nil
}

func (s *scanner) value(rule *Object) error {
	if s.i >= len(s.b) {
		return s.eof()
	}
	switch c := s.b[s.i]; c {
	case '{':
		return s.object(rule)
	case '[':
		if err := s.enter(); err != nil {
			return err
		}
		defer func() { s.depth-- }()
		s.i++
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ']' {
			s.i++
			return nil
		}
		for {
			s.ws()
			s.path = append(s.path, step{elem: true})
			err := s.value(rule)
			s.path = s.path[:len(s.path)-1]
			if err != nil {
				return err
			}
			s.ws()
			if s.i >= len(s.b) {
				return s.eof()
			}
			switch s.b[s.i] {
			case ',':
				s.i++
			case ']':
				s.i++
				return nil
			default:
				return fmt.Errorf("%w: at offset %d", errSyntax, s.i)
			}
		}
	case '"':
		return s.skipStr()
	default:
		// A number or a literal: up to the next delimiter.
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if s.i == start {
					return fmt.Errorf("%w: at offset %d", errSyntax, s.i)
				}
				return nil
			}
			s.i++
		}
		if s.i == start {
			return s.eof()
		}
		return nil
	}
}

func (s *scanner) object(rule *Object) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer func() { s.depth-- }()
	s.i++ // {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	var seen []string
	var seenSet map[string]bool
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return fmt.Errorf("%w: want a key at offset %d", errSyntax, s.i)
		}
		start := s.i
		k, err := s.str()
		if err != nil {
			return err
		}
		// id is the field k names: k, or the key k is an alias of.
		id := k
		if rule != nil && !rule.AnyKeys {
			if _, ok := rule.Keys[k]; !ok {
				if c, ok := rule.Aliases[k]; ok {
					id = c
					if s.wire {
						s.renames = append(s.renames, rename{start, s.i, c})
					}
				}
			}
		}
		var next *Object
		if rule != nil || s.wire {
			if seenSet == nil && len(seen) >= 16 {
				seenSet = make(map[string]bool, 2*len(seen))
				for _, p := range seen {
					seenSet[p] = true
				}
			}
			dup := seenSet[id]
			if seenSet == nil {
				for _, p := range seen {
					if p == id {
						dup = true
					}
				}
				seen = append(seen, id)
			} else {
				seenSet[id] = true
			}
			switch {
			case dup && rule != nil && rule.hasAlias(id):
				return fmt.Errorf("%w: the field %q appears twice, the second time as %q (its spellings name one field)%s", ErrKeys, id, k, s.at(rule))
			case dup:
				return fmt.Errorf("%w: duplicate key %q%s", ErrKeys, k, s.at(rule))
			}
		}
		if rule != nil {
			next = rule.Values
			if !rule.AnyKeys {
				r, ok := rule.Keys[id]
				switch {
				case ok:
					next = r
				case !rule.Open:
					return fmt.Errorf("%w: unknown field %q%s (field names are case-sensitive)", ErrKeys, k, s.at(rule))
				default:
					for name := range rule.Keys {
						if strings.EqualFold(name, k) {
							return fmt.Errorf("%w: key %q is a case variant of the field %q%s", ErrKeys, k, name, s.at(rule))
						}
					}
					for alias, name := range rule.Aliases {
						if strings.EqualFold(alias, k) {
							return fmt.Errorf("%w: key %q is a case variant of %q, a spelling of the field %q%s", ErrKeys, k, alias, name, s.at(rule))
						}
					}
					next = nil
				}
			}
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return fmt.Errorf("%w: want ':' at offset %d", errSyntax, s.i)
		}
		s.i++
		s.ws()
		s.path = append(s.path, step{key: k})
		err = s.value(next)
		s.path = s.path[:len(s.path)-1]
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.eof()
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return fmt.Errorf("%w: at offset %d", errSyntax, s.i)
		}
	}
}

// hasAlias reports whether the field name has another spelling.
func (o *Object) hasAlias(name string) bool {
	for _, c := range o.Aliases {
		if c == name {
			return true
		}
	}
	return false
}

// wireChar checks the string character at s.i (wire mode): no control
// characters, valid UTF-8, and \u escapes that are no lone surrogates
// (JavaScript keeps those; encoding/json would read U+FFFD). It returns how
// many bytes to step over: a multi-byte character, or a surrogate pair's
// two escapes; 0 for anything else (the caller steps).
func (s *scanner) wireChar() (int, error) {
	c := s.b[s.i]
	switch {
	case c < 0x20:
		return 0, fmt.Errorf("%w: control character in a string at offset %d", errSyntax, s.i)
	case c >= utf8.RuneSelf:
		r, n := utf8.DecodeRune(s.b[s.i:])
		if r == utf8.RuneError && n <= 1 {
			return 0, fmt.Errorf("%w: invalid UTF-8 at offset %d", errSyntax, s.i)
		}
		return n, nil
	case c == '\\' && s.i+1 < len(s.b) && s.b[s.i+1] == 'u':
		r, ok := hex4(s.b, s.i+2)
		if !ok {
			return 0, fmt.Errorf("%w: bad \\u escape at offset %d", errSyntax, s.i)
		}
		switch {
		case r >= 0xDC00 && r < 0xE000:
			return 0, fmt.Errorf("%w: lone surrogate escape at offset %d", errSyntax, s.i)
		case r >= 0xD800 && r < 0xDC00:
			lo, ok := rune(0), s.i+7 < len(s.b) && s.b[s.i+6] == '\\' && s.b[s.i+7] == 'u'
			if ok {
				lo, ok = hex4(s.b, s.i+8)
			}
			if !ok || lo < 0xDC00 || lo >= 0xE000 {
				return 0, fmt.Errorf("%w: lone surrogate escape at offset %d", errSyntax, s.i)
			}
			return 12, nil
		}
	}
	return 0, nil
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

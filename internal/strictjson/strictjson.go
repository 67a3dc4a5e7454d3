// Package strictjson checks the keys of JSON from outside before it is
// decoded with encoding/json, which takes the last of duplicate keys and
// matches struct fields without regard to case: {"session":"a","session":"b"}
// and {"Session":"b"} would both be read as session "b". Check refuses both.
package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Object is the rule for a JSON object: Keys lists the allowed keys (exact
// case) and the rule for each one's value (nil: any value, not checked).
// With AnyKeys set, any key is allowed and Values is the rule for every
// value (nil: any). Either way, no key may appear twice. A rule for an
// object applies to each element of an array in its place.
type Object struct {
	Keys    map[string]*Object
	AnyKeys bool
	Values  *Object
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
	s := scanner{b: data}
	s.ws()
	if err := s.value(rule, ""); err != nil {
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
}

// enter counts one more level of nesting.
func (s *scanner) enter() error {
	if s.depth++; s.depth > MaxDepth {
		return fmt.Errorf("%w: nested more than %d deep at offset %d", errSyntax, MaxDepth, s.i)
	}
	return nil
}

// sub returns the path of a nested value; paths are only kept where a rule
// applies (they name where a key was refused).
func sub(rule *Object, path, step string) string {
	if rule == nil {
		return ""
	}
	return path + step
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
	s.i++
	escaped := false
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			escaped = true
			s.i += 2
			continue
		case '"':
			s.i++
			if !escaped {
				return string(s.b[start+1 : s.i-1]), nil
			}
			var out string
			if err := json.Unmarshal(s.b[start:s.i], &out); err != nil {
				return "", fmt.Errorf("%w: %v", errSyntax, err)
			}
			return out, nil
		}
		s.i++
	}
	return "", s.eof()
}

func (s *scanner) value(rule *Object, path string) error {
	if s.i >= len(s.b) {
		return s.eof()
	}
	switch c := s.b[s.i]; c {
	case '{':
		return s.object(rule, path)
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
			if err := s.value(rule, sub(rule, path, "[]")); err != nil {
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
		_, err := s.str()
		return err
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

func (s *scanner) object(rule *Object, path string) error {
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
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return fmt.Errorf("%w: want a key at offset %d", errSyntax, s.i)
		}
		k, err := s.str()
		if err != nil {
			return err
		}
		var next *Object
		if rule != nil {
			for _, p := range seen {
				if p == k {
					return fmt.Errorf("%w: duplicate key %q%s", ErrKeys, k, at(path))
				}
			}
			seen = append(seen, k)
			next = rule.Values
			if !rule.AnyKeys {
				r, ok := rule.Keys[k]
				if !ok {
					return fmt.Errorf("%w: unknown field %q%s (field names are case-sensitive)", ErrKeys, k, at(path))
				}
				next = r
			}
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return fmt.Errorf("%w: want ':' at offset %d", errSyntax, s.i)
		}
		s.i++
		s.ws()
		if err := s.value(next, sub(next, path, "."+k)); err != nil {
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

func at(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path[1:]
}

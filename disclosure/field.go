package disclosure

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits of the fields one request may name.
const (
	MaxFields      = 32
	MaxFieldLength = 256
)

// ErrBadField: a field name is not of the form name(.name|[N]|[*])*.
var ErrBadField = errors.New("bad field")

// Field is a pattern over the paths of a payload's fields: model, usage,
// tools[*].name, messages[2].content. Its steps are member names, array
// indexes and [*] (every element).
type Field struct {
	steps []fieldStep
	text  string
}

type fieldStep struct {
	name  string
	index int
	kind  int // stepName, stepIndex, stepAny
}

const (
	stepName = iota
	stepIndex
	stepAny
)

// String is the field as written.
func (f Field) String() string { return f.text }

// ParseField reads one field: a member name, then any of .name, [N],
// [*] and ["name"]. A plain name is 1 or more characters other than '.',
// '[', ']', ',', '"' and controls; a name in ["..."] (a member whose name
// has dots, as the attributes of an event's body do:
// attributes["gen_ai.request.model"]) is 1 or more characters other than
// '"', '\\', ',', ']' and controls, and may also begin a field. A field
// has at most MaxDepth steps (a deeper value is part of its ancestor's
// disclosure).
func ParseField(s string) (Field, error) {
	f := Field{text: s}
	if s == "" || len(s) > MaxFieldLength {
		return Field{}, fmt.Errorf("%w: %q: empty or longer than %d bytes", ErrBadField, clip(s), MaxFieldLength)
	}
	control := func(r rune) bool { return r < ' ' || r == 0x7f }
	rest := s
	first := true
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, `["`):
			end := strings.Index(rest[2:], `"]`)
			if end < 0 {
				return Field{}, fmt.Errorf("%w: %q: [\" needs a closing \"]", ErrBadField, clip(s))
			}
			name := rest[2 : 2+end]
			if name == "" || strings.ContainsAny(name, "\"\\,]") || strings.ContainsFunc(name, control) {
				return Field{}, fmt.Errorf("%w: %q: a quoted name is not empty and has no quote, backslash, comma, ] or control character", ErrBadField, clip(s))
			}
			f.steps = append(f.steps, fieldStep{kind: stepName, name: name})
			rest = rest[2+end+2:]
		case rest[0] == '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 || first {
				return Field{}, fmt.Errorf("%w: %q: a field starts with a name, and [ needs a ]", ErrBadField, clip(s))
			}
			in := rest[1:end]
			if in == "*" {
				f.steps = append(f.steps, fieldStep{kind: stepAny})
			} else {
				n, err := strconv.Atoi(in)
				if err != nil || n < 0 || strconv.Itoa(n) != in {
					return Field{}, fmt.Errorf("%w: %q: an index is [*] or a number", ErrBadField, clip(s))
				}
				f.steps = append(f.steps, fieldStep{kind: stepIndex, index: n})
			}
			rest = rest[end+1:]
		default:
			if !first {
				if rest[0] != '.' {
					return Field{}, fmt.Errorf("%w: %q: expected . or [ after a step", ErrBadField, clip(s))
				}
				rest = rest[1:]
			}
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			name := rest[:end]
			if name == "" || strings.ContainsAny(name, "],\"") || strings.ContainsFunc(name, control) {
				return Field{}, fmt.Errorf("%w: %q: empty name or a name with ], a comma, a quote or a control character", ErrBadField, clip(s))
			}
			f.steps = append(f.steps, fieldStep{kind: stepName, name: name})
			rest = rest[end:]
		}
		first = false
	}
	if len(f.steps) > MaxDepth {
		return Field{}, fmt.Errorf("%w: %q: more than %d steps (a deeper value is disclosed with its ancestor at depth %d)", ErrBadField, clip(s), MaxDepth, MaxDepth)
	}
	return f, nil
}

// ParseFields reads a comma-separated list of fields (the fields query of
// GET /v1/events/{index}/disclosure), at most MaxFields, each once.
func ParseFields(list string) ([]Field, error) {
	if list == "" {
		return nil, fmt.Errorf("%w: no field named", ErrBadField)
	}
	parts := strings.Split(list, ",")
	if len(parts) > MaxFields {
		return nil, fmt.Errorf("%w: %d fields, at most %d", ErrBadField, len(parts), MaxFields)
	}
	seen := map[string]bool{}
	out := make([]Field, 0, len(parts))
	for _, p := range parts {
		f, err := ParseField(p)
		if err != nil {
			return nil, err
		}
		if seen[p] {
			return nil, fmt.Errorf("%w: %q twice", ErrBadField, clip(p))
		}
		seen[p] = true
		out = append(out, f)
	}
	return out, nil
}

// match reports whether path is exactly what f names.
func (f Field) match(path []Step) bool {
	if len(path) != len(f.steps) {
		return false
	}
	for i, s := range f.steps {
		p := path[i]
		switch s.kind {
		case stepName:
			if p.IsIndex || p.Name != s.name {
				return false
			}
		case stepIndex:
			if !p.IsIndex || p.Index != s.index {
				return false
			}
		case stepAny:
			if !p.IsIndex {
				return false
			}
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

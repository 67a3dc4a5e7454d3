package disclosure

import (
	"encoding/json"
	"slices"
	"strings"
)

// parseChecked reads data, which strictjson.Check accepted, as parse's
// encoding/json path (a decode into any, then convert) reads it, without
// the intermediate maps. ok is false where it would differ or fail (a
// reserved key, a key twice after unescaping, nesting beyond maxNesting,
// anything unexpected): the caller then takes that path, for its result
// and its error.
func parseChecked(data []byte) (v *value, ok bool) {
	p := vparser{b: data}
	v, ok = p.value(0)
	if !ok {
		return nil, false
	}
	p.ws()
	return v, p.i == len(p.b)
}

type vparser struct {
	b []byte
	i int
}

func (p *vparser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *vparser) value(depth int) (*value, bool) {
	if depth > maxNesting {
		return nil, false
	}
	p.ws()
	if p.i >= len(p.b) {
		return nil, false
	}
	switch c := p.b[p.i]; {
	case c == '{':
		p.i++
		v := &value{kind: kindObject}
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			return v, true
		}
		for {
			p.ws()
			k, _, ok := p.str()
			if !ok || k == keySD || k == keySDAlg || k == keyArray {
				return nil, false
			}
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return nil, false
			}
			p.i++
			mv, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			v.members = append(v.members, member{name: k, v: mv})
			p.ws()
			if p.i >= len(p.b) {
				return nil, false
			}
			p.i++
			if p.b[p.i-1] == '}' {
				break
			}
			if p.b[p.i-1] != ',' {
				return nil, false
			}
		}
		slices.SortFunc(v.members, func(a, b member) int { return strings.Compare(a.name, b.name) })
		for i := 1; i < len(v.members); i++ {
			if v.members[i].name == v.members[i-1].name {
				return nil, false
			}
		}
		return v, true
	case c == '[':
		p.i++
		v := &value{kind: kindArray}
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return v, true
		}
		for {
			e, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			v.elems = append(v.elems, e)
			p.ws()
			if p.i >= len(p.b) {
				return nil, false
			}
			p.i++
			if p.b[p.i-1] == ']' {
				return v, true
			}
			if p.b[p.i-1] != ',' {
				return nil, false
			}
		}
	case c == '"':
		start := p.i
		raw, ok := p.skipString()
		if !ok {
			return nil, false
		}
		if raw {
			// Plain: the token is the string as appendString writes it.
			return &value{scalar: p.b[start:p.i]}, true
		}
		var s string
		if json.Unmarshal(p.b[start:p.i], &s) != nil {
			return nil, false
		}
		return &value{scalar: appendString(nil, s)}, true
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		if !p.number() {
			return nil, false
		}
		return &value{scalar: p.b[start:p.i]}, true
	}
	for _, lit := range []string{"true", "false", "null"} {
		if strings.HasPrefix(string(p.b[p.i:min(len(p.b), p.i+len(lit))]), lit) {
			p.i += len(lit)
			return &value{scalar: []byte(lit)}, true
		}
	}
	return nil, false
}

// str reads the string token at p.i and returns its value; raw reports
// that the token holds only printable ASCII without an escape, so that
// the value is the token's inside as it is.
func (p *vparser) str() (s string, raw bool, ok bool) {
	start := p.i
	if raw, ok = p.skipString(); !ok {
		return "", false, false
	}
	if raw {
		return string(p.b[start+1 : p.i-1]), true, true
	}
	if json.Unmarshal(p.b[start:p.i], &s) != nil {
		return "", false, false
	}
	return s, false, true
}

// skipString moves past the string token at p.i; raw is as for str.
func (p *vparser) skipString() (raw bool, ok bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return false, false
	}
	raw = true
	p.i++
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return raw, true
		case c == '\\':
			raw = false
			p.i += 2
			continue
		case c < 0x20 || c >= 0x7f:
			raw = false
		}
		p.i++
	}
	return false, false
}

// number reads a number token at p.i as JSON's grammar has it:
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
func (p *vparser) number() bool {
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case digits() == 0:
		return false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return false
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

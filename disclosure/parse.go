package disclosure

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
)

// parseDirect reads data, which strictjson.Check has passed, into a value
// in one pass, without encoding/json's decoding into map[string]any: the
// value parseAny makes, byte for byte. A string with an escape, a control
// character or a byte outside printable ASCII is decoded by encoding/json,
// as parseAny decodes it. ok is false when parseDirect refuses data or
// cannot say (two keys of an object that decode to one name, which only
// strings that are not valid UTF-8 can do: encoding/json keeps the last,
// and the value it drops may hold what parseDirect refused): parseAny
// decides then, so that both accept and refuse the same payloads.
func parseDirect(data []byte) (v *value, ok bool) {
	p := directParser{b: data}
	p.ws()
	v, err := p.value(0)
	if err != nil {
		return nil, false
	}
	if p.ws(); p.i != len(p.b) {
		return nil, false
	}
	return v, true
}

// parseAny reads data with encoding/json into any and converts that.
func parseAny(data []byte) (*value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return convert(x, 0)
}

type directParser struct {
	b []byte
	i int
}

var errDirectSyntax = errors.New("invalid JSON")

func (p *directParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value reads the value at p.i, at depth (convert's).
func (p *directParser) value(depth int) (*value, error) {
	if depth > maxNesting {
		return nil, errors.New("nested too deeply")
	}
	if p.i >= len(p.b) {
		return nil, errDirectSyntax
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		raw, s, plain, err := p.str()
		if err != nil {
			return nil, err
		}
		if plain {
			return &value{scalar: raw}, nil
		}
		return &value{scalar: appendString(nil, s)}, nil
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(p.b[p.i:], []byte(lit)) {
			p.i += len(lit)
			return &value{scalar: []byte(lit)}, nil
		}
	}
	return nil, errDirectSyntax
}

// str reads the string at p.i: its token, and its contents. plain: the
// token is the contents quoted, as appendString writes them (then s is
// not set).
func (p *directParser) str() (raw []byte, s string, plain bool, err error) {
	start := p.i
	p.i++
	plain = true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			raw = p.b[start:p.i]
			if plain {
				return raw, "", true, nil
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, "", false, err
			}
			return raw, s, false, nil
		case c == '\\':
			plain = false
			p.i += 2
			continue
		case c < 0x20 || c >= 0x7f:
			plain = false
		}
		p.i++
	}
	return nil, "", false, errDirectSyntax
}

// key reads an object's key at p.i.
func (p *directParser) key() (string, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", errDirectSyntax
	}
	raw, s, plain, err := p.str()
	if err != nil {
		return "", err
	}
	if plain {
		return string(raw[1 : len(raw)-1]), nil
	}
	return s, nil
}

// number reads a number as JSON has it: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *directParser) number() (*value, error) {
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case digits() == 0:
		return nil, errDirectSyntax
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, errDirectSyntax
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, errDirectSyntax
		}
	}
	return &value{scalar: p.b[start:p.i]}, nil
}

func (p *directParser) object(depth int) (*value, error) {
	p.i++ // {
	v := &value{kind: kindObject}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		v.members = []member{}
		return v, nil
	}
	for {
		p.ws()
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		if k == keySD || k == keySDAlg || k == keyArray {
			return nil, errors.New("reserved key")
		}
		if p.ws(); p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, errDirectSyntax
		}
		p.i++
		p.ws()
		mv, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.members = append(v.members, member{name: k, v: mv})
		p.ws()
		if p.i >= len(p.b) {
			return nil, errDirectSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			continue
		case '}':
			p.i++
		default:
			return nil, errDirectSyntax
		}
		break
	}
	slices.SortFunc(v.members, func(a, b member) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(v.members); i++ {
		if v.members[i].name == v.members[i-1].name { // parseAny decides
			return nil, errDirectSyntax
		}
	}
	return v, nil
}

func (p *directParser) array(depth int) (*value, error) {
	p.i++ // [
	v := &value{kind: kindArray, elems: []*value{}}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return v, nil
	}
	for {
		p.ws()
		e, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.elems = append(v.elems, e)
		p.ws()
		if p.i >= len(p.b) {
			return nil, errDirectSyntax
		}
		switch p.b[p.i] {
		case ',':
			p.i++
			continue
		case ']':
			p.i++
			return v, nil
		}
		return nil, errDirectSyntax
	}
}

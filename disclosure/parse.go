package disclosure

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
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
func parseDirect(data []byte, a *arena) (v *value, ok bool) {
	clear(a.mstack)
	clear(a.estack)
	a.mstack, a.estack = a.mstack[:0], a.estack[:0] // what a refused text left
	p := directParser{Cursor: strictjson.Cursor{B: data}, a: a}
	p.WS()
	v, err := p.value(0)
	if err != nil {
		return nil, false
	}
	if p.WS(); p.I != len(p.B) {
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
	strictjson.Cursor
	a *arena
}

// arena holds the values of parsed payloads, reused call after call (a
// builder's scratch has one): the values, members and elements are
// carved out of chunks, and an object's members (an array's elements)
// are gathered on a stack while it is read. Nothing parsed outlives the
// builder: reset drops it all.
type arena struct {
	vals   []value
	mems   []member
	elems  []*value
	mstack []member
	estack []*value
}

// arenaChunk is the smallest chunk an arena allocates.
const arenaChunk = 128

// reset empties a, dropping what its values point to.
func (a *arena) reset() {
	clear(a.vals)
	clear(a.mems)
	clear(a.elems)
	a.vals, a.mems, a.elems = a.vals[:0], a.mems[:0], a.elems[:0]
}

// newValue is a zero value from the arena.
func (p *directParser) newValue() *value {
	a := p.a
	if len(a.vals) == cap(a.vals) {
		a.vals = make([]value, 0, arenaChunk) // the full chunk stays with the values in it
	}
	a.vals = a.vals[:len(a.vals)+1]
	return &a.vals[len(a.vals)-1]
}

// carve returns a slice of n elements of *chunk, a new chunk if it has
// no room.
func carve[T any](chunk *[]T, n int) []T {
	c := *chunk
	if cap(c)-len(c) < n {
		c = make([]T, 0, max(arenaChunk, n))
	}
	s := c[len(c) : len(c)+n : len(c)+n]
	*chunk = c[:len(c)+n]
	return s
}

var errDirectSyntax = errors.New("invalid JSON")

// value reads the value at p.I, at depth (convert's).
func (p *directParser) value(depth int) (*value, error) {
	if depth > maxNesting {
		return nil, errors.New("nested too deeply")
	}
	if p.I >= len(p.B) {
		return nil, errDirectSyntax
	}
	switch c := p.B[p.I]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		raw, s, plain, err := p.str()
		if err != nil {
			return nil, err
		}
		v := p.newValue()
		if plain {
			v.scalar = raw
		} else {
			v.scalar = appendString(nil, s)
		}
		return v, nil
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	}
	for _, lit := range literals {
		if bytes.HasPrefix(p.B[p.I:], lit) {
			p.I += len(lit)
			v := p.newValue()
			v.scalar = lit // read only, as every scalar
			return v, nil
		}
	}
	return nil, errDirectSyntax
}

var literals = [][]byte{[]byte("true"), []byte("false"), []byte("null")}

// str reads the string at p.I: its token, and its contents. plain: the
// token is the contents quoted, as appendString writes them (then s is
// not set).
func (p *directParser) str() (raw []byte, s string, plain bool, err error) {
	start := p.I
	end, _, plain := strictjson.StringEnd(p.B, start)
	if end < 0 {
		p.I = len(p.B)
		return nil, "", false, errDirectSyntax
	}
	p.I = end
	raw = p.B[start:end]
	if plain {
		return raw, "", true, nil
	}
	var u string // not s: its address would move s to the heap on every call
	if err := json.Unmarshal(raw, &u); err != nil {
		return nil, "", false, err
	}
	return raw, u, false, nil
}

// key reads an object's key at p.I.
func (p *directParser) key() (string, error) {
	if p.I >= len(p.B) || p.B[p.I] != '"' {
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
	start := p.I
	digits := func() int {
		n := 0
		for p.I < len(p.B) && '0' <= p.B[p.I] && p.B[p.I] <= '9' {
			p.I++
			n++
		}
		return n
	}
	if p.B[p.I] == '-' {
		p.I++
	}
	switch {
	case p.I < len(p.B) && p.B[p.I] == '0':
		p.I++
	case digits() == 0:
		return nil, errDirectSyntax
	}
	if p.I < len(p.B) && p.B[p.I] == '.' {
		p.I++
		if digits() == 0 {
			return nil, errDirectSyntax
		}
	}
	if p.I < len(p.B) && (p.B[p.I] == 'e' || p.B[p.I] == 'E') {
		p.I++
		if p.I < len(p.B) && (p.B[p.I] == '+' || p.B[p.I] == '-') {
			p.I++
		}
		if digits() == 0 {
			return nil, errDirectSyntax
		}
	}
	v := p.newValue()
	v.scalar = p.B[start:p.I]
	return v, nil
}

func (p *directParser) object(depth int) (*value, error) {
	p.I++ // {
	v := p.newValue()
	v.kind = kindObject
	p.WS()
	if p.I < len(p.B) && p.B[p.I] == '}' {
		p.I++
		v.members = carve(&p.a.mems, 0)
		return v, nil
	}
	a := p.a
	base := len(a.mstack) // this object's members are a.mstack[base:]
	for {
		p.WS()
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		if k == keySD || k == keySDAlg || k == keyArray {
			return nil, errors.New("reserved key")
		}
		if p.WS(); p.I >= len(p.B) || p.B[p.I] != ':' {
			return nil, errDirectSyntax
		}
		p.I++
		p.WS()
		mv, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a.mstack = append(a.mstack, member{name: k, v: mv})
		p.WS()
		if p.I >= len(p.B) {
			return nil, errDirectSyntax
		}
		switch p.B[p.I] {
		case ',':
			p.I++
			continue
		case '}':
			p.I++
		default:
			return nil, errDirectSyntax
		}
		break
	}
	v.members = carve(&a.mems, len(a.mstack)-base)
	copy(v.members, a.mstack[base:])
	clear(a.mstack[base:])
	a.mstack = a.mstack[:base]
	slices.SortFunc(v.members, func(a, b member) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(v.members); i++ {
		if v.members[i].name == v.members[i-1].name { // parseAny decides
			return nil, errDirectSyntax
		}
	}
	return v, nil
}

func (p *directParser) array(depth int) (*value, error) {
	p.I++ // [
	v := p.newValue()
	v.kind = kindArray
	p.WS()
	if p.I < len(p.B) && p.B[p.I] == ']' {
		p.I++
		v.elems = carve(&p.a.elems, 0)
		return v, nil
	}
	a := p.a
	base := len(a.estack) // this array's elements are a.estack[base:]
	for {
		p.WS()
		e, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a.estack = append(a.estack, e)
		p.WS()
		if p.I >= len(p.B) {
			return nil, errDirectSyntax
		}
		switch p.B[p.I] {
		case ',':
			p.I++
			continue
		case ']':
			p.I++
			v.elems = carve(&a.elems, len(a.estack)-base)
			copy(v.elems, a.estack[base:])
			clear(a.estack[base:])
			a.estack = a.estack[:base]
			return v, nil
		}
		return nil, errDirectSyntax
	}
}

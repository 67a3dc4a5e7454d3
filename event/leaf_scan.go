package event

import (
	"encoding/json"
	"strconv"
	"strings"
)

// scanLeaf reads a leaf in canonical form (Leaf.Marshal: compact, fields
// in struct order, attribute keys sorted, no whitespace) without
// encoding/json, for ParseLeaf. It accepts only a narrow grammar: strings
// without escapes or control characters, numbers as JSON writes them,
// attribute values that are scalars or flat arrays of scalars. For
// everything it accepts, decoding strictly gives the same Leaf (a fuzz
// test holds the two to that); anything else is ok=false, and ParseLeaf
// decodes it. data must be valid UTF-8.
func scanLeaf(data []byte) (l *Leaf, ok bool) {
	s := leafScanner{p: string(data)} // one copy: every field is a part of it
	l = &Leaf{}
	var v uint64
	if !s.lit(`{"v":`) || !s.uint(&v) || v > 1<<31 || !s.lit(`,"id":`) || !s.str(&l.ID) ||
		!s.lit(`,"kind":`) || !s.str(&l.Kind) || !s.lit(`,"time":`) || !s.str(&l.Time) ||
		!s.lit(`,"tenant":`) || !s.str(&l.Tenant) || !s.lit(`,"session":`) || !s.str(&l.Session) ||
		!s.lit(`,"seq":`) || !s.uint(&l.Seq) {
		return nil, false
	}
	l.V = int(v)
	if s.lit(`,"prev":`) && (!s.str(&l.Prev) || l.Prev == "") {
		return nil, false
	}
	if !s.lit(`,"actor":{"type":`) || !s.str(&l.Actor.Type) || !s.lit(`,"id":`) || !s.str(&l.Actor.ID) {
		return nil, false
	}
	if s.lit(`,"on_behalf_of":`) && (!s.str(&l.Actor.OnBehalfOf) || l.Actor.OnBehalfOf == "") {
		return nil, false
	}
	if !s.lit(`}`) {
		return nil, false
	}
	if s.lit(`,"subject":`) && (!s.str(&l.Subject) || l.Subject == "") {
		return nil, false
	}
	if s.lit(`,"writer":{"token":`) {
		l.Writer = &Writer{}
		if !s.str(&l.Writer.Token) || !s.lit(`,"via":`) || !s.str(&l.Writer.Via) || !s.lit(`}`) {
			return nil, false
		}
	}
	if s.lit(`,"attributes":{`) {
		l.Attributes = map[string]any{}
		var prev string
		for first := true; ; first = false {
			if !first && s.lit(`}`) {
				break
			}
			var k string
			if !first && !s.lit(`,`) {
				return nil, false
			}
			if !s.str(&k) || (!first && k <= prev) || !s.lit(`:`) {
				return nil, false
			}
			x, ok := s.value(true)
			if !ok {
				return nil, false
			}
			l.Attributes[k], prev = x, k
		}
	}
	if s.lit(`,"payload":{"alg":`) {
		c := &Commitment{}
		var size uint64
		if !s.str(&c.Alg) || !s.lit(`,"digest":`) || !s.str(&c.Digest) || !s.lit(`,"size":`) || !s.uint(&size) || size > 1<<53 ||
			!s.lit(`,"media_type":`) || !s.str(&c.MediaType) {
			return nil, false
		}
		if s.lit(`,"sd":`) && (!s.str(&c.SD) || c.SD == "") {
			return nil, false
		}
		if s.lit(`,"sd_v":`) {
			var v uint64
			if !s.uint(&v) || v == 0 || v > 1<<20 {
				return nil, false
			}
			c.SDV = int(v)
		}
		if !s.lit(`}`) {
			return nil, false
		}
		c.Size, l.Payload = int(size), c
	}
	if s.lit(`,"corrects":`) {
		var n uint64
		if !s.uint(&n) {
			return nil, false
		}
		l.Corrects = &n
	}
	if !s.lit(`}`) || len(s.p) != 0 {
		return nil, false
	}
	return l, true
}

type leafScanner struct{ p string }

func (s *leafScanner) lit(x string) bool {
	var ok bool
	s.p, ok = strings.CutPrefix(s.p, x)
	return ok
}

// str reads a string without escapes or control characters.
func (s *leafScanner) str(dst *string) bool {
	if len(s.p) == 0 || s.p[0] != '"' {
		return false
	}
	i := strings.IndexByte(s.p[1:], '"')
	if i < 0 {
		return false
	}
	b := s.p[1 : 1+i]
	for j := range len(b) {
		if c := b[j]; c < 0x20 || c == '\\' {
			return false
		}
	}
	*dst = b
	s.p = s.p[2+i:]
	return true
}

// uint reads a non-negative integer as JSON writes it (no leading zeros).
func (s *leafScanner) uint(dst *uint64) bool {
	i := 0
	for i < len(s.p) && s.p[i] >= '0' && s.p[i] <= '9' {
		i++
	}
	if i == 0 || (i > 1 && s.p[0] == '0') || (i < len(s.p) && (s.p[i] == '.' || s.p[i] == 'e' || s.p[i] == 'E')) {
		return false
	}
	n, err := strconv.ParseUint(s.p[:i], 10, 64)
	if err != nil {
		return false
	}
	*dst, s.p = n, s.p[i:]
	return true
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *leafScanner) number() (json.Number, bool) {
	p, i := s.p, 0
	digits := func() int {
		j := i
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(p) && p[i] == '-' {
		i++
	}
	start := i
	if n := digits(); n == 0 || (n > 1 && p[start] == '0') {
		return "", false
	}
	if i < len(p) && p[i] == '.' {
		i++
		if digits() == 0 {
			return "", false
		}
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		if digits() == 0 {
			return "", false
		}
	}
	s.p = p[i:]
	return json.Number(p[:i]), true
}

// value reads an attribute value: a string, true, false, a number, or
// (when array) a flat array of those.
func (s *leafScanner) value(array bool) (any, bool) {
	if len(s.p) == 0 {
		return nil, false
	}
	switch c := s.p[0]; {
	case c == '"':
		var x string
		if !s.str(&x) {
			return nil, false
		}
		return x, true
	case s.lit("true"):
		return true, true
	case s.lit("false"):
		return false, true
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == '[' && array:
		s.p = s.p[1:]
		out := make([]any, 0)
		if s.lit("]") {
			return out, true
		}
		for {
			x, ok := s.value(false)
			if !ok {
				return nil, false
			}
			out = append(out, x)
			if s.lit("]") {
				return out, true
			}
			if !s.lit(",") {
				return nil, false
			}
		}
	}
	return nil, false
}

package strictjson

import "bytes"

// maxNesting is encoding/json's bound on nesting: IsJSON refuses deeper
// JSON as json.Valid does.
const maxNesting = 10000

// IsJSON reports whether data is one JSON value (with white space around
// it), giving json.Valid's answer (FuzzIsJSON compares them) at a fraction
// of its cost: the runs of plain characters in strings, most of a
// payload, are passed over in a tight loop instead of one step of
// encoding/json's state machine per byte. Like json.Valid it does not
// check that strings are UTF-8.
func IsJSON(data []byte) bool {
	v := validator{b: data}
	v.ws()
	if !v.value(0) {
		return false
	}
	v.ws()
	return v.i == len(v.b)
}

type validator struct {
	b []byte
	i int
}

func (v *validator) ws() {
	for v.i < len(v.b) {
		switch v.b[v.i] {
		case ' ', '\t', '\n', '\r':
			v.i++
		default:
			return
		}
	}
}

// value checks the value at v.i, nested in depth arrays and objects.
func (v *validator) value(depth int) bool {
	if v.i >= len(v.b) {
		return false
	}
	switch c := v.b[v.i]; {
	case c == '{':
		if depth+1 > maxNesting {
			return false
		}
		v.i++
		v.ws()
		if v.i < len(v.b) && v.b[v.i] == '}' {
			v.i++
			return true
		}
		for {
			if v.i >= len(v.b) || v.b[v.i] != '"' || !v.str() {
				return false
			}
			v.ws()
			if v.i >= len(v.b) || v.b[v.i] != ':' {
				return false
			}
			v.i++
			v.ws()
			if !v.value(depth + 1) {
				return false
			}
			v.ws()
			if v.i >= len(v.b) {
				return false
			}
			switch v.b[v.i] {
			case ',':
				v.i++
				v.ws()
			case '}':
				v.i++
				return true
			default:
				return false
			}
		}
	case c == '[':
		if depth+1 > maxNesting {
			return false
		}
		v.i++
		v.ws()
		if v.i < len(v.b) && v.b[v.i] == ']' {
			v.i++
			return true
		}
		for {
			if !v.value(depth + 1) {
				return false
			}
			v.ws()
			if v.i >= len(v.b) {
				return false
			}
			switch v.b[v.i] {
			case ',':
				v.i++
				v.ws()
			case ']':
				v.i++
				return true
			default:
				return false
			}
		}
	case c == '"':
		return v.str()
	case c == '-' || c >= '0' && c <= '9':
		return v.number()
	case c == 't':
		return v.literal("true")
	case c == 'f':
		return v.literal("false")
	case c == 'n':
		return v.literal("null")
	}
	return false
}

// str checks the string at v.i: no control characters, valid escapes.
// Its quotes and backslashes are found with bytes.IndexByte and the bytes
// between checked eight at a time (noControl), as StringEnd does.
func (v *validator) str() bool {
	v.i++   // the opening quote
	q := -1 // the first quote at or after v.i, while q >= v.i
	for {
		if q < v.i {
			k := bytes.IndexByte(v.b[v.i:], '"')
			if k < 0 {
				return false
			}
			q = v.i + k
		}
		stop := q
		if k := bytes.IndexByte(v.b[v.i:q], '\\'); k >= 0 {
			stop = v.i + k
		}
		if !noControl(v.b[v.i:stop]) {
			return false
		}
		v.i = stop
		if stop == q {
			v.i++
			return true
		}
		// A backslash at v.i.
		if v.i+1 >= len(v.b) {
			return false
		}
		switch v.b[v.i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			v.i += 2
		case 'u':
			if v.i+6 > len(v.b) {
				return false
			}
			for _, h := range v.b[v.i+2 : v.i+6] {
				if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
					return false
				}
			}
			v.i += 6
		default:
			return false
		}
	}
}

// number checks the number at v.i: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (v *validator) number() bool {
	if v.b[v.i] == '-' {
		v.i++
	}
	switch {
	case v.i >= len(v.b):
		return false
	case v.b[v.i] == '0':
		v.i++
	case v.b[v.i] >= '1' && v.b[v.i] <= '9':
		v.digits()
	default:
		return false
	}
	if v.i < len(v.b) && v.b[v.i] == '.' {
		v.i++
		if !v.digits() {
			return false
		}
	}
	if v.i < len(v.b) && (v.b[v.i] == 'e' || v.b[v.i] == 'E') {
		v.i++
		if v.i < len(v.b) && (v.b[v.i] == '+' || v.b[v.i] == '-') {
			v.i++
		}
		if !v.digits() {
			return false
		}
	}
	return true
}

// digits passes over [0-9]* and reports whether there was one.
func (v *validator) digits() bool {
	start := v.i
	for v.i < len(v.b) && v.b[v.i] >= '0' && v.b[v.i] <= '9' {
		v.i++
	}
	return v.i > start
}

func (v *validator) literal(lit string) bool {
	if len(v.b)-v.i < len(lit) || string(v.b[v.i:v.i+len(lit)]) != lit {
		return false
	}
	v.i += len(lit)
	return true
}

package event

import (
	"encoding/json"

	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// fastRequest reads the common shape of a posted event without
// encoding/json: the envelope's strings without escapes, the actor's, the
// attributes' values and the payload as raw JSON. It runs only on data that
// strictjson.Check accepted (exact keys, none twice) and that is valid
// UTF-8, and gives up (ok false) on anything else it meets (escapes, null,
// numbers where strings go, corrects, the server's fields, trailing data),
// leaving it to encoding/json, which decodes it or says why not. What it
// returns equals what encoding/json decodes (FuzzFastRequest).
//
// encoding/json scans a body three times (the decoder's end of value, the
// value, the skipped raw payload) and builds it by reflection: two thirds
// of DecodeRequest, a tenth of the log server's CPU per event.
func fastRequest(data []byte) (*Request, bool) {
	p := fastParser{b: data}
	r := &Request{}
	p.ws()
	if !p.next('{') {
		return nil, false
	}
	p.ws()
	if p.next('}') {
		return p.end(r)
	}
	for {
		key, ok := p.plain()
		if !ok || !p.colon() {
			return nil, false
		}
		switch key {
		case "session":
			r.Session, ok = p.plain()
		case "kind":
			r.Kind, ok = p.plain()
		case "subject":
			r.Subject, ok = p.plain()
		case "payload_base64":
			r.PayloadBase64, ok = p.plain()
		case "media_type":
			r.MediaType, ok = p.plain()
		case "actor":
			ok = p.actor(&r.Actor)
		case "attributes":
			r.Attributes, ok = p.attributes()
		case "payload":
			var compact bool
			r.Payload, compact, ok = p.rawCompact()
			if compact {
				r.compact = r.Payload
			}
		default:
			return nil, false
		}
		if !ok {
			return nil, false
		}
		p.ws()
		if p.next('}') {
			return p.end(r)
		}
		if !p.next(',') {
			return nil, false
		}
		p.ws()
	}
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) next(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *fastParser) colon() bool {
	p.ws()
	if !p.next(':') {
		return false
	}
	p.ws()
	return true
}

// end accepts r if nothing but white space follows.
func (p *fastParser) end(r *Request) (*Request, bool) {
	p.ws()
	return r, p.i == len(p.b)
}

// plain reads a string without escapes or control characters.
func (p *fastParser) plain() (string, bool) {
	if !p.next('"') {
		return "", false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// actor reads {"type":..,"id":..,"on_behalf_of":..}.
func (p *fastParser) actor(a *Actor) bool {
	if !p.next('{') {
		return false
	}
	p.ws()
	if p.next('}') {
		return true
	}
	for {
		key, ok := p.plain()
		if !ok || !p.colon() {
			return false
		}
		switch key {
		case "type":
			a.Type, ok = p.plain()
		case "id":
			a.ID, ok = p.plain()
		case "on_behalf_of":
			a.OnBehalfOf, ok = p.plain()
		default:
			return false
		}
		if !ok {
			return false
		}
		p.ws()
		if p.next('}') {
			return true
		}
		if !p.next(',') {
			return false
		}
		p.ws()
	}
}

// attributes reads an object of raw values.
func (p *fastParser) attributes() (map[string]json.RawMessage, bool) {
	if !p.next('{') {
		return nil, false
	}
	m := make(map[string]json.RawMessage)
	p.ws()
	if p.next('}') {
		return m, true
	}
	for {
		key, ok := p.plain()
		if !ok || !p.colon() {
			return nil, false
		}
		v, ok := p.raw()
		if !ok {
			return nil, false
		}
		m[key] = v
		p.ws()
		if p.next('}') {
			return m, true
		}
		if !p.next(',') {
			return nil, false
		}
		p.ws()
	}
}

// raw returns a copy of the JSON value at p.i: a string, an object, an
// array, a number, true or false (null is left to encoding/json). The
// value's syntax is checked only as far as finding its end needs:
// strictjson.Check scanned it, and whoever reads it (attrValue,
// json.Compact) checks every detail.
func (p *fastParser) raw() (json.RawMessage, bool) {
	v, _, ok := p.rawCompact()
	return v, ok
}

// rawCompact is raw, and reports whether the value, an object, array or
// string, has no white space outside its strings (json.Compact would
// return it unchanged, were it valid).
func (p *fastParser) rawCompact() (_ json.RawMessage, compact, _ bool) {
	start := p.i
	compact = true
	if p.i >= len(p.b) {
		return nil, false, false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		if !p.skipString() {
			return nil, false, false
		}
	case c == '{' || c == '[':
		depth := 0
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case '"':
				if !p.skipString() {
					return nil, false, false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			case ' ', '\t', '\n', '\r':
				compact = false
			}
			p.i++
			if depth == 0 {
				break
			}
		}
		if depth != 0 {
			return nil, false, false
		}
	case c == '-' || c >= '0' && c <= '9' || c == 't' || c == 'f':
		compact = false // left to json.Compact
		for p.i < len(p.b) {
			c := p.b[p.i]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				break
			}
			p.i++
		}
	default:
		return nil, false, false
	}
	return append(json.RawMessage(nil), p.b[start:p.i]...), compact, true
}

// skipString moves past the string at p.i.
func (p *fastParser) skipString() bool {
	end, _, _ := strictjson.StringEnd(p.b, p.i)
	if end < 0 {
		p.i = len(p.b)
		return false
	}
	p.i = end
	return true
}

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
	p := fastParser{strictjson.Cursor{B: data}}
	r := &Request{}
	p.WS()
	if !p.Next('{') {
		return nil, false
	}
	p.WS()
	if p.Next('}') {
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
		p.WS()
		if p.Next('}') {
			return p.end(r)
		}
		if !p.Next(',') {
			return nil, false
		}
		p.WS()
	}
}

type fastParser struct{ strictjson.Cursor }

func (p *fastParser) colon() bool {
	p.WS()
	if !p.Next(':') {
		return false
	}
	p.WS()
	return true
}

// end accepts r if nothing but white space follows.
func (p *fastParser) end(r *Request) (*Request, bool) {
	return r, p.End()
}

// plain reads a string without escapes or control characters.
func (p *fastParser) plain() (string, bool) {
	if !p.Next('"') {
		return "", false
	}
	start := p.I
	for ; p.I < len(p.B); p.I++ {
		switch c := p.B[p.I]; {
		case c == '"':
			s := string(p.B[start:p.I])
			p.I++
			return s, true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// actor reads {"type":..,"id":..,"on_behalf_of":..}.
func (p *fastParser) actor(a *Actor) bool {
	if !p.Next('{') {
		return false
	}
	p.WS()
	if p.Next('}') {
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
		p.WS()
		if p.Next('}') {
			return true
		}
		if !p.Next(',') {
			return false
		}
		p.WS()
	}
}

// attributes reads an object of raw values.
func (p *fastParser) attributes() (map[string]json.RawMessage, bool) {
	if !p.Next('{') {
		return nil, false
	}
	m := make(map[string]json.RawMessage)
	p.WS()
	if p.Next('}') {
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
		p.WS()
		if p.Next('}') {
			return m, true
		}
		if !p.Next(',') {
			return nil, false
		}
		p.WS()
	}
}

// raw returns a copy of the JSON value at p.I: a string, an object, an
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
	start := p.I
	compact = true
	if p.I >= len(p.B) {
		return nil, false, false
	}
	switch c := p.B[p.I]; {
	case c == '"':
		if !p.skipString() {
			return nil, false, false
		}
	case c == '{' || c == '[':
		depth := 0
		for p.I < len(p.B) {
			switch p.B[p.I] {
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
			p.I++
			if depth == 0 {
				break
			}
		}
		if depth != 0 {
			return nil, false, false
		}
	case c == '-' || c >= '0' && c <= '9' || c == 't' || c == 'f':
		compact = false // left to json.Compact
		for p.I < len(p.B) {
			c := p.B[p.I]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				break
			}
			p.I++
		}
	default:
		return nil, false, false
	}
	return append(json.RawMessage(nil), p.B[start:p.I]...), compact, true
}

// skipString moves past the string at p.I.
func (p *fastParser) skipString() bool {
	end, _, _ := strictjson.StringEnd(p.B, p.I)
	if end < 0 {
		p.I = len(p.B)
		return false
	}
	p.I = end
	return true
}

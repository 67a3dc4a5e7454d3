package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// ErrInvalidEvent is wrapped by every validation error: the event was
// rejected and nothing was appended.
var ErrInvalidEvent = errors.New("invalid event")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, args...))
}

// Request is an event as a client posts it. The server assigns id, time,
// tenant, seq, prev and writer; a client that sends any of them is refused.
type Request struct {
	Session string `json:"session"`
	Kind    string `json:"kind"`
	Actor   Actor  `json:"actor"`
	// Subject identifies the data subject the event is about (a patient, a
	// customer). The log stores only its pseudonym; so is
	// Actor.OnBehalfOf.
	Subject    string                     `json:"subject,omitempty"`
	Attributes map[string]json.RawMessage `json:"attributes,omitempty"`
	// Payload is any JSON value; it is stored (compacted) in the vault with
	// media type application/json.
	Payload json.RawMessage `json:"payload,omitempty"`
	// PayloadBase64 carries a binary payload, with MediaType naming it.
	PayloadBase64 string `json:"payload_base64,omitempty"`
	MediaType     string `json:"media_type,omitempty"`
	// Corrects names the index of an earlier entry this event corrects.
	Corrects *uint64 `json:"corrects,omitempty"`

	// compact is Payload when the decoder saw no white space outside its
	// strings: Prepare then checks it (strictjson.IsJSON) instead of
	// compacting a copy.
	compact json.RawMessage
}

var actorTypes = map[string]bool{"agent": true, "human": true, "system": true}

// serverFields are the leaf fields only the server sets.
var serverFields = []string{"v", "id", "time", "tenant", "seq", "prev", "writer"}

// requestKeys is the key rule of a posted event: exactly the Request's
// fields (and the server's, which are then refused by name), no duplicates,
// in the envelope, the actor and the attributes. The payload is any JSON.
var requestKeys = func() *strictjson.Object {
	o := &strictjson.Object{Keys: map[string]*strictjson.Object{
		"session": nil, "kind": nil, "subject": nil, "payload": nil, "payload_base64": nil, "media_type": nil, "corrects": nil,
		"actor":      {Keys: map[string]*strictjson.Object{"type": nil, "id": nil, "on_behalf_of": nil}},
		"attributes": {AnyKeys: true},
	}}
	for _, f := range serverFields {
		o.Keys[f] = nil
	}
	return o
}()

var batchKeys = &strictjson.Object{Keys: map[string]*strictjson.Object{"events": nil}}

// DecodeRequest parses one event from JSON strictly: invalid UTF-8, unknown,
// duplicate or case-mismatched keys, trailing values and server-assigned
// fields are errors.
func DecodeRequest(data []byte) (*Request, error) {
	if !utf8.Valid(data) {
		return nil, invalid("body is not valid UTF-8")
	}
	return decodeRequest(json.RawMessage(data))
}

// wireRequest is Request plus the server-assigned fields, so that one
// strict decoding pass both rejects unknown fields and names the fields a
// client must not send.
type wireRequest struct {
	Request
	V      json.RawMessage `json:"v"`
	ID     json.RawMessage `json:"id"`
	Time   json.RawMessage `json:"time"`
	Tenant json.RawMessage `json:"tenant"`
	Seq    json.RawMessage `json:"seq"`
	Prev   json.RawMessage `json:"prev"`
	Writer json.RawMessage `json:"writer"`
}

func decodeRequest(raw json.RawMessage) (*Request, error) {
	if err := strictjson.Check(raw, requestKeys); err != nil {
		if errors.Is(err, strictjson.ErrKeys) {
			return nil, invalid("%v", err)
		}
		return nil, invalid("malformed JSON: %v", err)
	}
	if r, ok := fastRequest(raw); ok {
		return r, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var w wireRequest
	if err := dec.Decode(&w); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		if errors.As(err, &se) || errors.As(err, &te) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, invalid("malformed JSON: %v", err)
		}
		return nil, invalid("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("malformed JSON: trailing data after the event")
	}
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"v", w.V}, {"id", w.ID}, {"time", w.Time}, {"tenant", w.Tenant}, {"seq", w.Seq}, {"prev", w.Prev}, {"writer", w.Writer}} {
		if f.v != nil {
			return nil, invalid("field %q is assigned by the server and must not be sent", f.name)
		}
	}
	return &w.Request, nil
}

// DecodeBatch parses {"events":[...]} strictly; every event must be valid.
func DecodeBatch(data []byte, maxEvents int) ([]*Request, error) {
	if !utf8.Valid(data) {
		return nil, invalid("body is not valid UTF-8")
	}
	if err := strictjson.Check(data, batchKeys); err != nil {
		return nil, invalid("%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := dec.Decode(&b); err != nil {
		return nil, invalid("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("trailing data after batch")
	}
	if len(b.Events) == 0 {
		return nil, invalid("events is missing or empty")
	}
	if len(b.Events) > maxEvents {
		return nil, invalid("batch has %d events, the limit is %d", len(b.Events), maxEvents)
	}
	out := make([]*Request, len(b.Events))
	for i, raw := range b.Events {
		r, err := decodeRequest(raw)
		if err != nil {
			return nil, fmt.Errorf("events[%d]: %w", i, err)
		}
		out[i] = r
	}
	return out, nil
}

// Prepared is a validated request, with its attributes in canonical form
// and its payload bytes resolved.
type Prepared struct {
	Request *Request
	// Attributes are the canonical attribute values (string, bool, int64,
	// float64 or a flat []any of those).
	Attributes map[string]any
	// Payload holds the payload bytes when HasPayload is set.
	Payload    []byte
	HasPayload bool
	MediaType  string
}

// compacted reports whether r.Payload is still the payload the decoder
// found compact (the same bytes, not replaced since).
func compacted(r *Request) bool {
	return len(r.compact) > 0 && len(r.compact) == len(r.Payload) && &r.compact[0] == &r.Payload[0]
}

// Prepare checks r and resolves its payload and attributes. Every error
// wraps ErrInvalidEvent.
func Prepare(r *Request) (*Prepared, error) {
	if r.Session == "" {
		return nil, invalid("session is required")
	}
	if !ValidID(r.Session) {
		return nil, invalid("session %q: use 1-%d characters from [A-Za-z0-9_.:@-], starting with a letter or digit", trunc(r.Session), MaxIDLength)
	}
	if r.Kind == "" {
		return nil, invalid("kind is required")
	}
	if !ValidKind(r.Kind) {
		return nil, invalid("kind %q: want dot-separated lower-case words such as llm.request", trunc(r.Kind))
	}
	if !actorTypes[r.Actor.Type] {
		return nil, invalid("actor.type must be agent, human or system")
	}
	if !ValidID(r.Actor.ID) {
		return nil, invalid("actor.id is required: 1-%d characters from [A-Za-z0-9_.:@-]", MaxIDLength)
	}
	if r.Actor.OnBehalfOf != "" && !ValidID(r.Actor.OnBehalfOf) {
		return nil, invalid("actor.on_behalf_of: 1-%d characters from [A-Za-z0-9_.:@-]", MaxIDLength)
	}
	if r.Subject != "" && !ValidID(r.Subject) {
		return nil, invalid("subject: 1-%d characters from [A-Za-z0-9_.:@-]", MaxIDLength)
	}
	p := &Prepared{Request: r}
	if len(r.Attributes) > MaxAttributes {
		return nil, invalid("%d attributes, the limit is %d", len(r.Attributes), MaxAttributes)
	}
	if len(r.Attributes) > 0 {
		p.Attributes = make(map[string]any, len(r.Attributes))
		for k, raw := range r.Attributes {
			if len(k) > MaxAttrKeyLength || !validAttrKey(k) {
				return nil, invalid("attribute name %q: use letters, digits, '_', '.', '-'", trunc(k))
			}
			if reservedAttrKey(k) {
				return nil, invalid("attribute name %q is reserved (SD-JWT's own, which a body's field commitment uses)", k)
			}
			v, err := attrValue(raw, true)
			if err != nil {
				return nil, invalid("attribute %q: %v", k, err)
			}
			p.Attributes[k] = v
		}
	}
	hasJSON := len(r.Payload) > 0 && !bytes.Equal(bytes.TrimSpace(r.Payload), []byte("null"))
	switch {
	case hasJSON && r.PayloadBase64 != "":
		return nil, invalid("send payload or payload_base64, not both")
	case hasJSON:
		if r.MediaType != "" && r.MediaType != "application/json" {
			return nil, invalid("media_type must be application/json (or absent) with a JSON payload")
		}
		if compacted(r) {
			// Already compact: json.Compact would copy it unchanged.
			// strictjson.IsJSON answers as json.Valid, faster.
			if !strictjson.IsJSON(r.Payload) {
				var b bytes.Buffer
				return nil, invalid("payload: %v", json.Compact(&b, r.Payload))
			}
			p.Payload, p.HasPayload, p.MediaType = r.Payload, true, "application/json"
			break
		}
		var b bytes.Buffer
		b.Grow(len(r.Payload))
		if err := json.Compact(&b, r.Payload); err != nil {
			return nil, invalid("payload: %v", err)
		}
		p.Payload, p.HasPayload, p.MediaType = b.Bytes(), true, "application/json"
	case r.PayloadBase64 != "":
		if !ValidMediaType(r.MediaType) {
			return nil, invalid("payload_base64 needs a media_type such as application/octet-stream")
		}
		b, err := base64.StdEncoding.DecodeString(r.PayloadBase64)
		if err != nil {
			return nil, invalid("payload_base64 is not standard base64: %v", err)
		}
		p.Payload, p.HasPayload, p.MediaType = b, true, r.MediaType
	case r.MediaType != "":
		return nil, invalid("media_type given without a payload")
	}
	return p, nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return Clip(s, 40) + "..."
	}
	return s
}

// attrValue converts a JSON attribute value to its canonical Go form: a
// string, bool, int64, float64 or a flat array of those.
func attrValue(raw json.RawMessage, allowArray bool) (any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, errors.New("empty value")
	}
	switch raw[0] {
	case '"':
		s, ok := plainString(raw)
		if !ok {
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, err
			}
		}
		if len(s) > MaxAttrValueLength {
			return nil, fmt.Errorf("string longer than %d bytes", MaxAttrValueLength)
		}
		return s, nil
	case 't', 'f':
		switch string(raw) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, err
		}
		return b, nil
	case '[':
		if !allowArray {
			return nil, errors.New("nested arrays are not allowed")
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, err
		}
		if len(items) > MaxAttrArrayLength {
			return nil, fmt.Errorf("array longer than %d", MaxAttrArrayLength)
		}
		out := make([]any, len(items))
		for i, it := range items {
			v, err := attrValue(it, false)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %v", i, err)
			}
			out[i] = v
		}
		return out, nil
	case 'n':
		return nil, errors.New("null is not allowed; omit the attribute")
	case '{':
		return nil, errors.New("objects are not allowed; flatten to dotted names")
	default:
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, err
		}
		s := n.String()
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i, nil
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("number %s out of range", trunc(s))
		}
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil
		}
		return f, nil
	}
}

// plainString returns the value of the JSON string raw when it has no
// escapes and no control characters and is valid UTF-8 (what json.Unmarshal
// would return: the bytes between the quotes); ok is false otherwise, and
// json.Unmarshal decodes it (or says why it is not a string).
func plainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	ascii := true
	for _, c := range in {
		switch {
		case c < 0x20 || c == '"' || c == '\\':
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

package otlp

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Where message content arrives, by convention. Every one of these goes to
// the payload under its own name, never to the leaf: the request's side
// to the llm.request (tool.call) payload, the response's to the
// llm.response (tool.result) payload.
var (
	// Attributes holding content whole: the GenAI conventions'
	// (gen_ai.input.messages, ...; gen_ai.prompt and gen_ai.completion of
	// the older span events), OpenInference's input.value and output.value.
	inputKeys = []string{"gen_ai.input.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions", "gen_ai.prompt",
		"gen_ai.tool.call.arguments", "input.value", "input.mime_type", "llm.prompts", "tool.parameters"}
	outputKeys = []string{"gen_ai.output.messages", "gen_ai.completion", "gen_ai.tool.call.result", "output.value", "output.mime_type"}
	// Attribute families flattened by index (gen_ai.prompt.0.role,
	// llm.input_messages.0.message.content, ...): each becomes a list of
	// objects under the family's name.
	inputFamilies  = []string{"gen_ai.prompt", "llm.input_messages", "llm.prompt_template", "llm.tools"}
	outputFamilies = []string{"gen_ai.completion", "llm.output_messages"}
)

// Span events whose attributes are content (older GenAI conventions and
// the opt-in operation details event).
var (
	inputEvents  = []string{"gen_ai.content.prompt", "gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message", "gen_ai.tool.message"}
	outputEvents = []string{"gen_ai.content.completion", "gen_ai.choice"}
	detailsEvent = "gen_ai.client.inference.operation.details"
)

// content is what a span says, split by side.
type content struct {
	input, output map[string]any // content by its convention's name
	rest          map[string]any // every other attribute
	events        []any          // span events that are not content (exceptions, ...)
}

// splitAttributes sorts attrs into content and the rest.
func splitAttributes(attrs pcommon.Map) content {
	c := content{input: map[string]any{}, output: map[string]any{}, rest: map[string]any{}}
	fam := map[string]*family{}
	attrs.Range(func(k string, v pcommon.Value) bool {
		switch {
		case slices.Contains(inputKeys, k):
			c.input[k] = jsonValue(v)
		case slices.Contains(outputKeys, k):
			c.output[k] = jsonValue(v)
		default:
			if f, rest, ok := familyOf(k); ok {
				if fam[f] == nil {
					fam[f] = &family{}
				}
				fam[f].add(rest, jsonValue(v))
				return true
			}
			c.rest[k] = jsonValue(v)
		}
		return true
	})
	for name, f := range fam {
		if slices.Contains(inputFamilies, name) {
			c.input[name] = f.value()
		} else {
			c.output[name] = f.value()
		}
	}
	return c
}

// addEvents puts the span's events into c: content-bearing ones on their
// side (under "events"), the others in c.events.
func (c *content) addEvents(evs ptrace.SpanEventSlice) {
	var in, out, other []any
	for i := 0; i < evs.Len(); i++ {
		e := evs.At(i)
		rec := map[string]any{"name": e.Name(), "time": timeText(e.Timestamp())}
		switch {
		case e.Name() == detailsEvent:
			d := splitAttributes(e.Attributes())
			for k, v := range d.input {
				if _, ok := c.input[k]; !ok {
					c.input[k] = v
				}
			}
			for k, v := range d.output {
				if _, ok := c.output[k]; !ok {
					c.output[k] = v
				}
			}
			if len(d.rest) > 0 {
				rec["attributes"] = d.rest
				other = append(other, rec)
			}
			continue
		case slices.Contains(inputEvents, e.Name()):
			rec["attributes"] = rawMap(e.Attributes())
			in = append(in, rec)
		case slices.Contains(outputEvents, e.Name()):
			rec["attributes"] = rawMap(e.Attributes())
			out = append(out, rec)
		default:
			if e.Attributes().Len() > 0 {
				rec["attributes"] = rawMap(e.Attributes())
			}
			other = append(other, rec)
		}
	}
	if in != nil {
		c.input["events"] = in
	}
	if out != nil {
		c.output["events"] = out
	}
	c.events = other
}

// familyOf splits an attribute of a flattened family: gen_ai.prompt.0.role
// is family gen_ai.prompt, rest 0.role.
func familyOf(k string) (name, rest string, ok bool) {
	for _, f := range inputFamilies {
		if r, ok := strings.CutPrefix(k, f+"."); ok {
			return f, r, true
		}
	}
	for _, f := range outputFamilies {
		if r, ok := strings.CutPrefix(k, f+"."); ok {
			return f, r, true
		}
	}
	return "", "", false
}

// family gathers a flattened attribute family: by index when its keys
// start with one (gen_ai.prompt.0.role), else as one object
// (llm.prompt_template.template).
type family struct {
	items map[int]map[string]any
	flat  map[string]any
}

func (f *family) add(rest string, v any) {
	head, tail, _ := strings.Cut(rest, ".")
	if n, err := strconv.Atoi(head); err == nil && n >= 0 && tail != "" {
		if f.items == nil {
			f.items = map[int]map[string]any{}
		}
		if f.items[n] == nil {
			f.items[n] = map[string]any{}
		}
		// OpenInference nests each message under "message.".
		tail = strings.TrimPrefix(tail, "message.")
		f.items[n][tail] = v
		return
	}
	if f.flat == nil {
		f.flat = map[string]any{}
	}
	f.flat[rest] = v
}

func (f *family) value() any {
	if f.items == nil {
		return f.flat
	}
	idx := make([]int, 0, len(f.items))
	for n := range f.items {
		idx = append(idx, n)
	}
	slices.Sort(idx)
	out := make([]any, 0, len(idx)+1)
	for _, n := range idx {
		out = append(out, f.items[n])
	}
	if f.flat != nil {
		out = append(out, f.flat)
	}
	return out
}

// jsonValue is an attribute value for the payload: a string that holds a
// JSON object or array (gen_ai.input.messages is one in most SDKs) as that
// JSON, anything else as its plain value.
func jsonValue(v pcommon.Value) any {
	if v.Type() == pcommon.ValueTypeStr {
		s := v.Str()
		t := strings.TrimSpace(s)
		if len(t) > 1 && (t[0] == '[' || t[0] == '{') && strictjson.IsJSON([]byte(t)) {
			return json.RawMessage(t)
		}
		return s
	}
	return rawValue(v)
}

// rawValue is v as plain Go values (maps, slices, strings, numbers).
func rawValue(v pcommon.Value) any {
	switch v.Type() {
	case pcommon.ValueTypeMap:
		return rawMap(v.Map())
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		out := make([]any, s.Len())
		for i := range out {
			out[i] = rawValue(s.At(i))
		}
		return out
	case pcommon.ValueTypeDouble:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) { // not JSON
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return f
	default:
		return v.AsRaw()
	}
}

func rawMap(m pcommon.Map) map[string]any {
	out := make(map[string]any, m.Len())
	m.Range(func(k string, v pcommon.Value) bool {
		out[k] = jsonValue(v)
		return true
	})
	return out
}

func timeText(ts pcommon.Timestamp) string {
	if ts == 0 {
		return ""
	}
	return ts.AsTime().UTC().Format("2006-01-02T15:04:05.000000000Z")
}

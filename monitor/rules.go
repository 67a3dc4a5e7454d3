package monitor

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"go.yaml.in/yaml/v3"
)

// Severities, lowest first.
var severities = []string{"info", "low", "medium", "high", "critical"}

// RuleError is a problem in a rule file: where and why.
type RuleError struct {
	File string
	Line int
	Rule string // empty for file-level problems
	Msg  string
}

func (e *RuleError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, ": rule %q", e.Rule)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// ErrBadRules is wrapped by every error of ParseRules.
var ErrBadRules = errors.New("bad rule file")

func (e *RuleError) Unwrap() error { return ErrBadRules }

// ruleFile is the YAML layout of a rule file (see README "Rule files").
type ruleFile struct {
	Version int            `yaml:"version"`
	Params  map[string]any `yaml:"params"`
	Rules   []ruleSpec     `yaml:"rules"`
}

type ruleSpec struct {
	Name        string        `yaml:"name"`
	Description string        `yaml:"description"`
	Severity    string        `yaml:"severity"`
	Match       string        `yaml:"match"`
	GroupBy     string        `yaml:"group_by"`
	Value       string        `yaml:"value"`
	Condition   string        `yaml:"condition"`
	Window      string        `yaml:"window"`
	Threshold   int           `yaml:"threshold"`
	Baseline    *baselineSpec `yaml:"baseline"`
	Cooldown    string        `yaml:"cooldown"`
	Message     string        `yaml:"message"`
}

type baselineSpec struct {
	Alpha      float64 `yaml:"alpha"`
	Z          float64 `yaml:"z"`
	MinSamples int     `yaml:"min_samples"`
	MinStddev  float64 `yaml:"min_stddev"`
	Direction  string  `yaml:"direction"`
}

// Rules is a compiled rule file.
type Rules struct {
	params map[string]any
	rules  []*rule
}

// Names lists the rules in file order.
func (rs *Rules) Names() []string {
	out := make([]string, len(rs.rules))
	for i, r := range rs.rules {
		out[i] = r.name
	}
	return out
}

type rule struct {
	name, description, severity string
	match, groupBy, value       cel.Program
	condition, message          cel.Program
	window, cooldown            time.Duration
	threshold                   int
	baseline                    *baselineSpec
}

var ruleNameRE = regexp.MustCompile(`^[a-z][a-z0-9_.\-]{0,63}$`)

// celEnv declares the variables every rule expression may use (README
// "Rule files" documents them).
func celEnv() (*cel.Env, error) {
	dynMap := cel.MapType(cel.StringType, cel.DynType)
	return cel.NewEnv(
		cel.Variable("e", dynMap),
		cel.Variable("params", dynMap),
		cel.Variable("session", dynMap),
		cel.Variable("monitor", dynMap),
		cel.Variable("event_time", cel.TimestampType),
		cel.Variable("integrated_after", cel.DynType),
		cel.Variable("integrated_before", cel.DynType),
		cel.Variable("value", cel.DynType),
		cel.Variable("last", cel.DynType),
		cel.Variable("count", cel.IntType),
		cel.Variable("baseline", dynMap),
		cel.Variable("group", cel.StringType),
		ext.Strings(), ext.Math(), ext.Sets(), ext.Lists(), ext.Bindings(), cel.OptionalTypes(),
		cel.DefaultUTCTimeZone(true),
	)
}

// ParseRules parses and compiles a rule file. name is used in error
// messages. Every error is a *RuleError with the line and the reason.
func ParseRules(name string, text []byte) (*Rules, error) {
	bad := func(line int, rule, format string, args ...any) error {
		return &RuleError{File: name, Line: line, Rule: rule, Msg: fmt.Sprintf(format, args...)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		return nil, yamlError(name, err)
	}
	if rf.Version != 1 {
		return nil, bad(fieldLine(&doc, -1, "version"), "", "version must be 1")
	}
	if len(rf.Rules) == 0 {
		return nil, bad(fieldLine(&doc, -1, "rules"), "", "no rules")
	}
	env, err := celEnv()
	if err != nil {
		return nil, err
	}
	rs := &Rules{params: map[string]any{}}
	if rf.Params != nil {
		rs.params = normalizeParams(rf.Params).(map[string]any)
	}
	seen := map[string]bool{}
	for i, sp := range rf.Rules {
		line := func(field string) int { return fieldLine(&doc, i, field) }
		if !ruleNameRE.MatchString(sp.Name) {
			return nil, bad(line("name"), sp.Name, "name must be 1-64 of [a-z0-9_.-], starting with a letter")
		}
		if seen[sp.Name] {
			return nil, bad(line("name"), sp.Name, "duplicate rule name")
		}
		seen[sp.Name] = true
		r := &rule{name: sp.Name, description: sp.Description, severity: sp.Severity, threshold: sp.Threshold}
		if !contains(severities, sp.Severity) {
			return nil, bad(line("severity"), sp.Name, "severity must be one of %s", strings.Join(severities, ", "))
		}
		compile := func(field, src string, want *types.Type, required bool) (cel.Program, error) {
			if strings.TrimSpace(src) == "" {
				if required {
					return nil, bad(line(field), sp.Name, "%s is required", field)
				}
				return nil, nil
			}
			ast, iss := env.Compile(src)
			if iss.Err() != nil {
				e := iss.Errors()[0]
				return nil, bad(exprLine(&doc, i, field, e.Location.Line()), sp.Name, "%s: %s", field, e.Message)
			}
			if want != nil && !ast.OutputType().IsExactType(want) && !ast.OutputType().IsExactType(types.DynType) {
				return nil, bad(line(field), sp.Name, "%s must be a %s expression, not %s", field, want, ast.OutputType())
			}
			p, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
			if err != nil {
				return nil, bad(line(field), sp.Name, "%s: %v", field, err)
			}
			return p, nil
		}
		if r.match, err = compile("match", sp.Match, types.BoolType, true); err != nil {
			return nil, err
		}
		if r.groupBy, err = compile("group_by", sp.GroupBy, types.StringType, false); err != nil {
			return nil, err
		}
		if r.value, err = compile("value", sp.Value, nil, false); err != nil {
			return nil, err
		}
		if r.condition, err = compile("condition", sp.Condition, types.BoolType, false); err != nil {
			return nil, err
		}
		if r.message, err = compile("message", sp.Message, types.StringType, false); err != nil {
			return nil, err
		}
		dur := func(field, s string) (time.Duration, error) {
			if s == "" {
				return 0, nil
			}
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				return 0, bad(line(field), sp.Name, "%s %q: want a positive duration such as 90s, 5m or 1h", field, s)
			}
			return d, nil
		}
		if r.window, err = dur("window", sp.Window); err != nil {
			return nil, err
		}
		if r.cooldown, err = dur("cooldown", sp.Cooldown); err != nil {
			return nil, err
		}
		switch {
		case sp.Threshold < 0 || sp.Threshold > 100000:
			return nil, bad(line("threshold"), sp.Name, "threshold must be 1-100000")
		case r.window > 0 && sp.Threshold < 1:
			return nil, bad(line("window"), sp.Name, "a window needs a threshold (the number of events within it that fire the rule)")
		case r.window == 0 && sp.Threshold > 1:
			return nil, bad(line("threshold"), sp.Name, "a threshold above 1 needs a window")
		}
		if b := sp.Baseline; b != nil {
			if r.value == nil {
				return nil, bad(line("baseline"), sp.Name, "a baseline needs a numeric value expression")
			}
			if b.Alpha == 0 {
				b.Alpha = 0.1
			}
			if b.Z == 0 {
				b.Z = 4
			}
			if b.MinSamples == 0 {
				b.MinSamples = 20
			}
			if b.MinStddev == 0 {
				b.MinStddev = 1
			}
			if b.Direction == "" {
				b.Direction = "up"
			}
			switch {
			case b.Alpha <= 0 || b.Alpha > 1:
				return nil, bad(line("baseline"), sp.Name, "baseline.alpha must be in (0, 1]")
			case b.Z <= 0:
				return nil, bad(line("baseline"), sp.Name, "baseline.z must be positive")
			case b.MinSamples < 1:
				return nil, bad(line("baseline"), sp.Name, "baseline.min_samples must be at least 1")
			case b.MinStddev < 0:
				return nil, bad(line("baseline"), sp.Name, "baseline.min_stddev must not be negative")
			case !contains([]string{"up", "down", "both"}, b.Direction):
				return nil, bad(line("baseline"), sp.Name, "baseline.direction must be up, down or both")
			}
			r.baseline = b
		}
		rs.rules = append(rs.rules, r)
	}
	return rs, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var yamlLineRE = regexp.MustCompile(`line (\d+): `)

// yamlError turns a YAML error into a RuleError with its line.
func yamlError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		fmt.Sscan(m[1], &line)
		msg = strings.Replace(msg, m[0], "", 1)
	}
	return &RuleError{File: name, Line: line, Msg: msg}
}

// ruleNode returns the mapping node of rule i (or the document mapping for
// i < 0).
func ruleNode(doc *yaml.Node, i int) *yaml.Node {
	if doc == nil || len(doc.Content) == 0 {
		return nil
	}
	top := doc.Content[0]
	if i < 0 {
		return top
	}
	rules := mapValue(top, "rules")
	if rules == nil || rules.Kind != yaml.SequenceNode || i >= len(rules.Content) {
		return nil
	}
	return rules.Content[i]
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for j := 0; j+1 < len(m.Content); j += 2 {
		if m.Content[j].Value == key {
			return m.Content[j+1]
		}
	}
	return nil
}

// fieldLine is the line of field in rule i, or of the rule itself.
func fieldLine(doc *yaml.Node, i int, field string) int {
	n := ruleNode(doc, i)
	if n == nil {
		return 0
	}
	if v := mapValue(n, field); v != nil {
		return v.Line
	}
	return n.Line
}

// exprLine maps a line inside an expression to a line of the file: block
// scalars (| and >) start on the line after their indicator.
func exprLine(doc *yaml.Node, i int, field string, exprLine int) int {
	v := mapValue(ruleNode(doc, i), field)
	if v == nil {
		return fieldLine(doc, i, field)
	}
	if exprLine < 1 {
		exprLine = 1
	}
	if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return v.Line + exprLine
	}
	return v.Line + exprLine - 1
}

// normalizeParams converts YAML values into the forms CEL handles: int64,
// float64, string, bool, []any and map[string]any.
func normalizeParams(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case uint64:
		return int64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeParams(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeParams(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalizeParams(e)
		}
		return out
	case time.Time:
		return x
	default:
		return x
	}
}

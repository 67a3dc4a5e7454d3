// Package settings binds a command's configuration struct to its flags and
// to the keys of a YAML file, so that the struct is the one place where a
// setting's name, default and help are written: the flags, --help, the
// file's keys and an example file listing every key all come from it.
//
// Each exported field of the struct is tagged
//
//	flag:"NAME"  the flag --NAME
//	yaml:"KEY"   its key in a file, or "-" for a flag that no file may set
//	             (one whose value may carry a secret)
//	help:"TEXT"  its help; {VAR} stands for the text vars["VAR"] given to Bind
//	arg:"NAME"   optional: how --help names the flag's value (it must occur
//	             in the help text; flag.PrintDefaults shows it)
//
// and the value the field holds when Bind is called is its default. A field
// is a string, bool, int, int64 or time.Duration, or a type whose pointer
// implements flag.Value and yaml.Unmarshaler (a repeatable flag such as a
// list or a map: Set adds one value, UnmarshalYAML replaces the whole).
//
// A flag given on the command line overrides the file's key, which
// overrides the default; a key that a flag overrides is checked all the
// same. A file is one YAML mapping of keys to values; an unknown key, a key
// given twice and a value of the wrong type are refused with the line
// (*Error).
package settings

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Binding is a configuration struct bound to a flag set.
type Binding struct {
	fs     *flag.FlagSet
	fields []*field
	lines  map[string]int // the keys the file set (not overridden), at their lines
}

type field struct {
	flag, key string
	help      string // as written for people: vars expanded, no backquotes
	v         reflect.Value
}

func (f *field) secret() bool { return f.key == "-" }

var varRE = regexp.MustCompile(`\{([a-z0-9_]+)\}`)

// Bind registers a flag on fs for each field of the struct cfg points to,
// with the field's value as its default. It panics when a field is not
// tagged as the package comment says, when a {VAR} has no text in vars, or
// when a flag is defined twice: mistakes of the program, which its --help
// test shows.
func Bind(fs *flag.FlagSet, cfg any, vars map[string]string) *Binding {
	rv := reflect.ValueOf(cfg)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("settings.Bind: %T is not a pointer to a struct", cfg))
	}
	st := rv.Elem()
	b := &Binding{fs: fs}
	keys := map[string]bool{}
	for i := range st.NumField() {
		sf := st.Type().Field(i)
		if !sf.IsExported() {
			continue
		}
		name, key := sf.Tag.Get("flag"), sf.Tag.Get("yaml")
		if name == "" || key == "" || sf.Tag.Get("help") == "" {
			panic(fmt.Sprintf("settings.Bind: field %s needs flag, yaml and help tags", sf.Name))
		}
		if key != "-" && keys[key] {
			panic(fmt.Sprintf("settings.Bind: key %q of field %s is taken", key, sf.Name))
		}
		keys[key] = true
		help := varRE.ReplaceAllStringFunc(sf.Tag.Get("help"), func(m string) string {
			v, ok := vars[m[1:len(m)-1]]
			if !ok {
				panic(fmt.Sprintf("settings.Bind: field %s: no text for %s", sf.Name, m))
			}
			return v
		})
		usage := help
		if arg := sf.Tag.Get("arg"); arg != "" {
			if !strings.Contains(help, arg) {
				panic(fmt.Sprintf("settings.Bind: field %s: the help does not name its arg %q", sf.Name, arg))
			}
			usage = strings.Replace(help, arg, "`"+arg+"`", 1)
		}
		f := &field{flag: name, key: key, help: help, v: st.Field(i)}
		switch p := f.v.Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, name, *p, usage)
		case *bool:
			fs.BoolVar(p, name, *p, usage)
		case *int:
			fs.IntVar(p, name, *p, usage)
		case *int64:
			fs.Int64Var(p, name, *p, usage)
		case *time.Duration:
			fs.DurationVar(p, name, *p, usage)
		case flag.Value:
			if _, ok := p.(yaml.Unmarshaler); !ok && !f.secret() {
				panic(fmt.Sprintf("settings.Bind: field %s: %T is no yaml.Unmarshaler", sf.Name, p))
			}
			fs.Var(p, name, usage)
		default:
			panic(fmt.Sprintf("settings.Bind: field %s: type %s is not a setting", sf.Name, f.v.Type()))
		}
		b.fields = append(b.fields, f)
	}
	return b
}

// Error is a mistake in a settings file: where, and what.
type Error struct {
	File string
	Line int    // 0 if unknown
	Key  string // empty for the file as a whole
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

func yamlError(file string, err error) *Error {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	return &Error{File: file, Line: line, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// Load sets the fields from the YAML text of the file name, after the
// flags are parsed: a key whose flag was given on the command line is
// checked and left as the flag set it. Every mistake is an *Error.
func (b *Binding) Load(name string, text []byte) error {
	fail := func(line int, key, format string, args ...any) error {
		return &Error{File: name, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	onCLI := map[string]bool{}
	b.fs.Visit(func(f *flag.Flag) { onCLI[f.Name] = true })
	dec := yaml.NewDecoder(bytes.NewReader(text))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil
	} else if err != nil {
		return yamlError(name, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		return fail(more.Line, "", "a second YAML document: the file is one mapping of keys to values")
	} else if !errors.Is(err, io.EOF) {
		return yamlError(name, err)
	}
	top := &doc
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	if top.Kind == yaml.ScalarNode && top.ShortTag() == "!!null" {
		return nil // comments only
	}
	if top.Kind != yaml.MappingNode {
		return fail(top.Line, "", "want a mapping of keys to values")
	}
	lines := map[string]int{}
	seen := map[string]int{}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			return fail(k.Line, "", "a key must be a name")
		}
		if first, dup := seen[k.Value]; dup {
			return fail(k.Line, k.Value, "given twice (first at line %d)", first)
		}
		seen[k.Value] = k.Line
		f := b.field(k.Value)
		if f == nil {
			if s := b.secretField(k.Value); s != nil {
				return fail(k.Line, k.Value, "not read from a file, as its value may carry a secret: give --%s", s.flag)
			}
			return fail(k.Line, k.Value, "unknown key")
		}
		val, err := decode(f, v)
		if err != nil {
			line := v.Line
			var at *atError
			if errors.As(err, &at) {
				line, err = at.line, at.err
			}
			return fail(line, k.Value, "%v", err)
		}
		if !onCLI[f.flag] {
			f.v.Set(val)
			lines[f.key] = k.Line
		}
	}
	b.lines = lines
	return nil
}

// At returns err as the mistake of the node n inside a value, for an
// UnmarshalYAML to say which entry of a list or mapping is wrong: Load
// then reports n's line rather than the value's first.
func At(n *yaml.Node, err error) error {
	if err == nil {
		return nil
	}
	return &atError{n.Line, err}
}

type atError struct {
	line int
	err  error
}

func (e *atError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e *atError) Unwrap() error { return e.err }

// Line returns the line of the key in the loaded file, 0 if the file did
// not set it (or a flag overrode it).
func (b *Binding) Line(key string) int { return b.lines[key] }

func (b *Binding) field(key string) *field {
	for _, f := range b.fields {
		if !f.secret() && f.key == key {
			return f
		}
	}
	return nil
}

// secretField is the flag-only field a key names (its flag's name, or
// that with _ for -), if any.
func (b *Binding) secretField(key string) *field {
	for _, f := range b.fields {
		if f.secret() && (key == f.flag || key == strings.ReplaceAll(f.flag, "-", "_")) {
			return f
		}
	}
	return nil
}

// decode reads the value node n as a value of f's type.
func decode(f *field, n *yaml.Node) (reflect.Value, error) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	p := reflect.New(f.v.Type())
	if u, ok := p.Interface().(yaml.Unmarshaler); ok {
		if n.ShortTag() == "!!null" {
			return p.Elem(), errors.New("no value (leave the key out for the default)")
		}
		return p.Elem(), u.UnmarshalYAML(n)
	}
	want := map[reflect.Type]string{
		reflect.TypeFor[string]():        "a string",
		reflect.TypeFor[bool]():          "true or false",
		reflect.TypeFor[int]():           "an integer",
		reflect.TypeFor[int64]():         "an integer",
		reflect.TypeFor[time.Duration](): "a duration such as 500ms, 10s or 2m",
	}[f.v.Type()]
	got := func() error {
		switch {
		case n.Kind == yaml.MappingNode:
			return fmt.Errorf("want %s, not a mapping", want)
		case n.Kind == yaml.SequenceNode:
			return fmt.Errorf("want %s, not a list", want)
		case n.ShortTag() == "!!null":
			return fmt.Errorf("want %s, not nothing (leave the key out for the default)", want)
		case f.v.Kind() == reflect.String:
			return fmt.Errorf("want %s, not %s (quote it)", want, n.Value)
		}
		return fmt.Errorf("want %s, not %s", want, n.Value)
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return p.Elem(), got()
	}
	tag := n.ShortTag()
	switch v := p.Interface().(type) {
	case *string:
		if tag != "!!str" {
			return p.Elem(), got()
		}
		*v = n.Value
	case *bool:
		if tag != "!!bool" || n.Decode(v) != nil {
			return p.Elem(), got()
		}
	case *time.Duration:
		d, err := time.ParseDuration(n.Value)
		if (tag != "!!str" && tag != "!!int") || err != nil {
			return p.Elem(), got()
		}
		*v = d
	case *int, *int64:
		if tag != "!!int" || n.Decode(v) != nil {
			return p.Elem(), got()
		}
	}
	return p.Elem(), nil
}

// WriteYAML writes the fields' values as a file Load reads back: every
// key but the flag-only ones, in the struct's order, each after its help
// as a comment.
func (b *Binding) WriteYAML(w io.Writer) error {
	var out bytes.Buffer
	for _, f := range b.fields {
		if f.secret() {
			continue
		}
		if out.Len() > 0 {
			out.WriteByte('\n')
		}
		var v yaml.Node
		if err := v.Encode(f.v.Interface()); err != nil {
			return fmt.Errorf("%s: %w", f.key, err)
		}
		m := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: f.key}, &v}}
		out.WriteString(comment(f.help, 100))
		enc := yaml.NewEncoder(&out)
		enc.SetIndent(2)
		if err := enc.Encode(m); err != nil {
			return fmt.Errorf("%s: %w", f.key, err)
		}
		if err := enc.Close(); err != nil {
			return err
		}
	}
	_, err := w.Write(out.Bytes())
	return err
}

// comment renders text as "# " lines of at most width columns (a longer
// word keeps its line).
func comment(text string, width int) string {
	var b strings.Builder
	line := "#"
	for _, w := range strings.Fields(text) {
		if len(line)+1+len(w) > width && line != "#" {
			b.WriteString(line + "\n")
			line = "#"
		}
		line += " " + w
	}
	b.WriteString(line + "\n")
	return b.String()
}

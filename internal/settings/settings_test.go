package settings_test

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/llmaudittrail/llmaudittrail/internal/settings"
)

// tags is a repeatable flag; in a file, a list.
type tags []string

func (l *tags) String() string { return strings.Join(*l, ",") }
func (l *tags) Set(v string) error {
	if v == "" {
		return errors.New("empty tag")
	}
	*l = append(*l, v)
	return nil
}
func (l *tags) UnmarshalYAML(n *yaml.Node) error {
	var s []string
	if err := n.Decode(&s); err != nil {
		return errors.New("want a list of tags")
	}
	*l = nil
	for i, v := range s {
		if err := l.Set(v); err != nil {
			return settings.At(n.Content[i], err)
		}
	}
	return nil
}

type config struct {
	Name   string        `flag:"name" yaml:"name" help:"the name"`
	On     bool          `flag:"on" yaml:"on" help:"a switch"`
	N      int           `flag:"n" yaml:"n" help:"a count"`
	Size   int64         `flag:"size-bytes" yaml:"size_bytes" help:"bytes, at most {max}"`
	Wait   time.Duration `flag:"wait" yaml:"wait" help:"how long"`
	Tags   tags          `flag:"tag" yaml:"tag" arg:"TAG" help:"a TAG (repeatable)"`
	Secret string        `flag:"db-dsn" yaml:"-" help:"the database, with its password"`
}

func defaults() config { return config{Name: "x", On: true, N: 3, Size: 1 << 20, Wait: time.Second} }

// parse binds a config with the defaults to a fresh flag set, parses args,
// then loads file (if not empty).
func parse(args []string, file string) (config, *settings.Binding, error) {
	c := defaults()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b := settings.Bind(fs, &c, map[string]string{"max": "1 MiB"})
	if err := fs.Parse(args); err != nil {
		return c, b, err
	}
	if file != "" {
		return c, b, b.Load("f.yaml", []byte(file))
	}
	return c, b, nil
}

func TestHelp(t *testing.T) {
	c := defaults()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	settings.Bind(fs, &c, map[string]string{"max": "1 MiB"})
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.PrintDefaults()
	const want = `  -db-dsn string
    	the database, with its password
  -n int
    	a count (default 3)
  -name string
    	the name (default "x")
  -on
    	a switch (default true)
  -size-bytes int
    	bytes, at most 1 MiB (default 1048576)
  -tag TAG
    	a TAG (repeatable)
  -wait duration
    	how long (default 1s)
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestLoad(t *testing.T) {
	all := defaults()
	all.Name, all.On, all.N, all.Size, all.Wait, all.Tags = "y", false, 7, 5, 2*time.Minute, tags{"a", "b"}
	for _, tt := range []struct {
		name, file string
		want       config
		err        string
	}{
		{"every key", "name: y\non: false\nn: 7\nsize_bytes: 5\nwait: 2m\ntag: [a, b]\n", all, ""},
		{"empty", "", defaults(), ""},
		{"comments only", "# nothing\n", defaults(), ""},
		{"zero duration", "wait: 0\n", func() config { c := defaults(); c.Wait = 0; return c }(), ""},
		{"alias", "name: &n z\nn: 1\n", func() config { c := defaults(); c.Name, c.N = "z", 1; return c }(), ""},
		{"unknown key", "name: y\nnmae: z\n", config{}, "f.yaml:2: nmae: unknown key"},
		{"flag name with a dash", "size-bytes: 5\n", config{}, "f.yaml:1: size-bytes: unknown key"},
		{"secret", "name: y\ndb_dsn: u:p@tcp(h)/d\n", config{}, "f.yaml:2: db_dsn: not read from a file, as its value may carry a secret: give --db-dsn"},
		{"secret as a flag name", "db-dsn: x\n", config{}, "f.yaml:1: db-dsn: not read from a file, as its value may carry a secret: give --db-dsn"},
		{"twice", "n: 1\nname: y\nn: 2\n", config{}, "f.yaml:3: n: given twice (first at line 1)"},
		{"int as string", "n: many\n", config{}, "f.yaml:1: n: want an integer, not many"},
		{"int too big", "n: 99999999999999999999\n", config{}, "f.yaml:1: n: want an integer, not 99999999999999999999"},
		{"quoted int", "n: \"1\"\n", config{}, "f.yaml:1: n: want an integer, not 1"},
		{"bool", "on: yes\n", config{}, "f.yaml:1: on: want true or false, not yes"},
		{"string from int", "name: 12\n", config{}, "f.yaml:1: name: want a string, not 12 (quote it)"},
		{"duration", "\n\nwait: 10\n", config{}, "f.yaml:3: wait: want a duration such as 500ms, 10s or 2m, not 10"},
		{"null", "name:\n", config{}, "f.yaml:1: name: want a string, not nothing (leave the key out for the default)"},
		{"mapping", "n:\n  a: 1\n", config{}, "f.yaml:2: n: want an integer, not a mapping"},
		{"list", "name: [a]\n", config{}, "f.yaml:1: name: want a string, not a list"},
		{"custom type", "tag: a\n", config{}, "f.yaml:1: tag: want a list of tags"},
		{"custom check", "tag: [a, \"\"]\n", config{}, "f.yaml:1: tag: empty tag"},
		{"custom check at its line", "tag:\n  - a\n  - \"\"\n", config{}, "f.yaml:3: tag: empty tag"},
		{"custom null", "tag:\n", config{}, "f.yaml:1: tag: no value (leave the key out for the default)"},
		{"not a mapping", "- name\n", config{}, "f.yaml:1: want a mapping of keys to values"},
		{"two documents", "name: a\n---\nname: b\n", config{}, "f.yaml:2: a second YAML document: the file is one mapping of keys to values"},
		{"syntax", "name: a\n n: 2\n", config{}, "f.yaml:2: mapping values are not allowed in this context"},
		{"key not a name", "[a]: 1\n", config{}, "f.yaml:1: a key must be a name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := parse(nil, tt.file)
			if tt.err != "" {
				var se *settings.Error
				if err == nil || err.Error() != tt.err || !errors.As(err, &se) {
					t.Fatalf("got %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestPrecedence: a flag given on the command line beats the file, which
// beats the default; a repeatable flag replaces the file's list whole; an
// overridden key is checked all the same; Line tells which keys the file
// set.
func TestPrecedence(t *testing.T) {
	const file = "name: file\nn: 9\ntag: [f1, f2]\n"
	got, b, err := parse([]string{"--name", "flag", "--tag", "c1", "--on=true"}, file)
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.Name, want.N, want.Tags = "flag", 9, tags{"c1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if b.Line("n") != 2 || b.Line("name") != 0 || b.Line("wait") != 0 {
		t.Errorf("lines: n %d, name %d, wait %d", b.Line("n"), b.Line("name"), b.Line("wait"))
	}
	if _, _, err := parse([]string{"--n", "1"}, "n: x\n"); err == nil || err.Error() != "f.yaml:1: n: want an integer, not x" {
		t.Errorf("overridden key with a bad value: %v", err)
	}
}

// TestWriteYAML: the file written from a configuration loads back into
// the same configuration, and shows every key but the secret one with its
// help.
func TestWriteYAML(t *testing.T) {
	c, b, err := parse([]string{"--name", "a: b", "--on=false", "--n", "-4", "--size-bytes", "123", "--wait", "1h2m", "--tag", "x", "--tag", "007", "--db-dsn", "secret"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := b.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	const want = `# the name
name: 'a: b'

# a switch
on: false

# a count
n: -4

# bytes, at most 1 MiB
size_bytes: 123

# how long
wait: 1h2m0s

# a TAG (repeatable)
tag:
  - x
  - "007"
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	back, _, err := parse(nil, out.String())
	if err != nil {
		t.Fatal(err)
	}
	c.Secret = ""
	if !reflect.DeepEqual(back, c) {
		t.Errorf("read back %+v, want %+v", back, c)
	}
}

func TestBindRefuses(t *testing.T) {
	type noHelp struct {
		A string `flag:"a" yaml:"a"`
	}
	type noVar struct {
		A string `flag:"a" yaml:"a" help:"{nope}"`
	}
	type badArg struct {
		A tags `flag:"a" yaml:"a" arg:"X" help:"no arg here"`
	}
	type badType struct {
		A float64 `flag:"a" yaml:"a" help:"h"`
	}
	type twice struct {
		A string `flag:"a" yaml:"k" help:"h"`
		B string `flag:"b" yaml:"k" help:"h"`
	}
	for _, cfg := range []any{&noHelp{}, &noVar{}, &badArg{}, &badType{}, &twice{}, noHelp{}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%T: no panic", cfg)
				}
			}()
			settings.Bind(flag.NewFlagSet("t", flag.ContinueOnError), cfg, nil)
		}()
	}
}

// TestComment: a long help is wrapped at 100 columns.
func TestComment(t *testing.T) {
	type long struct {
		A string `flag:"a" yaml:"a" help:"one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen"`
	}
	b := settings.Bind(flag.NewFlagSet("t", flag.ContinueOnError), &long{}, nil)
	var out bytes.Buffer
	if err := b.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	const want = "# one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen\n# seventeen\na: \"\"\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

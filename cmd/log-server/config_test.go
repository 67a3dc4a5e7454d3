package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/settings"
)

// bind returns a fresh Config with the defaults bound to a flag set.
func bind() (*Config, *flag.FlagSet, *settings.Binding, *string) {
	c := defaultConfig()
	fs := flag.NewFlagSet("log-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b, file := bindConfig(fs, &c)
	return &c, fs, b, file
}

// fromArgs is the Config that args and, if not empty, the file text give,
// before the checks of parseConfig.
func fromArgs(t *testing.T, args []string, file string) (*Config, error) {
	t.Helper()
	c, fs, b, _ := bind()
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		t.Fatalf("%v: %v %v", args, err, fs.Args())
	}
	if file != "" {
		if err := b.Load("server.yaml", []byte(file)); err != nil {
			return nil, err
		}
		if err := c.checkFile(b, "server.yaml"); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// setting is one field of Config as the tests see it.
type setting struct {
	field, flag, key string
	v                reflect.Value
}

func settingsOf(c *Config) []setting {
	var out []setting
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		sf := v.Type().Field(i)
		if sf.IsExported() {
			out = append(out, setting{sf.Name, sf.Tag.Get("flag"), sf.Tag.Get("yaml"), v.Field(i)})
		}
	}
	return out
}

// samples are values, other than the default, for each setting: as flags
// and as the YAML of a file. The repeatable types have theirs by hand (a
// new one needs an entry here); the others follow from the default.
func samples(t *testing.T, s setting) (flags []string, yaml string) {
	t.Helper()
	switch d := s.v.Interface().(type) {
	case string:
		v := "v-" + s.key
		return []string{v}, fmt.Sprintf("%q", v)
	case bool:
		return []string{fmt.Sprint(!d)}, fmt.Sprint(!d)
	case int:
		return []string{fmt.Sprint(d + 7)}, fmt.Sprint(d + 7)
	case int64:
		return []string{fmt.Sprint(d + 7)}, fmt.Sprint(d + 7)
	case time.Duration:
		return []string{(d + 7*time.Second).String()}, (d + 7*time.Second).String()
	case upstreamFlags:
		return []string{"a=http://127.0.0.1:1/v1", "b=https://example.com"}, "\n  a: http://127.0.0.1:1/v1\n  b: https://example.com"
	case resolveFlags:
		return []string{"api.example.com=127.0.0.1:1", "b.example.com=[::1]:2"}, "{api.example.com: \"127.0.0.1:1\", b.example.com: \"[::1]:2\"}"
	case listFlag:
		return []string{"10.0.0.0/8", "db.internal:5432"}, "[10.0.0.0/8, \"db.internal:5432\"]"
	}
	t.Fatalf("%s: no sample for type %s: add one to samples", s.field, s.v.Type())
	return nil, ""
}

// TestConfigFileEqualsFlags: a file with every key sets the same
// configuration as the same values given as flags; a file written from
// that configuration (log-server config) reads back to it; every key is
// its flag's name with _ for -, and only --db-dsn has none.
func TestConfigFileEqualsFlags(t *testing.T) {
	def, _, _, _ := bind()
	var args []string
	var file strings.Builder
	for _, s := range settingsOf(def) {
		if s.key == "-" {
			if s.flag != "db-dsn" {
				t.Errorf("--%s is not read from a file: say why here and in docs/config.md", s.flag)
			}
			continue
		}
		if want := strings.ReplaceAll(s.flag, "-", "_"); s.key != want {
			t.Errorf("%s: key %q, want %q (the flag's name with _ for -)", s.field, s.key, want)
		}
		flags, yaml := samples(t, s)
		for _, f := range flags {
			args = append(args, "--"+s.flag+"="+f)
		}
		fmt.Fprintf(&file, "%s: %s\n", s.key, yaml)
	}
	byFlags, err := fromArgs(t, args, "")
	if err != nil {
		t.Fatal(err)
	}
	byFile, err := fromArgs(t, nil, file.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, file.String())
	}
	for _, s := range settingsOf(byFlags) {
		if s.key == "-" {
			continue
		}
		got := reflect.ValueOf(byFile).Elem().FieldByName(s.field).Interface()
		if !reflect.DeepEqual(got, s.v.Interface()) {
			t.Errorf("%s: the file gives %v, the flags %v", s.key, got, s.v.Interface())
		}
		if reflect.DeepEqual(s.v.Interface(), reflect.ValueOf(def).Elem().FieldByName(s.field).Interface()) {
			t.Errorf("%s: the sample is the default", s.key)
		}
	}

	c, fs, b, _ := bind()
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := b.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	back, err := fromArgs(t, nil, out.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("written and read back:\n%+v\nwant\n%+v", back, c)
	}
}

// TestConfigDefaults: an empty file, and a file of the defaults (what
// log-server config prints), give the defaults.
func TestConfigDefaults(t *testing.T) {
	def, _, b, _ := bind()
	var out bytes.Buffer
	if err := b.WriteYAML(&out); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"", "# nothing\n", out.String()} {
		c, err := fromArgs(t, nil, file)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, def) {
			t.Errorf("%q gives\n%+v\nwant\n%+v", file, c, def)
		}
	}
}

// TestConfigFileRefused: mistakes in a file are refused with the file, the
// line and the key.
func TestConfigFileRefused(t *testing.T) {
	for _, tt := range []struct{ file, err string }{
		{"listen: 127.0.0.1:9\nlisten_addr: x\n", "server.yaml:2: listen_addr: unknown key"},
		{"data: d\nmax_conns: lots\n", "server.yaml:2: max_conns: want an integer, not lots"},
		{"console: off\n", "server.yaml:1: console: want true or false, not off"},
		{"batch_max_age: 10\n", "server.yaml:1: batch_max_age: want a duration such as 500ms, 10s or 2m, not 10"},
		{"origin: 12\n", "server.yaml:1: origin: want a string, not 12 (quote it)"},
		{"upstream: [a]\n", "server.yaml:1: upstream: want a mapping of NAME: BASE_URL"},
		{"upstream:\n  a: http://x\n  b: ftp://y\n", `server.yaml:3: upstream: upstream b: "ftp://y" must be an http(s) URL with a host and no query, fragment or user info`},
		{"upstream:\n  a: https://u:p@x\n", `server.yaml:2: upstream: upstream a: "https://u:p@x" must be an http(s) URL with a host and no query, fragment or user info`},
		{"intercept_resolve: {h: \"\"}\n", `server.yaml:1: intercept_resolve: "h=": want HOST=ADDR`},
		{"intercept_allow: 10.0.0.0/8\n", "server.yaml:1: intercept_allow: want a list of strings"},
		{"db_dsn: u:p@tcp(h)/d\n", "server.yaml:1: db_dsn: not read from a file, as its value may carry a secret: give --db-dsn"},
		{"signing_key: pkcs11:token=t;object=k?module-path=/m.so&pin-value=1234\n", "server.yaml:1: signing_key: pin-value is a secret, which a file does not hold: name a file of mode 0600 with pin-source=file:PATH"},
		{"listen: a\nlisten: b\n", "server.yaml:2: listen: given twice (first at line 1)"},
	} {
		_, err := fromArgs(t, nil, tt.file)
		var se *settings.Error
		if err == nil || err.Error() != tt.err || !errors.As(err, &se) {
			t.Errorf("%q: got %v, want %s", tt.file, err, tt.err)
		}
	}
	// A PIN in a file named by the URI is what a file may hold.
	if _, err := fromArgs(t, nil, "signing_key: pkcs11:token=t;object=k?module-path=/m.so&pin-source=file:/etc/pin\n"); err != nil {
		t.Error(err)
	}
}

// TestConfigFlagsOverride: a flag given on the command line beats the
// file's key, repeatable flags as a whole; the file beats the default.
func TestConfigFlagsOverride(t *testing.T) {
	const file = "listen: 127.0.0.1:1\nmax_conns: 10\nconsole: false\nupstream: {a: http://127.0.0.1:1, b: http://127.0.0.1:2}\n"
	c, err := fromArgs(t, []string{"--listen", "127.0.0.1:2", "--console=true", "--upstream", "c=http://127.0.0.1:3"}, file)
	if err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	want.Listen, want.MaxConns, want.Console, want.Upstreams = "127.0.0.1:2", 10, true, upstreamFlags{"c": "http://127.0.0.1:3"}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", *c, want)
	}
}

var yamlBlockRE = regexp.MustCompile("(?s)```yaml\n(.*?)```\n")

// TestConfigCommand runs the binary: log-server config prints the example
// of docs/config.md, shows a file and the flags that override it, and
// refuses a bad file with its line (exit 2); serve runs with a file's
// settings under the flags'.
func TestConfigCommand(t *testing.T) {
	bin := buildBinary(t)
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	m := yamlBlockRE.FindSubmatch(doc)
	out, err := exec.Command(bin, "config").Output()
	if err != nil {
		t.Fatal(err)
	}
	if m == nil || string(m[1]) != string(out) {
		t.Errorf("log-server config prints\n%s\nbut the first yaml block of docs/config.md is not that (rerun docs/commands.sh)", out)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "server.yaml")
	// The harness waits for an info line: log_level stays info.
	os.WriteFile(file, []byte("listen: 127.0.0.1:1\nconsole: false\nmax_body_bytes: 1000\nlog_level: error\n"), 0o644)
	out, err = exec.Command(bin, "config", "--config", file, "--log-level", "info").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nlisten: 127.0.0.1:1\n", "\nconsole: false\n", "\nmax_body_bytes: 1000\n", "\nlog_level: info\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("log-server config --config FILE --log-level info shows no %q", want)
		}
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listen: 127.0.0.1:1\n\nlisten_addr: x\n"), 0o644)
	for _, sub := range []string{"config", "serve"} {
		cmd := exec.Command(bin, sub, "--config", bad)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err = cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.HasPrefix(stderr.String(), "log-server"+map[string]string{"config": " config"}[sub]+": --config: "+bad+":3: listen_addr: unknown key\n") {
			t.Errorf("%s --config bad.yaml: %v\n%s", sub, err, stderr.String())
		}
	}

	// The harness gives --listen: the file's is overridden.
	p := startWith(t, bin, filepath.Join(dir, "data"), nil, "--config", file, "--log-level", "info")
	resp, err := http.Get(p.url + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("console: false, GET /console/: %s", resp.Status)
	}
	tok := readToken(t, filepath.Join(dir, "data"))
	req, _ := http.NewRequest("POST", p.url+"/v1/events", strings.NewReader(`{"kind":"agent.decision","session":"s","attributes":{"x":"`+strings.Repeat("a", 2000)+`"}}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("max_body_bytes: 1000, a 2 kB event: %s", resp.Status)
	}
}

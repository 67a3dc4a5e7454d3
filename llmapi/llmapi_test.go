package llmapi

import (
	"slices"
	"testing"
)

type fakeFormat struct{ name string }

func (f fakeFormat) Name() string                       { return f.name }
func (fakeFormat) Text([]byte) (string, bool)           { return "", false }
func (fakeFormat) ErrorBody(int, string, string) []byte { return nil }
func (fakeFormat) ToolResult(any) (string, bool)        { return "", false }
func (fakeFormat) IDPrefixes() []string                 { return nil }
func (fakeFormat) DecisionFields() []string             { return nil }

// TestRegistry: registration order, formats shared by providers, the
// lookups, and the refusals.
func TestRegistry(t *testing.T) {
	one, two := fakeFormat{"one"}, fakeFormat{"two"}
	Register(Provider{Name: "alpha", System: "alpha.ai", Hosts: []string{"api.alpha.test"}, Upstream: "https://api.alpha.test", Format: one})
	Register(Provider{Name: "beta", System: "beta.cloud", Hosts: []string{"*.beta.test"}, UpstreamPrefix: true, Format: one})
	Register(Provider{Name: "gamma", System: "gamma", Format: two})
	names := func(ps []Provider) (out []string) {
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	if got := names(Providers()); !slices.Equal(got, []string{"alpha", "beta", "gamma"}) {
		t.Errorf("Providers = %v", got)
	}
	if fs := Formats(); len(fs) != 2 || fs[0].Name() != "one" || fs[1].Name() != "two" {
		t.Errorf("Formats = %v", fs)
	}
	for _, c := range []struct {
		what string
		got  func() (Provider, bool)
		want string
	}{
		{"Lookup(beta)", func() (Provider, bool) { return Lookup("beta") }, "beta"},
		{"Lookup(delta)", func() (Provider, bool) { return Lookup("delta") }, ""},
		{"ForHost(API.Alpha.test.)", func() (Provider, bool) { return ForHost("API.Alpha.test.") }, "alpha"},
		{"ForHost(eu.beta.test)", func() (Provider, bool) { return ForHost("eu.beta.test") }, "beta"},
		{"ForHost(beta.test)", func() (Provider, bool) { return ForHost("beta.test") }, ""},
		{"ForUpstream(beta-eu)", func() (Provider, bool) { return ForUpstream("beta-eu") }, "beta"},
		{"ForUpstream(alpha-eu)", func() (Provider, bool) { return ForUpstream("alpha-eu") }, ""},
		{"ForSystem(gamma)", func() (Provider, bool) { return ForSystem("gamma") }, "gamma"},
		{"ForFormat(one)", func() (Provider, bool) { return ForFormat("one") }, "alpha"},
	} {
		p, ok := c.got()
		if p.Name != c.want || ok != (c.want != "") {
			t.Errorf("%s = %q, %v; want %q", c.what, p.Name, ok, c.want)
		}
	}
	if FormatOf("two.api") != two || FormatOf("three.api") != nil || FormatNamed("one") != one {
		t.Error("FormatOf/FormatNamed")
	}
	for _, bad := range []Provider{{Name: "alpha", System: "x", Format: one}, {Name: "", System: "x", Format: one}, {Name: "x", System: "x"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%+v) did not panic", bad)
				}
			}()
			Register(bad)
		}()
	}
}

func TestStreamData(t *testing.T) {
	body := "event: x\ndata: {\"a\":1}\n\ndata:{\"b\":2}\r\n\r\n: comment\ndata: [DONE]\n\n"
	var got []string
	for _, d := range StreamData([]byte(body)) {
		got = append(got, string(d))
	}
	if want := []string{`{"a":1}`, `{"b":2}`}; !slices.Equal(got, want) {
		t.Errorf("StreamData = %q, want %q", got, want)
	}
	if !IsJSON([]byte(" \n{}")) || !IsJSON([]byte("[1]")) || IsJSON([]byte("data: {}")) || IsJSON(nil) {
		t.Error("IsJSON")
	}
	if !MatchHost("*.Example.com", "a.b.example.COM") || MatchHost("*.example.com", "example.com") {
		t.Error("MatchHost")
	}
}

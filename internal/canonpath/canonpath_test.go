package canonpath

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"/", true},
		{"/checkpoint", true},
		{"/tile/entries/000", true},
		{"/tile/entries/x001/234.p/5", true},
		{"/console/", true},
		{"/v1/sessions/chat:1@a_b-c.d~e", true},
		{"/proxy/gemini/v1beta/models/gemini-2.5-pro%3AgenerateContent", true},
		{"/proxy/gw/a%20b/%25/%C3%A9", true},

		{"", false},
		{"*", false},
		{"tile/entries/000", false},
		{"/tile/%65ntries/000", false},
		{"/tile/entries%2F000", false},
		{"/tile/entries%2f000", false},
		{"/tile/entries/000.p%2F5", false},
		{"/tile/entries/x000%2F010", false},
		{"/tile/entries/%30%30%30", false},
		{"/tile/%2E%2E/keys", false},
		{"/tile/./entries/000", false},
		{"/tile/x/../entries/000", false},
		{"/tile/entries/..", false},
		{"/tile//entries/000", false},
		{"//tile/entries/000", false},
		{"/tile/entries/000//", false},
		{`/tile\entries/000`, false},
		{"/tile%5Centries/000", false},
		{"/a%3a", false},
		{"/a%00", false},
		{"/a%7F", false},
		{"/a%", false},
		{"/a%4", false},
		{"/a%GG", false},
		{"/proxy/openai/x#/../../../admin", false},
		{"/proxy/openai/chat/y#/../completions", false},
		{"/tile/entries#", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			err := Check(tc.path)
			if tc.ok && err != nil {
				t.Fatalf("Check(%q) = %v, want nil", tc.path, err)
			}
			if !tc.ok && !errors.Is(err, ErrNotCanonical) {
				t.Fatalf("Check(%q) = %v, want ErrNotCanonical", tc.path, err)
			}
		})
	}
}

func TestVariantsAreRefused(t *testing.T) {
	for _, p := range []string{"/", "/checkpoint", "/tile/entries/000.p/3", "/tile/entries/x000/010", "/proxy/gw/v1/chat/completions"} {
		vs := Variants(p)
		if len(vs) < 5 {
			t.Fatalf("Variants(%q) = %d variants", p, len(vs))
		}
		for _, v := range vs {
			t.Run(p+" "+v.Name, func(t *testing.T) {
				if err := Check(v.Path); !errors.Is(err, ErrNotCanonical) {
					t.Fatalf("Check(%q) = %v, want ErrNotCanonical", v.Path, err)
				}
			})
		}
	}
}

func TestWirePath(t *testing.T) {
	for _, tc := range []struct{ target, want string }{
		{"/tile/%65ntries/000?x=%2F", "/tile/%65ntries/000"},
		{"http://example.com/tile/%65ntries/000", "/tile/%65ntries/000"},
		{"http://example.com", "/"},
		{"http://example.com?a", "/"},
		{"/proxy/openai/x#/../admin?q", "/proxy/openai/x#/../admin"},
		{"http://example.com#/../x", "/#/../x"},
		{"*", "*"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RequestURI = tc.target
			if got := WirePath(r); got != tc.want {
				t.Fatalf("WirePath(%q) = %q, want %q", tc.target, got, tc.want)
			}
		})
	}
	// In process: no RequestURI, the URL's escaped path.
	r, _ := http.NewRequest(http.MethodGet, "http://x/tile/%65ntries/000", nil)
	if got := WirePath(r); got != "/tile/%65ntries/000" {
		t.Fatalf("WirePath(in process) = %q", got)
	}
}

func FuzzCheck(f *testing.F) {
	for _, p := range []string{"/", "/tile/entries/000", "/tile/%65ntries/000", "/a%3A", "/a/../b"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if Check(p) != nil {
			return
		}
		// An accepted path decodes to the same segments: no escape made a
		// separator or a dot segment, and nothing decodes to an empty one.
		raw := splitSegs(p)
		for i, s := range raw {
			d, err := unescape(s)
			if err != nil {
				t.Fatalf("accepted %q with a bad escape: %v", p, err)
			}
			if d == "." || d == ".." || (d == "" && i != len(raw)-1) {
				t.Fatalf("accepted %q: segment %d decodes to %q", p, i, d)
			}
			for j := 0; j < len(d); j++ {
				if d[j] == '/' || d[j] == '\\' {
					t.Fatalf("accepted %q: segment %d decodes to %q", p, i, d)
				}
			}
		}
	})
}
func splitSegs(p string) []string { return strings.Split(strings.TrimPrefix(p, "/"), "/") }

func unescape(s string) (string, error) { return url.PathUnescape(s) }

// Package canonpath refuses HTTP requests whose path is not in canonical
// form, so that the path a router or an access check decides on and the path
// a handler serves (or a proxy forwards) are one and the same.
//
// A path is canonical when, as it came on the wire:
//
//   - it starts with "/" and has no empty segment ("//"), and no segment is
//     "." or ".." (RFC 3986 §5.2.4 would remove them);
//   - no percent-escape spells an unreserved character (ALPHA, DIGIT, "-",
//     ".", "_", "~"), which RFC 3986 §6.2.2.2 says is the same path written
//     plainly, nor "/" or "\" (a segment separator hidden in a segment), nor
//     a control character;
//   - every percent-escape is "%" and two upper-case hex digits
//     (RFC 3986 §6.2.2.1);
//   - it has no literal "\" and no "#": a request target carries no
//     fragment (RFC 9112 §3.2), and Go's server would keep one in the path
//     that a client or an upstream cuts off or normalises past.
//
// Other escapes stay allowed: a reserved character other than "/" (":",
// "@", "?", ...), a space, "%" itself or a non-ASCII byte may need one in a
// proxied upstream path. None of them can change which segments a path has
// or spell a letter of a route, so a router that matches on the escaped path
// and a handler that reads the decoded one see the same route.
package canonpath

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// ErrNotCanonical is wrapped by the errors of Check and Request.
var ErrNotCanonical = errors.New("request path is not in canonical form")

// Check reports whether the escaped path p (as sent on the wire, without
// query) is canonical: nil, or an error wrapping ErrNotCanonical that names
// the first problem.
func Check(p string) error {
	if !strings.HasPrefix(p, "/") {
		return bad("it does not start with /")
	}
	if strings.Contains(p, "//") {
		return bad("it has an empty segment (//)")
	}
	if strings.Contains(p, `\`) {
		return bad(`it has a backslash`)
	}
	if strings.Contains(p, "#") {
		return bad("it has a fragment (#)")
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return bad("it has a dot segment")
		}
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		if i+2 >= len(p) || !upperHex(p[i+1]) || !upperHex(p[i+2]) {
			return bad("%%-escapes must be %% and two upper-case hex digits")
		}
		c := unhex(p[i+1])<<4 | unhex(p[i+2])
		switch {
		case unreserved(c):
			return bad("%s escapes the unreserved %q", p[i:i+3], c)
		case c == '/' || c == '\\':
			return bad("%s escapes a segment separator", p[i:i+3])
		case c < 0x20 || c == 0x7f:
			return bad("%s escapes a control character", p[i:i+3])
		}
		i += 2
	}
	return nil
}

// WirePath is the escaped path of r as it came on the wire: the path of
// the request target (origin-form, or absolute-form as proxies send it),
// or, for a request made in process (no RequestURI), r.URL.EscapedPath().
func WirePath(r *http.Request) string {
	t := r.RequestURI
	if t == "" {
		return r.URL.EscapedPath()
	}
	if i := strings.Index(t, "://"); i > 0 && !strings.HasPrefix(t, "/") {
		rest := t[i+3:]
		switch j := strings.IndexAny(rest, "/?#"); {
		case j < 0 || rest[j] == '?':
			return "/"
		case rest[j] == '#':
			t = "/" + rest[j:] // refused by Check
		default:
			t = rest[j:]
		}
	}
	if i := strings.IndexByte(t, '?'); i >= 0 {
		t = t[:i]
	}
	return t
}

// Request checks the wire path of r (see Check), and the escaped form of
// the path the server parsed from it, which handlers read: both must be
// canonical.
func Request(r *http.Request) error {
	if err := Check(WirePath(r)); err != nil {
		return err
	}
	return Check(r.URL.EscapedPath())
}

// Handler serves with next the requests whose path is canonical, and
// answers the others with refuse (which writes the answer; typically 400
// in the caller's error format). Put it at the top of a handler tree, in
// front of any router or access check.
func Handler(next http.Handler, refuse func(w http.ResponseWriter, r *http.Request, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := Request(r); err != nil {
			refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotCanonical, fmt.Sprintf(format, args...))
}

func upperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// Variant is a non-canonical spelling of a path.
type Variant struct{ Name, Path string }

// Variants spells the canonical path p in the non-canonical ways that Check
// refuses, for tests of the handlers it guards: each segment with its first
// unreserved character escaped, each "/" escaped (%2F and %2f) or doubled,
// a dot segment (".", "x/..", "x/%2E%2E") before each segment and after
// the last.
func Variants(p string) []Variant {
	var out []Variant
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	join := func(s []string) string { return "/" + strings.Join(s, "/") }
	for i, s := range segs {
		for j := 0; j < len(s); j++ {
			if unreserved(s[j]) {
				c := slices.Clone(segs)
				c[i] = fmt.Sprintf("%s%%%02X%s", s[:j], s[j], s[j+1:])
				out = append(out, Variant{fmt.Sprintf("escaped %q in segment %d", s[j], i), join(c)})
				break
			}
		}
		for _, dot := range []string{".", "x/..", "x/%2E%2E"} {
			c := slices.Insert(slices.Clone(segs), i, dot)
			out = append(out, Variant{fmt.Sprintf("%q before segment %d", dot, i), join(c)})
		}
	}
	out = append(out, Variant{"trailing /.", p + "/."}, Variant{"trailing /..", p + "/.."}, Variant{"leading //", "/" + p},
		Variant{"a fragment", p + "#x"})
	for i := 1; i < len(segs); i++ {
		before, after := join(segs[:i]), strings.Join(segs[i:], "/")
		out = append(out,
			Variant{fmt.Sprintf("%%2F before segment %d", i), before + "%2F" + after},
			Variant{fmt.Sprintf("%%2f before segment %d", i), before + "%2f" + after},
			Variant{fmt.Sprintf("// before segment %d", i), before + "//" + after},
			Variant{fmt.Sprintf("#/x/.. before segment %d", i), before + "#/x/../" + after})
	}
	return out
}

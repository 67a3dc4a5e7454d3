package capture

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// credentialHeaders carry secrets: they are forwarded upstream (the proxy
// strips the proxy credentials) but never recorded; the recorder keeps a
// keyed fingerprint of each instead. Every registered provider adds its own
// (llmapi.Provider.Credentials).
var credentialHeaders = []string{
	"Authorization", "X-Api-Key", "Api-Key",
	"Cookie", "Proxy-Authorization",
}

// recordedHeaders are the request headers whose values are copied into
// llm.request attributes (http.request.header.NAME): those that describe
// the SDK and the API version, and nothing that may name a person or an
// account. Of the other headers only the names are recorded
// (http.request.header_names). Every registered provider adds its own
// (llmapi.Provider.Headers: its API version and feature flags).
var recordedHeaders = []string{
	"Content-Type",
	"X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-Os", "X-Stainless-Arch",
	"X-Stainless-Runtime", "X-Stainless-Runtime-Version", "X-Stainless-Retry-Count",
}

// maxHeaderNames caps http.request.header_names.
const maxHeaderNames = 64

// hopHeaders are hop-by-hop headers (RFC 9110 section 7.6.1), never
// forwarded by the proxy.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// fingerprint is the keyed fingerprint of a credential:
// "hmac-sha256:" and the first 16 bytes of HMAC-SHA256(key, value), hex.
// Whoever holds the key can tell whether a given credential was used; the
// log alone reveals nothing about it.
func fingerprint(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)[:16])
}

// credentialValue strips an auth scheme ("Bearer x" -> "x") so that the
// same key sent as Authorization or x-api-key has the same fingerprint.
func credentialValue(v string) string {
	v = strings.TrimSpace(v)
	if scheme, rest, ok := strings.Cut(v, " "); ok && !strings.ContainsAny(scheme, "=;") {
		return strings.TrimSpace(rest)
	}
	return v
}

// credentialAttrs returns capture.credential.NAME = fingerprint for each
// credential header present.
func credentialAttrs(a attrs, key []byte, h http.Header) {
	for _, name := range credentialHeaders {
		vs := h.Values(name)
		if len(vs) == 0 {
			continue
		}
		fps := make([]string, 0, len(vs))
		for _, v := range vs {
			if name == "Cookie" {
				fps = append(fps, fingerprint(key, v))
			} else {
				fps = append(fps, fingerprint(key, credentialValue(v)))
			}
		}
		k := "capture.credential." + strings.ToLower(name)
		if len(fps) == 1 {
			a.set(k, fps[0])
		} else {
			a.set(k, fps)
		}
	}
}

// headerAttrs copies the values of the recorded request headers, and the
// names of the others (our X-Audit-* headers aside).
func headerAttrs(a attrs, h http.Header) {
	var names []string
	for name, v := range h {
		if isAuditHeader(name) {
			continue
		}
		if slices.Contains(recordedHeaders, name) {
			a.set("http.request.header."+strings.ToLower(name), clean(strings.Join(v, ", "), 200))
			continue
		}
		names = append(names, strings.ToLower(name))
	}
	slices.Sort(names)
	if len(names) > maxHeaderNames {
		names = names[:maxHeaderNames]
	}
	a.set(event.AttrHTTPRequestHeaderNames, names)
}

// queryAttr returns the shape of a raw query with no value in it: parts
// are split at "&" and ";" (some servers split at either; the separators
// are kept), and each becomes NAME=FP, where FP is the keyed fingerprint of
// its value (hmac-sha256: and 8 bytes, hex), so that repetitions show but
// no value does: query strings carry credentials (key=, sig=), tokens and
// personal data alike. NAME is the percent-decoded name when it is a plain
// parameter name (1-32 of [A-Za-z0-9_.-[]]) that does not look like a
// credential pasted as a name (see secretName), else its fingerprint too. A
// part without "=" may be a value pasted without a name (?key=X&SECRET):
// it is recorded as its fingerprint alone. An empty value is kept empty
// (NAME=), an empty part empty.
func queryAttr(key []byte, raw string) string {
	if raw == "" {
		return ""
	}
	fp := func(v string) string {
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		f := fingerprint(key, v)
		return f[:len("hmac-sha256:")+16]
	}
	var b strings.Builder
	for len(raw) > 0 {
		part := raw
		sep := ""
		if i := strings.IndexAny(raw, "&;"); i >= 0 {
			part, sep, raw = raw[:i], raw[i:i+1], raw[i+1:]
		} else {
			raw = ""
		}
		if part != "" {
			name, value, hasValue := strings.Cut(part, "=")
			switch {
			case !hasValue:
				b.WriteString(fp(part))
			default:
				if n, err := url.QueryUnescape(name); err == nil && queryName(n) && !secretName(n) {
					b.WriteString(n)
				} else {
					b.WriteString(fp(name))
				}
				b.WriteByte('=')
				if value != "" {
					b.WriteString(fp(value))
				}
			}
		}
		b.WriteString(sep)
	}
	return event.Clip(b.String(), maxAttrString)
}

// queryName reports whether n is a query parameter name recorded as it
// is ([A-Za-z0-9_.[\]-], 1 to 32 of them), unless
// secretName.
func queryName(n string) bool {
	if n == "" || len(n) > 32 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_.-[]", c) >= 0) {
			return false
		}
	}
	return true
}

// secretKeyPrefixes begin well-known API keys and tokens (sk-: the LLM
// providers' secret keys; Stripe, Google, AWS access key ids, GitHub,
// GitLab, Slack, Hugging Face, Google OAuth, JWTs).
var secretKeyPrefixes = []string{"sk-", "sk_", "rk_", "AIza", "AKIA", "ASIA", "ghp_", "gho_", "ghs_", "ghu_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "xapp-", "hf_", "ya29.", "eyJ"}

// secretName reports whether a query parameter name looks like a
// credential or identifier sent as a name (?sk-...=): it starts with a
// known key prefix, holds a run of 8 or more digits, or is 16 or more
// letters and digits, both, with no separator. Such a name is recorded as
// its fingerprint; a real parameter name seldom matches, and one that does
// only loses its spelling in the record.
func secretName(n string) bool {
	for _, p := range secretKeyPrefixes {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	run, letters, digits, seps := 0, 0, 0, 0
	for _, c := range []byte(n) {
		switch {
		case c >= '0' && c <= '9':
			digits++
			if run++; run >= 8 {
				return true
			}
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letters++
		default:
			seps++
		}
		run = 0
	}
	return len(n) >= 16 && seps == 0 && letters > 0 && digits > 0
}

// isAuditHeader reports whether name is one of ours (X-Audit-*).
func isAuditHeader(name string) bool {
	return strings.HasPrefix(textproto.CanonicalMIMEHeaderKey(name), "X-Audit-")
}

// upstreamHeader returns the headers to forward: everything except our
// X-Audit-* headers, hop-by-hop headers (and those named in Connection),
// proxy credentials, and Accept-Encoding (so bodies come back as plaintext
// and are recorded as such).
func upstreamHeader(in http.Header) http.Header {
	out := make(http.Header, len(in))
	for k, v := range in {
		out[k] = append([]string(nil), v...)
	}
	for _, f := range in.Values("Connection") {
		for name := range strings.SplitSeq(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				out.Del(name)
			}
		}
	}
	for _, h := range hopHeaders {
		out.Del(h)
	}
	for k := range out {
		if isAuditHeader(k) {
			delete(out, k)
		}
	}
	out.Del("Accept-Encoding")
	out.Del("Host")
	return out
}

// copyResponseHeader copies an upstream response's end-to-end headers.
func copyResponseHeader(dst, src http.Header) {
	conn := map[string]bool{}
	for _, f := range src.Values("Connection") {
		for name := range strings.SplitSeq(f, ",") {
			conn[textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name))] = true
		}
	}
	for k, v := range src {
		if conn[k] || isAuditHeader(k) {
			continue
		}
		skip := false
		for _, h := range hopHeaders {
			if k == h {
				skip = true
				break
			}
		}
		if !skip {
			dst[k] = append([]string(nil), v...)
		}
	}
}

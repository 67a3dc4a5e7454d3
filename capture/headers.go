package capture

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// credentialHeaders carry secrets: they are forwarded upstream (the proxy
// strips the proxy credentials) but never recorded; the recorder keeps a
// keyed fingerprint of each instead.
var credentialHeaders = []string{
	"Authorization", "X-Api-Key", "Api-Key", "X-Goog-Api-Key",
	"Cookie", "Proxy-Authorization",
}

// recordedHeaders are the request headers copied into llm.request
// attributes (http.request.header.NAME). Nothing else of the headers is
// recorded.
var recordedHeaders = []string{
	"Content-Type", "User-Agent", "Anthropic-Version", "Anthropic-Beta",
	"Openai-Organization", "Openai-Project", "Openai-Beta",
	"X-Stainless-Retry-Count", "Idempotency-Key",
}

// hopHeaders are hop-by-hop headers (RFC 9110 section 7.6.1), never
// forwarded by the proxy.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// sensitiveQuery are query parameters that may hold credentials: their
// values are never recorded.
var sensitiveQuery = map[string]bool{
	"key": true, "api_key": true, "api-key": true, "apikey": true, "access_token": true,
	"token": true, "sig": true, "signature": true, "code": true, "client_secret": true,
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

// headerAttrs copies the recorded request headers.
func headerAttrs(a attrs, h http.Header) {
	for _, name := range recordedHeaders {
		if v := h.Values(name); len(v) > 0 {
			a.set("http.request.header."+strings.ToLower(name), clean(strings.Join(v, ", "), 200))
		}
	}
}

// redactQuery returns the raw query with the values of sensitive
// parameters replaced by "REDACTED".
func redactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, _, hasValue := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if hasValue && sensitiveQuery[strings.ToLower(name)] {
			parts[i] = k + "=REDACTED"
		}
	}
	return event.Clip(strings.Join(parts, "&"), maxAttrString)
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

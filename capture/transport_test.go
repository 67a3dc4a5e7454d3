package capture

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// TestUpstreamTransport: the Proxy, the MCP capture and the Interceptor
// send upstream with one transport's settings: never through a proxy
// (HTTP_PROXY and HTTPS_PROXY are not read: in the log server's
// environment they may name its own interception listener), TLS 1.2 or
// later with the roots given, HTTP/2 attempted, no compression asked for,
// bounded handshakes and no bound on the first response byte, the same
// pool sizes.
func TestUpstreamTransport(t *testing.T) {
	auth := func(context.Context, string) (*Agent, error) { return nil, ErrUnauthenticated }
	roots := x509.NewCertPool()
	p, err := NewProxy(nil, auth, WithUpstreamRoots(roots))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	m, err := NewMCP(nil, auth, WithUpstreamRoots(roots))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	dir := t.TempDir()
	ic, err := NewInterceptor(InterceptConfig{CACert: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca.key")}, auth, WithUpstreamRoots(roots))
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close(context.Background())
	for name, rt := range map[string]http.RoundTripper{"proxy": p.transport, "mcp": m.transport, "intercept": ic.p.transport} {
		tr, ok := rt.(*http.Transport)
		if !ok {
			t.Errorf("%s: transport %T", name, rt)
			continue
		}
		for _, c := range []struct {
			what string
			ok   bool
		}{
			{"no proxy", tr.Proxy == nil},
			{"a dialer", tr.DialContext != nil},
			{"the roots given", tr.TLSClientConfig != nil && tr.TLSClientConfig.RootCAs == roots},
			{"TLS 1.2 or later", tr.TLSClientConfig != nil && tr.TLSClientConfig.MinVersion == tls.VersionTLS12 && !tr.TLSClientConfig.InsecureSkipVerify},
			{"HTTP/2 attempted", tr.ForceAttemptHTTP2},
			{"no compression asked for", tr.DisableCompression},
			{"TLS handshake bounded", tr.TLSHandshakeTimeout == 10*time.Second},
			{"first response byte unbounded", tr.ResponseHeaderTimeout == 0},
			{"idle pool", tr.MaxIdleConns == 100 && tr.MaxIdleConnsPerHost == 64 && tr.IdleConnTimeout == 90*time.Second},
			{"expect-continue", tr.ExpectContinueTimeout == time.Second},
		} {
			if !c.ok {
				t.Errorf("%s: want %s", name, c.what)
			}
		}
	}
}

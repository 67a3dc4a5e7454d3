package capture

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"time"
)

// The upstream transport's settings: one set for the Proxy, the MCP
// capture and the Interceptor.
const (
	// upstreamDialTimeout bounds a TCP connect to an upstream.
	upstreamDialTimeout = 30 * time.Second
	// upstreamKeepAlive is the TCP keep-alive period of upstream
	// connections: a long call on a dead connection is noticed.
	upstreamKeepAlive = 30 * time.Second
	// upstreamTLSHandshakeTimeout bounds a TLS handshake with an upstream.
	upstreamTLSHandshakeTimeout = 10 * time.Second
	// upstreamIdleConnTimeout closes an idle pooled connection.
	upstreamIdleConnTimeout = 90 * time.Second
	// upstreamMaxIdleConns and upstreamMaxIdleConnsPerHost size the pool
	// of idle connections: many concurrent agents call a handful of
	// hosts, so most of the pool may serve one host (Go's default of 2
	// per host would open a new connection for most calls).
	upstreamMaxIdleConns        = 100
	upstreamMaxIdleConnsPerHost = 64
	// upstreamExpectContinueTimeout is how long a request with
	// "Expect: 100-continue" waits before sending its body anyway.
	upstreamExpectContinueTimeout = time.Second
)

// newUpstreamTransport is the transport every capture (Proxy, MCP,
// Interceptor) sends calls upstream with, unless WithTransport replaces it
// (Proxy and MCP only):
//
//   - TLS 1.2 or later, upstream certificates verified with roots
//     (WithUpstreamRoots; nil: the system's).
//   - HTTP/2 where the upstream offers it (ALPN), HTTP/1.1 otherwise.
//   - Compression never asked for: the bodies recorded are the bytes the
//     agent receives, in plaintext.
//   - No response header timeout: a model or a tool may think for
//     minutes before its first byte; the agent's request context (its
//     SDK's timeout, or it going away) bounds a call. Connecting is
//     bounded (upstreamDialTimeout, upstreamTLSHandshakeTimeout).
//   - Never through a proxy: HTTP_PROXY, HTTPS_PROXY and NO_PROXY are not
//     read. In the log server's environment they are usually the agents'
//     settings, pointing at this very server's interception listener:
//     followed, a proxied call would be recorded twice and an intercepted
//     one would loop through the Interceptor forever. A deployment whose
//     upstreams are reachable only through an egress proxy gives the Proxy
//     or the MCP capture its own transport (WithTransport).
//
// redirect, if not nil, maps the address a connection is dialled to
// ("host:port") to the address actually dialled (the Interceptor's
// InterceptConfig.Resolve); TLS still verifies the original host.
func newUpstreamTransport(roots *x509.CertPool, redirect func(addr string) string) *http.Transport {
	d := &net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: upstreamKeepAlive}
	dial := d.DialContext
	if redirect != nil {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, redirect(addr))
		}
	}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           dial,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   upstreamTLSHandshakeTimeout,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
		MaxIdleConns:          upstreamMaxIdleConns,
		MaxIdleConnsPerHost:   upstreamMaxIdleConnsPerHost,
		IdleConnTimeout:       upstreamIdleConnTimeout,
		ResponseHeaderTimeout: 0,
		ExpectContinueTimeout: upstreamExpectContinueTimeout,
	}
}

// errRootsWithTransport: WithUpstreamRoots and WithTransport together.
var errRootsWithTransport = errors.New("capture: WithUpstreamRoots sets the roots of the default upstream transport, which WithTransport replaces: give your transport the roots instead")

// upstreamRoundTripper is the transport a Proxy or an MCP capture sends
// with: WithTransport's, or newUpstreamTransport's. Roots given with a
// transport of the caller's would go unused, so that is refused.
func upstreamRoundTripper(o options) (http.RoundTripper, error) {
	if o.transport != nil {
		if o.upstreamRoots != nil {
			return nil, errRootsWithTransport
		}
		return o.transport, nil
	}
	return newUpstreamTransport(o.upstreamRoots, nil), nil
}

// Package client is the Go client of the LLMAuditTrail log server's HTTP
// API, as Tessera's client package is the reader of tlog-tiles: appending
// events (one or a batch, optionally waiting for a receipt), reading entries
// with inclusion proofs, consistency proofs, session listings and audited
// payload disclosures, session exports, governance calls (signers,
// signatures, holds, erasures), reports, the MCP relay, and reading tiles
// with a bearer token. The requests and answers are package api's types
// (the wire format, with receipts and their offline verification).
//
// Everything the server answers is checked before it is returned: a
// written leaf must hash to the leaf hash the server gave and be the event
// that was sent; a disclosed payload must open the commitment in its leaf.
// Errors the server answers are *Error values that match the sentinels
// below with errors.Is.
//
// The package depends only on the wire format (api), the leaf format
// (event) and checkpoint verification; a program that links it links no
// storage, no SQL and no Tessera appender.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Defaults.
const (
	// DefaultTimeout bounds one request of the default HTTP client.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxIdleConns is the default HTTP client's idle connections
	// per host: enough for many agents writing at once through one client.
	DefaultMaxIdleConns = 64
	// MaxResponseBytes caps any JSON answer the client reads.
	MaxResponseBytes = 64 << 20
)

// Client talks to one log server. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	token   string
	hc      *http.Client
	retry   Retry
	roots   *x509.CertPool
	timeout time.Duration
	// tenantKey, if set, checks the tenant tag of every envelope a write
	// answers (WithTenantKey).
	tenantKey *event.TenantKey
}

// Option configures a Client.
type Option func(*Client)

// WithToken sets the bearer token sent with every request (default none:
// only anonymous reads work).
func WithToken(token string) Option { return func(c *Client) { c.token = strings.TrimSpace(token) } }

// WithHTTPClient sets the HTTP client (default: DefaultTimeout per request,
// DefaultMaxIdleConns idle connections to the server); WithRootCAs and
// WithTimeout configure only the default.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTenantKey makes Append check, on a log of leaf version 3, that the
// envelope of every event written carries k's tenant tag, and fail with
// ErrWrongTag if it does not (or if the answer has no envelope): an event
// the operator tagged for no tenant, or another, would be one its
// tenant's auditor does not find (docs/leaf-format.md). Default: the
// envelope is checked against the event only.
func WithTenantKey(k event.TenantKey) Option { return func(c *Client) { c.tenantKey = &k } }

// WithRootCAs sets the certificate authorities that the default HTTP
// client trusts for an https log URL (default: the system's).
func WithRootCAs(pool *x509.CertPool) Option { return func(c *Client) { c.roots = pool } }

// WithTimeout sets how long the default HTTP client waits for one answer
// (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithRetry sets how tile reads are retried (default DefaultRetry). Writes
// are never retried by the client: the caller decides, since a write that
// timed out may have been appended.
func WithRetry(r Retry) Option { return func(c *Client) { c.retry = r } }

// New returns a client of the log server at baseURL (e.g.
// http://127.0.0.1:8080; a path prefix is kept).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("log URL %q: want http(s)://host[:port][/prefix]", baseURL)
	}
	c := &Client{base: u, retry: DefaultRetry, timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = DefaultMaxIdleConns
		if c.roots != nil {
			t.TLSClientConfig = &tls.Config{RootCAs: c.roots, MinVersion: tls.VersionTLS12}
		}
		c.hc = &http.Client{Timeout: c.timeout, Transport: t}
	}
	return c, nil
}

// URL returns the server's base URL.
func (c *Client) URL() string { return c.base.String() }

// HTTPClient returns an http.Client that adds the client's bearer token to
// every request it sends to the log server (and to no other host), for
// libraries that read the log themselves, such as Tessera's client
// package.
func (c *Client) HTTPClient() *http.Client {
	hc := *c.hc
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	hc.Transport = bearer{rt: rt, host: c.base.Host, token: c.token}
	return &hc
}

type bearer struct {
	rt    http.RoundTripper
	host  string
	token string
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token == "" || r.URL.Host != b.host || r.Header.Get("Authorization") != "" {
		return b.rt.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.rt.RoundTrip(r)
}

func (c *Client) endpoint(path string, q url.Values) string {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	u.RawQuery = q.Encode()
	return u.String()
}

// do sends a request and decodes a JSON answer with status want into out
// (a *[]byte gets the answer's bytes as they are). Any other status is
// decoded as the server's error body.
// accepted reports whether a write to path may be answered 202: an event
// durable but not yet sequenced (Written.Indexed false).
func accepted(path string) bool { return path == "/v1/events" || path == "/v1/events:batch" }

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		var b []byte
		var err error
		if a, ok := body.(interface{ AppendJSON([]byte) ([]byte, error) }); ok {
			b, err = a.AppendJSON(nil) // the events written: no reflection
		} else {
			b, err = json.Marshal(body)
		}
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path, q), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("reading the log server's answer: %w", err)
	}
	if len(b) > MaxResponseBytes {
		return fmt.Errorf("the log server's answer exceeds %d bytes", MaxResponseBytes)
	}
	if resp.StatusCode != want && !(want == http.StatusCreated && resp.StatusCode == http.StatusAccepted && accepted(path)) {
		return decodeError(resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok { // an answer that is not JSON (a tlog-proof)
		*raw = b
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding the log server's answer: %w", err)
	}
	return nil
}

var errNoAnswer = errors.New("the log server's answer is incomplete")

package capture

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/keyfile"
	"github.com/llmaudittrail/llmaudittrail/llmapi"
)

// DefaultInterceptHosts are the hosts the interception proxy terminates TLS
// for unless told otherwise: every registered provider's (llmapi), among
// them the Bedrock runtime of each region in BedrockRegions.
func DefaultInterceptHosts() []string {
	var out []string
	for _, p := range llmapi.Providers() {
		for _, h := range p.Hosts {
			if !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return out
}

// InterceptConfig configures the interception proxy.
type InterceptConfig struct {
	// Hosts is the allowlist: a host or "*.suffix" (a "*" elsewhere is
	// refused: the CA's name constraints could not follow it).
	Hosts []string
	// Other is what happens to a CONNECT to any other host: "tunnel"
	// (bytes passed through, unread) or "refuse". A tunnel reaches only
	// public addresses: a host that resolves to a loopback, private (RFC
	// 1918, ULA), link-local, CGNAT, multicast, unspecified or reserved
	// address, or one of this host's own, is refused (403) unless
	// TunnelAllow or Resolve names it. The host is resolved once and
	// exactly the address checked is dialled. Every tunnel, and every
	// refused one, is recorded as a capture.tunnel event.
	Other string
	// TunnelAllow are the exceptions: a CIDR or IP address (dialled even
	// if internal), or HOST:PORT (that CONNECT target, whatever it
	// resolves to).
	TunnelAllow []string
	// TunnelIdle closes a tunnel through which no byte passed either way
	// for this long (0: DefaultTunnelIdle).
	TunnelIdle time.Duration
	// CACert and CAKey are the CA's files; created when missing, with name
	// constraints limited to Hosts and excluding every IP address. The key
	// is 0600. A CA whose constraints are not exactly those is replaced by
	// a new one (the old certificate is kept, renamed *.replaced-TIME; its
	// key is deleted).
	CACert, CAKey string
	// Resolve sends a host (or HOST:PORT) to another address (tests: a
	// local fake; an operator's choice, so an exception to the tunnel
	// rule). The upstream's certificate is still verified for the host,
	// with WithUpstreamRoots' roots.
	Resolve map[string]string
}

// Interceptor is an HTTP CONNECT proxy: agents reach it with the standard
// HTTPS_PROXY variable (the audit token as the proxy password) and trust
// its CA; it terminates TLS only for the allowlisted provider hosts, with
// certificates its CA mints per host, and records their calls as the
// base-URL proxy does (capture.front "intercept"), sending the original
// host, path and bytes upstream. Other hosts are tunnelled untouched or
// refused.
type Interceptor struct {
	p      *Proxy
	cfg    InterceptConfig
	ca     *x509.Certificate
	caKey  crypto.Signer
	certs  sync.Map // host -> *tls.Certificate
	minted atomic.Int64
	dialer net.Dialer
	allow  tunnelAllow
	// ownAddrs returns this host's addresses (tests replace it).
	ownAddrs func() []netip.Addr
}

// NewInterceptor builds the interception proxy and its CA. Its options are
// the shared ones (Option: WithMode, WithLogger, WithToolCallBinder, ...)
// and ServeOptions (WithMaxRequestBytes, WithBodyBudget,
// WithUpstreamRoots).
func NewInterceptor(cfg InterceptConfig, auth Authenticator, opts ...InterceptOption) (*Interceptor, error) {
	if auth == nil {
		return nil, errors.New("capture: an Authenticator is required")
	}
	if len(cfg.Hosts) == 0 {
		cfg.Hosts = DefaultInterceptHosts()
	}
	for _, h := range cfg.Hosts {
		if constraintOf(h) == "" {
			return nil, fmt.Errorf("intercept host %q: a host name or *.suffix, under a registered domain (a * elsewhere cannot be a name constraint: list the hosts)", h)
		}
	}
	switch cfg.Other {
	case "":
		cfg.Other = DefaultInterceptOther
	case "tunnel", "refuse":
	default:
		return nil, fmt.Errorf("--intercept-other %q: tunnel or refuse", cfg.Other)
	}
	o := defaultOptions(DefaultMaxRecordedBytes)
	for _, f := range opts {
		f.applyIntercept(&o)
	}
	c, err := newCore("intercept", o)
	if err != nil {
		return nil, err
	}
	if cfg.TunnelIdle <= 0 {
		cfg.TunnelIdle = DefaultTunnelIdle
	}
	allow, err := parseTunnelAllow(cfg.TunnelAllow)
	if err != nil {
		return nil, err
	}
	ic := &Interceptor{cfg: cfg, allow: allow, ownAddrs: hostAddrs}
	budget, err := bodyBudget(o)
	if err != nil {
		return nil, err
	}
	t := newUpstreamTransport(o.upstreamRoots, ic.resolve)
	ic.p = &Proxy{c: c, upstreams: map[string]*url.URL{}, auth: auth, transport: t, budget: budget}
	if ic.ca, ic.caKey, err = loadOrCreateCA(cfg.CACert, cfg.CAKey, cfg.Hosts, c.logger); err != nil {
		return nil, err
	}
	return ic, nil
}

// Close waits for background records (see Proxy.Close).
func (ic *Interceptor) Close(ctx context.Context) error { return ic.p.Close(ctx) }

// CA is the certificate agents must trust (SSL_CERT_FILE,
// REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS).
func (ic *Interceptor) CA() *x509.Certificate { return ic.ca }

// resolve is the address the upstream transport dials for addr
// (InterceptConfig.Resolve).
func (ic *Interceptor) resolve(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		if to, ok := ic.cfg.Resolve[host]; ok {
			return to
		} else if to, ok := ic.cfg.Resolve[host+":"+port]; ok {
			return to
		}
	}
	return addr
}

// hostMatches reports whether host is on the allowlist pattern (a host,
// or *.suffix: any host below the suffix).
func hostMatches(pattern, host string) bool { return llmapi.MatchHost(pattern, host) }

func (ic *Interceptor) allowed(host string) bool {
	for _, p := range ic.cfg.Hosts {
		if hostMatches(p, host) {
			return true
		}
	}
	return false
}

// constraintOf is the X.509 DNS name constraint that covers a pattern (a
// constraint covers a domain and everything below it): the host itself, or
// the suffix of *.suffix; "" if the pattern is neither, or is as wide as a
// top-level domain.
func constraintOf(pattern string) string {
	p := strings.ToLower(strings.TrimSuffix(pattern, "."))
	p = strings.TrimPrefix(p, "*.")
	labels := strings.Split(p, ".")
	for _, l := range labels {
		if l == "" || strings.Contains(l, "*") {
			return ""
		}
	}
	if len(labels) < 2 {
		return "" // a constraint as wide as a top-level domain is no constraint
	}
	return p
}

// excludedIPs are the CA's excluded IP ranges: all of them, so that it
// vouches for no IP address.
var excludedIPs = []*net.IPNet{
	{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
	{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
}

// constraintsMatch reports whether ca's name constraints are exactly
// domains and the exclusion of every IP address.
func constraintsMatch(ca *x509.Certificate, domains []string) bool {
	if !ca.PermittedDNSDomainsCritical || len(ca.ExcludedDNSDomains) > 0 || len(ca.PermittedIPRanges) > 0 ||
		len(ca.PermittedEmailAddresses) > 0 || len(ca.PermittedURIDomains) > 0 {
		return false
	}
	if !slices.Equal(slices.Sorted(slices.Values(ca.PermittedDNSDomains)), slices.Sorted(slices.Values(domains))) {
		return false
	}
	var v4, v6 bool
	for _, r := range ca.ExcludedIPRanges {
		ones, bits := r.Mask.Size()
		v4 = v4 || (ones == 0 && bits == 32)
		v6 = v6 || (ones == 0 && bits == 128)
	}
	return v4 && v6
}

// loadOrCreateCA reads the CA, or creates it (ECDSA P-256, ten years) with
// name constraints limited to the hosts' domains and excluding every IP
// address, so that it cannot vouch for any other site. A CA on disk with
// other constraints (an older allowlist, or made before IP addresses were
// excluded) is replaced: its certificate is renamed *.replaced-TIME, its key
// deleted, and agents must trust the new CA and drop the old one.
func loadOrCreateCA(certPath, keyPath string, hosts []string, logger *slog.Logger) (*x509.Certificate, crypto.Signer, error) {
	var domains []string
	seen := map[string]bool{}
	for _, h := range hosts {
		if c := constraintOf(h); !seen[c] {
			seen[c] = true
			domains = append(domains, c)
		}
	}
	if certPEM, err := os.ReadFile(certPath); err == nil {
		keyPEM, err := keyfile.Read(keyPath)
		if err != nil {
			return nil, nil, fmt.Errorf("intercept CA key: %w", err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("intercept CA: %w", err)
		}
		ca, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return nil, nil, err
		}
		signer, ok := pair.PrivateKey.(crypto.Signer)
		if !ok {
			return nil, nil, errors.New("intercept CA key cannot sign")
		}
		if constraintsMatch(ca, domains) {
			return ca, signer, nil
		}
		// The old certificate is kept (renamed) so that operators can find
		// it in agents' trust stores; its key is destroyed, so that nothing
		// here can mint certificates under the old constraints again.
		suffix := ".replaced-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(certPath, certPath+suffix); err != nil {
			return nil, nil, fmt.Errorf("replacing the intercept CA: %w", err)
		}
		if err := os.Remove(keyPath); err != nil {
			return nil, nil, fmt.Errorf("replacing the intercept CA: removing the old key: %w", err)
		}
		logger.Warn("intercept CA: its name constraints are not the allowlist's (or do not exclude IP addresses); made a new CA, deleted the old key: "+
			"give agents the new CA and REMOVE the old one from their trust stores (until then they accept what it signed)",
			"ca", certPath, "old_ca", certPath+suffix, "old_permitted_domains", len(ca.PermittedDNSDomains), "old_excluded_ip_ranges", len(ca.ExcludedIPRanges), "permitted_domains", len(domains))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "LLMAuditTrail interception CA", Organization: []string{"LLMAuditTrail"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		PermittedDNSDomainsCritical: true, PermittedDNSDomains: domains, ExcludedIPRanges: excludedIPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	if err := keyfile.Create(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	ca, _ := x509.ParseCertificate(der)
	return ca, key, nil
}

// maxMintedCerts bounds the per-host certificate cache.
const maxMintedCerts = 10_000

// certFor mints (once) a certificate for host, valid for a week.
func (ic *Interceptor) certFor(host string) (*tls.Certificate, error) {
	if c, ok := ic.certs.Load(host); ok {
		cert := c.(*tls.Certificate)
		if time.Until(cert.Leaf.NotAfter) > 24*time.Hour {
			return cert, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(7 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ic.ca, &key.PublicKey, ic.caKey)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(der)
	cert := &tls.Certificate{Certificate: [][]byte{der, ic.ca.Raw}, PrivateKey: key, Leaf: leaf}
	if ic.minted.Add(1) > maxMintedCerts { // wildcard patterns allow many hosts: keep the cache bounded
		ic.certs.Clear()
		ic.minted.Store(1)
	}
	ic.certs.Store(host, cert)
	return cert, nil
}

// MintForTest mints a certificate for any host, ignoring the allowlist:
// for tests that check the CA's name constraints refuse it.
func (ic *Interceptor) MintForTest(host string) (*x509.Certificate, error) {
	c, err := ic.certFor(host)
	if err != nil {
		return nil, err
	}
	return c.Leaf, nil
}

// proxyToken reads the audit token from Proxy-Authorization (Basic, the
// password; or Bearer).
func proxyToken(h http.Header) string {
	v := h.Get("Proxy-Authorization")
	if t, ok := strings.CutPrefix(v, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	if b, ok := strings.CutPrefix(v, "Basic "); ok {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b))
		if err == nil {
			if _, pw, ok := strings.Cut(string(raw), ":"); ok {
				return pw
			}
		}
	}
	return ""
}

func proxyError(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusProxyAuthRequired {
		w.Header().Set("Proxy-Authenticate", `Basic realm="LLMAuditTrail: the audit token is the password"`)
	}
	http.Error(w, "LLMAuditTrail interception proxy: "+msg, status)
}

// ServeHTTP answers CONNECT requests.
func (ic *Interceptor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		proxyError(w, http.StatusMethodNotAllowed, "only CONNECT (set HTTPS_PROXY to this address)")
		return
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, "443"
	}
	agent, err := ic.p.auth(r.Context(), proxyToken(r.Header))
	switch {
	case errors.Is(err, ErrUnauthenticated):
		proxyError(w, http.StatusProxyAuthRequired, "the audit token (write scope) is the proxy password: HTTPS_PROXY=http://agent:TOKEN@host:port")
		return
	case errors.Is(err, ErrForbidden):
		proxyError(w, http.StatusForbidden, "the audit token lacks the write scope")
		return
	case err != nil:
		proxyError(w, http.StatusServiceUnavailable, "could not check the audit token")
		return
	}
	// A server session is refused before anything is recorded in it (the
	// log would refuse the tunnel's event, and its gap).
	if v := r.Header.Get(HeaderSession); v != "" {
		if err := event.PermitSession(v, agent.Actor); err != nil {
			proxyError(w, http.StatusForbidden, HeaderSession+": "+err.Error())
			return
		}
	}
	allowed := ic.allowed(host)
	if !allowed && ic.cfg.Other == "refuse" {
		proxyError(w, http.StatusForbidden, fmt.Sprintf("%s is not a provider host this proxy records (--intercept-hosts)", event.Clip(host, 128)))
		return
	}
	var upstream net.Conn
	var addr string
	start := time.Now()
	session := "intercept." + agent.ID
	if v := r.Header.Get(HeaderSession); v != "" && event.ValidID(v) {
		session = v
	}
	if !allowed {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		addr, err = ic.tunnelTarget(ctx, host, port)
		if err == nil {
			upstream, err = ic.dialer.DialContext(ctx, "tcp", addr)
		}
		cancel()
		switch {
		case errors.Is(err, ErrTunnelForbidden):
			ic.recordTunnel(agent, session, host, port, "", TunnelRefused, tunnelStats{}, start, err)
			proxyError(w, http.StatusForbidden, err.Error())
			return
		case err != nil:
			ic.recordTunnel(agent, session, host, port, addr, TunnelUnreachable, tunnelStats{}, start, err)
			proxyError(w, http.StatusBadGateway, "could not reach "+event.Clip(host, 128))
			return
		}
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		if upstream != nil {
			upstream.Close()
		}
		return
	}
	conn.SetDeadline(time.Time{})
	brw.WriteString("HTTP/1.1 200 Connection Established\r\n\r\n")
	brw.Flush()
	if !allowed {
		st := tunnel(conn, brw.Reader, upstream, ic.cfg.TunnelIdle)
		outcome := TunnelClosed
		if st.idle {
			outcome = TunnelIdleTimeout
		}
		ic.recordTunnel(agent, session, host, port, addr, outcome, st, start, nil)
		return
	}
	ic.serveTLS(conn, brw.Reader, agent, host, port)
}

// bufferedConn reads what the CONNECT's reader buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// oneConn is a listener that accepts one connection.
type oneConn struct {
	c    chan net.Conn
	addr net.Addr
	once sync.Once
	done chan struct{}
}

func (l *oneConn) Accept() (net.Conn, error) {
	if c, ok := <-l.c; ok {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}
func (l *oneConn) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *oneConn) Addr() net.Addr { return l.addr }

type closeNotifier struct {
	net.Conn
	onClose func()
}

func (c closeNotifier) Close() error { err := c.Conn.Close(); c.onClose(); return err }

// serveTLS terminates TLS for an allowlisted host and serves the agent's
// requests on it through the capture.
func (ic *Interceptor) serveTLS(raw net.Conn, buffered *bufio.Reader, agent *Agent, host, port string) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			sni := hello.ServerName
			if sni == "" {
				sni = host
			}
			if !strings.EqualFold(sni, host) {
				return nil, fmt.Errorf("SNI %q is not the CONNECT host %q", sni, host)
			}
			return ic.certFor(host)
		}}
	tc := tls.Server(bufferedConn{Conn: raw, r: buffered}, cfg)
	base := &url.URL{Scheme: "https", Host: host}
	if port != "443" {
		base.Host = net.JoinHostPort(host, port)
	}
	name := host
	session := "intercept." + agent.ID
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received := time.Now()
		path := r.URL.Path
		flavor := classify(r.Method, path, r.Header, host).flavor
		fail := func(status int, code, format string, args ...any) {
			writeProviderError(w, flavor, status, code, "LLMAuditTrail interception proxy: "+fmt.Sprintf(format, args...))
		}
		if err := unfitPath(r); err != nil {
			fail(http.StatusBadRequest, "bad_path", "%v: nothing was sent upstream", err)
			return
		}
		target := *base
		target.Path, target.RawPath = r.URL.Path, r.URL.RawPath
		ic.p.serveCall(w, r, received, agent, name, base, target, path, session, fail)
	})
	l := &oneConn{c: make(chan net.Conn, 1), addr: raw.LocalAddr(), done: make(chan struct{})}
	l.c <- closeNotifier{Conn: tc, onClose: func() { l.Close() }}
	close(l.c)
	// A capture call lifts the read and write deadlines once its request
	// body is read (see serveCall).
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second, ReadTimeout: 2 * time.Minute, WriteTimeout: 2 * time.Minute,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	srv.Serve(l)
}

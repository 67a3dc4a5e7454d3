package capture_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/internal/providertest"
	"github.com/llmaudittrail/llmaudittrail/internal/tlstest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

var bedrockCreds = aws.Credentials{AccessKeyID: "AKIDTESTEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}

// interceptWorld: provider-shaped fakes on TLS with certificates for the
// real provider hosts (from a test CA the interceptor trusts as its
// upstream roots), an "other" TLS site, a Bedrock runtime that checks
// SigV4 signatures, and the log server's interception proxy.
type interceptWorld struct {
	*env
	proxy    *httptest.Server
	proxyURL *url.URL
	caFile   string // the interception CA, for agents (SSL_CERT_FILE)
	upCA     *tlstest.CA
	other    *httptest.Server
	provider *httptest.Server
	fake     *providertest.Fake
	mu       sync.Mutex
	sigv4    []string // outcomes of the Bedrock fake's signature checks
}

func tlsFake(t testing.TB, ca *tlstest.CA, h http.Handler, hosts ...string) *httptest.Server {
	ts := httptest.NewUnstartedServer(h)
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{ca.TLSCert(t, 9, hosts...)}}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

func newInterceptWorld(t testing.TB, other string) *interceptWorld {
	return newInterceptWorldMode(t, other, "fail-closed", false)
}

// newInterceptWorldMode: tlsListener puts the interception listener on
// TLS (HTTPS_PROXY=https://...); caFile then also holds its certificate.
func newInterceptWorldMode(t testing.TB, other, mode string, tlsListener bool, opts ...func(*server.InterceptConfig)) *interceptWorld {
	upCA := tlstest.NewCA(t)
	pf := providertest.New(t)
	provider := tlsFake(t, upCA, pf.Config.Handler, "api.openai.com", "api.anthropic.com")
	w := &interceptWorld{upCA: upCA}
	bedrock := tlsFake(t, upCA, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// Sign again what arrived, with the time it was signed at: the
		// signature verifies only if host, path, query, signed headers and
		// body are what the client signed.
		check, _ := http.NewRequest(r.Method, "https://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
		auth := r.Header.Get("Authorization")
		if _, signed, ok := strings.Cut(auth, "SignedHeaders="); ok {
			signed, _, _ = strings.Cut(signed, ",")
			for _, h := range strings.Split(signed, ";") {
				if h != "host" {
					check.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
				}
			}
		}
		at, _ := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
		sum := sha256.Sum256(body)
		v4.NewSigner().SignHTTP(context.Background(), bedrockCreds, check, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", at)
		ok := check.Header.Get("Authorization") == r.Header.Get("Authorization") && r.Header.Get("Authorization") != ""
		w.mu.Lock()
		w.sigv4 = append(w.sigv4, map[bool]string{true: "valid", false: "invalid"}[ok])
		w.mu.Unlock()
		if !ok {
			rw.WriteHeader(http.StatusForbidden)
			io.WriteString(rw, `{"message":"The request signature we calculated does not match the signature you provided."}`)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		io.WriteString(rw, `{"content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn"}`)
	}), "bedrock-runtime.us-east-1.amazonaws.com")
	w.other = tlsFake(t, upCA, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "other site") }), "other.example")
	addr := func(ts *httptest.Server) string { return strings.TrimPrefix(ts.URL, "https://") }
	w.provider, w.fake = provider, pf
	w.env = newEnv(t, mode, func(c *server.Config, _ *httptest.Server) {
		c.UpstreamRoots = upCA.Pool()
		c.Upstreams["tlsfake"] = provider.URL
		c.Intercept = &server.InterceptConfig{Other: other, Resolve: map[string]string{
			"api.openai.com": addr(provider), "api.anthropic.com": addr(provider),
			"bedrock-runtime.us-east-1.amazonaws.com": addr(bedrock), "other.example": addr(w.other)}}
		for _, o := range opts {
			o(c.Intercept)
		}
	})
	w.proxy = httptest.NewUnstartedServer(w.srv.InterceptHandler())
	if tlsListener {
		w.proxy.StartTLS()
	} else {
		w.proxy.Start()
	}
	t.Cleanup(w.proxy.Close)
	w.proxyURL, _ = url.Parse(w.proxy.URL)
	w.proxyURL.User = url.UserPassword("agent", w.writeToken)
	w.caFile = filepath.Join(w.dir, server.InterceptCA)
	if tlsListener {
		ca, _ := os.ReadFile(w.caFile)
		bundle := append(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.proxy.Certificate().Raw})...)
		w.caFile = filepath.Join(t.TempDir(), "bundle.pem")
		os.WriteFile(w.caFile, bundle, 0o644)
	}
	return w
}

func (w *interceptWorld) client(t testing.TB) *http.Client {
	b, err := os.ReadFile(w.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(w.proxyURL), TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// TestInterceptUnchangedAgent: an agent on the official SDKs, unchanged,
// with only HTTPS_PROXY and SSL_CERT_FILE set, and curl --proxy, are
// recorded as the base-URL proxy records them (capture.front intercept).
func TestInterceptUnchangedAgent(t *testing.T) {
	t.Run("http", func(t *testing.T) { testInterceptUnchangedAgent(t, false) })
	t.Run("tls", func(t *testing.T) { testInterceptUnchangedAgent(t, true) })
}

func testInterceptUnchangedAgent(t *testing.T, tlsListener bool) {
	w := newInterceptWorldMode(t, "tunnel", "fail-closed", tlsListener)
	probe := filepath.Join(t.TempDir(), "interceptprobe")
	if out, err := exec.Command("go", "build", "-o", probe, "./testdata/interceptprobe").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	cmd := exec.Command(probe)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "HTTPS_PROXY=" + w.proxyURL.String(), "SSL_CERT_FILE=" + w.caFile,
		"OPENAI_API_KEY=" + providertest.OpenAIKey, "ANTHROPIC_API_KEY=" + providertest.AnthropicKey}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the unchanged agent: %v %s", err, out)
	}
	var answers map[string]string
	if json.Unmarshal(out, &answers) != nil || !strings.HasPrefix(answers["openai"], "Based on") || !strings.HasPrefix(answers["anthropic"], "Based on") {
		t.Fatalf("answers %s", out)
	}
	// No X-Audit-Session: the session is per token.
	p, err := w.srv.Tokens().Check(context.Background(), w.writeToken)
	if err != nil {
		t.Fatal(err)
	}
	session := "intercept." + p.ID
	evs := w.events(session, 4)
	calls := splitCalls(t, evs)
	if len(calls) != 2 {
		t.Fatalf("%d calls in %s", len(calls), session)
	}
	wantAttrs(t, calls[0].req, map[string]any{"capture.front": "intercept", "gen_ai.provider.name": "openai", "capture.api": "openai.chat.completions",
		"url.path": "/v1/chat/completions", "server.address": "api.openai.com", "gen_ai.request.model": "gpt-4o"})
	wantAttrs(t, calls[1].req, map[string]any{"capture.front": "intercept", "gen_ai.provider.name": "anthropic", "url.path": "/v1/messages"})
	wantAttrs(t, calls[0].resp, map[string]any{"gen_ai.response.model": "gpt-4o-2024-08-06", "capture.outcome": "complete"})

	// curl with --proxy and the CA.
	if _, err := exec.LookPath("curl"); err == nil {
		c := exec.Command("curl", "-sS", "--fail", "--proxy", w.proxyURL.String(), "--cacert", w.caFile, "--proxy-cacert", w.caFile,
			"-H", "Authorization: Bearer "+providertest.OpenAIKey, "-H", "Content-Type: application/json", "-H", capture.HeaderSession+": curl-1",
			"-d", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, "https://api.openai.com/v1/chat/completions")
		if out, err := c.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("gpt-4o-mini-2024-07-18")) {
			t.Fatalf("curl: %v %s", err, out)
		}
		evs := w.events("curl-1", 2)
		wantAttrs(t, evs[0], map[string]any{"capture.front": "intercept", "gen_ai.request.model": "gpt-4o-mini"})
	}
}

// TestInterceptOtherHosts: a host outside the allowlist is tunnelled
// untouched (the certificate the client sees is the site's own), or
// refused; a SigV4-signed request arrives with a signature that verifies;
// no audit token, no tunnel.
func TestInterceptOtherHosts(t *testing.T) {
	w := newInterceptWorld(t, "tunnel")
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(w.proxyURL), TLSClientConfig: &tls.Config{RootCAs: w.upCA.Pool()}}}
	resp, err := hc.Get("https://other.example/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "other site" || resp.TLS.PeerCertificates[0].Issuer.CommonName != w.upCA.Cert.Subject.CommonName {
		t.Fatalf("tunnelled: %q, certificate issued by %q", b, resp.TLS.PeerCertificates[0].Issuer.CommonName)
	}

	// SigV4: signed for the real host, through the interceptor, verified
	// by the fake Bedrock runtime.
	body := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`)
	req, _ := http.NewRequest("POST", "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1:0/invoke", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
	if err := v4.NewSigner().SignHTTP(context.Background(), bedrockCreds, req, hex.EncodeToString(sum[:]), "bedrock", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	req.Header.Set(capture.HeaderSession, "bedrock-1") // ours, unsigned, not forwarded
	resp, err = w.client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	w.mu.Lock()
	outcomes := strings.Join(w.sigv4, ",")
	w.mu.Unlock()
	if resp.StatusCode != 200 || outcomes != "valid" {
		t.Fatalf("SigV4 through the interceptor: %d %s (%s)", resp.StatusCode, b, outcomes)
	}
	evs := w.events("bedrock-1", 2)
	wantAttrs(t, evs[0], map[string]any{"capture.front": "intercept", "server.address": "bedrock-runtime.us-east-1.amazonaws.com"})
	if evs[0].str("capture.credential.authorization") == "" || strings.Contains(evs[0].str("capture.credential.authorization"), "AKID") {
		t.Errorf("the signature is not fingerprinted: %v", evs[0].Leaf.Attributes)
	}

	// Without the audit token: 407.
	anon := *w.proxyURL
	anon.User = nil
	_, err = (&http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&anon)}}).Get("https://other.example/")
	if err == nil || !strings.Contains(err.Error(), "Proxy Authentication Required") {
		t.Fatalf("no token: %v", err)
	}

	// Refused instead of tunnelled.
	r := newInterceptWorld(t, "refuse")
	_, err = (&http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(r.proxyURL), TLSClientConfig: &tls.Config{RootCAs: r.upCA.Pool()}}}).Get("https://other.example/")
	if err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("refuse: %v", err)
	}
}

// TestInterceptCANameConstraints: the CA's certificate limits it to the
// allowlist's domains: a certificate it mints for another host does not
// verify, one for a provider host does.
func TestInterceptCANameConstraints(t *testing.T) {
	dir := t.TempDir()
	auth := func(context.Context, string) (*capture.Agent, error) { return nil, capture.ErrUnauthenticated }
	ic, err := capture.NewInterceptor(capture.InterceptConfig{CACert: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca.key")}, auth)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, "ca.key"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode %v", st.Mode())
	}
	pemBytes, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	blk, _ := pem.Decode(pemBytes)
	ca, _ := x509.ParseCertificate(blk.Bytes)
	if !ca.PermittedDNSDomainsCritical || len(ca.PermittedDNSDomains) == 0 {
		t.Fatalf("no name constraints: %v", ca.PermittedDNSDomains)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for host, ok := range map[string]bool{"api.openai.com": true, "myres.openai.azure.com": true, "bedrock-runtime.eu-west-1.amazonaws.com": true,
		"evil.example": false, "www.google.com": false, "s3.amazonaws.com.evil.example": false} {
		leaf, err := ic.MintForTest(host)
		if err != nil {
			t.Fatal(err)
		}
		_, err = leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots})
		if (err == nil) != ok {
			t.Errorf("%s: verify error %v, want ok=%v", host, err, ok)
		}
	}
	// A second start reuses the CA; another host list makes a new one.
	ic2, err := capture.NewInterceptor(capture.InterceptConfig{CACert: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca.key")}, auth)
	if err != nil || !ic2.CA().Equal(ca) {
		t.Fatalf("second start: %v, same CA %v", err, err == nil && ic2.CA().Equal(ca))
	}
	ic3, err := capture.NewInterceptor(capture.InterceptConfig{Hosts: []string{"llm.internal.example"}, CACert: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca.key")}, auth)
	if err != nil || ic3.CA().Equal(ca) || !slices.Equal(ic3.CA().PermittedDNSDomains, []string{"llm.internal.example"}) {
		t.Fatalf("a CA that does not match the allowlist was used: %v", err)
	}
}

// TestInterceptCAExcludesIPsAndOtherAWS (issue #24, finding 8): a
// certificate signed with the interception CA's key for an IP address or
// an AWS host other than a Bedrock runtime does not verify against the CA;
// one for a provider host does. A CA made with the old, wider constraints
// is replaced at start: its certificate kept, its key deleted.
func TestInterceptCAExcludesIPsAndOtherAWS(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	auth := func(context.Context, string) (*capture.Agent, error) { return nil, capture.ErrUnauthenticated }
	check := func(t *testing.T) {
		t.Helper()
		ic, err := capture.NewInterceptor(capture.InterceptConfig{CACert: certPath, CAKey: keyPath}, auth)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, _ := os.ReadFile(keyPath)
		blk, _ := pem.Decode(keyPEM)
		key, err := x509.ParseECPrivateKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ic.CA())
		for _, tc := range []struct {
			name string
			ok   bool
		}{
			{"api.openai.com", true}, {"bedrock-runtime.us-east-1.amazonaws.com", true}, {"bedrock-runtime.eu-west-1.amazonaws.com", true},
			{"10.0.0.5", false}, {"192.168.1.10", false}, {"127.0.0.1", false}, {"::1", false}, {"fd00::1", false},
			{"evil.amazonaws.com", false}, {"s3.amazonaws.com", false}, {"bedrock-runtime.us-east-1.amazonaws.com.evil.example", false},
		} {
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: tc.name},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
				KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
			if ip := net.ParseIP(tc.name); ip != nil {
				tmpl.IPAddresses = []net.IP{ip}
			} else {
				tmpl.DNSNames = []string{tc.name}
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ic.CA(), &key.PublicKey, key)
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := x509.ParseCertificate(der)
			_, err = leaf.Verify(x509.VerifyOptions{DNSName: tc.name, Roots: roots})
			if (err == nil) != tc.ok {
				t.Errorf("certificate for %s: verify error %v, want ok=%v", tc.name, err, tc.ok)
			}
		}
	}
	t.Run("new CA", check)

	// A CA made with the old constraints (amazonaws.com, no IP exclusion).
	os.Remove(certPath)
	os.Remove(keyPath)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	old := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "old CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, PermittedDNSDomainsCritical: true,
		PermittedDNSDomains: []string{"api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com", "openai.azure.com", "amazonaws.com"}}
	der, _ := x509.CreateCertificate(rand.Reader, old, old, &key.PublicKey, key)
	kd, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	t.Run("old CA replaced", check)
	kept, _ := filepath.Glob(filepath.Join(dir, "*.replaced-*"))
	if len(kept) != 1 || !strings.HasPrefix(filepath.Base(kept[0]), filepath.Base(certPath)+".replaced-") {
		t.Fatalf("the old CA's files: %v, want only its certificate", kept)
	}
	if b, _ := os.ReadFile(kept[0]); bytes.Contains(b, []byte("PRIVATE KEY")) {
		t.Fatal("the old CA's key is still on disk")
	}
}

// BenchmarkIntercept: one chat completion (fail-open, so that the
// figures are the transports') directly to a TLS upstream, through the
// base-URL proxy on plain HTTP and on TLS, and through the interception
// proxy (CONNECT, TLS terminated and made again).
//
//	go test ./capture -run '^$' -bench Intercept -benchtime 500x
func BenchmarkIntercept(b *testing.B) {
	w := newInterceptWorldMode(b, "tunnel", "fail-open", false)
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
	call := func(b *testing.B, hc *http.Client, url string, hdr map[string]string) {
		for b.Loop() {
			req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+providertest.OpenAIKey)
			req.Header.Set("Content-Type", "application/json")
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/call")
	}
	trustUp := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: w.upCA.Pool()}, ForceAttemptHTTP2: true}}
	audit := map[string]string{capture.HeaderToken: w.writeToken, capture.HeaderSession: "bench"}
	b.Run("direct", func(b *testing.B) { call(b, trustUp, w.provider.URL+"/v1/chat/completions", nil) })
	b.Run("base-url-proxy", func(b *testing.B) { call(b, http.DefaultClient, w.ts.URL+"/proxy/tlsfake/v1/chat/completions", audit) })
	tlsProxy := httptest.NewUnstartedServer(w.srv.Handler())
	tlsProxy.TLS = &tls.Config{Certificates: []tls.Certificate{w.upCA.TLSCert(b, 11)}}
	tlsProxy.EnableHTTP2 = true
	tlsProxy.StartTLS()
	defer tlsProxy.Close()
	b.Run("base-url-proxy-tls", func(b *testing.B) { call(b, trustUp, tlsProxy.URL+"/proxy/tlsfake/v1/chat/completions", audit) })
	b.Run("intercept", func(b *testing.B) {
		call(b, w.client(b), "https://api.openai.com/v1/chat/completions", map[string]string{capture.HeaderSession: "bench-i"})
	})
}

// TestInterceptPathVariants (issue #24, one path, one decision, on the
// interception listener): a request to an intercepted host whose path is
// not canonical is answered 400 bad_path and nothing reaches the upstream;
// the canonical path is served.
func TestInterceptPathVariants(t *testing.T) {
	w := newInterceptWorld(t, "tunnel")
	c := w.client(t)
	before := w.fake.Requests()
	post := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "https://api.openai.com"+path, strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+providertest.OpenAIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, v := range []string{"/v1/%63hat/completions", "/v1%2Fchat/completions", "/v1%2fchat/completions", "/v1/./chat/completions",
		"/v1/x/../chat/completions", "/v1//chat/completions", "/v1/%2E%2E/v1/chat/completions"} {
		if status, body := post(v); status != http.StatusBadRequest || !strings.Contains(body, "bad_path") {
			t.Errorf("POST https://api.openai.com%s through the interception proxy: %d %s, want 400 bad_path", v, status, body)
		}
	}
	if n := w.fake.Requests() - before; n != 0 {
		t.Errorf("the upstream got %d calls on non-canonical paths", n)
	}
	if status, body := post("/v1/chat/completions"); status != http.StatusOK {
		t.Fatalf("the canonical path: %d %s", status, body)
	}
}

// Package tsatest runs a real RFC 3161 timestamp authority for tests:
// sigstore's timestamp-server (github.com/sigstore/timestamp-authority),
// pinned as a Go tool dependency in go.mod, with its file signer on a key
// and a certificate chain made here, on a loopback port, without NTP
// monitoring. Only tests import it.
//
// timestamp-server serves its Prometheus metrics on :2112, a port it does
// not let one change: two cannot run at once on a machine. Start takes a
// lock file in the temporary directory for the life of the test, so that
// the tests of several packages that go test runs at once take turns; one
// test runs one TSA.
package tsatest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/testproc"
)

// Tool is the Go tool name of the timestamp authority in go.mod.
const Tool = "timestamp-server"

// TSA is a running timestamp authority.
type TSA struct {
	// URL is where it takes requests: POST application/timestamp-query.
	URL string
	// Chain is its certificate chain, PEM: the TSA's certificate, then
	// the root; ChainFile is a file holding it.
	Chain     []byte
	ChainFile string
	// RootFile holds the root alone, PEM.
	RootFile string

	t       testing.TB
	bin     string
	addr    string
	keyFile string
	stop    func()
}

// Start builds (once) and starts a timestamp authority named name (the
// common name of its certificate).
func Start(t testing.TB, name string) *TSA {
	t.Helper()
	a := &TSA{t: t, bin: testproc.Tool(t, Tool)}
	lockMetricsPort(t)
	a.addr = testproc.FreeAddr(t)
	a.URL = "http://" + a.addr + "/api/v1/timestamp"
	dir := t.TempDir()
	key, chain, root := makeChain(t, name)
	a.keyFile = filepath.Join(dir, "tsa.key")
	a.ChainFile = filepath.Join(dir, "chain.pem")
	a.RootFile = filepath.Join(dir, "root.pem")
	a.Chain = chain
	for p, b := range map[string][]byte{a.keyFile: key, a.ChainFile: chain, a.RootFile: root} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a.Restart()
	return a
}

// Stop stops the authority: requests to URL are refused until Restart.
func (a *TSA) Stop() { a.stop() }

// Restart starts the authority again on the same address and key.
func (a *TSA) Restart() {
	a.t.Helper()
	host, port, _ := strings.Cut(a.addr, ":")
	a.stop = testproc.Start(a.t, "timestamp-server", a.bin, "serve",
		"--host", host, "--port", port, "--disable-ntp-monitoring", "--log-type", "prod",
		"--timestamp-signer", "file", "--file-signer-key-path", a.keyFile,
		"--certificate-chain-path", a.ChainFile)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + a.addr + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("timestamp-server did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// makeChain makes a root CA and a TSA certificate under it (end entity,
// the time-stamping extended key usage alone and critical, RFC 3161 §2.3)
// and returns the TSA's key (PKCS#8 PEM), the chain (TSA, root) and the
// root, PEM.
func makeChain(t testing.TB, name string) (keyPEM, chainPEM, rootPEM []byte) {
	t.Helper()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(-time.Hour)
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"tsatest"}, CommonName: name + " root"},
		NotBefore: now, NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	tsaKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 8}}) // id-kp-timeStamping
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{Organization: []string{"tsatest"}, CommonName: name},
		NotBefore: now, NotAfter: now.Add(24 * time.Hour), BasicConstraintsValid: true,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: true, Value: eku}},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, root, &tsaKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(tsaKey)
	if err != nil {
		t.Fatal(err)
	}
	rootPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})
	chainPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), rootPEM...)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), chainPEM, rootPEM
}

// OpenSSL returns the path of openssl, or skips the test: unless
// LLMAUDIT_TEST_REQUIRE names openssl (.ci/run installs Debian's), then it
// fails.
func OpenSSL(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err == nil {
		return p
	}
	for _, r := range strings.Split(os.Getenv("LLMAUDIT_TEST_REQUIRE"), ",") {
		if r == "openssl" {
			t.Fatalf("openssl is required (LLMAUDIT_TEST_REQUIRE=%s) but not available: %v", os.Getenv("LLMAUDIT_TEST_REQUIRE"), err)
		}
	}
	t.Skipf("openssl not available: %v", err)
	return ""
}

// Post sends a time-stamp request to url and returns the answer.
func Post(t testing.TB, url string, req []byte) []byte {
	t.Helper()
	resp, err := http.Post(url, "application/timestamp-query", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %v %s: %s", url, err, resp.Status, b)
	}
	return b
}

// lockMetricsPort holds an exclusive lock on a file of the temporary
// directory until the test ends (see the package comment).
func lockMetricsPort(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "llmaudittrail-tsatest-2112.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// NewChain returns a certificate chain (PEM: a TSA's certificate, then its
// root) that no running authority uses: the roots of another TSA.
func NewChain(t testing.TB, name string) []byte {
	_, chain, _ := makeChain(t, name)
	return chain
}

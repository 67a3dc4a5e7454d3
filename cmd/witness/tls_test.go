package main_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/internal/tlstest"
	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
)

// TestWitnessTLS: --tls-cert/--tls-key serve the witness over HTTPS (HTTP/2).
func TestWitnessTLS(t *testing.T) {
	bin := witnesstest.BuildOurWitness(t)
	data := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command(bin, "keygen", "--name", name, "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	l := witnesstest.NewLog(t, "example.com/tls-log")
	ca := tlstest.NewCA(t)
	cert, key, _ := ca.Files(t, t.TempDir(), 7)
	p := start(t, bin, "--data", data, "--config", writeConfig(t, t.TempDir(), l), "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
	if p.addr == "" {
		t.Fatalf("witness did not start:\n%s", p.output())
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := hc.Get("https://" + p.addr + "/" + checkpoint.OriginID(l.Origin) + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.TLS == nil || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 7 {
		t.Fatalf("HTTP/%d, TLS %v", resp.ProtoMajor, resp.TLS != nil)
	}
	if _, err := http.Get("https://" + p.addr + "/"); err == nil {
		t.Fatal("a client without the CA connected")
	}
}

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/tlstest"
	"github.com/llmaudittrail/llmaudittrail/server"

	auditclient "github.com/llmaudittrail/llmaudittrail/client"
)

// TestTLS: the log server on --tls-cert/--tls-key serves HTTPS with
// HTTP/2; the client trusts it with the CA (WithRootCAs, as every command's
// --ca-file) and not without; a renewed certificate is served after
// SIGHUP; a key file others may read is refused.
func TestTLS(t *testing.T) {
	bin := wrapBinary(t)
	ca := tlstest.NewCA(t)
	certDir := t.TempDir()
	cert, key, caFile := ca.Files(t, certDir, 100)
	dir := t.TempDir()
	p := startWith(t, bin, dir, nil, "--tls-cert", cert, "--tls-key", key)
	url := "https://" + strings.TrimPrefix(p.url, "http://")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)

	serial := func() (int64, int) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp.ProtoMajor
	}
	if s, proto := serial(); s != 100 || proto != 2 {
		t.Fatalf("serial %d over HTTP/%d", s, proto)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, server.AdminToken))
	c, _ := auditclient.New(url, auditclient.WithToken(string(tok)), auditclient.WithRootCAs(pool))
	if _, err := c.Append(context.Background(), []*event.Request{{Session: "tls-1", Kind: "agent.decision", Actor: event.Actor{Type: "agent", ID: "a"},
		Payload: json.RawMessage(`{"ok":true}`)}}); err != nil {
		t.Fatal(err)
	}
	untrusting, _ := auditclient.New(url, auditclient.WithToken(string(tok)))
	if _, err := untrusting.Session(context.Background(), "tls-1", auditclient.SessionQuery{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client without the CA: %v", err)
	}
	// Renewed: the same files, a new certificate, SIGHUP.
	ca.Files(t, certDir, 101)
	p.cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if s, _ := serial(); s == 101 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not served")
		}
	}
	_ = caFile
	// A key file others may read.
	os.Chmod(key, 0o644)
	out, err := exec.Command(bin, "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "0600") {
		t.Fatalf("a readable key: %v %s", err, out)
	}
}

package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/keyfile"
)

// TLSFiles serves a listener's certificate from files: the certificate
// chain (PEM) and its private key (PEM, mode 0600). They are read again on
// SIGHUP and when either file changes, so that a renewed certificate is
// served without a restart; a bad new pair is logged and the old one kept.
type TLSFiles struct {
	cert, key string
	logger    *slog.Logger
	mu        sync.RWMutex
	cur       *tls.Certificate
	stamp     string
}

// LoadTLS reads the pair; both paths must be given.
func LoadTLS(certFile, keyFile string, logger *slog.Logger) (*TLSFiles, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	t := &TLSFiles{cert: certFile, key: keyFile, logger: logger}
	if err := t.load(); err != nil {
		return nil, err
	}
	return t, nil
}

func stamp(paths ...string) string {
	s := ""
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil {
			s += fmt.Sprintf("%d/%d;", st.ModTime().UnixNano(), st.Size())
		}
	}
	return s
}

func (t *TLSFiles) load() error {
	st := stamp(t.cert, t.key)
	certPEM, err := ReadFile(t.cert, 1<<20)
	if err != nil {
		return fmt.Errorf("--tls-cert: %w", err)
	}
	keyPEM, err := keyfile.Read(t.key)
	if err != nil {
		return fmt.Errorf("--tls-key: %w", err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("--tls-cert and --tls-key: %w", err)
	}
	t.mu.Lock()
	t.cur, t.stamp = &c, st
	t.mu.Unlock()
	return nil
}

// Config is the server side TLS configuration (TLS 1.2 and later; HTTP/2
// is offered by net/http's ServeTLS).
func (t *TLSFiles) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		t.mu.RLock()
		defer t.mu.RUnlock()
		return t.cur, nil
	}}
}

// Watch reloads the pair on SIGHUP and when a file changes (polled every
// interval), until ctx is done.
func (t *TLSFiles) Watch(ctx context.Context, interval time.Duration) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		case <-tick.C:
			t.mu.RLock()
			same := t.stamp == stamp(t.cert, t.key)
			t.mu.RUnlock()
			if same {
				continue
			}
		}
		if err := t.load(); err != nil {
			t.logger.Error("TLS certificate not reloaded; serving the previous one", "error", err)
		} else {
			t.logger.Info("TLS certificate reloaded", "cert", t.cert)
		}
	}
}

// CAPool is the system's roots plus the PEM certificates in path ("": the
// system's alone).
func CAPool(path string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if path == "" {
		return pool, nil
	}
	b, err := ReadFile(path, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--ca-file: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// HTTPClient is an http.Client with timeout that trusts the roots in
// caFile besides the system's (for webhooks, witnesses and other peers).
func HTTPClient(caFile string, timeout time.Duration) (*http.Client, error) {
	pool, err := CAPool(caFile)
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: timeout, Transport: t}, nil
}

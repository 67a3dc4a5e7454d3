package capture_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/capture"
)

// connectStatus sends CONNECT target to the interception proxy with the
// agent's token and returns the status code (0 if none came within 3 s)
// and the connection, open after a 200.
func (w *interceptWorld) connect(t *testing.T, target string) (int, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", w.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	auth := base64.StdEncoding.EncodeToString([]byte("agent:" + w.writeToken))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", target, target, auth)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		return 0, c
	}
	c.SetReadDeadline(time.Time{})
	return resp.StatusCode, c
}

// tunnelEvents waits for n capture.tunnel events in the agent's session.
func (w *interceptWorld) tunnelEvents(t *testing.T, n int) []logged {
	t.Helper()
	p, err := w.srv.Tokens().Check(context.Background(), w.writeToken)
	if err != nil {
		t.Fatal(err)
	}
	var out []logged
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out = out[:0]
		for _, ev := range w.events("intercept."+p.ID, 0) {
			if ev.Leaf.Kind == "capture.tunnel" {
				out = append(out, ev)
			}
		}
		if len(out) >= n {
			break
		}
	}
	if len(out) < n {
		t.Fatalf("%d capture.tunnel events, want %d", len(out), n)
	}
	return out
}

// TestInterceptTunnelPolicy (issue #24, finding 5): a tunnel through the
// interception proxy (--intercept-other tunnel, the default) reaches no
// loopback, private, link-local, CGNAT or unspecified address, whether
// named by IP or by a host name that resolves to one; the operator's
// --intercept-resolve mapping still tunnels; every tunnel and refusal is
// recorded as a capture.tunnel event, with the bytes each way.
func TestInterceptTunnelPolicy(t *testing.T) {
	w := newInterceptWorld(t, "tunnel")
	var hits atomic.Int64
	internal := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(rw, "goroutine stacks")
	}))
	t.Cleanup(internal.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(internal.URL, "http://"))
	// Over the wire, only destinations on this machine: a regression must
	// not send a test's traffic anywhere else. The other internal ranges
	// are checked without dialling, below.
	refused := []string{"127.0.0.1:" + port, "localhost:" + port, "127.0.0.2:" + port, "0.0.0.0:" + port, "[::1]:" + port}
	for _, target := range refused {
		status, c := w.connect(t, target)
		if status != http.StatusForbidden {
			// Show what a tunnel would reach.
			if status == http.StatusOK {
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				b, _ := io.ReadAll(io.LimitReader(c, 200))
				t.Errorf("CONNECT %s: %d, the tunnel answered %q", target, status, b)
			} else {
				t.Errorf("CONNECT %s: %d, want 403", target, status)
			}
		}
		c.Close()
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback service was reached %d times", n)
	}
	for _, tc := range []struct{ ip, want string }{
		{"10.0.0.5", "private"}, {"192.168.1.10", "private"}, {"172.16.0.1", "private"}, {"fd00::1", "private"},
		{"169.254.169.254", "link-local"}, {"fe80::1", "link-local"}, {"100.64.0.1", "reserved"}, {"224.0.0.1", "link-local"}, {"239.1.1.1", "multicast"},
		{"0.0.0.0", "unspecified"}, {"::ffff:127.0.0.1", "loopback"}, {"64:ff9b::a00:5", "reserved"}, {"2002:a00:5::1", "reserved"}, {"2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"}, {"::a00:5", "reserved"},
		{"8.8.8.8", ""}, {"2001:4860:4860::8888", ""},
	} {
		if got := capture.InternalAddr(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("tunnel rule on %s: %q, want %q", tc.ip, got, tc.want)
		}
	}

	// The operator's mapping (other.example to a loopback fake) tunnels.
	tr := &http.Transport{Proxy: http.ProxyURL(w.proxyURL), TLSClientConfig: w.client(t).Transport.(*http.Transport).TLSClientConfig.Clone()}
	tr.TLSClientConfig.RootCAs = w.upCA.Pool()
	resp, err := (&http.Client{Transport: tr}).Get("https://other.example/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	if string(b) != "other site" {
		t.Fatalf("tunnel to other.example: %q", b)
	}
	evs := w.tunnelEvents(t, len(refused)+1)
	var closed int
	for _, ev := range evs {
		switch ev.str("capture.outcome") {
		case "refused":
		case "closed":
			closed++
			wantAttrs(t, ev, map[string]any{"server.address": "other.example", "server.port": 443, "capture.front": "intercept"})
			if ev.num("capture.tunnel.bytes_sent") < 100 || ev.num("capture.tunnel.bytes_received") < 100 || !ev.has("capture.duration_ms") {
				t.Errorf("tunnel event %v", ev.Leaf.Attributes)
			}
		default:
			t.Errorf("tunnel event %v", ev.Leaf.Attributes)
		}
	}
	if closed != 1 {
		t.Errorf("%d closed tunnels recorded, want 1", closed)
	}
}

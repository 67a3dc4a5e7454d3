package capture_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// echoServer accepts connections on loopback and echoes what they send.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// TestInterceptTunnelAllowAndIdle: --intercept-allow lets a tunnel reach
// an internal address; a tunnel through which nothing passes for
// --intercept-tunnel-idle is closed and recorded as idle_timeout.
func TestInterceptTunnelAllowAndIdle(t *testing.T) {
	echo := echoServer(t)
	w := newInterceptWorldMode(t, "tunnel", "fail-closed", false, func(c *server.InterceptConfig) {
		c.Allow = []string{echo}
		c.TunnelIdle = 300 * time.Millisecond
	})
	if status, _ := w.connect(t, "localhost:1"); status != http.StatusForbidden {
		t.Fatalf("CONNECT to a port not allowed: %d", status)
	}
	status, c := w.connect(t, echo)
	if status != http.StatusOK {
		t.Fatalf("CONNECT %s (allowed): %d", echo, status)
	}
	io.WriteString(c, "hello")
	buf := make([]byte, 5)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	// Now silent: the proxy closes the tunnel (well before the deadline).
	_, err := c.Read(buf)
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the idle tunnel was not closed: %v", err)
	}
	evs := w.tunnelEvents(t, 2)
	wantAttrs(t, evs[0], map[string]any{"capture.outcome": capture.TunnelRefused, "server.address": "localhost", "server.port": 1})
	wantAttrs(t, evs[1], map[string]any{"capture.outcome": capture.TunnelIdleTimeout, "network.peer.address": "127.0.0.1",
		"capture.tunnel.bytes_sent": 5, "capture.tunnel.bytes_received": 5})
}

package connlimit_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/connlimit"
)

// blocked counts the requests waiting in /block.
var blocked = make(chan struct{}, 16)

// serve runs an HTTP server on a budgeted loopback listener; /block
// answers only once release is closed.
func serve(t *testing.T, lim connlimit.Limits, release chan struct{}) (*connlimit.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := connlimit.New(ln, lim)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			blocked <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})}
	l.Track(hs)
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return l, ln.Addr().String()
}

// dialFrom connects from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// get sends GET path on c and reads the answer's status line.
func get(c net.Conn, path string) (string, error) {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.Status + " " + string(b), err
}

// refused reports whether a connection from src is closed by the server
// at once (it may be reset before the dial returns).
func refused(t *testing.T, src, addr string) bool {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return true
	}
	defer c.Close()
	return closed(c)
}

// closed reports whether the server closed c (read returns EOF or reset).
func closed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func waitBlocked(t *testing.T) {
	t.Helper()
	select {
	case <-blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("no request reached /block")
	}
}

// waitOpen waits until n connections are open, idle of them idle.
func waitOpen(t *testing.T, l *connlimit.Listener, n, idle int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); l.Stats().Open != n || l.Stats().Idle != idle; {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %d open, %d idle", l.Stats(), n, idle)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPerClientCap(t *testing.T) {
	l, addr := serve(t, connlimit.Limits{Max: 100, PerClient: 3}, nil)
	var held []net.Conn
	for range 3 {
		held = append(held, dialFrom(t, "127.0.0.2", addr))
	}
	waitOpen(t, l, 3, 3)
	if !refused(t, "127.0.0.2", addr) {
		t.Fatal("a 4th connection from one address was kept")
	}
	// Another address is not affected, nor are the held connections.
	if s, err := get(dialFrom(t, "127.0.0.1", addr), "/"); err != nil || !strings.HasSuffix(s, "ok") {
		t.Fatalf("other client: %q %v", s, err)
	}
	if s, err := get(held[0], "/"); err != nil || !strings.HasSuffix(s, "ok") {
		t.Fatalf("held connection: %q %v", s, err)
	}
	if st := l.Stats(); st.Refused != 1 || st.Shed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestZeroPerClientIsNoCap: PerClient 0 is no cap per client, as
// --max-conns-per-client 0 is: one convention across the layers (it used
// to mean DefaultPerClient here, and the log server mapped its 0 to -1).
func TestZeroPerClientIsNoCap(t *testing.T) {
	l, addr := serve(t, connlimit.Limits{Max: connlimit.DefaultPerClient + 10}, nil)
	if got := l.Limits().PerClient; got != 0 {
		t.Errorf("Limits().PerClient = %d, want 0 (no cap)", got)
	}
	for range connlimit.DefaultPerClient {
		dialFrom(t, "127.0.0.2", addr)
	}
	waitOpen(t, l, connlimit.DefaultPerClient, connlimit.DefaultPerClient)
	if refused(t, "127.0.0.2", addr) {
		t.Fatalf("connection %d from one address was closed with no per-client cap: %+v", connlimit.DefaultPerClient+1, l.Stats())
	}
}

func TestGlobalCapShedsIdle(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	l, addr := serve(t, connlimit.Limits{Max: 3}, release)
	// The oldest: a keep-alive connection between requests.
	idle := dialFrom(t, "127.0.0.2", addr)
	if _, err := get(idle, "/"); err != nil {
		t.Fatal(err)
	}
	// Two busy ones.
	busy := []net.Conn{dialFrom(t, "127.0.0.3", addr), dialFrom(t, "127.0.0.3", addr)}
	for _, c := range busy {
		io.WriteString(c, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	waitBlocked(t)
	waitBlocked(t)
	waitOpen(t, l, 3, 1)
	// A new one sheds the idle connection and is served.
	if s, err := get(dialFrom(t, "127.0.0.1", addr), "/"); err != nil || !strings.HasSuffix(s, "ok") {
		t.Fatalf("new client at the cap: %q %v", s, err)
	}
	if !closed(idle) {
		t.Fatal("the idle connection was not shed")
	}
	// Now the served client is idle and is shed for the next; with every
	// connection busy, a new one is closed at once.
	waitOpen(t, l, 3, 1)
	c := dialFrom(t, "127.0.0.1", addr)
	io.WriteString(c, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
	waitBlocked(t)
	waitOpen(t, l, 3, 0)
	if !refused(t, "127.0.0.1", addr) {
		t.Fatalf("a connection over a cap of busy connections was kept: %+v", l.Stats())
	}
	if st := l.Stats(); st.Shed != 2 || st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFit(t *testing.T) {
	for _, tc := range []struct {
		files     uint64
		listeners int
		max, want int
		err       bool
	}{
		{0, 2, 4096, 4096, false},
		{1 << 20, 2, 4096, 4096, false},
		{3000, 2, 4096, 622, false},
		{1024, 1, 4096, 256, false},
		{512, 1, 4096, 0, true},
	} {
		got, err := connlimit.Fit(tc.files, tc.listeners, tc.max)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("Fit(%d, %d, %d) = %d, %v; want %d", tc.files, tc.listeners, tc.max, got, err, tc.want)
		}
	}
}

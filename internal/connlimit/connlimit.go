// Package connlimit budgets the connections of a listener: a cap per
// client address and a cap in all. A connection over its client's cap is
// closed at once; at the global cap, the connection idle the longest (a
// keep-alive connection between requests, or one that has not sent a
// request yet) is closed to make room, and only when every connection is
// busy is the new one closed. Accept never blocks on the budget, so a flood
// of idle connections cannot starve other clients as a blocking limit
// (netutil.LimitListener) lets it.
//
// The budget sees HTTP connection states through http.Server.ConnState:
// call Listener.Track on the server that serves the listener.
package connlimit

import (
	"container/list"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Defaults of Limits.
const (
	// DefaultMax is the default of Limits.Max (the log server's
	// --max-conns).
	DefaultMax = 4096
	// DefaultPerClient is what the servers set Limits.PerClient to unless
	// told otherwise (the log server's --max-conns-per-client default, the
	// witness's cap). Limits.PerClient has no default: 0 is no cap.
	DefaultPerClient = 256
)

// Limits is a listener's budget.
type Limits struct {
	// Max is the most connections open at once (0: DefaultMax).
	Max int
	// PerClient is the most connections open at once from one client
	// address: an IPv4 address, or an IPv6 /64. 0 (or less) is no cap per
	// client, e.g. behind a load balancer whose connections all come from
	// one address; servers set DefaultPerClient unless told otherwise.
	PerClient int
	// Logger reports refused and shed connections, at most once per
	// logEvery (nil: slog.Default()).
	Logger *slog.Logger
	// Name names the listener in the log ("api", "intercept").
	Name string
}

// logEvery bounds how often refusals are logged.
const logEvery = 10 * time.Second

// Listener is a net.Listener within Limits.
type Listener struct {
	net.Listener
	lim    Limits
	logger *slog.Logger

	mu       sync.Mutex
	open     int
	byClient map[netip.Prefix]int
	idle     *list.List // of *conn, longest idle first
	stats    Stats
	logged   Stats
	lastLog  time.Time
}

// Stats counts what a Listener did.
type Stats struct {
	Open    int    // connections open now
	Idle    int    // of which idle: between requests, or before the first
	Refused uint64 // closed at once: over their client's cap, or every connection busy
	Shed    uint64 // idle connections closed to make room
}

// New wraps ln in the budget lim.
func New(ln net.Listener, lim Limits) *Listener {
	if lim.Max <= 0 {
		lim.Max = DefaultMax
	}
	if lim.Logger == nil {
		lim.Logger = slog.Default()
	}
	return &Listener{Listener: ln, lim: lim, logger: lim.Logger, byClient: map[netip.Prefix]int{}, idle: list.New()}
}

// Limits returns the listener's budget, defaults filled in.
func (l *Listener) Limits() Limits { return l.lim }

// Stats returns the listener's counters.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Open, s.Idle = l.open, l.idle.Len()
	return s
}

// conn is an accepted connection in the budget.
type conn struct {
	net.Conn
	l      *Listener
	client netip.Prefix
	elem   *list.Element // in l.idle while idle, else nil
	closed bool          // under l.mu
}

// clientOf is the budget key of a remote address.
func clientOf(a net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// Accept returns the next connection within the budget. Connections over
// it are closed here and never returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if cc := l.admit(c); cc != nil {
			return cc, nil
		}
	}
}

// admit takes c into the budget, or closes it; it returns nil when c was
// closed.
func (l *Listener) admit(c net.Conn) net.Conn {
	client := clientOf(c.RemoteAddr())
	l.mu.Lock()
	if l.lim.PerClient > 0 && l.byClient[client] >= l.lim.PerClient {
		l.stats.Refused++
		l.note()
		l.mu.Unlock()
		refuse(c)
		return nil
	}
	var victim *conn
	if l.open >= l.lim.Max {
		if e := l.idle.Front(); e != nil {
			victim = e.Value.(*conn)
			l.idle.Remove(e)
			victim.elem = nil
			l.release(victim)
			l.stats.Shed++
		} else {
			l.stats.Refused++
			l.note()
			l.mu.Unlock()
			refuse(c)
			return nil
		}
	}
	cc := &conn{Conn: c, l: l, client: client}
	l.open++
	l.byClient[client]++
	// A new connection counts as idle until its first request: one that
	// never sends one is the first to go.
	cc.elem = l.idle.PushBack(cc)
	l.note()
	l.mu.Unlock()
	if victim != nil {
		victim.Conn.Close()
	}
	return cc
}

// refuse closes a connection over the budget without lingering.
func refuse(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// release takes c out of the budget, once; under l.mu.
func (l *Listener) release(c *conn) {
	if c.closed {
		return
	}
	c.closed = true
	if c.elem != nil {
		l.idle.Remove(c.elem)
		c.elem = nil
	}
	l.open--
	if l.byClient[c.client]--; l.byClient[c.client] <= 0 {
		delete(l.byClient, c.client)
	}
}

// note logs refusals and sheds since the last report, at most once per
// logEvery; under l.mu.
func (l *Listener) note() {
	if l.stats == l.logged || time.Since(l.lastLog) < logEvery {
		return
	}
	l.logger.Warn("connection budget: connections refused or shed",
		"listener", l.lim.Name, "refused", l.stats.Refused-l.logged.Refused, "shed", l.stats.Shed-l.logged.Shed,
		"open", l.open, "max_conns", l.lim.Max, "max_conns_per_client", l.lim.PerClient)
	l.logged, l.lastLog = l.stats, time.Now()
}

func (c *conn) Close() error {
	c.l.mu.Lock()
	c.l.release(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// setIdle moves c to the back of the idle list (idle) or out of it (busy).
func (c *conn) setIdle(idle bool) {
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.closed {
		return
	}
	if c.elem != nil {
		l.idle.Remove(c.elem)
		c.elem = nil
	}
	if idle {
		c.elem = l.idle.PushBack(c)
	}
}

// Track makes hs report its connections' states to the budget (keeping a
// ConnState hs already has): a connection between requests may be shed, a
// connection serving a request or hijacked (a CONNECT tunnel) may not.
func (l *Listener) Track(hs *http.Server) {
	prev := hs.ConnState
	hs.ConnState = func(nc net.Conn, s http.ConnState) {
		if c := l.find(nc); c != nil {
			switch s {
			case http.StateNew, http.StateIdle:
				c.setIdle(true)
			case http.StateActive, http.StateHijacked:
				c.setIdle(false)
			}
		}
		if prev != nil {
			prev(nc, s)
		}
	}
}

// find is the budget's conn under what the server sees (the conn, or a
// *tls.Conn around it).
func (l *Listener) find(nc net.Conn) *conn {
	for range 4 {
		if c, ok := nc.(*conn); ok && c.l == l {
			return c
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		nc = u.NetConn()
	}
	return nil
}

// ErrTooFewFiles is returned by Fit when the file limit leaves no room for
// connections.
var ErrTooFewFiles = errors.New("connlimit: the file limit leaves no room for connections")

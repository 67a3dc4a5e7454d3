package capture

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// DefaultTunnelIdle is the default of InterceptConfig.TunnelIdle.
const DefaultTunnelIdle = 2 * time.Minute

// DefaultInterceptOther is the default of InterceptConfig.Other.
const DefaultInterceptOther = "tunnel"

// Tunnel outcomes (attribute capture.outcome of capture.tunnel).
const (
	TunnelClosed      = "closed"       // either side closed
	TunnelIdleTimeout = "idle_timeout" // no byte either way for TunnelIdle
	TunnelRefused     = "refused"      // the destination is not allowed
	TunnelUnreachable = "unreachable"  // resolving or dialling failed
)

// ErrTunnelForbidden is returned by the tunnel policy for a destination
// that is internal (loopback, private, link-local, ...) and not an
// exception.
var ErrTunnelForbidden = errors.New("capture: tunnel destination not allowed")

// forbiddenRanges are the destinations a tunnel never reaches unless
// allowed: besides loopback, private (RFC 1918, ULA), link-local,
// multicast and unspecified addresses, which netip classifies, these.
var forbiddenRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),      // CGNAT (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),      // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),        // reserved, broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),     // local-use NAT64
	netip.MustParsePrefix("fec0::/10"),          // site-local (deprecated)
	netip.MustParsePrefix("2001:db8::/32"),      // documentation
	netip.MustParsePrefix("::ffff:0:0/96"),      // IPv4-mapped (unmapped first; kept for safety)
	netip.MustParsePrefix("100::/64"),           // discard-only
	netip.MustParsePrefix("2002::/16"),          // 6to4 can embed any IPv4 address
	netip.MustParsePrefix("2001::/32"),          // Teredo can embed any IPv4 address
	netip.MustParsePrefix("::/96"),              // IPv4-compatible (deprecated) embeds an IPv4 address
	netip.MustParsePrefix("64:ff9b::/96"),       // NAT64 can embed any IPv4 address
	netip.MustParsePrefix("ff00::/8"),           // multicast
	netip.MustParsePrefix("169.254.0.0/16"),     // link-local (cloud metadata)
	netip.MustParsePrefix("fe80::/10"),          // link-local
	netip.MustParsePrefix("255.255.255.255/32"), // broadcast
}

// internalAddr reports why ip is an internal destination, "" if it is not.
func internalAddr(ip netip.Addr, own func() []netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsMulticast() || ip.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, p := range forbiddenRanges {
		if p.Contains(ip) {
			return "reserved"
		}
	}
	for _, a := range own() {
		if a == ip {
			return "this host's"
		}
	}
	return ""
}

// hostAddrs returns this host's own addresses.
func hostAddrs() []netip.Addr {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// tunnelAllow is the parsed InterceptConfig.TunnelAllow.
type tunnelAllow struct {
	prefixes []netip.Prefix
	hosts    map[string]bool // "host:port" as the CONNECT names it, lower case
}

// parseTunnelAllow parses exceptions: a CIDR, an IP address, or HOST:PORT.
func parseTunnelAllow(list []string) (tunnelAllow, error) {
	a := tunnelAllow{hosts: map[string]bool{}}
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			a.prefixes = append(a.prefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(s); err == nil {
			a.prefixes = append(a.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		host, port, err := net.SplitHostPort(s)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return a, fmt.Errorf("--intercept-allow %q: a CIDR, an IP address, or HOST:PORT", s)
		}
		a.hosts[strings.ToLower(net.JoinHostPort(strings.TrimSuffix(host, "."), port))] = true
	}
	return a, nil
}

func (a tunnelAllow) hasAddr(ip netip.Addr) bool {
	for _, p := range a.prefixes {
		if p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// tunnelTarget resolves a CONNECT's host once and returns the one address
// to dial: the --intercept-resolve mapping if there is one (the operator's
// choice), else the first resolved address that is not internal, or that
// an exception allows. Dialling exactly this address means that DNS
// cannot answer differently between the check and the dial.
func (ic *Interceptor) tunnelTarget(ctx context.Context, host, port string) (string, error) {
	if to, ok := ic.cfg.Resolve[host]; ok {
		return to, nil
	}
	if to, ok := ic.cfg.Resolve[net.JoinHostPort(host, port)]; ok {
		return to, nil
	}
	named := ic.allow.hosts[strings.ToLower(net.JoinHostPort(strings.TrimSuffix(host, "."), port))]
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		ips = []netip.Addr{ip}
	} else {
		if ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
			return "", err
		}
	}
	var why string
	for _, ip := range ips {
		ip = ip.Unmap()
		w := internalAddr(ip, ic.ownAddrs)
		if w == "" || named || ic.allow.hasAddr(ip) {
			return net.JoinHostPort(ip.String(), port), nil
		}
		why = fmt.Sprintf("%s resolves to a %s address (%s)", event.Clip(host, 128), w, ip)
	}
	if why == "" {
		return "", fmt.Errorf("%s has no address", event.Clip(host, 128))
	}
	return "", fmt.Errorf("%w: %s; --intercept-allow names exceptions", ErrTunnelForbidden, why)
}

// activityConn counts what goes through a connection and when it last did.
type activityConn struct {
	net.Conn
	r    io.Reader // what to read from (a buffered reader over Conn)
	in   atomic.Int64
	last *atomic.Int64 // shared by both sides: unix nanoseconds
}

func (c *activityConn) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.in.Add(int64(n))
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// tunnelStats is what a tunnel passed.
type tunnelStats struct {
	sent, received int64 // client to upstream, upstream to client
	idle           bool  // ended by the idle deadline
}

// tunnel splices client and upstream until either side closes or no byte
// passes either way for idle.
func tunnel(client net.Conn, buffered *bufio.Reader, upstream net.Conn, idle time.Duration) tunnelStats {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	c := &activityConn{Conn: client, r: buffered, last: &last}
	u := &activityConn{Conn: upstream, r: upstream, last: &last}
	var once sync.Once
	var idled atomic.Bool
	stop := func() {
		once.Do(func() {
			client.Close()
			upstream.Close()
		})
	}
	var timer *time.Timer
	var check func()
	check = func() {
		left := idle - time.Since(time.Unix(0, last.Load()))
		if left <= 0 {
			idled.Store(true)
			stop()
			return
		}
		timer.Reset(left)
	}
	timer = time.AfterFunc(idle, func() { check() })
	done := make(chan struct{}, 2)
	go func() { io.Copy(upstream, c); done <- struct{}{} }()
	go func() { io.Copy(client, u); done <- struct{}{} }()
	<-done
	timer.Stop()
	stop()
	<-done
	return tunnelStats{sent: c.in.Load(), received: u.in.Load(), idle: idled.Load()}
}

// recordTunnel queues the capture.tunnel event of agent's tunnel (or
// refused CONNECT); what cannot be recorded is noted as a gap.
func (ic *Interceptor) recordTunnel(agent *Agent, session, host, port, addr, outcome string, st tunnelStats, start time.Time, cause error) {
	c := ic.p.c
	a := attrs{}
	a.set(event.AttrCaptureFront, c.front)
	a.set(event.AttrServerAddress, event.Clip(host, 256))
	if n, err := strconv.Atoi(port); err == nil {
		a.set(event.AttrServerPort, n)
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		a.set(event.AttrNetworkPeerAddress, ap.Addr().String())
	}
	a.set(event.AttrCaptureOutcome, outcome)
	if cause != nil {
		a.set(event.AttrCaptureError, event.Clip(cause.Error(), 256))
	}
	if outcome != TunnelRefused && outcome != TunnelUnreachable {
		a.set(event.AttrCaptureTunnelBytesSent, st.sent)
		a.set(event.AttrCaptureTunnelBytesReceived, st.received)
	}
	a.set(event.AttrCaptureDurationMS, millis(time.Since(start)))
	ev := &event.Request{Session: session, Kind: event.KindCaptureTunnel, Actor: agent.Actor, Attributes: a.raw()}
	gi := gapItem{Kind: event.KindCaptureTunnel, Time: time.Now().UTC(), Outcome: outcome}
	c.enqueue(agent.Tenant, session, &recordItem{rec: agent.Recorder, evs: []*event.Request{ev}, failed: func(err error) {
		c.logger.Warn("capture: tunnel not recorded; noted as a gap", "session", session, "host", host, "error", err)
		c.noteGap(agent.Tenant, agent.Recorder, session, err, gi)
	}})
}

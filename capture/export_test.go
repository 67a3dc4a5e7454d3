package capture

import "net/netip"

// InternalAddr exposes the tunnel rule's classification to the external
// tests, which must never dial an address off this machine to test it.
func InternalAddr(ip netip.Addr) string { return internalAddr(ip, hostAddrs) }

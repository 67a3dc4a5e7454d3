package console

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Sign-in attempts are limited per client address (an IPv4 address, an
// IPv6 /64): the token form, and the start and the end of an OIDC sign-in
// each count one. Guessing tokens is hopeless (256 bits), but each failed
// attempt is appended to the log: the limit bounds what one client makes
// the log hold, and what a burst of failures costs the provider.
const (
	// DefaultSignInRate is the sustained rate of sign-in attempts of one
	// client address, DefaultSignInBurst the attempts it may make at once.
	DefaultSignInRate  = rate.Limit(10.0 / 60) // 10 a minute
	DefaultSignInBurst = 20
	// maxLimited caps the client addresses tracked; beyond it the table
	// starts over (an attacker with that many addresses gets a new burst).
	maxLimited = 10000
)

type signInLimits struct {
	rate  rate.Limit
	burst int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func newSignInLimits(r rate.Limit, burst int) *signInLimits {
	return &signInLimits{rate: r, burst: burst, m: map[string]*rate.Limiter{}}
}

// clientKey is the address a request's limit is kept under.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String()
}

// allow takes one attempt of key; if none is left it returns how long
// until one is.
func (l *signInLimits) allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[key]
	if !ok {
		if len(l.m) >= maxLimited {
			clear(l.m)
		}
		lim = rate.NewLimiter(l.rate, l.burst)
		l.m[key] = lim
	}
	now := time.Now()
	if lim.AllowN(now, 1) {
		return true, 0
	}
	return false, lim.ReserveN(now, 0).DelayFrom(now) + time.Duration(float64(time.Second)/float64(l.rate))
}

// allowSignIn answers 429 with Retry-After for a client over its limit.
func (c *Console) allowSignIn(w http.ResponseWriter, r *http.Request) bool {
	ok, wait := c.limits.allow(clientKey(r))
	if ok {
		return true
	}
	secs := int(wait.Seconds()) + 1
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	c.logger.Warn("console: sign-in attempts over the limit", "remote", r.RemoteAddr)
	c.render(w, r, http.StatusTooManyRequests, "error", page{Title: "Too many sign-in attempts",
		Error: "Too many sign-in attempts from your address: wait " + strconv.Itoa(secs) + " seconds and try again."})
	return false
}

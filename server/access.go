package server

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Who reads what. Anonymous clients get checkpoints, hash tiles and
// consistency proofs: enough for witnesses, consistency checks and
// receipts. Entry contents need a token: entry bundles mix tenants, so they
// need a global token with the read scope; a tenant's token reads its own
// tenant's entries through /v1/entries and /v1/sessions. Config.PublicEntries
// makes every entry public.

// entriesGate guards /tile/entries/...: a global read token, unless entries
// are public.
func (s *Server) entriesGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.bundlesPublic() {
			p, err := s.Authenticate(r)
			if err == nil && (!p.Has(auth.ScopeRead) || !p.Global) {
				err = errorf(http.StatusForbidden, "forbidden", "entry bundles hold every tenant's entries: they need a global token with the read scope (token create --global); a tenant's own token reads them on a log of leaf version 3 or 4 only (--leaf-version 3 or 4), where a tenant's report and audit need its keys (GET /v1/tenant-key)")
			}
			if err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// entryReader authenticates a reader of /v1/entries: nil (anyone) when
// entries are public.
func (s *Server) entryReader(r *http.Request) (*auth.Principal, error) {
	if s.cfg.PublicEntries {
		return nil, nil
	}
	p, err := s.Authenticate(r)
	if err != nil {
		return nil, err
	}
	if !p.Has(auth.ScopeRead) {
		return nil, errorf(http.StatusForbidden, "forbidden", "token lacks the %q scope", auth.ScopeRead)
	}
	return p, nil
}

// visible reports whether p (nil: public entries) may see a leaf.
func visible(p *auth.Principal, leaf []byte) bool {
	if p == nil || p.Global {
		return true
	}
	h, err := event.ParseHead(leaf)
	return err == nil && h.Tenant == p.Tenant
}

// Limits on reads, so that slow or greedy readers cannot hold the server's
// memory: each answer of the tiles API or of an entry read holds at most a
// bundle (about 3 MiB at worst) while it is written.
const (
	// DefaultMaxReads bounds read answers in progress at once.
	DefaultMaxReads = 256
	// DefaultMaxReadsPerClient bounds those of one client address.
	DefaultMaxReadsPerClient = 16
	// DefaultReadDeadline bounds writing one read answer.
	DefaultReadDeadline = 30 * time.Second
	// apiDeadline bounds writing any other API answer (receipts add the
	// receipt wait).
	apiDeadline = 60 * time.Second
)

// limiter admits a bounded number of requests in all and per client.
type limiter struct {
	total, per int
	mu         sync.Mutex
	n          int
	byClient   map[string]int
}

func newLimiter(total, per int) *limiter {
	return &limiter{total: total, per: per, byClient: map[string]int{}}
}

func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (l *limiter) acquire(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n >= l.total || l.byClient[client] >= l.per {
		return false
	}
	l.n++
	l.byClient[client]++
	return true
}

func (l *limiter) release(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n--
	if l.byClient[client]--; l.byClient[client] <= 0 {
		delete(l.byClient, client)
	}
}

// limitReads admits a read within the limits (503 with Retry-After beyond
// them) and bounds the time its answer may take to write.
func (s *Server) limitReads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := clientOf(r)
		if !s.reads.acquire(c) {
			s.writeError(w, r, errorf(http.StatusServiceUnavailable, "overloaded", "too many reads in progress; retry later"))
			return
		}
		defer s.reads.release(c)
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.ReadDeadline))
		next.ServeHTTP(w, r)
	})
}

// apiDeadlines bounds the time an API answer may take to write.
func (s *Server) apiDeadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := apiDeadline
		if queryGet(r, "wait") != "" {
			d += s.cfg.ReceiptWait
		}
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
		next.ServeHTTP(w, r)
	})
}

package capture

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// DefaultBodyBudget is the cap of NewBodyBudget(0), the budget of a Proxy
// given none (WithBodyBudget): the request bodies all calls may hold in
// memory at once.
const DefaultBodyBudget = 64 << 20

// errOverBudget and errOverShare are answered with 503 and Retry-After.
var (
	errOverBudget = errors.New("capture: the proxy's in-flight body budget is spent")
	errOverShare  = errors.New("capture: the client holds its share of the proxy's body budget")
)

// BodyBudget bounds the request bytes the capture proxies hold in memory
// at once. A call takes its body's bytes as they arrive, a step (1 MiB) at
// a time, never more than it received and one step; a call whose next
// step does not fit is answered 503 with Retry-After (in the provider's
// error format) and its body is not read further. A call holds its bytes
// until its body has gone upstream and its request has been recorded (in
// fail-open the record may come after the round trip); the response bytes
// a call records are taken from the budget too, and stop (the body is
// recorded truncated) when it is spent.
//
// One client (an agent's token) holds at most its share of the budget:
// half of it, or the largest body of a proxy using the budget if that is
// more, so that the small bodies of others still fit beside one client's
// uploads. One BodyBudget may be shared by several proxies (the log
// server shares one between the base-URL and the interception proxies).
type BodyBudget struct {
	mu        sync.Mutex
	max, used int64
	share     int64
	byClient  map[string]int64
}

// NewBodyBudget returns a budget of max bytes (0: DefaultBodyBudget). A
// proxy refuses a budget below the largest body one call may send
// (WithMaxRequestBytes), so that every acceptable call fits when alone.
func NewBodyBudget(max int64) *BodyBudget {
	if max == 0 {
		max = DefaultBodyBudget
	}
	return &BodyBudget{max: max, share: max / 2, byClient: map[string]int64{}}
}

// Max returns the budget's cap.
func (b *BodyBudget) Max() int64 { return b.max }

// fit raises a client's share to n, the largest body of a proxy that uses
// the budget, so that such a body fits when alone.
func (b *BodyBudget) fit(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.share = max(b.share, min(n, b.max))
}

// share is a client's share of the budget.
func (b *BodyBudget) clientShare() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.share
}

// take takes n bytes for client ("": no share applies); it returns
// errOverBudget or errOverShare when they do not fit.
func (b *BodyBudget) take(client string, n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return errOverBudget
	}
	if client != "" {
		if b.byClient[client]+n > b.share {
			return errOverShare
		}
		b.byClient[client] += n
	}
	b.used += n
	return nil
}

func (b *BodyBudget) give(client string, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if client != "" {
		if left := b.byClient[client] - n; left > 0 {
			b.byClient[client] = left
		} else {
			delete(b.byClient, client)
		}
	}
}

// bodyHold is what a request body holds of a budget. It is given back when
// each of its holders has released it: the proxy once the body has gone
// upstream, and the request's record once it has taken the bytes (retain
// adds a holder). A nil *bodyHold holds nothing.
type bodyHold struct {
	b      *BodyBudget
	client string
	n      int64
	refs   atomic.Int32
}

func (h *bodyHold) retain() {
	if h != nil {
		h.refs.Add(1)
	}
}

func (h *bodyHold) release() {
	if h != nil && h.refs.Add(-1) == 0 {
		h.b.give(h.client, h.n)
	}
}

// budgetClient names the client whose share of the budget a body takes:
// the agent's credential (authenticated before the body is read), else its
// address.
func budgetClient(agent *Agent, r *http.Request) string {
	if agent != nil && agent.ID != "" {
		return "agent:" + agent.ID
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return "addr:" + host
}

// budgetStep is the most a body takes from the budget ahead of its bytes;
// firstChunk is the first chunk of a body of unknown length.
const (
	budgetStep = 1 << 20
	firstChunk = 64 << 10
)

// readBody reads r's body, at most limit bytes, taking its bytes from
// budget for client as they arrive: into chunks of at most budgetStep,
// each taken before it is read (a declared Content-Length is not trusted
// ahead of the bytes), then into one buffer of the body's size. It returns
// the body and its hold (release it when done), errOverBudget,
// errOverShare, an *http.MaxBytesError, or a read error; on error nothing
// stays taken. The chunks left behind are garbage for the collector.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, budget *BodyBudget, client string) ([]byte, *bodyHold, error) {
	n := r.ContentLength // -1: unknown
	if n > limit {
		return nil, nil, &http.MaxBytesError{Limit: limit}
	}
	src := http.MaxBytesReader(w, r.Body, limit)
	h := &bodyHold{b: budget, client: client}
	fail := func(err error) ([]byte, *bodyHold, error) {
		budget.give(client, h.n)
		return nil, nil, err
	}
	var chunks [][]byte
	var total int64
	for n < 0 || total < n {
		// The next chunk: at most a step; of a declared length, what is
		// left of it; of an unknown one, doubling from firstChunk, and
		// never past limit and one byte (enough to see a body too long).
		size := min(n-total, budgetStep)
		if n < 0 {
			size = min(max(total, firstChunk), budgetStep, limit+1-total)
		}
		if err := budget.take(client, size); err != nil {
			return fail(err)
		}
		h.n += size
		c := make([]byte, size)
		m, err := io.ReadFull(src, c)
		total += int64(m)
		chunks = append(chunks, c[:m])
		if n < 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fail(err)
		}
	}
	var body []byte
	switch len(chunks) {
	case 0:
		body = []byte{}
	case 1:
		body = chunks[0]
	default:
		body = make([]byte, 0, total)
		for _, c := range chunks {
			body = append(body, c...)
		}
		// The body now holds total bytes; the chunks are garbage.
		budget.give(client, h.n-total)
		h.n = total
	}
	h.refs.Store(1)
	return body, h, nil
}

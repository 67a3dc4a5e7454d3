package capture

import (
	"errors"
	"io"
	"net/http"
	"sync"
)

// DefaultBodyBudget is the cap of NewBodyBudget(0), the budget of a Proxy
// given none (WithBodyBudget): the request bodies all calls may hold in
// memory at once.
const DefaultBodyBudget = 64 << 20

// errOverBudget is answered with 503 and Retry-After.
var errOverBudget = errors.New("capture: the proxy's in-flight body budget is spent")

// BodyBudget bounds the request bytes the capture proxies hold in memory
// at once: a call whose body does not fit is answered 503 with Retry-After
// (in the provider's error format) before its body is read. A call holds
// its share from the moment its body is read until it has been sent
// upstream. One BodyBudget may be shared by several proxies (the log
// server shares one between the base-URL and the interception proxies).
type BodyBudget struct {
	mu        sync.Mutex
	max, used int64
}

// NewBodyBudget returns a budget of max bytes (0: DefaultBodyBudget). A
// proxy refuses a budget below the largest body one call may send
// (WithMaxRequestBytes), so that every acceptable call fits when alone.
func NewBodyBudget(max int64) *BodyBudget {
	if max == 0 {
		max = DefaultBodyBudget
	}
	return &BodyBudget{max: max}
}

// Max returns the budget's cap.
func (b *BodyBudget) Max() int64 { return b.max }

func (b *BodyBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *BodyBudget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

// budgetStep is what a body of unknown length takes at a time.
const budgetStep = 1 << 20

// readBody reads r's body, at most limit bytes, into one buffer of its size,
// taking its bytes from budget. It returns the body and the bytes taken
// (give them back when done), errOverBudget, an *http.MaxBytesError, or a
// read error; on error nothing stays taken.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, budget *BodyBudget) ([]byte, int64, error) {
	src := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n >= 0 {
		if n > limit {
			return nil, 0, &http.MaxBytesError{Limit: limit}
		}
		if !budget.take(n) {
			return nil, 0, errOverBudget
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(src, body); err != nil {
			budget.give(n)
			return nil, 0, err
		}
		return body, n, nil
	}
	var body []byte
	var held int64
	for {
		if len(body) == cap(body) {
			if int64(cap(body)) > limit {
				budget.give(held)
				return nil, 0, &http.MaxBytesError{Limit: limit}
			}
			// Double the buffer (the bytes taken are its capacity), but
			// never past limit and one byte, enough to see a body too long.
			grow := min(max(int64(cap(body)), budgetStep), limit+1-int64(cap(body)))
			if !budget.take(grow) {
				budget.give(held)
				return nil, 0, errOverBudget
			}
			held += grow
			nb := make([]byte, len(body), int64(cap(body))+grow)
			copy(nb, body)
			body = nb
		}
		n, err := src.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if err == io.EOF {
			return body, held, nil
		}
		if err != nil {
			budget.give(held)
			return nil, 0, err
		}
	}
}

package capture

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// How attempts are grouped into calls. The OpenAI and Anthropic SDKs (and
// every Stainless-generated SDK) send X-Stainless-Retry-Count: 0 on a call's
// first attempt and N on its N-th retry, with the same body; other clients may
// send Idempotency-Key, or our X-Audit-Call. An attempt is grouped with the
// earlier attempt that has the same explicit call id, idempotency key or
// (principal, session, method, path, body digest), for callTTL.
const (
	callTTL       = 15 * time.Minute
	maxCallsTable = 1 << 16
	retryHeader   = "X-Stainless-Retry-Count"
)

type callEntry struct {
	id, session string
	attempt     int
	expires     time.Time
}

type callTable struct {
	mu sync.Mutex
	m  map[string]*callEntry
}

func newCallTable() *callTable { return &callTable{m: map[string]*callEntry{}} }

// retryCount reads X-Stainless-Retry-Count, or -1.
func retryCount(h http.Header) int {
	n, err := strconv.Atoi(h.Get(retryHeader))
	if err != nil || n < 0 || n > 1000 {
		return -1
	}
	return n
}

// callRef is what identifies an attempt's call.
type callRef struct {
	principal string // who makes the call (token id, or the Hook)
	session   string // as given by the client, "" if none
	explicit  string // X-Audit-Call
	idem      string // Idempotency-Key
	retry     int    // X-Stainless-Retry-Count, -1 if absent
	method    string
	path      string
	body      []byte
}

// assign returns the call id, attempt number and session of an attempt. A
// session given by the client always wins; otherwise a retry keeps its call's
// session, and a new call gets a new session.
func (t *callTable) assign(r callRef, now time.Time) (callID string, attempt int, session string) {
	var key string
	switch {
	case r.explicit != "":
		key = "call\x00" + r.principal + "\x00" + r.explicit
	case r.idem != "":
		key = "idem\x00" + r.principal + "\x00" + r.idem
	default:
		h := sha256.New()
		h.Write([]byte(r.method + "\x00" + r.path + "\x00"))
		h.Write(r.body)
		key = "body\x00" + r.principal + "\x00" + r.session + "\x00" + hex.EncodeToString(h.Sum(nil))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, found := t.m[key]
	if found && now.After(e.expires) {
		found = false
	}
	// Without a retry count, identical bodies are separate calls unless the
	// client named the call.
	reuse := found && (r.retry > 0 || (r.retry < 0 && (r.explicit != "" || r.idem != "")))
	switch {
	case reuse:
		if r.retry > 0 {
			e.attempt = r.retry
		} else {
			e.attempt++
		}
	default:
		e = &callEntry{id: r.explicit, session: r.session}
		if e.id == "" {
			e.id = event.NewID()
		}
		if r.retry > 0 {
			e.attempt = r.retry
		}
		if e.session == "" {
			e.session = event.NewID()
		}
		if len(t.m) >= maxCallsTable {
			t.evictLocked(now)
		}
		t.m[key] = e
	}
	if r.session != "" {
		e.session = r.session
	}
	e.expires = now.Add(callTTL)
	return e.id, e.attempt, e.session
}

func (t *callTable) evictLocked(now time.Time) {
	for k, e := range t.m {
		if now.After(e.expires) {
			delete(t.m, k)
		}
	}
	// Still full: drop an arbitrary half. A retry of a dropped call starts a
	// new call id; its attempt number still tells it is a retry.
	if len(t.m) >= maxCallsTable {
		n := 0
		for k := range t.m {
			if n%2 == 0 {
				delete(t.m, k)
			}
			n++
		}
	}
}

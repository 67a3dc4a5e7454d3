package capture_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// fakeMetrics notes what the capture reports.
type fakeMetrics struct {
	mu      sync.Mutex
	forward []string        // provider/mode
	held    []time.Duration // per forward
	ended   []string        // provider/mode/outcome
}

func (m *fakeMetrics) Forwarded(provider string, mode capture.Mode, held time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forward = append(m.forward, provider+"/"+string(mode))
	m.held = append(m.held, held)
}

func (m *fakeMetrics) Ended(provider string, mode capture.Mode, outcome string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ended = append(m.ended, provider+"/"+string(mode)+"/"+outcome)
}

// take returns and forgets what was reported, once want outcomes are in.
func (m *fakeMetrics) take(t *testing.T, want int) (forward []string, held []time.Duration, ended []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.mu.Lock()
		if len(m.ended) >= want || time.Now().After(deadline) {
			forward, held, ended = m.forward, m.held, m.ended
			m.forward, m.held, m.ended = nil, nil, nil
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
}

// slowRecorder makes records durable after delay, or fails them.
type slowRecorder struct {
	delay time.Duration
	fail  atomic.Bool
	n     atomic.Uint64
}

func (r *slowRecorder) Record(ctx context.Context, evs []*event.Request) ([]event.Appended, error) {
	time.Sleep(r.delay)
	if r.fail.Load() {
		return nil, errors.New("log unavailable (test)")
	}
	out := make([]event.Appended, len(evs))
	for i, ev := range evs {
		out[i] = event.Appended{ID: fmt.Sprint(r.n.Add(1)), Index: r.n.Load(), Session: ev.Session}
	}
	return out, nil
}

// TestMetrics: every attempt through the proxy ends once with its outcome
// (by provider and mode), and the time held before forwarding includes,
// in fail-closed mode only, the wait for the request's record.
func TestMetrics(t *testing.T) {
	up := newFakeUpstream(t)
	const delay = 80 * time.Millisecond
	for _, mode := range []capture.Mode{capture.FailClosed, capture.FailOpen} {
		t.Run(string(mode), func(t *testing.T) {
			rec := &slowRecorder{delay: delay}
			m := &fakeMetrics{}
			auth := func(ctx context.Context, token string) (*capture.Agent, error) {
				return &capture.Agent{Recorder: rec, Tenant: "default", ID: "t1", Actor: event.Actor{Type: "agent", ID: "a"}}, nil
			}
			p, err := capture.NewProxy(map[string]string{"openai": up.URL}, auth, capture.WithLogger(quiet), capture.WithMode(mode),
				capture.WithMetrics(m), capture.WithRecordLinger(0))
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(p)
			defer func() { ts.Close(); p.Close(context.Background()) }()
			post := func(body string) int {
				req, _ := http.NewRequest("POST", ts.URL+"/proxy/openai/v1/chat/completions", strings.NewReader(body))
				req.Header.Set(capture.HeaderToken, "agent-token")
				req.Header.Set(capture.HeaderSession, "metrics-"+string(mode))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+openaiKey)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			chat := `{"model":"gpt-test","messages":[{"role":"user","content":"metrics/` + string(mode) + `"}]}`

			if code := post(chat); code != http.StatusOK {
				t.Fatalf("call = %d", code)
			}
			forward, held, ended := m.take(t, 1)
			if want := []string{"openai/" + string(mode)}; !slices.Equal(forward, want) {
				t.Errorf("forwarded %v, want %v", forward, want)
			}
			if want := []string{"openai/" + string(mode) + "/complete"}; !slices.Equal(ended, want) {
				t.Errorf("ended %v, want %v", ended, want)
			}
			if len(held) == 1 {
				if mode == capture.FailClosed && held[0] < delay {
					t.Errorf("fail-closed: held %v, want at least the record's %v", held[0], delay)
				}
				if mode == capture.FailOpen && held[0] >= delay {
					t.Errorf("fail-open: held %v, want less than the record's %v", held[0], delay)
				}
			}

			// A duplicate name: refused in either mode, never forwarded.
			if code := post(`{"model":"gpt-test","model":"gpt-other","messages":[]}`); code != http.StatusBadRequest {
				t.Fatalf("ambiguous call = %d, want 400", code)
			}
			if forward, _, ended := m.take(t, 1); len(forward) != 0 || !slices.Equal(ended, []string{"openai/" + string(mode) + "/refused"}) {
				t.Errorf("ambiguous call: forwarded %v, ended %v; want only refused", forward, ended)
			}

			rec.fail.Store(true)
			code := post(chat)
			forward, _, ended = m.take(t, 1)
			switch mode {
			case capture.FailClosed:
				if code != http.StatusServiceUnavailable || len(forward) != 0 || !slices.Equal(ended, []string{"openai/fail-closed/not_recorded"}) {
					t.Errorf("log down, fail-closed: %d, forwarded %v, ended %v; want 503 and only not_recorded", code, forward, ended)
				}
			case capture.FailOpen:
				if code != http.StatusOK || len(forward) != 1 || !slices.Equal(ended, []string{"openai/fail-open/complete"}) {
					t.Errorf("log down, fail-open: %d, forwarded %v, ended %v; want 200, forwarded and complete", code, forward, ended)
				}
			}
			rec.fail.Store(false)
		})
	}
}

package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestHandlerServesTheRegistry: every collector is registered, named
// llmaudit_* (or the Go and process collectors'), and served by Handler.
func TestHandlerServesTheRegistry(t *testing.T) {
	CaptureCalls.WithLabelValues("openai", "fail-closed", "complete").Inc()
	ProxyAddedLatency.WithLabelValues("openai", "fail-closed").Observe(0.001)
	WitnessLatency.WithLabelValues("w.example").Observe(0.01)
	WitnessFailures.WithLabelValues("w.example", "timeout").Inc()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`llmaudit_appends_total{outcome="pushback"} 0`,
		"# TYPE llmaudit_append_durable_seconds histogram",
		"# TYPE llmaudit_append_indexed_seconds histogram",
		"# TYPE llmaudit_journal_records gauge",
		"# TYPE llmaudit_journal_oldest_age_seconds gauge",
		"# TYPE llmaudit_journal_group_commit_records histogram",
		"# TYPE llmaudit_tessera_batch_entries histogram",
		"# TYPE llmaudit_tessera_pushback_total counter",
		"# TYPE llmaudit_vault_lag_entries gauge",
		"# TYPE llmaudit_index_lag_entries gauge",
		`llmaudit_capture_calls_total{mode="fail-closed",outcome="complete",provider="openai"}`,
		`llmaudit_capture_added_latency_seconds_bucket{mode="fail-closed",provider="openai",le="0.0005"}`,
		`llmaudit_witness_request_duration_seconds_count{witness="w.example"}`,
		`llmaudit_witness_failures_total{reason="timeout",witness="w.example"}`,
		`llmaudit_otlp_items_total{outcome="dropped",signal="spans"} 0`,
		`llmaudit_otlp_events_total{outcome="duplicate"} 0`,
		"go_goroutines",
		"process_cpu_seconds_total",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the exposition lacks %q", want)
		}
	}
	n, err := testutil.GatherAndCount(Gatherer())
	if err != nil || n < 20 {
		t.Fatalf("GatherAndCount = %d, %v", n, err)
	}
	// Every metric has help text and our prefix or a collector's.
	mfs, err := Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "llmaudit_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %s: not llmaudit_*", name)
		}
		if mf.GetHelp() == "" {
			t.Errorf("metric %s has no help text", name)
		}
	}
}

type fakeRT struct {
	resp *http.Response
	err  error
}

func (f fakeRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.resp != nil {
		f.resp.Request = r
	}
	return f.resp, f.err
}

func answer(code int, ct string) *http.Response {
	h := http.Header{}
	if ct != "" {
		h.Set("Content-Type", ct)
	}
	return &http.Response{StatusCode: code, Header: h, Body: io.NopCloser(strings.NewReader(""))}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestWitnessTransport(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rt     fakeRT
		cancel bool
		reason string // "" for no failure
		timed  bool
	}{
		{"cosigned", fakeRT{resp: answer(200, "text/plain")}, false, "", true},
		{"size hint", fakeRT{resp: answer(409, "text/x.tlog.size")}, false, "", true},
		{"conflict", fakeRT{resp: answer(409, "text/plain")}, false, "http_409", true},
		{"unknown log", fakeRT{resp: answer(403, "")}, false, "http_403", true},
		{"server error", fakeRT{resp: answer(500, "")}, false, "http_500", true},
		{"timeout", fakeRT{err: timeoutErr{}}, false, "timeout", true},
		{"deadline", fakeRT{err: context.DeadlineExceeded}, false, "timeout", true},
		{"refused", fakeRT{err: io.ErrUnexpectedEOF}, false, "error", true},
		{"quorum met elsewhere", fakeRT{err: context.Canceled}, true, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := strings.ReplaceAll(tc.name, " ", "-") + ".witness.test"
			ctx, cancel := context.WithCancel(context.Background())
			if tc.cancel {
				cancel()
			}
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", "https://"+host+"/add-checkpoint", nil)
			before := testutil.CollectAndCount(WitnessLatency)
			WitnessTransport(tc.rt).RoundTrip(req)
			if timed := testutil.CollectAndCount(WitnessLatency) - before; (timed == 1) != tc.timed {
				t.Errorf("new latency series for %s: %d, want timed=%v", host, timed, tc.timed)
			}
			for _, reason := range []string{"timeout", "error", "http_409", "http_403", "http_500"} {
				got := testutil.ToFloat64(WitnessFailures.WithLabelValues(host, reason))
				want := 0.0
				if reason == tc.reason {
					want = 1
				}
				if got != want {
					t.Errorf("failures{%s,%s} = %v, want %v", host, reason, got, want)
				}
			}
		})
	}
}

package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/internal/metrics"
)

// TestMetricsEndpoint: GET /metrics on the API listener answers only a
// global token with the metrics scope (or admin), and counts a call
// through the capture proxy by provider, mode and outcome.
func TestMetricsEndpoint(t *testing.T) {
	up, _ := countingUpstream(t)
	// An upstream name of this test's own: the metrics are process-wide.
	s := newTestServer(t, func(c *Config) { c.Upstreams = map[string]string{"gw-metrics": up.URL} })
	tok := func(spec auth.Spec) string { k, _ := s.token(t, spec); return k }
	scraper := tok(auth.Spec{Name: "scraper", Tenant: DefaultTenant, Global: true, Scopes: []string{auth.ScopeMetrics}})
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"unknown token", "not-a-token", http.StatusUnauthorized},
		{"global read", tok(auth.Spec{Name: "reader", Tenant: DefaultTenant, Global: true, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}}), http.StatusForbidden},
		{"tenant metrics", tok(auth.Spec{Name: "tenant-scraper", Tenant: "clinic-a", Scopes: []string{auth.ScopeMetrics}}), http.StatusForbidden},
		{"tenant admin", tok(auth.Spec{Name: "tenant-admin", Tenant: "clinic-a", Scopes: []string{auth.ScopeAdmin}}), http.StatusForbidden},
		{"global metrics", scraper, http.StatusOK},
		{"global admin", s.admin, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, h := s.do(t, "GET", MetricsPath, tc.token, nil)
			if code != tc.want {
				t.Fatalf("GET /metrics = %d %.200s, want %d", code, body, tc.want)
			}
			if code == http.StatusOK && (!strings.HasPrefix(h.Get("Content-Type"), "text/plain") || !strings.Contains(string(body), "llmaudit_index_lag_entries")) {
				t.Fatalf("GET /metrics: %s %.300s", h.Get("Content-Type"), body)
			}
			if code != http.StatusOK && strings.Contains(string(body), "llmaudit_") {
				t.Fatalf("a refused scrape got metrics: %.300s", body)
			}
		})
	}

	agent := tok(auth.Spec{Name: "agent-m", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}})
	req, _ := http.NewRequest("POST", s.ts.URL+capture.PathPrefix+"gw-metrics/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[]}`))
	req.Header.Set(capture.HeaderToken, agent)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("proxied call = %d", resp.StatusCode)
	}
	// The outcome is counted once the proxy has passed the whole response
	// on, which may be after the agent has read it.
	want := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^llmaudit_capture_calls_total\{mode="fail-closed",outcome="complete",provider="gw-metrics"\} 1$`),
		regexp.MustCompile(`(?m)^llmaudit_capture_added_latency_seconds_count\{mode="fail-closed",provider="gw-metrics"\} 1$`),
	}
	var body []byte
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var code int
		code, body, _ = s.do(t, "GET", MetricsPath, scraper, nil)
		if code != http.StatusOK {
			t.Fatalf("GET /metrics = %d", code)
		}
		missing := 0
		for _, re := range want {
			if !re.Match(body) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a proxied call, /metrics lacks %v:\n%s", want, grepLines(body, "llmaudit_capture"))
		}
	}
}

func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestMetricsHandler: the metrics listener's handler serves GET /metrics to
// anyone, nothing else, and refuses non-canonical paths.
func TestMetricsHandler(t *testing.T) {
	ts := httptest.NewServer(MetricsHandler())
	defer ts.Close()
	addr := strings.TrimPrefix(ts.URL, "http://")
	for _, tc := range []struct {
		method, target string
		want           int
	}{
		{"GET", "/metrics", http.StatusOK},
		{"HEAD", "/metrics", http.StatusOK},
		{"POST", "/metrics", http.StatusMethodNotAllowed},
		{"GET", "/metrics/", http.StatusNotFound},
		{"GET", "/v1/events", http.StatusNotFound},
		{"GET", "/%6detrics", http.StatusBadRequest},
		{"GET", "//metrics", http.StatusBadRequest},
		{"GET", "/x/../metrics", http.StatusBadRequest},
	} {
		code, body := rawDo(t, addr, tc.method, tc.target, nil, nil)
		if code != tc.want {
			t.Errorf("%s %s = %d %.100q, want %d", tc.method, tc.target, code, body, tc.want)
		}
		if code == http.StatusOK && tc.method == "GET" && !strings.Contains(string(body), "llmaudit_appends_total") {
			t.Errorf("%s %s: no llmaudit metrics in %.200q", tc.method, tc.target, body)
		}
	}
}

// witnessHost is the witness label of a peer's URL.
func witnessHost(t *testing.T, peerURL string) string {
	u, err := url.Parse(peerURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// witnessObserved is the number of requests to host that the witness
// latency histogram has seen.
func witnessObserved(t *testing.T, host string) uint64 {
	mfs, err := metrics.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "llmaudit_witness_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "witness" && l.GetValue() == host {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

func witnessFailures(host, reason string) float64 {
	return testutil.ToFloat64(metrics.WitnessFailures.WithLabelValues(host, reason))
}

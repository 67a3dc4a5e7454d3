package server

import (
	"net/http"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/internal/canonpath"
	"github.com/llmaudittrail/llmaudittrail/internal/metrics"
)

// MetricsPath is where the Prometheus metrics are served, on the API
// listener (metrics scope) and on a metrics listener (MetricsHandler).
const MetricsPath = "/metrics"

// getMetrics serves the metrics to a global token with the metrics scope:
// they count every tenant's calls, as entry bundles hold every tenant's
// entries.
func (s *Server) getMetrics(w http.ResponseWriter, r *http.Request) {
	p, err := s.Authenticate(r)
	if err == nil && (!p.Has(auth.ScopeMetrics) || !p.Global) {
		err = errorf(http.StatusForbidden, "forbidden", "the metrics cover every tenant: they need a global token with the metrics scope (token create --global --scopes metrics)")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	metrics.Handler().ServeHTTP(w, r)
}

// MetricsHandler serves GET /metrics without authentication, for a
// listener of its own (log-server --metrics-listen) on loopback or a
// private network that only the metrics scraper reaches. Like every
// listener it refuses non-canonical paths.
func MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, metrics.Handler())
	return canonpath.Handler(mux, func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, err.Error(), http.StatusBadRequest)
	})
}

// captureMetrics feeds the capture's measurements to internal/metrics.
type captureMetrics struct{}

func (captureMetrics) Forwarded(provider string, mode capture.Mode, held time.Duration) {
	metrics.ProxyAddedLatency.WithLabelValues(provider, string(mode)).Observe(held.Seconds())
}

func (captureMetrics) Ended(provider string, mode capture.Mode, outcome string) {
	metrics.CaptureCalls.WithLabelValues(provider, string(mode), outcome).Inc()
}

// Package metrics holds the log server's Prometheus metrics: one registry
// of its own (not the client library's global default), the Go runtime and
// process collectors, and the collectors below, all named llmaudit_*. The
// engine, the session index, the witness client and the capture proxies
// update them; Handler serves them (the server mounts it at GET /metrics
// behind the metrics scope, and on --metrics-listen). docs/metrics.md
// describes every metric.
//
// The collectors are process-wide: several servers in one process (tests)
// add to the same series.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Outcomes of an append (the outcome label of Appends).
const (
	AppendOK          = "ok"          // acknowledged
	AppendInvalid     = "invalid"     // refused for what it is: invalid, a reserved kind or session, a writer that may not
	AppendPushback    = "pushback"    // refused because the log is overloaded (503 with Retry-After)
	AppendUnavailable = "unavailable" // the storage could not take the write (503)
	AppendError       = "error"       // any other failure
)

// DurationBuckets are the buckets of the latency histograms, in seconds:
// 0.5 ms to 10 s.
var DurationBuckets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10}

// SizeBuckets are the buckets of the histograms that count records or
// entries: 1 to 4096 by powers of two.
var SizeBuckets = prometheus.ExponentialBuckets(1, 2, 13)

// Write path: the engine updates these (log package).
var (
	// Appends counts appended events by outcome (AppendOK, ...): an append
	// request of n events counts n.
	Appends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmaudit_appends_total",
		Help: "Events appended to the log, by outcome: ok (acknowledged), invalid (refused for what they are), pushback (refused, log overloaded), unavailable (storage could not take the write), error (any other failure).",
	}, []string{"outcome"})

	// TimeToDurable observes, per append request, the time from its arrival
	// at the engine until its events are durable (acknowledged).
	TimeToDurable = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "llmaudit_append_durable_seconds",
		Help:    "Time from an append's arrival at the engine until its events are durable and acknowledged.",
		Buckets: DurationBuckets,
	})

	// TimeToIndex observes, per append request, the time from its arrival
	// at the engine until Tessera has given each of its events an index.
	TimeToIndex = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "llmaudit_append_indexed_seconds",
		Help:    "Time from an append's arrival at the engine until Tessera has assigned an index to each of its events.",
		Buckets: DurationBuckets,
	})

	// JournalDepth is the number of records in the write-ahead journal
	// that Tessera has not sequenced yet.
	JournalDepth = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "llmaudit_journal_records",
		Help: "Records in the write-ahead journal not yet sequenced by Tessera.",
	})

	// JournalAge is the age in seconds of the oldest unsequenced journal
	// record (0 when there is none).
	JournalAge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "llmaudit_journal_oldest_age_seconds",
		Help: "Age of the oldest journal record not yet sequenced by Tessera, in seconds (0 when there is none).",
	})

	// GroupCommitSize observes the records made durable by one group
	// commit (one fsync on posix, one database transaction on s3).
	GroupCommitSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "llmaudit_journal_group_commit_records",
		Help:    "Records made durable by one group commit of the journal (one fsync on posix, one transaction on s3).",
		Buckets: SizeBuckets,
	})

	// TesseraBatchSize observes the entries the engine hands to Tessera's
	// appender in one sequencing step (Tessera batches them further by
	// itself; this is what the engine sees).
	TesseraBatchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "llmaudit_tessera_batch_entries",
		Help:    "Entries handed to Tessera's appender in one sequencing step.",
		Buckets: SizeBuckets,
	})

	// Pushback counts Tessera's ErrPushback answers (the appender's queue
	// is full), whether or not the engine retried.
	Pushback = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "llmaudit_tessera_pushback_total",
		Help: "Times Tessera answered an add with pushback (its queue full).",
	})

	// VaultLag is the number of acknowledged entries whose payloads are not
	// yet in the vault's tables.
	VaultLag = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "llmaudit_vault_lag_entries",
		Help: "Acknowledged entries whose payloads are not yet written to the vault's tables.",
	})
)

// Derived data: the session index's follower updates IndexLag.
var (
	// IndexLag is the log's integrated size minus the session index's
	// indexed size, as the index's follower last saw them.
	IndexLag = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "llmaudit_index_lag_entries",
		Help: "Entries integrated into the log but not yet in the session index, as of the index follower's last pass.",
	})
)

// Witnessing: WitnessTransport updates these.
var (
	// WitnessLatency observes each request to a witness (labelled with the
	// witness's host), whatever its answer.
	WitnessLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "llmaudit_witness_request_duration_seconds",
		Help:    "Duration of requests to witnesses (add-checkpoint), by witness host, whatever the answer.",
		Buckets: DurationBuckets,
	}, []string{"witness"})

	// WitnessFailures counts failed requests to a witness by reason:
	// timeout, error (no answer) or http_NNN (an answer other than 200 or
	// the protocol's 409 with the witness's size).
	WitnessFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmaudit_witness_failures_total",
		Help: "Failed requests to witnesses, by witness host and reason: timeout, error (no answer), http_NNN (an answer other than 200 or 409 with the witness's size).",
	}, []string{"witness", "reason"})
)

// Capture: the capture proxies update these (server/metrics.go adapts
// capture.Metrics).
var (
	// CaptureCalls counts the attempts of model calls (and MCP tools/call
	// requests) through the capture proxies, by provider, capture mode
	// (fail-closed, fail-open) and outcome (see docs/metrics.md).
	CaptureCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmaudit_capture_calls_total",
		Help: "Calls through the capture proxies, by provider, capture mode (fail-closed, fail-open) and outcome (complete, aborted, upstream_error, not_recorded, refused, denied, forwarded).",
	}, []string{"provider", "mode", "outcome"})

	// ProxyAddedLatency observes, per attempt forwarded upstream, the time
	// from the proxy's receipt of the request until it hands it to the
	// upstream: reading the body, checking the token, and in fail-closed
	// mode recording the request event durably.
	ProxyAddedLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "llmaudit_capture_added_latency_seconds",
		Help:    "Time the capture proxies hold a call before forwarding it upstream (body read, token check, and in fail-closed mode the durable request record), by provider and capture mode; upstream time excluded.",
		Buckets: DurationBuckets,
	}, []string{"provider", "mode"})
)

// OTLP: the receiver of OpenTelemetry exports updates these
// (server/otlp.go).
var (
	// OTLPItems counts the spans and log records of OTLP exports, by
	// signal (spans, log_records) and outcome: mapped (became events),
	// dropped (no GenAI meaning), rejected (GenAI, but could not be
	// recorded; answered as a partial success).
	OTLPItems = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmaudit_otlp_items_total",
		Help: "Spans and log records received over OTLP, by signal (spans, log_records) and outcome: mapped (became audit events), dropped (no GenAI meaning), rejected (GenAI, but not recordable; reported as partial success).",
	}, []string{"signal", "outcome"})

	// OTLPEvents counts the events mapped from OTLP exports, by outcome:
	// appended, or duplicate (the log held them already: an export sent
	// again).
	OTLPEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmaudit_otlp_events_total",
		Help: "Audit events mapped from OTLP exports, by outcome: appended, or duplicate (already in the log: a retried export).",
	}, []string{"outcome"})

	// OTLPMetricPoints counts the data points of OTLP metrics exports, by
	// metric: gen_ai.client.token.usage, gen_ai.client.operation.duration,
	// or other. They become no events.
	OTLPMetricPoints = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llmaudit_otlp_metric_points_total",
		Help: "Data points of OTLP metrics exports (POST /v1/metrics), by metric (gen_ai.client.token.usage, gen_ai.client.operation.duration, other); they become no audit events.",
	}, []string{"metric"})

	// OTLPLinked counts the inference spans linked to a call the capture
	// observed (one llm.span event in place of a request and a response).
	OTLPLinked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "llmaudit_otlp_linked_spans_total",
		Help: "Inference spans received over OTLP that were linked to a call the capture proxy observed (by the traceparent the agent sent) and recorded as one llm.span event.",
	})
)

var registry = prometheus.NewRegistry()

func init() {
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		Appends, TimeToDurable, TimeToIndex, JournalDepth, JournalAge, GroupCommitSize, TesseraBatchSize, Pushback, VaultLag,
		IndexLag, WitnessLatency, WitnessFailures, CaptureCalls, ProxyAddedLatency, OTLPItems, OTLPEvents, OTLPLinked, OTLPMetricPoints,
	)
	// Every append outcome is a series from the start (at 0), so that a
	// rate over it is defined before the first failure.
	for _, o := range []string{AppendOK, AppendInvalid, AppendPushback, AppendUnavailable, AppendError} {
		Appends.WithLabelValues(o)
	}
	for _, sig := range []string{"spans", "log_records"} {
		for _, o := range []string{"mapped", "dropped", "rejected"} {
			OTLPItems.WithLabelValues(sig, o)
		}
	}
	OTLPItems.WithLabelValues("data_points", "dropped")
	for _, m := range []string{"gen_ai.client.token.usage", "gen_ai.client.operation.duration", "other"} {
		OTLPMetricPoints.WithLabelValues(m)
	}
	for _, o := range []string{"appended", "duplicate"} {
		OTLPEvents.WithLabelValues(o)
	}
}

// Handler serves the registry in the Prometheus text (or OpenMetrics)
// exposition format.
func Handler() http.Handler {
	return promhttp.HandlerFor(registry, promhttp.HandlerOpts{})
}

// Gatherer is the registry, for tests and for a caller that pushes
// metrics elsewhere.
func Gatherer() prometheus.Gatherer { return registry }

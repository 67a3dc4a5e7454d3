package otlp

import (
	"fmt"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// The GenAI client metrics (gen_ai.client.*), counted by name; every other
// metric is counted as OtherMetric.
const (
	TokenUsageMetric        = "gen_ai.client.token.usage"
	OperationDurationMetric = "gen_ai.client.operation.duration"
	OtherMetric             = "other"
)

// Metrics takes the data points of md: none becomes an event (docs/otel.md,
// "Metrics": a data point aggregates calls over an interval, names no call,
// no session and no conversation, and re-states with cumulative
// temporality what earlier exports said; the per-call usage and latency
// are in the spans' llm.response events). Every point is Dropped, and
// counted in Points by metric (TokenUsageMetric, OperationDurationMetric,
// OtherMetric).
func Metrics(md pmetric.Metrics) *Result {
	r := &Result{Points: map[string]int64{}}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				n := int64(points(m))
				name := m.Name()
				if name != TokenUsageMetric && name != OperationDurationMetric {
					name = OtherMetric
				}
				r.Points[name] += n
				r.Dropped += n
			}
		}
	}
	return r
}

// points is the number of data points of m.
func points(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	}
	return 0
}

// DecodeMetrics decodes an ExportMetricsServiceRequest.
func DecodeMetrics(body []byte, enc Encoding) (pmetric.Metrics, error) {
	req := pmetricotlp.NewExportRequest()
	var err error
	if enc == JSON {
		err = req.UnmarshalJSON(body)
	} else {
		err = req.UnmarshalProto(body)
	}
	if err != nil {
		return pmetric.Metrics{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return req.Metrics(), nil
}

// MetricsResponse is TracesResponse for a metrics export.
func MetricsResponse(enc Encoding, rejected int64, message string) ([]byte, error) {
	resp := pmetricotlp.NewExportResponse()
	if rejected > 0 || message != "" {
		resp.PartialSuccess().SetRejectedDataPoints(rejected)
		resp.PartialSuccess().SetErrorMessage(message)
	}
	if enc == JSON {
		return resp.MarshalJSON()
	}
	return resp.MarshalProto()
}

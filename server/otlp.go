package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/metrics"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/otlp"
)

// OTLP/HTTP paths (docs/otel.md).
const (
	OTLPTracesPath  = "/v1/traces"
	OTLPLogsPath    = "/v1/logs"
	OTLPMetricsPath = "/v1/metrics"
)

// otlpSignal is what an OTLP route takes: how it decodes and maps a body,
// and how it answers.
type otlpSignal struct {
	name   string // metrics label: spans, log_records
	mapped func(tenant string, body []byte, enc otlp.Encoding) (*otlp.Result, error)
	answer func(enc otlp.Encoding, rejected int64, message string) ([]byte, error)
}

var (
	otlpTraces = otlpSignal{name: "spans",
		mapped: func(tenant string, body []byte, enc otlp.Encoding) (*otlp.Result, error) {
			td, err := otlp.DecodeTraces(body, enc)
			if err != nil {
				return nil, err
			}
			return otlp.Traces(tenant, td), nil
		},
		answer: otlp.TracesResponse}
	otlpLogs = otlpSignal{name: "log_records",
		mapped: func(tenant string, body []byte, enc otlp.Encoding) (*otlp.Result, error) {
			ld, err := otlp.DecodeLogs(body, enc)
			if err != nil {
				return nil, err
			}
			return otlp.Logs(tenant, ld), nil
		},
		answer: otlp.LogsResponse}
	otlpMetrics = otlpSignal{name: "data_points",
		mapped: func(tenant string, body []byte, enc otlp.Encoding) (*otlp.Result, error) {
			md, err := otlp.DecodeMetrics(body, enc)
			if err != nil {
				return nil, err
			}
			return otlp.Metrics(md), nil
		},
		answer: otlp.MetricsResponse}
)

// postOTLP is an OTLP/HTTP export (POST /v1/traces, /v1/logs, /v1/metrics): a write
// token, as a bearer token (OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20TOKEN);
// protobuf or JSON, plain or gzip, the body capped like every other
// (decompressed too). The events are appended once each
// (log.AppendOnce) and answered once durable; errors have the OTLP form, a
// google.rpc.Status in the request's encoding.
func (s *Server) postOTLP(sig otlpSignal) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		enc, err := otlp.RequestEncoding(r.Header.Get("Content-Type"))
		if err != nil {
			// The answer's encoding follows the request's; an unknown one
			// is answered in protobuf, the OTLP default.
			s.otlpError(w, r, otlp.Proto, err)
			return
		}
		rejected, message, err := s.exportOTLP(r, sig, enc)
		if err != nil {
			s.otlpError(w, r, enc, err)
			return
		}
		b, err := sig.answer(enc, rejected, message)
		if err != nil {
			s.otlpError(w, r, enc, err)
			return
		}
		w.Header().Set("Content-Type", enc.ContentType())
		w.WriteHeader(http.StatusOK)
		w.Write(b)
	}
}

func (s *Server) exportOTLP(r *http.Request, sig otlpSignal, enc otlp.Encoding) (rejected int64, message string, err error) {
	p, err := s.Authenticate(r)
	if err != nil {
		return 0, "", err
	}
	if !p.Has(auth.ScopeWrite) {
		return 0, "", errorf(http.StatusForbidden, "forbidden", "token lacks the %q scope", auth.ScopeWrite)
	}
	body, err := otlp.ReadBody(r.Body, r.Header.Get("Content-Encoding"), s.cfg.MaxBodyBytes)
	if err != nil {
		return 0, "", err
	}
	res, err := sig.mapped(p.Tenant, body, enc)
	if err != nil {
		return 0, "", err
	}
	return s.ingestOTLP(r.Context(), p, sig.name, res)
}

// ingestOTLP appends what an export of p mapped to (res), each event once,
// and says what it left out (a partial success when rejected > 0). HTTP
// and gRPC exports share it.
func (s *Server) ingestOTLP(ctx context.Context, p *auth.Principal, signal string, res *otlp.Result) (rejected int64, message string, err error) {
	if signal == otlpMetrics.name {
		// Taken and counted; no event (otlp.Metrics).
		metrics.OTLPItems.WithLabelValues(signal, "dropped").Add(float64(res.Dropped))
		for name, n := range res.Points {
			metrics.OTLPMetricPoints.WithLabelValues(name).Add(float64(n))
		}
		return 0, "", nil
	}
	metrics.OTLPItems.WithLabelValues(signal, "mapped").Add(float64(res.Mapped))
	metrics.OTLPItems.WithLabelValues(signal, "dropped").Add(float64(res.Dropped))
	metrics.OTLPItems.WithLabelValues(signal, "rejected").Add(float64(res.Rejected))
	if signal == otlpTraces.name {
		if err := s.linkCalls(ctx, p.Tenant, res); err != nil {
			return 0, "", err
		}
		metrics.OTLPLinked.Add(float64(res.Linked))
	}

	reqs := make([]*event.Request, len(res.Events))
	ids := make([]string, len(res.Events))
	for i, e := range res.Events {
		// A token bound to actors writes as them: a span naming another
		// agent is recorded as the token's first actor (as the capture
		// proxy records its calls), its own gen_ai.agent.id kept.
		if !p.MayActAs(e.Request.Actor.ID) {
			e.Request.Actor.ID = p.Actors[0]
		}
		if err := event.Permit(e.Request.Kind, p.Has); err != nil {
			return 0, "", err
		}
		reqs[i], ids[i] = e.Request, e.ID
	}
	// In chunks of at most MaxBatch events; a chunk that fails fails the
	// export, and the exporter's retry appends only what is missing.
	writer := event.Writer{Token: p.ID, Via: event.ViaOTLP}
	for len(reqs) > 0 {
		n := min(len(reqs), s.cfg.MaxBatch)
		out, known, err := s.log.AppendOnce(ctx, p.Tenant, writer, reqs[:n], ids[:n], auditlog.WaitDurable)
		if err != nil {
			return 0, "", err
		}
		metrics.OTLPEvents.WithLabelValues("appended").Add(float64(len(out)))
		metrics.OTLPEvents.WithLabelValues("duplicate").Add(float64(len(known)))
		reqs, ids = reqs[n:], ids[n:]
	}
	if res.Rejected > 0 {
		message = fmt.Sprintf("%d of the %s not recorded: %s", res.Rejected, strings.ReplaceAll(signal, "_", " "), strings.Join(res.Reasons, "; "))
	}
	return res.Rejected, message, nil
}

// otlpError answers err in the OTLP form: the status the API would answer,
// with a google.rpc.Status body.
func (s *Server) otlpError(w http.ResponseWriter, r *http.Request, enc otlp.Encoding, err error) {
	ae, code := s.otlpStatus(r, err)
	switch ae.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="llmaudittrail"`)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", enc.ContentType())
	w.WriteHeader(ae.status)
	w.Write(otlp.StatusBody(enc, code, ae.code+": "+ae.message))
}

// otlpStatus maps err to the API's answer and the google.rpc code OTLP
// answers it with (the same over HTTP and gRPC).
func (s *Server) otlpStatus(r *http.Request, err error) (*apiError, int32) {
	var ae *apiError
	switch {
	case errors.Is(err, otlp.ErrMalformed):
		ae = errorf(http.StatusBadRequest, "malformed", "%v", err)
	case errors.Is(err, otlp.ErrMediaType), errors.Is(err, otlp.ErrContentEncoding):
		ae = errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "%v", err)
	case errors.Is(err, otlp.ErrTooLarge):
		ae = errorf(http.StatusRequestEntityTooLarge, "body_too_large", "%v", err)
	default:
		ae = s.toAPIError(r, err)
	}
	code := otlp.CodeInternal
	switch ae.status {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		code = otlp.CodeInvalidArgument
	case http.StatusUnauthorized:
		code = otlp.CodeUnauthenticated
	case http.StatusForbidden:
		code = otlp.CodePermissionDenied
	case http.StatusRequestEntityTooLarge:
		code = otlp.CodeResourceExhausted
	case http.StatusServiceUnavailable:
		code = otlp.CodeUnavailable
	}
	return ae, code
}

package server

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/url"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // gzip-compressed exports
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/otlp"
)

// OTLPGRPC is the OTLP/gRPC receiver (log-server --otlp-grpc-listen): the
// trace, logs and metrics services of OTLP, with what POST /v1/traces,
// /v1/logs and /v1/metrics do: a write token in the authorization metadata (Bearer TOKEN), messages
// capped at the body limit (also once gzip-decompressed), each event
// appended once, partial success for what cannot be recorded, the API's
// refusals as gRPC codes. tlsConfig nil serves plaintext.
func (s *Server) OTLPGRPC(tlsConfig *tls.Config) *grpc.Server {
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(int(s.cfg.MaxBodyBytes))}
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	g := grpc.NewServer(opts...)
	ptraceotlp.RegisterGRPCServer(g, &grpcTraces{s: s})
	plogotlp.RegisterGRPCServer(g, &grpcLogs{s: s})
	pmetricotlp.RegisterGRPCServer(g, &grpcMetrics{s: s})
	return g
}

type grpcTraces struct {
	ptraceotlp.UnimplementedGRPCServer
	s *Server
}

func (g *grpcTraces) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	p, err := g.s.grpcPrincipal(ctx)
	if err != nil {
		return ptraceotlp.ExportResponse{}, g.s.grpcError(err)
	}
	rejected, msg, err := g.s.ingestOTLP(ctx, p, otlpTraces.name, otlp.Traces(p.Tenant, req.Traces()))
	if err != nil {
		return ptraceotlp.ExportResponse{}, g.s.grpcError(err)
	}
	resp := ptraceotlp.NewExportResponse()
	if rejected > 0 {
		resp.PartialSuccess().SetRejectedSpans(rejected)
		resp.PartialSuccess().SetErrorMessage(msg)
	}
	return resp, nil
}

type grpcLogs struct {
	plogotlp.UnimplementedGRPCServer
	s *Server
}

func (g *grpcLogs) Export(ctx context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	p, err := g.s.grpcPrincipal(ctx)
	if err != nil {
		return plogotlp.ExportResponse{}, g.s.grpcError(err)
	}
	rejected, msg, err := g.s.ingestOTLP(ctx, p, otlpLogs.name, otlp.Logs(p.Tenant, req.Logs()))
	if err != nil {
		return plogotlp.ExportResponse{}, g.s.grpcError(err)
	}
	resp := plogotlp.NewExportResponse()
	if rejected > 0 {
		resp.PartialSuccess().SetRejectedLogRecords(rejected)
		resp.PartialSuccess().SetErrorMessage(msg)
	}
	return resp, nil
}

type grpcMetrics struct {
	pmetricotlp.UnimplementedGRPCServer
	s *Server
}

func (g *grpcMetrics) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	p, err := g.s.grpcPrincipal(ctx)
	if err != nil {
		return pmetricotlp.ExportResponse{}, g.s.grpcError(err)
	}
	if _, _, err := g.s.ingestOTLP(ctx, p, otlpMetrics.name, otlp.Metrics(req.Metrics())); err != nil {
		return pmetricotlp.ExportResponse{}, g.s.grpcError(err)
	}
	return pmetricotlp.NewExportResponse(), nil
}

// grpcPrincipal is the write token of a gRPC export's authorization
// metadata.
func (s *Server) grpcPrincipal(ctx context.Context) (*auth.Principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var h string
	if v := md.Get("authorization"); len(v) == 1 {
		h = v[0]
	}
	p, err := s.authenticateBearer(ctx, h)
	if err != nil {
		return nil, err
	}
	if !p.Has(auth.ScopeWrite) {
		return nil, errorf(http.StatusForbidden, "forbidden", "token lacks the %q scope", auth.ScopeWrite)
	}
	return p, nil
}

// grpcRequest stands for a gRPC export where the API's error mapping logs
// a request.
var grpcRequest = &http.Request{Method: "gRPC", URL: &url.URL{Path: "/opentelemetry.proto.collector/Export"}}

// grpcError is err as a gRPC status with the code OTLP/HTTP would put in
// its google.rpc.Status.
func (s *Server) grpcError(err error) error {
	ae, code := s.otlpStatus(grpcRequest, err)
	return status.Error(codes.Code(code), ae.code+": "+ae.message)
}

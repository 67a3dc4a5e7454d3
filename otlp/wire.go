package otlp

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"mime"
	"strings"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Encoding is an OTLP/HTTP body encoding.
type Encoding int

const (
	Proto Encoding = iota // application/x-protobuf
	JSON                  // application/json
)

// ContentType is the media type of e, which the answer carries too.
func (e Encoding) ContentType() string {
	if e == JSON {
		return "application/json"
	}
	return "application/x-protobuf"
}

// RequestEncoding reads the encoding from a Content-Type header; anything
// but the two OTLP/HTTP media types is ErrMediaType.
func RequestEncoding(contentType string) (Encoding, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, fmt.Errorf("%w %q: send application/x-protobuf or application/json", ErrMediaType, clip(contentType, 64))
	}
	switch mt {
	case "application/x-protobuf":
		return Proto, nil
	case "application/json":
		return JSON, nil
	}
	return 0, fmt.Errorf("%w %q: send application/x-protobuf or application/json", ErrMediaType, clip(mt, 64))
}

// ReadBody reads a request body of Content-Encoding contentEncoding
// (identity or gzip), at most limit bytes once decompressed: a larger one
// is ErrTooLarge, so a small compressed body cannot expand without bound.
// An error of r itself (such as *http.MaxBytesError) is returned as it is.
func ReadBody(r io.Reader, contentEncoding string, limit int64) ([]byte, error) {
	src := &sourceReader{r: r}
	r = src
	switch strings.ToLower(strings.TrimSpace(contentEncoding)) {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			if src.err != nil {
				return nil, src.err
			}
			return nil, fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("%w %q: send gzip or nothing", ErrContentEncoding, clip(contentEncoding, 32))
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		if src.err != nil {
			return nil, src.err
		}
		return nil, fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes decompressed", ErrTooLarge, limit)
	}
	return b, nil
}

// sourceReader keeps the error of the reader under a decompressor, which
// tells a body that could not be read from one that could not be
// decompressed.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// DecodeTraces decodes an ExportTraceServiceRequest.
func DecodeTraces(body []byte, enc Encoding) (ptrace.Traces, error) {
	req := ptraceotlp.NewExportRequest()
	if err := decode(req, body, enc); err != nil {
		return ptrace.Traces{}, err
	}
	return req.Traces(), nil
}

// DecodeLogs decodes an ExportLogsServiceRequest.
func DecodeLogs(body []byte, enc Encoding) (plog.Logs, error) {
	req := plogotlp.NewExportRequest()
	if err := decode(req, body, enc); err != nil {
		return plog.Logs{}, err
	}
	return req.Logs(), nil
}

// wireMessage is what the export requests and responses of traces and logs
// share: their two encodings.
type wireMessage interface {
	UnmarshalJSON([]byte) error
	UnmarshalProto([]byte) error
	MarshalJSON() ([]byte, error)
	MarshalProto() ([]byte, error)
}

// decode reads body into m in enc; an error wraps ErrMalformed.
func decode(m wireMessage, body []byte, enc Encoding) error {
	var err error
	if enc == JSON {
		err = m.UnmarshalJSON(body)
	} else {
		err = m.UnmarshalProto(body)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// encode writes m in enc.
func encode(m wireMessage, enc Encoding) ([]byte, error) {
	if enc == JSON {
		return m.MarshalJSON()
	}
	return m.MarshalProto()
}

// TracesResponse is the success answer to a traces export: an
// ExportTraceServiceResponse, with a partial success when rejected > 0.
func TracesResponse(enc Encoding, rejected int64, message string) ([]byte, error) {
	resp := ptraceotlp.NewExportResponse()
	if rejected > 0 || message != "" {
		resp.PartialSuccess().SetRejectedSpans(rejected)
		resp.PartialSuccess().SetErrorMessage(message)
	}
	return encode(resp, enc)
}

// LogsResponse is TracesResponse for a logs export.
func LogsResponse(enc Encoding, rejected int64, message string) ([]byte, error) {
	resp := plogotlp.NewExportResponse()
	if rejected > 0 || message != "" {
		resp.PartialSuccess().SetRejectedLogRecords(rejected)
		resp.PartialSuccess().SetErrorMessage(message)
	}
	return encode(resp, enc)
}

// Status codes of google.rpc.Status (google.golang.org/grpc/codes), the
// body of an OTLP/HTTP error answer.
const (
	CodeInvalidArgument   int32 = 3
	CodeNotFound          int32 = 5
	CodePermissionDenied  int32 = 7
	CodeResourceExhausted int32 = 8
	CodeInternal          int32 = 13
	CodeUnavailable       int32 = 14
	CodeUnauthenticated   int32 = 16
)

// StatusBody is an OTLP/HTTP error answer's body: a google.rpc.Status in
// the request's encoding.
func StatusBody(enc Encoding, code int32, message string) []byte {
	st := &status.Status{Code: code, Message: message}
	var b []byte
	var err error
	if enc == JSON {
		b, err = protojson.Marshal(st)
	} else {
		b, err = proto.Marshal(st)
	}
	if err != nil {
		return nil
	}
	return bytes.Clone(b)
}

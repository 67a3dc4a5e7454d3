package otlp

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Entry is a log entry to export: verified by the caller (the monitor
// exports what it verified).
type Entry struct {
	Index    uint64
	Leaf     []byte
	LeafHash []byte
}

// Checkpoint is the checkpoint that covers exported entries.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	Note   []byte // the signed checkpoint, with its cosignatures
}

// ScopeName is the instrumentation scope of exported records.
const ScopeName = "github.com/llmaudittrail/llmaudittrail/otlp"

// Exporter sends audit events to an OTLP/HTTP logs endpoint as log
// records, one per entry, so that a trace in Langfuse, Phoenix or Jaeger
// links to its audit entry: the record carries the trace and span ids of an
// event reported over OTLP, the leaf's attributes under their GenAI names,
// and llmaudit.index, llmaudit.leaf_hash and the covering checkpoint
// (llmaudit.checkpoint.size and .root; the signed note in the resource).
// The leaf itself is the record's body: leaves hold no content.
type Exporter struct {
	url     string
	headers map[string]string
	hc      *http.Client
}

// NewExporter exports to url (an OTLP/HTTP logs endpoint, such as
// http://collector:4318/v1/logs) with headers (authentication); hc nil
// means a client with a 30 s timeout.
func NewExporter(url string, headers map[string]string, hc *http.Client) *Exporter {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Exporter{url: url, headers: headers, hc: hc}
}

// ErrExportRejected: the endpoint took the export but rejected records
// (OTLP partial success).
var ErrExportRejected = errors.New("OTLP endpoint rejected records")

// Export sends entries in one request (protobuf). A 2xx answer without
// rejected records is success; anything else is an error, and the caller
// sends the entries again (delivery is at least once).
func (x *Exporter) Export(ctx context.Context, cp Checkpoint, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	body, err := plogotlp.NewExportRequestFromLogs(Records(cp, entries, time.Now())).MarshalProto()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, x.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", Proto.ContentType())
	for k, v := range x.headers {
		req.Header.Set(k, v)
	}
	resp, err := x.hc.Do(req)
	if err != nil {
		return fmt.Errorf("OTLP export: %w", err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("OTLP export: HTTP %d: %s", resp.StatusCode, event.Clip(string(bytes.TrimSpace(rb)), 200))
	}
	out := plogotlp.NewExportResponse()
	if len(rb) > 0 && out.UnmarshalProto(rb) == nil && out.PartialSuccess().RejectedLogRecords() > 0 {
		return fmt.Errorf("%w: %d of %d: %s", ErrExportRejected, out.PartialSuccess().RejectedLogRecords(), len(entries),
			event.Clip(out.PartialSuccess().ErrorMessage(), 200))
	}
	return nil
}

// Records builds the log records of entries (observed at now).
func Records(cp Checkpoint, entries []Entry, now time.Time) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	ra := rl.Resource().Attributes()
	ra.PutStr("service.name", "llmaudittrail")
	ra.PutStr("llmaudit.origin", cp.Origin)
	if len(cp.Note) > 0 {
		ra.PutStr("llmaudit.checkpoint", string(cp.Note))
	}
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName(ScopeName)
	root := hex.EncodeToString(cp.Root)
	for _, e := range entries {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(now))
		lr.Body().SetStr(string(e.Leaf))
		a := lr.Attributes()
		a.PutInt("llmaudit.index", int64(e.Index))
		a.PutStr("llmaudit.leaf_hash", hex.EncodeToString(e.LeafHash))
		a.PutInt("llmaudit.checkpoint.size", int64(cp.Size))
		a.PutStr("llmaudit.checkpoint.root", root)
		l, err := event.ParseLeaf(e.Leaf)
		if err != nil {
			lr.SetEventName("llmaudit.unreadable")
			lr.SetSeverityNumber(plog.SeverityNumberWarn)
			continue
		}
		lr.SetEventName("llmaudit." + l.Kind)
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
		if l.Kind == event.KindMonitorAlert {
			lr.SetSeverityNumber(plog.SeverityNumberWarn)
		}
		if t, err := time.Parse(event.TimeFormat, l.Time); err == nil {
			lr.SetTimestamp(pcommon.NewTimestampFromTime(t))
		}
		a.PutStr("llmaudit.kind", l.Kind)
		a.PutStr("llmaudit.event_id", l.ID)
		a.PutStr("llmaudit.tenant", l.Tenant)
		a.PutStr("llmaudit.session", l.Session)
		a.PutInt("llmaudit.seq", int64(l.Seq))
		a.PutStr("llmaudit.actor.type", l.Actor.Type)
		a.PutStr("llmaudit.actor.id", l.Actor.ID)
		if l.Writer != nil {
			a.PutStr("llmaudit.writer.via", l.Writer.Via)
			a.PutStr("llmaudit.writer.token", l.Writer.Token)
		}
		for k, v := range l.Attributes {
			putAttr(a, k, v)
		}
		if b, err := hex.DecodeString(l.Attributes.String(event.AttrOtelTraceID)); err == nil && len(b) == 16 {
			lr.SetTraceID(pcommon.TraceID(b))
		}
		if b, err := hex.DecodeString(l.Attributes.String(event.AttrOtelSpanID)); err == nil && len(b) == 8 {
			lr.SetSpanID(pcommon.SpanID(b))
		}
	}
	return ld
}

// putAttr puts a leaf attribute (string, number, bool or a flat list).
func putAttr(a pcommon.Map, k string, v any) {
	if l, ok := v.([]any); ok {
		s := a.PutEmptySlice(k)
		for _, x := range l {
			setValue(s.AppendEmpty(), x)
		}
		return
	}
	setValue(a.PutEmpty(k), v)
}

func setValue(dst pcommon.Value, v any) {
	switch v := v.(type) {
	case string:
		dst.SetStr(v)
	case bool:
		dst.SetBool(v)
	case int64:
		dst.SetInt(v)
	case float64:
		dst.SetDouble(v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			dst.SetInt(i)
		} else if f, err := v.Float64(); err == nil {
			dst.SetDouble(f)
		} else {
			dst.SetStr(v.String())
		}
	default:
		dst.SetStr(fmt.Sprint(v))
	}
}

// ParseHeaders reads headers in the syntax of OTEL_EXPORTER_OTLP_HEADERS:
// comma-separated key=value pairs, values URL-encoded
// ("Authorization=Bearer%20abc,x-tenant=a").
func ParseHeaders(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return nil, fmt.Errorf("header %q: want key=value", event.Clip(kv, 40))
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil || strings.ContainsAny(dv, "\r\n") {
			return nil, fmt.Errorf("header %s: the value is not URL-encoded text", k)
		}
		out[k] = dv
	}
	return out, nil
}

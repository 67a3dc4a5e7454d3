package monitor

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/otlp"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// otlpReceiver is an OTLP/HTTP logs endpoint built on the collector's
// pdata: it decodes every export and keeps the records by index. While
// lose is set it keeps what it decoded but answers 503, as a receiver
// whose answer is lost.
type otlpReceiver struct {
	mu      sync.Mutex
	lose    bool
	got     map[uint64]int // index -> times received
	records map[uint64]map[string]any
	traces  map[uint64]string
	sev     map[uint64]string
	auth    string
}

func newOTLPReceiver(t *testing.T) (*otlpReceiver, *httptest.Server) {
	rc := &otlpReceiver{got: map[uint64]int{}, records: map[uint64]map[string]any{}, traces: map[uint64]string{}, sev: map[uint64]string{}}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := plogotlp.NewExportRequest()
		if r.URL.Path != "/v1/logs" || r.Header.Get("Content-Type") != "application/x-protobuf" || req.UnmarshalProto(b) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.auth = r.Header.Get("Authorization")
		rls := req.Logs().ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			sls := rls.At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					lr := lrs.At(k)
					a := lr.Attributes().AsRaw()
					a["body"] = lr.Body().Str()
					a["resource.checkpoint"] = rls.At(i).Resource().Attributes().AsRaw()["llmaudit.checkpoint"]
					idx := uint64(a["llmaudit.index"].(int64))
					rc.got[idx]++
					rc.records[idx] = a
					rc.sev[idx] = lr.SeverityNumber().String()
					if !lr.TraceID().IsEmpty() {
						rc.traces[idx] = lr.TraceID().String()
					}
				}
			}
		}
		if rc.lose {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		resp, _ := plogotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(resp)
	}))
	t.Cleanup(hs.Close)
	return rc, hs
}

func (rc *otlpReceiver) set(lose bool) { rc.mu.Lock(); rc.lose = lose; rc.mu.Unlock() }

// waitAll waits until every index below n was received.
func (rc *otlpReceiver) waitAll(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		rc.mu.Lock()
		missing := 0
		for i := range n {
			if rc.got[i] == 0 {
				missing++
			}
		}
		rc.mu.Unlock()
		if missing == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the receiver lacks entries below %d: got %v", n, rc.got)
}

// The monitor exports every verified entry to an OTLP/HTTP logs endpoint
// (the collector's pdata decodes it) as a log record with its index, leaf
// hash and checkpoint; an event reported over OTLP keeps its trace id, so
// the trace links to its entry. A monitor stopped while its export's answer
// is lost delivers everything after its restart (at least once), and then
// new entries once.
func TestOTLPExport(t *testing.T) {
	l := newTestLog(t, server.Config{})
	rc, hs := newOTLPReceiver(t)
	headers, err := otlp.ParseHeaders("Authorization=Bearer%20collector-secret")
	if err != nil {
		t.Fatal(err)
	}
	x := otlp.NewExporter(hs.URL+"/v1/logs", headers, nil)
	export := func(ctx context.Context, cp ExportCheckpoint, es []ExportEntry) error {
		out := make([]otlp.Entry, len(es))
		for i, e := range es {
			out[i] = otlp.Entry(e)
		}
		return x.Export(ctx, otlp.Checkpoint(cp), out)
	}
	var evs []ev
	for range 12 {
		evs = append(evs, ev{"session": "s1", "kind": "tool.call", "actor": map[string]any{"type": "agent", "id": "bot"}, "attributes": map[string]any{"gen_ai.tool.name": "t"}})
	}
	l.appendEvents(evs...)
	// A GenAI span, reported over OTLP.
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	trace := pcommon.TraceID{0xa, 0xb, 0xc, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	sp.SetTraceID(trace)
	sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	sp.Attributes().PutStr("gen_ai.operation.name", "chat")
	sp.Attributes().PutStr("gen_ai.request.model", "gpt-4o")
	body, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	req, _ := http.NewRequest("POST", l.url()+server.OTLPTracesPath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+l.token)
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /v1/traces: %v %v", resp, err)
	}
	resp.Body.Close()
	size := l.waitSize(l.base + 14).Size

	// The first monitor's exports are taken but their answers lost; it is
	// stopped while it tries again.
	rc.set(true)
	state := t.TempDir()
	cfg := testConfig(l, state)
	cfg.Start, cfg.Export = 0, export
	m1 := startMonitor(t, cfg)
	rc.waitAll(t, size)
	m1.stop()
	if p, _ := m1.posSnapshot(); p != 0 {
		t.Fatalf("the monitor advanced to %d past entries whose export failed", p)
	}

	rc.set(false)
	m2 := startMonitor(t, cfg)
	m2.waitPos(size)
	rc.mu.Lock()
	for i := range size {
		if rc.got[i] < 2 {
			t.Errorf("entry %d received %d times, want again after the restart", i, rc.got[i])
		}
		a := rc.records[i]
		leaf := []byte(a["body"].(string))
		if a["llmaudit.leaf_hash"] != hex.EncodeToString(event.LeafHash(leaf)) || a["llmaudit.checkpoint.size"].(int64) < int64(i+1) ||
			a["resource.checkpoint"] == nil || a["llmaudit.kind"] == nil {
			t.Errorf("record %d: %v", i, a)
		}
	}
	if rc.auth != "Bearer collector-secret" {
		t.Errorf("Authorization %q", rc.auth)
	}
	var linked []uint64
	for i, tr := range rc.traces {
		if tr == trace.String() {
			linked = append(linked, i)
		}
	}
	if len(linked) != 2 || rc.records[linked[0]]["gen_ai.request.model"] == nil && rc.records[linked[1]]["gen_ai.request.model"] == nil {
		t.Errorf("records with the span's trace id: %v", linked)
	}
	rc.mu.Unlock()

	// New entries: once each.
	l.appendEvents(evs[:3]...)
	more := l.waitSize(size + 3).Size
	m2.waitPos(more)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := size; i < more; i++ {
		if rc.got[i] != 1 {
			t.Errorf("new entry %d received %d times", i, rc.got[i])
		}
	}
}

// Alerts reach the OTLP endpoint as the monitor.alert entries the monitor
// appends (--append-token), with severity WARN.
func TestOTLPExportAlerts(t *testing.T) {
	l := newTestLog(t, server.Config{})
	rc, hs := newOTLPReceiver(t)
	x := otlp.NewExporter(hs.URL+"/v1/logs", nil, nil)
	l.appendEvents(events(20, 10, "a")...) // forbidden at 9, 19
	cp := l.waitSize(20)
	cfg := testConfig(l, t.TempDir())
	cfg.Start = 0
	cfg.Rules = pack(t, hoursLine, allHours)
	cfg.AppendTo = testClient(l.url(), l.token)
	cfg.Instance = "test"
	cfg.StatusInterval = -1
	cfg.Export = func(ctx context.Context, cp ExportCheckpoint, es []ExportEntry) error {
		out := make([]otlp.Entry, len(es))
		for i, e := range es {
			out[i] = otlp.Entry(e)
		}
		return x.Export(ctx, otlp.Checkpoint(cp), out)
	}
	r := startMonitor(t, cfg)
	r.waitPos(cp.Size)
	cp2 := l.waitSize(l.base + 22)
	r.waitPos(cp2.Size)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var alerts int
	for i, a := range rc.records {
		if a["llmaudit.kind"] == "monitor.alert" {
			alerts++
			if rc.sev[i] != "Warn" {
				t.Errorf("alert record %d has severity %s", i, rc.sev[i])
			}
		}
	}
	if alerts != 2 {
		t.Fatalf("%d alert records, want 2: %v", alerts, rc.records)
	}
}

package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Calls the capture observed, by the trace context the agent sent with
// them (docs/otel.md, "Calls seen twice"): for every llm.request the server
// observed (writer.via proxy) whose leaf has otel.trace_id and
// otel.parent_span_id, a row (tenant, trace id, span id, index). The OTLP
// receiver looks a reported inference span up here (ProxyCalls) to link it
// to the call the capture recorded. Like the rest of the index the rows
// are derived from the leaves, by the session search's batch (search.go),
// in the same transaction.
var otelSchema = []string{
	`CREATE TABLE IF NOT EXISTS otel_calls (
  tenant {id} NOT NULL, trace_id {id} NOT NULL, span_id {id} NOT NULL, idx {int} NOT NULL,
  PRIMARY KEY (tenant, trace_id, span_id, idx)){table}`,
}

const (
	sqlOTelInsert = `{insert-ignore} INTO otel_calls (tenant, trace_id, span_id, idx) VALUES (?, ?, ?, ?)`
	sqlOTelSelect = `SELECT o.span_id, o.idx, e.id, e.session FROM otel_calls o JOIN entries e ON e.idx = o.idx
WHERE o.tenant = ? AND o.trace_id = ? AND o.span_id IN (%s) ORDER BY o.idx`
)

// otelCall is a row of otel_calls.
type otelCall struct {
	tenant, trace, span string
	idx                 uint64
}

// addOTel notes the trace context of a leaf the capture observed.
func (b *searchBatch) addOTel(index uint64, l *event.Leaf) {
	if l.Kind != event.KindLLMRequest || l.Writer == nil || l.Writer.Via != event.ViaProxy {
		return
	}
	trace, span := str(l.Attributes[event.AttrOtelTraceID]), str(l.Attributes[event.AttrOtelParentSpanID])
	if len(trace) != 32 || len(span) != 16 {
		return
	}
	b.otel = append(b.otel, otelCall{l.Tenant, trace, span, index})
}

// HasProxyCalls reports whether the index holds a call the capture
// observed with a trace context in tenant.
func (x *Index) HasProxyCalls(ctx context.Context, tenant string) (bool, error) {
	var one int
	err := x.db.QueryRowContext(ctx, `SELECT 1 FROM otel_calls WHERE tenant = ? LIMIT 1`, tenant).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading observed calls: %w", err)
	}
	return true, nil
}

// ProxyCall is an llm.request the capture observed.
type ProxyCall struct {
	Index       uint64
	ID, Session string
}

// ProxyCalls returns the llm.request events the capture observed in tenant
// with the trace context traceID and one of spanIDs (the parent-id of the
// request's traceparent), by span id; of several (attempts of one call
// that sent the same traceparent), the first. It covers the indexed prefix
// of the log (the caller waits for the index first).
func (x *Index) ProxyCalls(ctx context.Context, tenant, traceID string, spanIDs []string) (map[string]ProxyCall, error) {
	if len(spanIDs) == 0 {
		return nil, nil
	}
	args := []any{tenant, traceID}
	for _, s := range spanIDs {
		args = append(args, s)
	}
	q := fmt.Sprintf(sqlOTelSelect, strings.TrimSuffix(strings.Repeat("?, ", len(spanIDs)), ", "))
	rows, err := x.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading observed calls: %w", err)
	}
	defer rows.Close()
	out := map[string]ProxyCall{}
	for rows.Next() {
		var span string
		var idx int64
		var c ProxyCall
		if err := rows.Scan(&span, &idx, &c.ID, &c.Session); err != nil {
			return nil, fmt.Errorf("reading observed calls: %w", err)
		}
		if _, ok := out[span]; !ok {
			c.Index = uint64(idx)
			out[span] = c
		}
	}
	return out, rows.Err()
}

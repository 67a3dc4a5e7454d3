package otlp

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// EventID is the id of the event of kind that the span (traceID, spanID)
// of tenant maps to, for a log record group also a digest of its records
// (extra): 48 bits of at's Unix milliseconds (the span's start, so ids sort
// by time as event.NewID's do) and 80 bits of SHA-256 over the rest. The
// same span exported again gets the same id, and the engine appends an id
// once (log.AppendOnce); anyone who knows the tenant and the span finds
// its event with GET /v1/events/{id}.
func EventID(tenant string, traceID pcommon.TraceID, spanID pcommon.SpanID, kind string, extra []byte, at time.Time) string {
	h := sha256.New()
	h.Write([]byte("llmaudittrail/otlp/v1\x00"))
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write(traceID[:])
	h.Write(spanID[:])
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write(extra)
	sum := h.Sum(nil)
	b := make([]byte, 16)
	ms := uint64(max(at.UnixMilli(), 0))
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	copy(b[6:], sum[:10])
	return hex.EncodeToString(b)
}

// idOf is s as a session or actor id: s itself when it is a valid id,
// else prefix and 32 hex digits of its SHA-256 (a conversation id of any
// form maps to one session, and nothing of it is in the leaf but that
// digest).
func idOf(prefix, s string) string {
	if event.ValidID(s) {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return prefix + hex.EncodeToString(sum[:16])
}

// clip cuts s to n bytes on a UTF-8 boundary.
func clip(s string, n int) string { return event.Clip(s, n) }

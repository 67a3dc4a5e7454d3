package log

import (
	"errors"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/metrics"
)

// Observations of the write path (docs/metrics.md).

// observeAppend counts the n events of an append by its outcome.
func (l *Log) observeAppend(n int, err error) {
	outcome := metrics.AppendOK
	switch {
	case err == nil:
	case errors.Is(err, event.ErrInvalidEvent), errors.Is(err, event.ErrReservedSession):
		outcome = metrics.AppendInvalid
	case errors.Is(err, ErrPushback):
		outcome = metrics.AppendPushback
	case errors.Is(err, ErrUnavailable):
		outcome = metrics.AppendUnavailable
	default:
		outcome = metrics.AppendError
	}
	metrics.Appends.WithLabelValues(outcome).Add(float64(n))
}

func (l *Log) observeDurable(d time.Duration) { metrics.TimeToDurable.Observe(d.Seconds()) }

func (l *Log) observeIndexed(d time.Duration) { metrics.TimeToIndex.Observe(d.Seconds()) }

func (l *Log) observePushback() { metrics.Pushback.Inc() }

func (l *Log) observeBatch(n int) { metrics.TesseraBatchSize.Observe(float64(n)) }

// observeJournal sets the journal's gauges after a sequencing step: its
// depth, the records whose payloads are not in the vault's tables yet, and
// how long ago the oldest record just released was acknowledged.
func (l *Log) observeJournal(oldest time.Time) {
	depth := l.journal.Depth()
	metrics.JournalDepth.Set(float64(depth))
	metrics.VaultLag.Set(float64(max(0, depth-l.seq.stored.Load())))
	if depth == 0 || oldest.IsZero() {
		metrics.JournalAge.Set(0)
	} else {
		metrics.JournalAge.Set(time.Since(oldest).Seconds())
	}
}

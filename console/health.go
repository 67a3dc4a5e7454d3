package console

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// The health page: the log's size, how old its latest checkpoint is, the
// witness quorum and who cosigned, the ingest rate, and monitor alerts by
// severity.

// samples are (time, tree size) pairs of verified checkpoints the console
// read, for the ingest rate and the age of a checkpoint that carries no
// time of its own (no witnesses). Checkpoints are public, so the samples
// are shared by every user.
type samples struct {
	mu sync.Mutex
	s  []sample
	// firstSeen is when the console first read each root.
	firstSeen map[string]time.Time
}

type sample struct {
	at   time.Time
	size uint64
}

const (
	maxSamples     = 720
	sampleInterval = 5 * time.Second
)

func newSamples() *samples { return &samples{firstSeen: map[string]time.Time{}} }

// observe records a verified checkpoint, the latest the log served, and
// returns when its root was first seen. A checkpoint smaller than the last
// one recorded (an answer that raced a newer one) is not a sample.
func (s *samples) observe(now time.Time, size uint64, root string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.s)
	if n == 0 || (now.Sub(s.s[n-1].at) >= sampleInterval && size >= s.s[n-1].size) {
		s.s = append(s.s, sample{now, size})
		if len(s.s) > maxSamples {
			s.s = s.s[len(s.s)-maxSamples:]
		}
	}
	first, ok := s.firstSeen[root]
	if !ok {
		if len(s.firstSeen) > 4*maxSamples {
			clear(s.firstSeen)
		}
		first = now
		s.firstSeen[root] = now
	}
	return first
}

// rate is the entries per minute over the samples of the last window:
// the rate, the span it was measured over, and ok false with fewer than
// two samples at least sampleInterval apart.
func (s *samples) rate(now time.Time, window time.Duration) (perMin float64, span time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.s) < 2 {
		return 0, 0, false
	}
	last := s.s[len(s.s)-1]
	i := sort.Search(len(s.s), func(i int) bool { return now.Sub(s.s[i].at) <= window })
	if i >= len(s.s)-1 {
		i = len(s.s) - 2
	}
	first := s.s[i]
	span = last.at.Sub(first.at)
	if span < sampleInterval || last.size < first.size {
		return 0, 0, false
	}
	return float64(last.size-first.size) / span.Minutes(), span, true
}

type healthData struct {
	CP cpState
	// Age is how old the checkpoint is, and AgeFrom how that is known.
	Age     string
	AgeFrom string
	Rate    string
	// Alerts counts monitor alerts by severity, most severe first; Alerts
	// read covers AlertsRead of AlertsTotal (the newest first).
	Alerts      []severityCount
	AlertsErr   string
	AlertsRead  int
	AlertsTotal int
	Verdicts    int
}

type severityCount struct {
	Severity string
	Count    int
}

// severities in order, most severe first.
var severities = []string{"critical", "high", "medium", "low", "info"}

func (c *Console) readCheckpoint(ctx context.Context, u *user) (cpState, error) {
	raw, err := u.log.Tiles().ReadCheckpoint(ctx)
	if err != nil {
		return cpState{}, err
	}
	return c.inspect(raw), nil
}

func (c *Console) healthPage(w http.ResponseWriter, r *http.Request, u *user) {
	cp, err := c.readCheckpoint(r.Context(), u)
	if err != nil {
		c.failErr(w, r, u, "Reading the log's checkpoint", err)
		return
	}
	d := healthData{CP: cp}
	now := time.Now()
	if cp.Signed {
		first := c.observe(cp)
		switch {
		case !cp.Newest.IsZero():
			d.Age, d.AgeFrom = ago(now.Sub(cp.Newest)), "the newest witness cosignature's time stamp ("+cp.Newest.Format("2006-01-02 15:04:05 UTC")+")"
		default:
			d.Age, d.AgeFrom = "at most "+ago(now.Sub(first)), "when this console first read it (a checkpoint without cosignatures carries no time)"
		}
	}
	if pm, span, ok := c.health.rate(now, 15*time.Minute); ok {
		d.Rate = fmt.Sprintf("%.1f entries per minute (measured over the last %s)", pm, span.Round(time.Second))
	} else {
		d.Rate = "not measured yet: the console needs two readings of the checkpoint at least 5 s apart (reload this page)"
	}
	al, err := c.collectAlerts(r.Context(), u, maxHealthAlerts)
	if err != nil {
		d.AlertsErr = err.Error()
	} else {
		counts := map[string]int{}
		for _, a := range al.Alerts {
			counts[a.Severity]++
		}
		for _, s := range severities {
			d.Alerts = append(d.Alerts, severityCount{s, counts[s]})
			delete(counts, s)
		}
		for s, n := range counts {
			d.Alerts = append(d.Alerts, severityCount{event.SafeText(s), n})
		}
		d.AlertsRead, d.AlertsTotal, d.Verdicts = len(al.Alerts), al.Total, len(al.Verdicts)
	}
	c.render(w, r, http.StatusOK, "health", page{Title: "Log health", Nav: "health", User: u, Data: d})
}

// observe records a verified checkpoint the log served as its latest (for
// the ingest rate and the age of a checkpoint without cosignatures) and
// returns when the console first saw its root.
func (c *Console) observe(cp cpState) time.Time {
	if !cp.Signed {
		return time.Time{}
	}
	return c.health.observe(time.Now(), cp.Size, cp.Root)
}

// maxHealthAlerts caps the alerts the health page reads (each is read and
// verified).
const maxHealthAlerts = 200

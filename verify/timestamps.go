package verify

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"time"

	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/timestamp"
)

// RuleTimestamp: a timestamp.issued event of the log does not hold: its
// checkpoint does not verify with the log key or is not of the log as
// verified (no consistency with the audited tree), its token's signature
// or chain to the TSA roots given does not verify, its message imprint is
// not SHA-256 of the checkpoint, or a TSA's token times go backwards as
// the tree size grows.
const RuleTimestamp = "timestamp.invalid"

// stampSeen is a timestamp.issued event, checked as far as it can be
// while its entry is read.
type stampSeen struct {
	index    uint64
	tsa      string
	size     uint64
	root     []byte
	time     time.Time
	verified bool // the token verified with the TSA roots
}

// timestampChecker checks the log's timestamp.issued events.
type timestampChecker struct {
	logKey note.Verifier
	tv     *timestamp.Verifier // nil: tokens are not checked
	seen   []stampSeen
	add    func(Finding)
}

func (c *timestampChecker) finding(idx uint64, sev, format string, args ...any) {
	i := idx
	c.add(Finding{Rule: RuleTimestamp, Severity: sev, Source: SourceIntegrity, Index: &i, Tenant: "", Session: event.SessionTimestamps,
		Message: fmt.Sprintf(format, args...)})
}

// see checks the event at idx, if it is a timestamp.issued by the server.
func (c *timestampChecker) see(idx uint64, l *event.Leaf) {
	if l.Kind != event.KindTimestampIssued {
		return
	}
	a := l.Attributes
	size, _ := a.Uint(event.AttrTimestampTreeSize)
	tsa, cpText := a.String(event.AttrTimestampTSA), a.String(event.AttrTimestampCheckpoint)
	tok, err := base64.StdEncoding.DecodeString(a.String(event.AttrTimestampToken))
	if err != nil || size == 0 || tsa == "" || cpText == "" || len(tok) == 0 {
		c.finding(idx, "high", "timestamp.issued at %d lacks its TSA, tree size, checkpoint or token", idx)
		return
	}
	cp, err := api.VerifyCheckpoint([]byte(cpText), c.logKey, nil)
	if err != nil {
		c.finding(idx, "critical", "timestamp.issued at %d: its checkpoint does not verify with the log key: %v", idx, err)
		return
	}
	if cp.Size != size || size > idx {
		c.finding(idx, "critical", "timestamp.issued at %d: tree size %d, checkpoint size %d (a token must follow the checkpoint it stamps)", idx, size, cp.Size)
		return
	}
	s := stampSeen{index: idx, tsa: tsa, size: size, root: cp.Hash}
	if c.tv != nil {
		st, err := c.tv.Verify(tok, []byte(cpText))
		if err != nil {
			c.finding(idx, "critical", "timestamp.issued at %d (TSA %s, size %d): %v", idx, tsa, size, err)
			return
		}
		s.time, s.verified = st.Time, true
	} else if u, err := timestamp.ParseUnverified(tok); err == nil {
		s.time = u.Time
	}
	c.seen = append(c.seen, s)
}

// finish checks, once the tree of size size and root is verified, that
// every stamped checkpoint is a prefix of it (consistency), and that each
// TSA's verified token times do not go backwards as the tree size grows.
func (c *timestampChecker) finish(ctx context.Context, f tclient.TileFetcherFunc, size uint64, root []byte) error {
	for _, s := range c.seen {
		if err := Consistency(ctx, f, s.size, size, s.root, root); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.finding(s.index, "critical", "timestamp.issued at %d stamps a checkpoint of size %d that is not consistent with the log: %v", s.index, s.size, err)
		}
	}
	byTSA := map[string][]stampSeen{}
	for _, s := range c.seen {
		if s.verified {
			byTSA[s.tsa] = append(byTSA[s.tsa], s)
		}
	}
	tsas := make([]string, 0, len(byTSA))
	for t := range byTSA {
		tsas = append(tsas, t)
	}
	sort.Strings(tsas)
	for _, t := range tsas {
		ss := byTSA[t]
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].size < ss[j].size })
		for i := 1; i < len(ss); i++ {
			if ss[i].time.Before(ss[i-1].time) {
				c.finding(ss[i].index, "high", "TSA %s: the token on size %d says %s, before the token on the smaller size %d (%s): its times go backwards",
					t, ss[i].size, ss[i].time.UTC().Format(time.RFC3339), ss[i-1].size, ss[i-1].time.UTC().Format(time.RFC3339))
			}
		}
	}
	return nil
}

// verified counts the tokens checked with the TSA roots.
func (c *timestampChecker) verified() (n int) {
	for _, s := range c.seen {
		if s.verified {
			n++
		}
	}
	return n
}

package monitor

import (
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
)

// cosignatures returns the witnesses of p that validly cosigned raw, with
// their cosignature timestamps.
func cosignatures(p *checkpoint.Policy, raw []byte) map[string]time.Time {
	out := map[string]time.Time{}
	if p == nil {
		return out
	}
	for _, w := range p.Witnesses() {
		n, err := note.Open(raw, note.VerifierList(w.Verifier))
		if err != nil || len(n.Sigs) == 0 {
			continue
		}
		if ts, err := fnote.CoSigV1Timestamp(n.Sigs[0]); err == nil {
			out[w.Name] = ts
		}
	}
	return out
}

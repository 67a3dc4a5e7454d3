package monitor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	fmtlog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
)

// ErrNoQuorum is returned (wrapped) by Policy.Verify for a checkpoint that
// carries a valid log signature but not the witness cosignatures the policy
// requires.
var ErrNoQuorum = errors.New("witness quorum not met")

// Witness is one witness named in a policy.
type Witness struct {
	Name string
	// Verifier checks the witness's cosignature/v1 signatures.
	Verifier note.Verifier
	// URL is the witness's root URL (its add-checkpoint endpoint is
	// URL/add-checkpoint, its monitoring read URL/<hex sha256(origin)>/checkpoint).
	URL string
}

// Policy is a witness policy in the Sigsum/C2SP text format (witness,
// group, quorum lines), as the log server takes it.
type Policy struct {
	group     tessera.WitnessGroup
	witnesses []Witness
}

// ParsePolicy parses a witness policy. Every witness line must carry a URL.
func ParsePolicy(text []byte) (*Policy, error) {
	g, err := tessera.NewWitnessGroupFromPolicy(text)
	if err != nil {
		return nil, fmt.Errorf("parsing witness policy: %w", err)
	}
	p := &Policy{group: g}
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "witness" {
			continue
		}
		v, err := fnote.NewVerifierForCosignatureV1(f[2])
		if err != nil {
			return nil, fmt.Errorf("witness %s: %w", f[1], err)
		}
		u, err := url.Parse(f[3])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("witness %s: bad URL %q", f[1], f[3])
		}
		p.witnesses = append(p.witnesses, Witness{Name: f[1], Verifier: v, URL: strings.TrimSuffix(f[3], "/")})
	}
	return p, nil
}

// Witnesses lists the policy's witnesses.
func (p *Policy) Witnesses() []Witness { return p.witnesses }

// Verify checks that raw is a checkpoint signed by the log key and
// cosigned by a quorum of the policy's witnesses. It returns ErrNoQuorum
// (wrapped) when only the quorum is missing and checkpoint.ErrInvalid
// (wrapped) when the log signature does not verify.
func (p *Policy) Verify(raw []byte, logV note.Verifier) (*fmtlog.Checkpoint, error) {
	cp, _, err := checkpoint.Verify(raw, logV)
	if err != nil {
		return nil, err
	}
	if !p.group.Satisfied(raw) {
		return nil, ErrNoQuorum
	}
	return cp, nil
}

// cosignatures returns the witnesses of p that validly cosigned raw, with
// their cosignature timestamps.
func (p *Policy) cosignatures(raw []byte) map[string]time.Time {
	out := map[string]time.Time{}
	if p == nil {
		return out
	}
	for _, w := range p.witnesses {
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

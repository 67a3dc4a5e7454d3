package checkpoint

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"

	fmtlog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"
)

// ErrNoQuorum is returned (wrapped) by Policy.Verify for a checkpoint that
// carries a valid log signature but not the witness cosignatures the policy
// requires.
var ErrNoQuorum = errors.New("witness quorum not met")

// Witness is one witness named in a policy.
type Witness struct {
	// Name is the witness's label in the policy file.
	Name string
	// Verifier checks the witness's cosignature/v1 signatures.
	Verifier note.Verifier
	// URL is the witness's submission prefix, without a trailing slash:
	// add-checkpoint is URL + "/add-checkpoint".
	URL string
}

// Policy is a witness policy: which witnesses must cosign a checkpoint
// before anyone relies on it. The text format is the one the log server
// gives Tessera (tessera.NewWitnessGroupFromPolicy; Sigsum's policy
// format with cosignature/v1 witness keys):
//
//	witness NAME VKEY URL
//	group NAME N|any|all MEMBER...
//	quorum NAME|none
//
// with "#" comments and "log" lines ignored.
type Policy struct {
	group     tessera.WitnessGroup
	witnesses []Witness
}

// ParsePolicy parses a witness policy. On top of what Tessera checks, every
// witness must have an http(s) URL and a distinct key: the same key under
// two names would let one witness count twice toward a quorum.
func ParsePolicy(text []byte) (*Policy, error) {
	g, err := tessera.NewWitnessGroupFromPolicy(text)
	if err != nil {
		return nil, fmt.Errorf("parsing witness policy: %w", err)
	}
	p := &Policy{group: g}
	type keyID struct {
		name string
		hash uint32
	}
	keys := make(map[keyID]string)
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "witness" {
			continue
		}
		// Tessera accepted the file, so this line has exactly 4 fields.
		name, vkey, rawURL := f[1], f[2], f[3]
		v, err := fnote.NewVerifierForCosignatureV1(vkey)
		if err != nil {
			return nil, fmt.Errorf("parsing witness policy: witness %s: %w", name, err)
		}
		id := keyID{v.Name(), v.KeyHash()}
		if other, ok := keys[id]; ok {
			return nil, fmt.Errorf("parsing witness policy: witnesses %s and %s have the same key", other, name)
		}
		keys[id] = name
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("parsing witness policy: witness %s: bad URL %q", name, rawURL)
		}
		p.witnesses = append(p.witnesses, Witness{Name: name, Verifier: v, URL: strings.TrimSuffix(rawURL, "/")})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parsing witness policy: %w", err)
	}
	return p, nil
}

// Witnesses lists the policy's witnesses in file order.
func (p *Policy) Witnesses() []Witness { return p.witnesses }

// Verify checks that raw is a checkpoint signed by the log key logV (see
// Verify) and cosigned by a quorum of the policy's witnesses. A
// cosignature counts only if it verifies; signatures by unknown keys are
// ignored. It returns an error wrapping ErrInvalid if the log signature
// does not verify, and ErrNoQuorum if only the quorum is missing. With
// "quorum none" it checks the log signature only.
func (p *Policy) Verify(raw []byte, logV note.Verifier) (*fmtlog.Checkpoint, error) {
	cp, _, err := Verify(raw, logV)
	if err != nil {
		return nil, err
	}
	if !p.group.Satisfied(raw) {
		return nil, fmt.Errorf("%w: checkpoint of %s at size %d", ErrNoQuorum, cp.Origin, cp.Size)
	}
	return cp, nil
}

package checkpoint

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	fmtlog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// ErrNoQuorum is returned (wrapped) by Policy.Verify for a checkpoint that
// carries a valid log signature but not the witness cosignatures the policy
// requires.
var ErrNoQuorum = errors.New("witness quorum not met")

// MaxPolicyBytes caps a policy file.
const MaxPolicyBytes = 64 << 10

// Witness is one witness named in a policy.
type Witness struct {
	// Name is the witness's label in the policy file.
	Name string
	// VKey is the witness's cosignature/v1 verifier key as written in the
	// policy.
	VKey string
	// Verifier checks the witness's cosignature/v1 signatures.
	Verifier note.Verifier
	// URL is the witness's submission prefix, without a trailing slash:
	// add-checkpoint is URL + "/add-checkpoint".
	URL string
}

// Node is one component of a policy: a witness (Witness set) or a group
// that is satisfied when at least N of its Children are.
type Node struct {
	Witness  *Witness
	N        int
	Children []*Node
}

// Policy is a witness policy: which witnesses must cosign a checkpoint
// before anyone relies on it. The text format is Sigsum's policy format with
// cosignature/v1 witness keys, as Tessera's NewWitnessGroupFromPolicy reads
// it (and the log server hands Tessera the same tree, see Quorum):
//
//	witness NAME VKEY URL
//	group NAME N|any|all MEMBER...
//	quorum NAME|none
//
// with "#" comments and "log" lines ignored. Satisfied agrees with
// Tessera's WitnessGroup.Satisfied on every policy both accept (a
// differential test holds this); this package parses it itself so that
// verifiers (the client package, agents) do not link Tessera's appender.
type Policy struct {
	witnesses []Witness
	quorum    *Node // nil: quorum none
}

var policyKeywords = map[string]bool{"witness": true, "group": true, "any": true, "all": true, "none": true, "quorum": true, "log": true}

// ParsePolicy parses a witness policy. On top of what Tessera checks, every
// witness must have an http(s) URL and a distinct key: the same key under
// two names would let one witness count twice toward a quorum.
func ParsePolicy(text []byte) (*Policy, error) {
	p, err := parsePolicy(text)
	if err != nil {
		return nil, fmt.Errorf("parsing witness policy: %w", err)
	}
	return p, nil
}

func parsePolicy(text []byte) (*Policy, error) {
	if len(text) > MaxPolicyBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxPolicyBytes)
	}
	p := &Policy{}
	nodes := map[string]*Node{}
	type keyID struct {
		name string
		hash uint32
	}
	keys := map[keyID]string{}
	quorum := ""
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "log":
		case "witness":
			if len(f) != 4 {
				return nil, fmt.Errorf("invalid witness definition %q: want witness NAME VKEY URL", line)
			}
			name, vkey, rawURL := f[1], f[2], f[3]
			if policyKeywords[name] {
				return nil, fmt.Errorf("invalid witness name %q", name)
			}
			if nodes[name] != nil {
				return nil, fmt.Errorf("duplicate component name %q", name)
			}
			v, err := fnote.NewVerifierForCosignatureV1(vkey)
			if err != nil {
				return nil, fmt.Errorf("witness %s: %w", name, err)
			}
			id := keyID{v.Name(), v.KeyHash()}
			if other, ok := keys[id]; ok {
				return nil, fmt.Errorf("witnesses %s and %s have the same key", other, name)
			}
			keys[id] = name
			u, err := url.Parse(rawURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("witness %s: bad URL %q", name, rawURL)
			}
			p.witnesses = append(p.witnesses, Witness{Name: name, VKey: vkey, Verifier: v, URL: strings.TrimSuffix(rawURL, "/")})
			nodes[name] = &Node{} // Witness is set once p.witnesses stops growing
		case "group":
			if len(f) < 3 {
				return nil, fmt.Errorf("invalid group definition %q", line)
			}
			name, threshold, members := f[1], f[2], f[3:]
			if policyKeywords[name] {
				return nil, fmt.Errorf("invalid group name %q", name)
			}
			if nodes[name] != nil {
				return nil, fmt.Errorf("duplicate component name %q", name)
			}
			var n int
			switch threshold {
			case "any":
				n = 1
			case "all":
				n = len(members)
			default:
				i, err := strconv.ParseUint(threshold, 10, 8)
				if err != nil {
					return nil, fmt.Errorf("invalid threshold %q for group %q", threshold, name)
				}
				n = int(i)
			}
			if n > len(members) {
				return nil, fmt.Errorf("group %s with %d members cannot have threshold %d", name, len(members), n)
			}
			g := &Node{N: n}
			for _, m := range members {
				c := nodes[m]
				if policyKeywords[m] || c == nil {
					return nil, fmt.Errorf("unknown component %q in group %s", m, name)
				}
				g.Children = append(g.Children, c)
			}
			nodes[name] = g
		case "quorum":
			if len(f) != 2 {
				return nil, fmt.Errorf("invalid quorum definition %q", line)
			}
			quorum = f[1]
		default:
			return nil, fmt.Errorf("unknown keyword %q", f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for i := range p.witnesses {
		nodes[p.witnesses[i].Name].Witness = &p.witnesses[i]
	}
	switch quorum {
	case "":
		return nil, errors.New("the policy must define a quorum")
	case "none":
	default:
		q := nodes[quorum]
		if policyKeywords[quorum] || q == nil {
			return nil, fmt.Errorf("quorum component %q not found", quorum)
		}
		if q.Witness != nil {
			q = &Node{N: 1, Children: []*Node{q}}
		}
		p.quorum = q
	}
	return p, nil
}

// Witnesses lists the policy's witnesses in file order.
func (p *Policy) Witnesses() []Witness { return p.witnesses }

// Quorum is the group that must be satisfied, or nil for "quorum none".
func (p *Policy) Quorum() *Node { return p.quorum }

// Satisfied reports whether the signed note raw carries enough valid
// witness cosignatures. It does not check the log's own signature.
func (p *Policy) Satisfied(raw []byte) bool { return p.quorum == nil || p.quorum.satisfied(raw) }

func (n *Node) satisfied(raw []byte) bool {
	if n.Witness != nil {
		o, err := note.Open(raw, note.VerifierList(n.Witness.Verifier))
		return err == nil && len(o.Sigs) == 1
	}
	if n.N <= 0 {
		return true
	}
	got := 0
	for _, c := range n.Children {
		if c.satisfied(raw) {
			got++
			if got >= n.N {
				return true
			}
		}
	}
	return false
}

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
	if !p.Satisfied(raw) {
		return nil, fmt.Errorf("%w: checkpoint of %s at size %d", ErrNoQuorum, cp.Origin, cp.Size)
	}
	return cp, nil
}

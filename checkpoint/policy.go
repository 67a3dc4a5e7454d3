package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/base64"
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
	// add-checkpoint is URL + "/add-checkpoint". A tlog-policy may leave it
	// out (a verifier needs none); the log server needs it for every
	// witness.
	URL string
}

// Log is a log named in a policy ("log VKEY [URL]" of C2SP tlog-policy).
type Log struct {
	// VKey is the log's note verifier key as written in the policy; its key
	// name is the log's origin.
	VKey     string
	Verifier note.Verifier
	// URL is the log's URL, if the policy gives one.
	URL string
}

// Node is one component of a policy: a witness (Witness set) or a group
// that is satisfied when at least N of its Children are.
type Node struct {
	Witness  *Witness
	N        int
	Children []*Node
}

// Policy is a witness policy: which logs it trusts and which witnesses must
// cosign a checkpoint before anyone relies on it. Two text forms are read,
// which differ only in what is optional:
//
//	log VKEY [URL]
//	witness NAME VKEY [URL]
//	group NAME N|any|all MEMBER...
//	quorum NAME|none
//
// C2SP tlog-policy (c2sp.org/tlog-policy) lists the trusted logs by their
// note verifier keys and makes witness URLs optional; the Sigsum-style form
// that Tessera's NewWitnessGroupFromPolicy reads gives every witness its
// URL, and a "log" line with a Sigsum (hex) key, which is ignored. Both use
// cosignature/v1 witness keys. "#" starts a comment. On top of Tessera's
// checks, and as tlog-policy requires: a threshold is between 1 and the
// number of members, a group names each member once and has at least one,
// no two witnesses (or logs) share a key, there is exactly one quorum
// line, and the only control characters are tab and newline. The log
// server hands Tessera the same tree (see Quorum), and Satisfied agrees
// with Tessera's WitnessGroup.Satisfied on every policy both accept (a
// differential test holds this); this package parses it itself so that
// verifiers (the client package, agents) do not link Tessera's appender.
type Policy struct {
	logs      []Log
	witnesses []Witness
	quorum    *Node // nil: quorum none
}

var policyKeywords = map[string]bool{"witness": true, "group": true, "any": true, "all": true, "none": true, "quorum": true, "log": true}

// ErrOtherLog is returned (wrapped) by Policy.Verify and Policy.CheckLog
// when the policy lists logs and the log key is not one of them.
var ErrOtherLog = errors.New("the policy does not list this log")

// ParsePolicy parses a witness policy in either form (see Policy). A
// witness URL, if given, must be http(s); witnesses and logs must have
// distinct keys: the same key under two names would let one witness count
// twice toward a quorum.
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
	// Keys are compared by the public key they wrap (tlog-policy: two vkeys
	// of one key under other names or key ids are duplicates).
	keys := map[string]string{}
	logKeys := map[string]bool{}
	quorum, quorums := "", 0
	for i, c := range text {
		if c < 0x20 && c != '\t' && c != '\n' || c == 0x7f {
			return nil, fmt.Errorf("control character %#02x at byte %d: only tab and newline are allowed", c, i)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "log":
			if len(f) != 2 && len(f) != 3 {
				return nil, fmt.Errorf("invalid log definition %q: want log VKEY [URL]", line)
			}
			if len(f[1]) == 64 && strings.Trim(strings.ToLower(f[1]), "0123456789abcdef") == "" {
				continue // a Sigsum log key: not a note key, and not this log's
			}
			v, err := note.NewVerifier(f[1])
			if err != nil {
				return nil, fmt.Errorf("log %s: %w", f[1], err)
			}
			id, err := publicKey(f[1])
			if err != nil {
				return nil, fmt.Errorf("log %s: %w", f[1], err)
			}
			if logKeys[id] {
				return nil, fmt.Errorf("log %s is listed twice", v.Name())
			}
			logKeys[id] = true
			l := Log{VKey: f[1], Verifier: v}
			if len(f) == 3 {
				if l.URL, err = httpURL(f[2]); err != nil {
					return nil, fmt.Errorf("log %s: %w", v.Name(), err)
				}
			}
			p.logs = append(p.logs, l)
		case "witness":
			if len(f) != 3 && len(f) != 4 {
				return nil, fmt.Errorf("invalid witness definition %q: want witness NAME VKEY [URL]", line)
			}
			name, vkey := f[1], f[2]
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
			id, err := publicKey(vkey)
			if err != nil {
				return nil, fmt.Errorf("witness %s: %w", name, err)
			}
			if other, ok := keys[id]; ok {
				return nil, fmt.Errorf("witnesses %s and %s have the same key", other, name)
			}
			keys[id] = name
			w := Witness{Name: name, VKey: vkey, Verifier: v}
			if len(f) == 4 {
				if w.URL, err = httpURL(f[3]); err != nil {
					return nil, fmt.Errorf("witness %s: %w", name, err)
				}
			}
			p.witnesses = append(p.witnesses, w)
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
			if n > len(members) || n < 1 {
				return nil, fmt.Errorf("group %s with %d members cannot have threshold %d (from 1 to the number of members)", name, len(members), n)
			}
			g := &Node{N: n}
			seen := map[string]bool{}
			for _, m := range members {
				c := nodes[m]
				if policyKeywords[m] || c == nil {
					return nil, fmt.Errorf("unknown component %q in group %s", m, name)
				}
				if seen[m] {
					return nil, fmt.Errorf("group %s names %s twice", name, m)
				}
				seen[m] = true
				g.Children = append(g.Children, c)
			}
			nodes[name] = g
		case "quorum":
			if len(f) != 2 {
				return nil, fmt.Errorf("invalid quorum definition %q", line)
			}
			quorum = f[1]
			if quorums++; quorums > 1 {
				return nil, errors.New("more than one quorum line")
			}
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

// publicKey is the public key a vkey (NAME+ID+BASE64) wraps, without its
// algorithm byte.
func publicKey(vkey string) (string, error) {
	parts := strings.SplitN(vkey, "+", 3) // the name has no "+", the base64 may
	if len(parts) != 3 {
		return "", fmt.Errorf("malformed verifier key %q", vkey)
	}
	b, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(b) < 2 {
		return "", fmt.Errorf("malformed verifier key %q", vkey)
	}
	return string(b[1:]), nil
}

func httpURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("bad URL %q", raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// Logs lists the logs the policy names by note key, in file order (none
// for a policy that leaves the log to the verifier's --log-key).
func (p *Policy) Logs() []Log { return p.logs }

// CheckLog returns an error wrapping ErrOtherLog if the policy lists logs
// and logV's key is not one of them.
func (p *Policy) CheckLog(logV note.Verifier) error {
	if len(p.logs) == 0 {
		return nil
	}
	for _, l := range p.logs {
		if l.Verifier.Name() == logV.Name() && l.Verifier.KeyHash() == logV.KeyHash() {
			return nil
		}
	}
	return fmt.Errorf("%w: %s+%08x", ErrOtherLog, logV.Name(), logV.KeyHash())
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
// does not verify, ErrNoQuorum if only the quorum is missing, and
// ErrOtherLog if the policy lists logs and logV is not one. With "quorum
// none" it checks the log signature only.
func (p *Policy) Verify(raw []byte, logV note.Verifier) (*fmtlog.Checkpoint, error) {
	if err := p.CheckLog(logV); err != nil {
		return nil, err
	}
	cp, _, err := Verify(raw, logV)
	if err != nil {
		return nil, err
	}
	if !p.Satisfied(raw) {
		return nil, fmt.Errorf("%w: checkpoint of %s at size %d", ErrNoQuorum, cp.Origin, cp.Size)
	}
	return cp, nil
}

// TlogPolicy renders the policy in C2SP tlog-policy form for the log with
// note verifier key logVKey: a "log" line for it (replacing the logs the
// policy lists), the witnesses with their URLs, the groups (named
// "group-1", ... in the order they nest) and the quorum. A nil policy is
// "quorum none". ParsePolicy reads the text back to the same tree.
func (p *Policy) TlogPolicy(logVKey string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "log %s\n", logVKey)
	if p == nil || p.quorum == nil {
		b.WriteString("quorum none\n")
		return b.Bytes()
	}
	for _, w := range p.witnesses {
		if w.URL != "" {
			fmt.Fprintf(&b, "witness %s %s %s\n", w.Name, w.VKey, w.URL)
		} else {
			fmt.Fprintf(&b, "witness %s %s\n", w.Name, w.VKey)
		}
	}
	taken := map[string]bool{}
	for _, w := range p.witnesses {
		taken[w.Name] = true
	}
	named := map[*Node]string{}
	groups := 0
	var name func(n *Node) string
	name = func(n *Node) string {
		if n.Witness != nil {
			return n.Witness.Name
		}
		if g, ok := named[n]; ok {
			return g
		}
		members := make([]string, len(n.Children))
		for i, c := range n.Children {
			members[i] = name(c)
		}
		g := ""
		for g == "" || taken[g] {
			groups++
			g = fmt.Sprintf("group-%d", groups)
		}
		taken[g], named[n] = true, g
		fmt.Fprintf(&b, "group %s %d %s\n", g, n.N, strings.Join(members, " "))
		return g
	}
	fmt.Fprintf(&b, "quorum %s\n", name(p.quorum))
	return b.Bytes()
}

package event

import (
	"errors"
	"fmt"
	"strings"
)

// Who may append which kinds through the event API. Kinds not in the table
// are open to any token with the write scope; the server's own events
// (disclosures, signatures, erasures, ...) are appended by the server alone,
// and a few kinds need a scope of their own. This is the one table of it.
//
// A pattern "x.*" matches x and every kind below it.
var reservedKinds = []struct {
	pattern string
	scope   string // "" : only the server itself appends it
	why     string
}{
	{"access.*", "", "payload reads are recorded by the server"},
	{"erasure.*", "", "erasures are recorded by the server"},
	{"hold.*", "", "legal holds are recorded by the server"},
	{"retention.*", "", "retention floors are recorded by the server"},
	{"signer.*", "", "signer enrollment, rotation and revocation are recorded by the server"},
	{"signature.*", "", "signature attempts are recorded by the server"},
	{"human.signature", "", "electronic signatures are made through POST /v1/signatures"},
	{"report.*", "", "reports are issued by the server"},
	{"monitor.alert", ScopeMonitor, "monitor alerts need a token with the monitor scope"},
	{"monitor.status", ScopeMonitor, "monitor status events need a token with the monitor scope"},
	{"replay.verdict", ScopeAudit, "replay verdicts need a token with the audit scope"},
}

// Scopes named by the table (the auth package defines the full set).
const (
	ScopeMonitor = "monitor"
	ScopeAudit   = "audit"
)

// ErrReservedKind is returned by Permit for a kind the caller may not
// append.
var ErrReservedKind = errors.New("reserved event kind")

func kindMatches(pattern, kind string) bool {
	if p, ok := strings.CutSuffix(pattern, ".*"); ok {
		return kind == p || strings.HasPrefix(kind, p+".")
	}
	return kind == pattern
}

// Permit reports whether a client whose token holds the scopes has may
// append an event of kind through the event API: nil, or an error wrapping
// ErrReservedKind that says why not.
func Permit(kind string, has func(scope string) bool) error {
	for _, r := range reservedKinds {
		if !kindMatches(r.pattern, kind) {
			continue
		}
		if r.scope != "" && has(r.scope) {
			return nil
		}
		return fmt.Errorf("%w: %s: %s", ErrReservedKind, kind, r.why)
	}
	return nil
}

// ServerOnly reports whether kind is appended only by the server itself.
func ServerOnly(kind string) bool {
	for _, r := range reservedKinds {
		if kindMatches(r.pattern, kind) {
			return r.scope == ""
		}
	}
	return false
}

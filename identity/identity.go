// Package identity is who a person is to the log when they sign in through
// an identity provider (OpenID Connect), and what they may do: the issuer
// and subject the provider vouches for (Person), and the role a mapping
// file gives the claims of their ID token (Mapping, Role): a tenant (or
// every tenant), scopes, and for a signer the signer id they may sign as.
//
// It is the format alone: parsing and evaluating the mapping, no I/O. The
// console verifies ID tokens and applies the mapping at sign-in; the log
// server acts with the role's rights and names the person in every event
// they cause, the subject only as a pseudonym.
package identity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Person is a person whose ID token the console verified: the provider's
// issuer URL and the subject it names them by. The subject is personal
// data: the log holds it only as a pseudonym (Value is what is
// pseudonymised).
type Person struct {
	Issuer  string `json:"issuer"`
	Subject string `json:"subject"`
}

// Value is the person as one string, issuer and subject: what the vault
// maps to the person's pseudonym in a tenant (and what an erasure of the
// person names).
func (p Person) Value() string { return p.Issuer + " " + p.Subject }

// Role is what a mapped person may do: the role's name (recorded in the
// log with every event the person causes), the tenant it acts in (or
// every tenant, Global, like a global token), its scopes (auth's scope
// names), and, with the sign scope, the signer id it may sign as.
type Role struct {
	Name   string
	Tenant string
	Global bool
	Scopes []string
	Signer string
}

// Has reports whether the role holds scope (admin holds all).
func (r Role) Has(scope string) bool {
	return slices.Contains(r.Scopes, scope) || slices.Contains(r.Scopes, "admin")
}

// Equal reports whether two roles grant the same.
func (r Role) Equal(o Role) bool {
	return r.Name == o.Name && r.Tenant == o.Tenant && r.Global == o.Global && r.Signer == o.Signer && slices.Equal(r.Scopes, o.Scopes)
}

// DefaultClaim is the claim a rule matches when the file names none.
const DefaultClaim = "groups"

// DefaultTenant is the tenant of a global role that names none (as
// log-server token create --global).
const DefaultTenant = "default"

// Limits of a mapping file.
const (
	MaxRules  = 1000
	MaxValues = 1000
)

// Mapping maps ID token claims to roles. Rules are tried in the order of
// the file; the first whose claim holds one of its values gives the role.
// A person no rule matches gets no access.
type Mapping struct {
	rules []rule
}

type rule struct {
	Role
	claim  []string // a path into the claims
	values []string
}

// file is the mapping file's YAML.
type file struct {
	// Claim is the claim the rules match unless a rule names its own
	// (DefaultClaim). A dotted path reads a nested claim
	// (realm_access.roles).
	Claim string     `yaml:"claim"`
	Roles []fileRule `yaml:"roles"`
}

type fileRule struct {
	Name   string   `yaml:"name"`
	Claim  string   `yaml:"claim"`
	Match  []string `yaml:"match"`
	Tenant string   `yaml:"tenant"`
	Global bool     `yaml:"global"`
	Scopes []string `yaml:"scopes"`
	Signer string   `yaml:"signer"`
}

// ErrMapping is wrapped by ParseMapping for a file it refuses.
var ErrMapping = errors.New("role mapping")

// ParseMapping parses and checks a mapping file. scopes are the scope
// names that exist (auth.Scopes); every rule needs the read scope (the
// console reads the log with it), a tenant unless global, and a signer id
// exactly when it has the sign scope. Unknown fields, duplicate names and
// empty matches are refused.
func ParseMapping(text []byte, scopes []string) (*Mapping, error) {
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	var f file
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the file is empty", ErrMapping)
		}
		return nil, fmt.Errorf("%w: %v", ErrMapping, err)
	}
	if f.Claim == "" {
		f.Claim = DefaultClaim
	}
	if len(f.Roles) == 0 {
		return nil, fmt.Errorf("%w: no roles", ErrMapping)
	}
	if len(f.Roles) > MaxRules {
		return nil, fmt.Errorf("%w: more than %d roles", ErrMapping, MaxRules)
	}
	m := &Mapping{}
	seen := map[string]bool{}
	for i, fr := range f.Roles {
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%w: roles[%d] (%s): %s", ErrMapping, i, fr.Name, fmt.Sprintf(format, a...))
		}
		switch {
		case !event.ValidID(fr.Name):
			return nil, bad("name: use 1-%d characters from [A-Za-z0-9_.:@-] (it is recorded in the log)", event.MaxIDLength)
		case seen[fr.Name]:
			return nil, bad("a second role of this name")
		case len(fr.Match) == 0:
			return nil, bad("match: at least one value of the claim")
		case len(fr.Match) > MaxValues:
			return nil, bad("match: more than %d values", MaxValues)
		case fr.Global && fr.Tenant == "":
			fr.Tenant = DefaultTenant
		case !fr.Global && fr.Tenant == "":
			return nil, bad("tenant: required (or global: true)")
		}
		seen[fr.Name] = true
		if !event.ValidID(fr.Tenant) {
			return nil, bad("tenant %q is not a valid id", event.Clip(fr.Tenant, 40))
		}
		if len(fr.Scopes) == 0 {
			return nil, bad("scopes: at least read")
		}
		var sc []string
		for _, s := range fr.Scopes {
			if !slices.Contains(scopes, s) {
				return nil, bad("unknown scope %q (want %s)", event.Clip(s, 40), strings.Join(scopes, ", "))
			}
			if !slices.Contains(sc, s) {
				sc = append(sc, s)
			}
		}
		r := Role{Name: fr.Name, Tenant: fr.Tenant, Global: fr.Global, Scopes: sc, Signer: fr.Signer}
		switch {
		case !r.Has("read"):
			return nil, bad("scopes: the console needs read")
		case fr.Signer != "" && !event.ValidID(fr.Signer):
			return nil, bad("signer %q is not a valid signer id", event.Clip(fr.Signer, 40))
		case fr.Signer != "" && !slices.Contains(sc, "sign"):
			return nil, bad("a signer id needs the sign scope")
		case fr.Signer == "" && slices.Contains(sc, "sign"):
			return nil, bad("the sign scope needs the signer id the role may sign as (signer:)")
		}
		claim := f.Claim
		if fr.Claim != "" {
			claim = fr.Claim
		}
		path := strings.Split(claim, ".")
		if slices.Contains(path, "") {
			return nil, bad("claim %q: an empty name in the path", claim)
		}
		vals := make([]string, 0, len(fr.Match))
		for _, v := range fr.Match {
			if v == "" {
				return nil, bad("match: an empty value")
			}
			vals = append(vals, v)
		}
		m.rules = append(m.rules, rule{Role: r, claim: path, values: vals})
	}
	return m, nil
}

// Roles lists the roles of the mapping, in order.
func (m *Mapping) Roles() []Role {
	out := make([]Role, len(m.rules))
	for i, r := range m.rules {
		out[i] = r.Role
		out[i].Scopes = slices.Clone(r.Scopes)
	}
	return out
}

// Role returns the role of the first rule whose claim, in claims (an ID
// token's, as decoded JSON), holds one of its values: a string claim equal
// to one, or an array claim with one among its strings. ok is false when
// no rule matches.
func (m *Mapping) Role(claims map[string]any) (r Role, ok bool) {
	if m == nil {
		return Role{}, false
	}
	for _, ru := range m.rules {
		for _, v := range claimStrings(claims, ru.claim) {
			if slices.Contains(ru.values, v) {
				r = ru.Role
				r.Scopes = slices.Clone(ru.Scopes)
				return r, true
			}
		}
	}
	return Role{}, false
}

// claimStrings returns the strings at path in claims: a string, or the
// strings of an array.
func claimStrings(claims map[string]any, path []string) []string {
	var v any = claims
	for _, k := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		if v, ok = obj[k]; !ok {
			return nil
		}
	}
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return x
	}
	return nil
}

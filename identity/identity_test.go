package identity

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

var scopes = []string{"write", "read", "audit", "admin", "monitor", "sign", "privacy", "metrics"}

const mappingText = `
claim: groups
roles:
  - name: ada-signs
    claim: sub
    match: [ada-subject]
    tenant: clinic-a
    scopes: [read, audit, sign]
    signer: dr-ada
  - name: clinic-a-qa
    match: [clinic-a/qa, qa-all]
    tenant: clinic-a
    scopes: [read, audit]
  - name: log-auditors
    claim: realm_access.roles
    match: [log-auditor]
    global: true
    scopes: [read, audit, read]
`

func claims(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMappingRole(t *testing.T) {
	m, err := ParseMapping([]byte(mappingText), scopes)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, claims string
		want         string // role name, "" for none
	}{
		{"group in array", `{"sub":"x","groups":["other","clinic-a/qa"]}`, "clinic-a-qa"},
		{"group as a string", `{"sub":"x","groups":"qa-all"}`, "clinic-a-qa"},
		{"first rule wins", `{"sub":"ada-subject","groups":["clinic-a/qa"]}`, "ada-signs"},
		{"nested claim", `{"sub":"x","realm_access":{"roles":["log-auditor"]}}`, "log-auditors"},
		{"no group", `{"sub":"x","groups":[]}`, ""},
		{"no claim", `{"sub":"x"}`, ""},
		{"case matters", `{"sub":"x","groups":["Clinic-A/QA"]}`, ""},
		{"non-string values", `{"sub":"x","groups":[1,true,{"a":"clinic-a/qa"}]}`, ""},
		{"nested claim not an object", `{"sub":"x","realm_access":"log-auditor"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := m.Role(claims(t, tc.claims))
			if ok != (tc.want != "") || r.Name != tc.want {
				t.Fatalf("Role = %+v, %v; want %q", r, ok, tc.want)
			}
		})
	}
	r, _ := m.Role(claims(t, `{"sub":"ada-subject"}`))
	if r.Tenant != "clinic-a" || r.Signer != "dr-ada" || !r.Has("sign") || r.Global {
		t.Fatalf("signer role %+v", r)
	}
	r, _ = m.Role(claims(t, `{"realm_access":{"roles":["log-auditor"]}}`))
	if !r.Global || r.Tenant != DefaultTenant || strings.Join(r.Scopes, ",") != "read,audit" {
		t.Fatalf("global role %+v", r)
	}
	// A role handed out is a copy.
	r.Scopes[0] = "admin"
	if r2, _ := m.Role(claims(t, `{"realm_access":{"roles":["log-auditor"]}}`)); r2.Scopes[0] != "read" {
		t.Fatal("a caller changed the mapping's scopes")
	}
	if _, ok := (*Mapping)(nil).Role(claims(t, `{"groups":["qa-all"]}`)); ok {
		t.Fatal("a nil mapping gave a role")
	}
}

func TestParseMappingRefuses(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"empty", ``, "empty"},
		{"no roles", `claim: groups`, "no roles"},
		{"unknown field", "roles:\n  - name: a\n    match: [g]\n    tenant: t\n    scopes: [read]\n    tenants: [x]\n", "tenants"},
		{"bad name", "roles:\n  - name: 'a b'\n    match: [g]\n    tenant: t\n    scopes: [read]\n", "name"},
		{"duplicate", "roles:\n  - {name: a, match: [g], tenant: t, scopes: [read]}\n  - {name: a, match: [h], tenant: t, scopes: [read]}\n", "second role"},
		{"no match", "roles:\n  - {name: a, tenant: t, scopes: [read]}\n", "match"},
		{"empty value", "roles:\n  - {name: a, match: [''], tenant: t, scopes: [read]}\n", "empty value"},
		{"no tenant", "roles:\n  - {name: a, match: [g], scopes: [read]}\n", "tenant"},
		{"bad tenant", "roles:\n  - {name: a, match: [g], tenant: 'x/y', scopes: [read]}\n", "tenant"},
		{"no scopes", "roles:\n  - {name: a, match: [g], tenant: t}\n", "scopes"},
		{"unknown scope", "roles:\n  - {name: a, match: [g], tenant: t, scopes: [read, root]}\n", "unknown scope"},
		{"no read", "roles:\n  - {name: a, match: [g], tenant: t, scopes: [audit]}\n", "needs read"},
		{"sign without signer", "roles:\n  - {name: a, match: [g], tenant: t, scopes: [read, sign]}\n", "signer id"},
		{"signer without sign", "roles:\n  - {name: a, match: [g], tenant: t, scopes: [read], signer: ada}\n", "sign scope"},
		{"bad signer", "roles:\n  - {name: a, match: [g], tenant: t, scopes: [read, sign], signer: 'a b'}\n", "signer"},
		{"bad claim path", "roles:\n  - {name: a, claim: 'x..y', match: [g], tenant: t, scopes: [read]}\n", "claim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseMapping([]byte(tc.text), scopes)
			if !errors.Is(err, ErrMapping) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseMapping = %v, want ErrMapping with %q", err, tc.want)
			}
		})
	}
}

func TestRoleEqual(t *testing.T) {
	a := Role{Name: "r", Tenant: "t", Scopes: []string{"read"}}
	b := a
	b.Scopes = []string{"read", "audit"}
	if !a.Equal(a) || a.Equal(b) {
		t.Fatal("Equal")
	}
}

func FuzzParseMapping(f *testing.F) {
	f.Add([]byte(mappingText))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMapping(b, scopes)
		if err != nil {
			return
		}
		for _, r := range m.Roles() {
			if !r.Has("read") || r.Tenant == "" {
				t.Fatalf("accepted role %+v", r)
			}
		}
	})
}

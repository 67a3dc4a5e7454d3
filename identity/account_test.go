package identity

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// TestAccountRequest checks each account event's session, actor and
// attributes exactly (the wire format: literals on purpose).
func TestAccountRequest(t *testing.T) {
	ada := Person{Issuer: "https://idp", Subject: "ada"}
	role := Role{Name: "signs", Tenant: "clinic-a", Scopes: []string{"read", "sign"}, Signer: "dr-ada"}
	for _, tc := range []struct {
		name    string
		a       Account
		tokenID string
		session string
		actor   event.Actor
		attrs   string
	}{
		{"oidc sign-in", Account{Kind: KindSignIn, Method: MethodOIDC, Person: &ada, Role: &role}, "sso-1", "access.sso-1", event.Actor{Type: "human", ID: "sso-1"},
			`{"access.global":false,"access.method":"oidc","access.scopes":["read","sign"],"access.signer":"dr-ada","access.tenant":"clinic-a","access.token_id":"sso-1"}`},
		{"token sign-in", Account{Kind: KindSignIn, Method: MethodToken}, "tok1", "access.tok1", event.Actor{Type: "human", ID: "token.tok1"},
			`{"access.method":"token","access.token_id":"tok1"}`},
		{"failed, known token", Account{Kind: KindSignInFailed, Method: MethodToken, Reason: ReasonNoRead}, "tok1", "access.signin_failures", event.ServerActor,
			`{"access.method":"token","access.reason":"no_read","access.token_id":"tok1"}`},
		{"failed, no id", Account{Kind: KindSignInFailed, Method: MethodOIDC, Person: &ada, Reason: ReasonInvalidToken, Detail: strings.Repeat("x", 300)}, "", "access.signin_failures", event.ServerActor,
			`{"access.detail":"` + strings.Repeat("x", 256) + `","access.method":"oidc","access.reason":"invalid_token"}`},
		{"denied", Account{Kind: KindDenied, Method: MethodOIDC, Person: &ada, Role: &Role{Name: "qa", Global: true, Scopes: []string{"read"}}, Reason: ReasonForbidden, Detail: "POST /v1/signatures: 403"}, "sso-2", "access.sso-2", event.Actor{Type: "human", ID: "sso-2"},
			`{"access.detail":"POST /v1/signatures: 403","access.global":true,"access.method":"oidc","access.reason":"forbidden","access.scopes":["read"],"access.tenant":"","access.token_id":"sso-2"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.a.Request(tc.tokenID)
			if ev.Kind != tc.a.Kind || ev.Session != tc.session || ev.Actor != tc.actor {
				t.Errorf("kind %q session %q actor %+v, want %q %q %+v", ev.Kind, ev.Session, ev.Actor, tc.a.Kind, tc.session, tc.actor)
			}
			var b strings.Builder
			b.WriteString("{")
			for i, k := range slices.Sorted(maps.Keys(ev.Attributes)) {
				if i > 0 {
					b.WriteString(",")
				}
				kb, _ := json.Marshal(k)
				b.Write(kb)
				b.WriteString(":")
				b.Write(ev.Attributes[k])
			}
			b.WriteString("}")
			if b.String() != tc.attrs {
				t.Errorf("attributes\n%s\nwant\n%s", b.String(), tc.attrs)
			}
		})
	}
}

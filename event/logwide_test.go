package event

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"testing"
)

// TestLogWide: which records are log-wide, and that the sealer tags
// exactly those with the log-wide key, HMAC-SHA256(secret, "llmaudittrail
// log-wide key v1"), and every other event with its tenant's key.
func TestLogWide(t *testing.T) {
	global := map[string]json.RawMessage{AttrTokenGlobal: json.RawMessage(`true`)}
	for _, tc := range []struct {
		name                  string
		kind, tenant, session string
		attrs                 map[string]json.RawMessage
		want                  bool
	}{
		{"global token created", KindTokenCreated, "bank-a", SessionTokens, global, true},
		{"global token revoked", KindTokenRevoked, DefaultTenant, SessionTokens, global, true},
		{"tenant token created", KindTokenCreated, "bank-a", SessionTokens, nil, false},
		{"global token record outside access.tokens", KindTokenCreated, "bank-a", "s1", global, false},
		{"default monitor status", KindMonitorStatus, DefaultTenant, "monitor.m1", nil, true},
		{"a tenant's monitor status", KindMonitorStatus, "bank-a", "monitor.m1", nil, false},
		{"default retention floor", KindRetentionSet, DefaultTenant, SessionRetention, nil, true},
		{"a tenant's retention floor", KindRetentionSet, "bank-a", SessionRetention, nil, false},
		{"monitor alert of the default tenant", KindMonitorAlert, DefaultTenant, "monitor.m1", nil, false},
		{"tool call", KindToolCall, DefaultTenant, "s1", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &Leaf{V: LeafVersion, ID: "0123456789abcdef0123456789abcdef", Kind: tc.kind, Time: "2026-01-02T03:04:05Z",
				Tenant: tc.tenant, Session: tc.session, Actor: Actor{Type: "system", ID: "log-server"}, Writer: &Writer{Token: "log-server", Via: ViaServer}}
			if tc.attrs != nil {
				l.Attributes = Attributes{}
				for k, v := range tc.attrs {
					var x any
					json.Unmarshal(v, &x)
					l.Attributes[k] = x
				}
			}
			body, err := l.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := ParseLeaf(body)
			if err != nil {
				t.Fatal(err)
			}
			if got := LogWide(parsed); got != tc.want {
				t.Errorf("LogWide = %v, want %v", got, tc.want)
			}
			if got := BodyLogWide(body); got != tc.want {
				t.Errorf("BodyLogWide = %v, want %v", got, tc.want)
			}
			secret := bytes.Repeat([]byte{0x5e}, 32)
			s, err := NewEnvelopeSealer(secret)
			if err != nil {
				t.Fatal(err)
			}
			m := hmac.New(sha256.New, secret)
			m.Write([]byte("llmaudittrail log-wide key v1"))
			var logKey TenantKey
			m.Sum(logKey[:0])
			if s.LogKey() != logKey {
				t.Fatalf("LogKey is not HMAC-SHA256(secret, label)")
			}
			e := s.Seal(tc.tenant, body)
			if logKey.Recognises(&e) != tc.want || s.TenantKey(tc.tenant).Recognises(&e) == tc.want {
				t.Errorf("the envelope carries the log-wide tag: %v, the tenant's: %v; want log-wide %v", logKey.Recognises(&e), s.TenantKey(tc.tenant).Recognises(&e), tc.want)
			}
		})
	}
}

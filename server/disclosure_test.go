package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// disclosureRequest is an LLM request payload with personal data in a
// message and tools the auditor may see.
const disclosureRequest = `{"model":"gpt-4o","messages":[{"role":"system","content":"Triage."},` +
	`{"role":"user","content":"Patient Jane Doe reports chest pain."}],` +
	`"tools":[{"name":"lookup_record","input_schema":{"type":"object"}},{"name":"schedule","input_schema":{"type":"object"}}],` +
	`"usage":{"input_tokens":42,"output_tokens":7}}`

// TestFieldDisclosure: an auditor gets two fields of a payload and nothing
// else, verifies them offline against the log (receipt and digests), and
// the log names the fields in an access.read event; a changed value or
// salt does not verify; scopes, tenants, bad queries, payloads without a
// field commitment and erased payloads are refused.
func TestFieldDisclosure(t *testing.T) {
	s := newTestServer(t, nil)
	ctx := context.Background()
	ev := s.post(t, "d", "llm.request", json.RawMessage(disclosureRequest))
	leafBytes, _ := base64.StdEncoding.DecodeString(ev.Leaf)
	leaf, err := event.ParseLeaf(leafBytes)
	if err != nil || leaf.Payload == nil || len(leaf.Payload.SD) != 64 {
		t.Fatalf("leaf %s: no field commitment (%v)", leafBytes, err)
	}
	audTok, aud, _ := s.srv.Tokens().Create(ctx, auth.Spec{Name: "auditor-1", Tenant: DefaultTenant, Scopes: []string{auth.ScopeAudit}})
	wTok, _, _ := s.srv.Tokens().Create(ctx, auth.Spec{Name: "writer", Tenant: DefaultTenant, Scopes: []string{auth.ScopeWrite}})
	otherTok, _, _ := s.srv.Tokens().Create(ctx, auth.Spec{Name: "aud-b", Tenant: "tenant-b", Scopes: []string{auth.ScopeAudit}})
	path := func(index uint64, fields string) string {
		return fmt.Sprintf("/v1/events/%d/disclosure?fields=%s", index, url.QueryEscape(fields))
	}

	before := s.size(t)
	code, body, _ := s.do(t, "GET", path(ev.Index, "model,tools[*].name"), audTok, nil)
	if code != 200 {
		t.Fatalf("disclosure = %d %s", code, body)
	}
	if bytes.Contains(body, []byte("Jane")) || bytes.Contains(body, []byte("chest")) {
		t.Fatal("the answer holds message content")
	}
	d, err := api.ParseDisclosure(body)
	if err != nil {
		t.Fatal(err)
	}
	lv, _ := checkpoint.NewVerifier(s.srv.VerifierKey())
	rv := api.NewReceiptVerifier(lv, nil)
	vd, err := rv.VerifyDisclosure(d)
	if err != nil {
		t.Fatalf("the disclosure does not verify: %v", err)
	}
	got, _ := json.Marshal(vd.Fields.Claims)
	if want := `{"model":"gpt-4o","tools":[{"name":"lookup_record"},{"name":"schedule"}]}`; string(got) != want {
		t.Errorf("disclosed %s, want %s", got, want)
	}
	// One access.read names the fields, before the answer.
	if n := s.countKind(t, before, "access.read"); n != 1 {
		t.Fatalf("%d access.read events, want 1", n)
	}
	accLeaf, _ := base64.StdEncoding.DecodeString(d.Access.Leaf)
	acc, err := event.ParseLeaf(accLeaf)
	if err != nil || acc.Kind != "access.read" || acc.Actor.ID != "token."+aud.ID ||
		!reflect.DeepEqual(acc.Attributes["access.fields"], []any{"model", "tools[*].name"}) ||
		fmt.Sprint(acc.Attributes["access.index"]) != fmt.Sprint(ev.Index) {
		t.Fatalf("access event = %+v (%v)", acc, err)
	}

	// A changed value or salt, a dropped digest, another entry's receipt:
	// none verifies.
	edit := func(f func(*api.DisclosureResponse)) *api.DisclosureResponse {
		c, _ := api.ParseDisclosure(body)
		f(c)
		return c
	}
	reencode := func(enc string, f func([]any)) string {
		raw, _ := base64.RawURLEncoding.DecodeString(enc)
		var a []any
		json.Unmarshal(raw, &a)
		f(a)
		b, _ := json.Marshal(a)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	other := s.post(t, "d2", "llm.request", json.RawMessage(disclosureRequest))
	otherRc, err := s.srv.Log().WaitReceipt(ctx, other.Index, mustB64(t, other.Leaf))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		d    *api.DisclosureResponse
		want error
	}{
		{"changed value", edit(func(d *api.DisclosureResponse) {
			d.Disclosures[0] = reencode(d.Disclosures[0], func(a []any) { a[2] = "gpt-3.5-turbo" })
		}), disclosure.ErrUnreferenced},
		{"changed salt", edit(func(d *api.DisclosureResponse) {
			d.Disclosures[0] = reencode(d.Disclosures[0], func(a []any) { a[0] = "AAAAAAAAAAAAAAAAAAAAAA" })
		}), disclosure.ErrUnreferenced},
		{"dropped digest", edit(func(d *api.DisclosureResponse) { d.SD = d.SD[1:] }), disclosure.ErrRoot},
		{"another entry's receipt", edit(func(d *api.DisclosureResponse) { d.Receipt = otherRc }), api.ErrDisclosureEntry},
		{"changed leaf", edit(func(d *api.DisclosureResponse) {
			d.Receipt.Leaf = bytes.Replace(d.Receipt.Leaf, []byte("llm.request"), []byte("llm.requesT"), 1)
		}), api.ErrReceiptLeafHash},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := rv.VerifyDisclosure(c.d); !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}

	// Refusals, each with nothing appended.
	text := s.postRaw(t, `{"session":"d","kind":"tool.result","actor":{"type":"agent","id":"bot"},"payload_base64":"aGVsbG8=","media_type":"text/plain"}`)
	none := s.post(t, "d", "agent.decision", nil)
	before = s.size(t)
	for _, c := range []struct {
		name, tok, path string
		code            int
	}{
		{"write scope", wTok, path(ev.Index, "model"), 403},
		{"another tenant", otherTok, path(ev.Index, "model"), 404},
		{"no fields", audTok, fmt.Sprintf("/v1/events/%d/disclosure", ev.Index), 400},
		{"bad field", audTok, path(ev.Index, "tools[x]"), 400},
		{"too deep", audTok, path(ev.Index, "a.b.c.d.e.f.g"), 400},
		{"no such field", audTok, path(ev.Index, "temperature"), 404},
		{"not JSON", audTok, path(text.Index, "model"), 409},
		{"no payload", audTok, path(none.Index, "model"), 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			if code, body, _ := s.do(t, "GET", c.path, c.tok, nil); code != c.code {
				t.Errorf("= %d %s, want %d", code, body, c.code)
			}
		})
	}
	if n := s.countKind(t, before, "access.read"); n != 0 {
		t.Fatalf("refused disclosures appended %d access.read events", n)
	}

	// Erasure destroys the salts with the payload: 410, and the leaf stays.
	if _, err := s.srv.Log().ErasePayloads(ctx, DefaultTenant, []string{"d"}, ""); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := s.do(t, "GET", path(ev.Index, "model"), audTok, nil); code != 410 {
		t.Fatalf("disclosure after erasure = %d %s, want 410", code, body)
	}
	if _, err := rv.VerifyDisclosure(d); err != nil {
		t.Errorf("a disclosure saved before the erasure no longer verifies: %v", err)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postRaw posts one event as given, with the admin token.
func (s *testServer) postRaw(t *testing.T, ev string) api.EventResponse {
	t.Helper()
	code, body, _ := s.do(t, "POST", "/v1/events", s.admin, []byte(ev))
	if code != 201 {
		t.Fatalf("POST /v1/events = %d %s", code, body)
	}
	var r api.EventResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// countKind counts the events of kind from index from on.
func (s *testServer) countKind(t *testing.T, from uint64, kind string) int {
	t.Helper()
	size := s.size(t)
	n := 0
	for i := from; i < size; i++ {
		d, err := s.srv.Log().ReadLeaf(context.Background(), i, size)
		if err != nil {
			t.Fatal(err)
		}
		if l, err := event.ParseLeaf(d); err == nil && l.Kind == kind {
			n++
		}
	}
	return n
}

// TestFieldDisclosureVersions: a leaf written now has a version 2 field
// commitment (sd_v 2): its root lists decoys beside its 4 fields, and a
// disclosure verifies with them; a leaf of version 1 (no sd_v, no decoys:
// the leaves written before version 2) is still disclosed and verifies;
// a leaf whose sd does not match its payload is refused (integrity).
func TestFieldDisclosureVersions(t *testing.T) {
	s := newTestServer(t, nil)
	ctx := context.Background()
	audTok, _, _ := s.srv.Tokens().Create(ctx, auth.Spec{Name: "auditor-1", Tenant: DefaultTenant, Scopes: []string{auth.ScopeAudit}})
	lv, _ := checkpoint.NewVerifier(s.srv.VerifierKey())
	rv := api.NewReceiptVerifier(lv, nil)
	other, _ := disclosure.Build(bytes.Repeat([]byte{1}, 32), []byte(disclosureRequest))
	for _, c := range []struct {
		name    string
		hook    func(c *event.Commitment, salt, payload []byte)
		sdv     int
		digests int
		code    int
	}{
		{"version 2", nil, 2, disclosure.MinBucket, 200},
		{"version 1", func(c *event.Commitment, salt, payload []byte) {
			t, _ := disclosure.BuildVersion(disclosure.V1, salt, payload)
			c.SD, c.SDV = t.Hash(), 0
		}, 1, 4, 200},
		{"another payload's sd", func(c *event.Commitment, salt, payload []byte) { c.SD = other.Hash() }, 2, 0, 500},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.hook != nil {
				s.srv.Log().SetFieldCommitmentForTest(c.hook)
				defer s.srv.Log().SetFieldCommitmentForTest(func(*event.Commitment, []byte, []byte) {})
			}
			ev := s.post(t, fmt.Sprintf("v%d-%d", c.sdv, c.code), "llm.request", json.RawMessage(disclosureRequest))
			leaf, err := event.ParseLeaf(mustB64(t, ev.Leaf))
			if err != nil || leaf.Payload.SDVersion() != c.sdv {
				t.Fatalf("leaf: version %d (%v), want %d", leaf.Payload.SDVersion(), err, c.sdv)
			}
			code, body, _ := s.do(t, "GET", fmt.Sprintf("/v1/events/%d/disclosure?fields=model,usage", ev.Index), audTok, nil)
			if code != c.code {
				t.Fatalf("disclosure = %d %s, want %d", code, body, c.code)
			}
			if code != 200 {
				return
			}
			d, err := api.ParseDisclosure(body)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.SD) != c.digests {
				t.Errorf("%d digests in the root, want %d", len(d.SD), c.digests)
			}
			vd, err := rv.VerifyDisclosure(d)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := json.Marshal(vd.Fields.Claims); string(got) != `{"model":"gpt-4o","usage":{"input_tokens":42,"output_tokens":7}}` {
				t.Errorf("claims %s", got)
			}
		})
	}
}

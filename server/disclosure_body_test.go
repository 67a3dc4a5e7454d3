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

// TestBodyFieldDisclosure: on a log of leaf version 4 an auditor gets
// chosen fields of an event's body (its kind and one attribute) and of its
// payload, and nothing else of the event: the receipt carries the envelope,
// not the body. The answer verifies offline against the envelope's field
// commitment; the log names both sets of fields in its access.read; a
// changed value, a dropped digest, a hidden id or a swapped payload
// commitment do not verify. A log of version 3 refuses body fields.
func TestBodyFieldDisclosure(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.LeafVersion = event.LeafVersionFields })
	ctx := context.Background()
	ev := s.postRaw(t, `{"session":"case-4711-secret","kind":"llm.request","actor":{"type":"agent","id":"triage-bot"},`+
		`"attributes":{"gen_ai.request.model":"gpt-4o","gen_ai.provider.name":"openai-secret"},"payload":`+disclosureRequest+`}`)
	if ev.FieldSalt == "" {
		t.Fatalf("the write answer has no field salt: %+v", ev)
	}
	audTok, aud, _ := s.srv.Tokens().Create(ctx, auth.Spec{Name: "auditor-1", Tenant: DefaultTenant, Scopes: []string{auth.ScopeAudit}})
	path := func(index uint64, q url.Values) string {
		return fmt.Sprintf("/v1/events/%d/disclosure?%s", index, q.Encode())
	}
	lv, _ := checkpoint.NewVerifier(s.srv.VerifierKey())
	rv := api.NewReceiptVerifier(lv, nil)

	before := s.size(t)
	code, body, _ := s.do(t, "GET", path(ev.Index, url.Values{"fields": {"model"}, "body": {`kind,attributes["gen_ai.request.model"]`}}), audTok, nil)
	if code != 200 {
		t.Fatalf("disclosure = %d %s", code, body)
	}
	for _, secret := range []string{"case-4711-secret", "triage-bot", "openai-secret", "Jane", "lookup_record"} {
		if bytes.Contains(body, []byte(secret)) {
			t.Errorf("the answer holds %q", secret)
		}
	}
	d, err := api.ParseDisclosure(body)
	if err != nil {
		t.Fatal(err)
	}
	// Nor in anything the answer encodes: the access event, the receipt,
	// the disclosures (decoded).
	for _, enc := range append(append([]string{d.Access.Leaf, string(d.Receipt.Envelope)}, d.BodyDisclosures...), d.Disclosures...) {
		dec, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			dec, _ = base64.RawURLEncoding.DecodeString(enc)
		}
		for _, secret := range []string{"case-4711-secret", "triage-bot", "openai-secret", "Jane"} {
			if bytes.Contains(dec, []byte(secret)) {
				t.Errorf("the answer encodes %q in %.80s", secret, dec)
			}
		}
	}
	if d.Receipt.Leaf != nil || d.Receipt.Envelope == nil {
		t.Fatalf("the receipt carries the body (%d bytes) or no envelope", len(d.Receipt.Leaf))
	}
	vd, err := rv.VerifyDisclosure(d)
	if err != nil {
		t.Fatalf("the disclosure does not verify: %v", err)
	}
	if vd.Event != nil || vd.ID != ev.ID {
		t.Errorf("verified event %v, id %s, want none and %s", vd.Event, vd.ID, ev.ID)
	}
	if got, want := vd.Body.Claims["kind"], "llm.request"; got != want {
		t.Errorf("kind = %v, want %s", got, want)
	}
	if got, want := vd.Body.Claims["attributes"], map[string]any{"gen_ai.request.model": "gpt-4o"}; !reflect.DeepEqual(got, want) {
		t.Errorf("attributes = %v, want %v", got, want)
	}
	if _, ok := vd.Body.Claims["session"]; ok {
		t.Error("the session is disclosed")
	}
	if got, _ := json.Marshal(vd.Fields.Claims); string(got) != `{"model":"gpt-4o"}` {
		t.Errorf("payload fields %s", got)
	}
	if n := s.countKind(t, before, "access.read"); n != 1 {
		t.Fatalf("%d access.read events, want 1", n)
	}
	// The answer names the access event without its body (which names the
	// session); the log holds it whole.
	if d.Access.Leaf != "" || d.Access.Session != "" || d.Access.FieldSalt != "" || d.Access.Envelope == "" {
		t.Errorf("the answer's access event shows its body: %+v", d.Access)
	}
	accData, err := s.srv.Log().ReadLeaf(ctx, d.Access.Index, s.size(t))
	if err != nil {
		t.Fatal(err)
	}
	acc, err := event.ParseLeaf(accData)
	if err != nil || acc.ID != d.Access.ID || acc.Actor.ID != "token."+aud.ID ||
		!reflect.DeepEqual(acc.Attributes["access.fields"], []any{"model"}) ||
		!reflect.DeepEqual(acc.Attributes["access.body_fields"], []any{"kind", `attributes["gen_ai.request.model"]`}) {
		t.Fatalf("access event = %+v (%v)", acc, err)
	}

	// Body fields alone.
	code, only, _ := s.do(t, "GET", path(ev.Index, url.Values{"body": {"kind"}}), audTok, nil)
	if code != 200 {
		t.Fatalf("body only = %d %s", code, only)
	}
	od, _ := api.ParseDisclosure(only)
	if v, err := rv.VerifyDisclosure(od); err != nil || v.Body.Claims["kind"] != "llm.request" || len(v.Fields.Fields) != 0 || len(od.SD) != 0 {
		t.Fatalf("body only: %v, %v", v, err)
	}
	if bytes.Contains(only, []byte("gpt-4o")) {
		t.Error("a body-only disclosure shows the model")
	}

	// Tampering.
	edit := func(f func(*api.DisclosureResponse)) *api.DisclosureResponse {
		c, _ := api.ParseDisclosure(body)
		f(c)
		return c
	}
	named := func(d *api.DisclosureResponse, name string) int {
		for i, enc := range d.BodyDisclosures {
			raw, _ := base64.RawURLEncoding.DecodeString(enc)
			var a []any
			json.Unmarshal(raw, &a)
			if len(a) == 3 && a[1] == name {
				return i
			}
		}
		t.Fatalf("no body disclosure of %s", name)
		return -1
	}
	reencode := func(enc string, f func([]any)) string {
		raw, _ := base64.RawURLEncoding.DecodeString(enc)
		var a []any
		json.Unmarshal(raw, &a)
		f(a)
		b, _ := json.Marshal(a)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	for _, c := range []struct {
		name string
		d    *api.DisclosureResponse
		want error
	}{
		{"changed kind", edit(func(d *api.DisclosureResponse) {
			i := named(d, "kind")
			d.BodyDisclosures[i] = reencode(d.BodyDisclosures[i], func(a []any) { a[2] = "agent.decision" })
		}), disclosure.ErrUnreferenced},
		{"changed payload sd", edit(func(d *api.DisclosureResponse) {
			i := named(d, "sd")
			d.BodyDisclosures[i] = reencode(d.BodyDisclosures[i], func(a []any) { a[2] = "00" + a[2].(string)[2:] })
		}), disclosure.ErrUnreferenced},
		{"dropped body digest", edit(func(d *api.DisclosureResponse) { d.BodySD = d.BodySD[1:] }), disclosure.ErrRoot},
		{"id hidden", edit(func(d *api.DisclosureResponse) {
			i := named(d, "id")
			d.BodyDisclosures = append(d.BodyDisclosures[:i], d.BodyDisclosures[i+1:]...)
		}), api.ErrDisclosureEntry},
		{"another id named", edit(func(d *api.DisclosureResponse) { d.ID = "00000000000000000000000000000000" }), api.ErrDisclosureEntry},
		{"body disclosures with the body", edit(func(d *api.DisclosureResponse) {
			d.Receipt.Leaf = []byte("{}")
		}), api.ErrReceiptLeafHash},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := rv.VerifyDisclosure(c.d); !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}

	// Refusals, with nothing appended.
	before = s.size(t)
	for _, c := range []struct {
		name string
		q    url.Values
		code int
	}{
		{"no such body field", url.Values{"body": {"temperature"}}, 404},
		{"bad body field", url.Values{"body": {`attributes["a`}}, 400},
		{"body twice", url.Values{"body": {"kind", "seq"}}, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			if code, b, _ := s.do(t, "GET", path(ev.Index, c.q), audTok, nil); code != c.code {
				t.Errorf("= %d %s, want %d", code, b, c.code)
			}
		})
	}
	if n := s.countKind(t, before, "access.read"); n != 0 {
		t.Fatalf("refused disclosures appended %d access.read events", n)
	}

	// A log of leaf version 3 commits to no body field.
	s3 := newTestServer(t, func(c *Config) { c.LeafVersion = event.LeafVersionEnvelope })
	ev3 := s3.post(t, "d", "llm.request", json.RawMessage(disclosureRequest))
	if code, b, _ := s3.do(t, "GET", path(ev3.Index, url.Values{"body": {"kind"}}), s3.admin, nil); code != 409 || !bytes.Contains(b, []byte("no_body_commitment")) {
		t.Errorf("body fields of a version 3 log = %d %s, want 409 no_body_commitment", code, b)
	}
}

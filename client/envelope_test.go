package client_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestAppendChecksTenantTag is the attack of an operator who writes a
// tenant's event under a tag its auditor does not look for: a writer with
// the tenant key (client.WithTenantKey) refuses a write answer whose
// envelope carries another tag, or none, with ErrWrongTag. An honest
// answer passes; so does any answer for a writer without the key (the
// envelope is still checked against the event). On logs of leaf version
// 3 and 4.
func TestAppendChecksTenantTag(t *testing.T) {
	for _, v := range []int{event.LeafVersionEnvelope, event.LeafVersionFields} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) { testAppendChecksTenantTag(t, v) })
	}
}

func testAppendChecksTenantTag(t *testing.T, v int) {
	s := servertest.Start(t, func(c *server.Config) { c.LeafVersion = v })
	ctx := context.Background()
	const tenant = "bank-alpha"
	auditor := s.Client(s.Token(auth.Spec{Name: "auditor", Tenant: tenant, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}}))
	key, err := auditor.TenantKey(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	writer := s.Token(auth.Spec{Name: "writer", Tenant: tenant, Scopes: []string{auth.ScopeWrite}})

	// The operator's server, between the writer and the log: it rewrites
	// the envelope of every write answer as mode says.
	mode := "honest"
	target, _ := url.Parse(s.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method != http.MethodPost || mode == "honest" {
			return nil
		}
		var ev api.EventResponse
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			return err
		}
		r.Body.Close()
		switch mode {
		case "retag":
			raw, _ := base64.StdEncoding.DecodeString(ev.Envelope)
			e, err := event.ParseEnvelope(raw)
			if err != nil {
				return err
			}
			e.Tag = [event.TagSize]byte{1, 2, 3} // a tag no tenant's key makes
			ev.Envelope = base64.StdEncoding.EncodeToString(e.Marshal())
		case "drop":
			ev.Envelope = ""
		}
		b, _ := json.Marshal(ev)
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		r.Header.Del("Content-Length")
		return nil
	}
	ps := httptest.NewServer(rp)
	defer ps.Close()

	newClient := func(opts ...client.Option) *client.Client {
		c, err := client.New(ps.URL, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ev := func() []*event.Request {
		return []*event.Request{{Session: "s1", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "a1"}}}
	}
	withKey := newClient(client.WithToken(writer), client.WithTenantKey(key))
	w, err := withKey.Append(ctx, ev())
	if err != nil {
		t.Fatalf("honest answer: %v", err)
	}
	if _, err := event.OpenEnvelope(w[0].Envelope, w[0].Leaf, &key); err != nil {
		t.Errorf("the written envelope does not open with the tenant key: %v", err)
	}
	for _, m := range []string{"retag", "drop"} {
		mode = m
		if _, err := withKey.Append(ctx, ev()); !errors.Is(err, client.ErrWrongTag) {
			t.Errorf("%s: Append = %v, want ErrWrongTag", m, err)
		}
	}
	// Another tenant's key is a wrong tag too.
	mode = "honest"
	otherKey, err := s.Client(s.Admin).TenantKey(ctx, "clinic-bravo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(client.WithToken(writer), client.WithTenantKey(otherKey)).Append(ctx, ev()); !errors.Is(err, client.ErrWrongTag) {
		t.Errorf("another tenant's key: Append = %v, want ErrWrongTag", err)
	}
	// Without the key the retagged answer is not caught (the tag is what
	// only the key checks); the envelope must still commit to the event.
	mode = "retag"
	if _, err := newClient(client.WithToken(writer)).Append(ctx, ev()); err != nil {
		t.Errorf("no key: Append = %v", err)
	}
}

// TestAppendChecksFields is the attack of an operator who commits, in a
// log of leaf version 4, to other fields than the event's (so that a
// disclosure of its kind or an attribute would show what the event does
// not say): a writer refuses a write answer whose field salt, or whose
// envelope's field commitment, does not open to the event's fields, with
// ErrWrongLeaf, with or without the tenant key. An honest answer passes,
// and its fields open with its salt.
func TestAppendChecksFields(t *testing.T) {
	s := servertest.Start(t, func(c *server.Config) { c.LeafVersion = event.LeafVersionFields })
	ctx := context.Background()
	const tenant = "bank-alpha"
	auditor := s.Client(s.Token(auth.Spec{Name: "auditor", Tenant: tenant, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}}))
	key, err := auditor.TenantKey(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	writer := s.Token(auth.Spec{Name: "writer", Tenant: tenant, Scopes: []string{auth.ScopeWrite}})

	// The operator's server, between the writer and the log: it rewrites
	// the field salt or the envelope of every write answer as mode says.
	mode := "honest"
	target, _ := url.Parse(s.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method != http.MethodPost || mode == "honest" {
			return nil
		}
		var ev api.EventResponse
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			return err
		}
		r.Body.Close()
		raw, _ := base64.StdEncoding.DecodeString(ev.Envelope)
		e, err := event.ParseEnvelope(raw)
		if err != nil {
			return err
		}
		salt, _ := base64.StdEncoding.DecodeString(ev.FieldSalt)
		switch mode {
		case "salt":
			salt[0] ^= 1
		case "drop salt":
			salt = nil
		case "fields":
			e.Fields[0] ^= 1
		case "fields of another body":
			// The commitment to another event's fields, with its salt.
			leaf, _ := base64.StdEncoding.DecodeString(ev.Leaf)
			other := bytes.Replace(leaf, []byte(`"tool.call"`), []byte(`"tool.result"`), 1)
			if e.Fields, err = event.BodyFields(salt, other); err != nil {
				return err
			}
		}
		ev.Envelope = base64.StdEncoding.EncodeToString(e.Marshal())
		ev.FieldSalt = base64.StdEncoding.EncodeToString(salt)
		b, _ := json.Marshal(ev)
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		r.Header.Del("Content-Length")
		return nil
	}
	ps := httptest.NewServer(rp)
	defer ps.Close()

	ev := func() []*event.Request {
		return []*event.Request{{Session: "s1", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "a1"}}}
	}
	for name, opts := range map[string][]client.Option{
		"tenant key": {client.WithToken(writer), client.WithTenantKey(key)},
		"no key":     {client.WithToken(writer)},
	} {
		c, err := client.New(ps.URL, opts...)
		if err != nil {
			t.Fatal(err)
		}
		mode = "honest"
		w, err := c.Append(ctx, ev())
		if err != nil {
			t.Fatalf("%s: honest answer: %v", name, err)
		}
		e, err := event.OpenEnvelope(w[0].Envelope, w[0].Leaf, &key)
		if err != nil || !e.HasFields || len(w[0].FieldSalt) == 0 || event.CheckFields(&e, w[0].Leaf, w[0].FieldSalt) != nil {
			t.Fatalf("%s: the written envelope is not of version 4, or its fields do not open with its salt: %v", name, err)
		}
		for _, m := range []string{"salt", "drop salt", "fields", "fields of another body"} {
			mode = m
			if _, err := c.Append(ctx, ev()); !errors.Is(err, client.ErrWrongLeaf) {
				t.Errorf("%s, %s: Append = %v, want ErrWrongLeaf", name, m, err)
			}
		}
	}
}

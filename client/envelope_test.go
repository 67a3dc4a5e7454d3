package client_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
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
// envelope is still checked against the event).
func TestAppendChecksTenantTag(t *testing.T) {
	s := servertest.Start(t, func(c *server.Config) { c.LeafVersion = event.LeafVersionEnvelope })
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

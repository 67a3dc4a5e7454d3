package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

type testLog struct {
	srv   *server.Server
	hs    *httptest.Server
	key   note.Verifier
	admin *client.Client
	token string
}

func newTestLog(t *testing.T) *testLog {
	t.Helper()
	return newTestLogWith(t, server.Config{})
}

// newTestLogWith runs a server with cfg (its data directory, checkpoint
// interval and logger set here) behind an httptest server.
func newTestLogWith(t *testing.T, cfg server.Config) *testLog {
	t.Helper()
	fx := servertest.Start(t, func(c *server.Config) {
		cfg.DataDir, cfg.CheckpointInterval, cfg.Logger = c.DataDir, c.CheckpointInterval, c.Logger
		*c = cfg
	})
	key, err := checkpoint.NewVerifier(fx.Srv.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{srv: fx.Srv, hs: fx.HS, key: key, token: fx.Admin}
	l.admin = l.client(t, l.token)
	return l
}

func (l *testLog) client(t *testing.T, token string) *client.Client {
	c, err := client.New(l.hs.URL, client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ev(session, kind string, payload string) *event.Request {
	r := &event.Request{Session: session, Kind: kind, Actor: event.Actor{Type: "agent", ID: "bot"}}
	if payload != "" {
		r.Payload = json.RawMessage(payload)
	}
	return r
}

func TestAppendAndRead(t *testing.T) {
	l := newTestLog(t)
	ctx := context.Background()
	one, err := l.admin.Append(ctx, []*event.Request{ev("s1", "llm.request", `{"q":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	// Entry 0 is the server's record of the admin token's creation.
	if len(one) != 1 || one[0].Index != 1 || one[0].Seq != 0 || one[0].Session != "s1" {
		t.Fatalf("Append = %+v", one)
	}
	many, err := l.admin.Append(ctx, []*event.Request{ev("s1", "llm.response", `{"a":2}`), ev("s2", "tool.call", "")}, client.WaitForCheckpoint())
	if err != nil {
		t.Fatal(err)
	}
	if len(many) != 2 || many[0].Seq != 1 || many[1].Seq != 0 || many[0].Receipt == nil || many[1].Receipt == nil {
		t.Fatalf("batch = %+v", many)
	}
	v := api.NewReceiptVerifier(l.key, nil)
	for _, w := range many {
		vr, err := v.Verify(w.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		if vr.Index != w.Index {
			t.Fatalf("receipt for %d verifies index %d", w.Index, vr.Index)
		}
	}

	// Entry and consistency, verified against checkpoints.
	rc, err := l.admin.Entry(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(rc); err != nil {
		t.Fatal(err)
	}
	small, err := l.admin.Entry(ctx, 0, 1)
	if err != nil || small.TreeSize != 1 {
		t.Fatalf("Entry(0, size 1) = %+v, %v", small, err)
	}
	cp, _, err := checkpoint.Verify([]byte(rc.Checkpoint), l.key)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.admin.Consistency(ctx, 1, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	root1 := rfc6962.DefaultHasher.HashLeaf(rc.Leaf) // the tree of size 1: entry 0
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 1, cp.Size, p, root1, cp.Hash); err != nil {
		t.Fatalf("consistency proof: %v", err)
	}

	// Session listing and an audited disclosure.
	page, err := l.admin.Session(ctx, "s1", client.SessionQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 2 || page.Events[1].Index != many[0].Index || page.Events[1].Kind != "llm.response" {
		t.Fatalf("Session = %+v", page)
	}
	d, err := l.admin.Payload(ctx, many[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Payload) != `{"a":2}` || d.Access.Index <= many[1].Index || string(d.LeafHash) != string(many[0].LeafHash) {
		t.Fatalf("Payload = %+v", d)
	}

	// Tiles through the client's reader.
	tl := l.admin.Tiles()
	raw, err := tl.ReadCheckpoint(ctx)
	if err != nil || !strings.HasPrefix(string(raw), l.key.Name()+"\n") {
		t.Fatalf("ReadCheckpoint = %q, %v", raw, err)
	}
	now, _, err := checkpoint.Verify(raw, l.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tl.ReadEntryBundle(ctx, 0, uint8(now.Size)); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.ReadTile(ctx, 5, 0, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing tile: %v, want fs.ErrNotExist", err)
	}
}

func TestErrorsMatchSentinels(t *testing.T) {
	l := newTestLog(t)
	ctx := context.Background()
	anon := l.client(t, "")
	bogus := l.client(t, "lat_bogus")
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"no token", func() error { _, err := anon.Append(ctx, []*event.Request{ev("s", "a.b", "")}); return err }(), client.ErrUnauthenticated},
		{"unknown token", func() error { _, err := bogus.Session(ctx, "s", client.SessionQuery{}); return err }(), client.ErrUnauthenticated},
		{"invalid event", func() error { _, err := l.admin.Append(ctx, []*event.Request{ev("s", "BAD", "")}); return err }(), event.ErrInvalidEvent},
		{"no session", func() error { _, err := l.admin.Session(ctx, "nope", client.SessionQuery{}); return err }(), client.ErrNotFound},
		{"not published", func() error { _, err := l.admin.Entry(ctx, 100, 0); return err }(), client.ErrNotPublished},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ce *client.Error
			if !errors.Is(tc.err, tc.want) || !errors.As(tc.err, &ce) {
				t.Fatalf("err = %v, want %v as *client.Error", tc.err, tc.want)
			}
		})
	}
}

// TestAppendChecksTheAnswer serves answers a log must never give: the
// client refuses them.
func TestAppendChecksTheAnswer(t *testing.T) {
	l := newTestLog(t)
	good, err := l.admin.Append(context.Background(), []*event.Request{ev("s", "llm.request", "")})
	if err != nil {
		t.Fatal(err)
	}
	resp := api.NewEventResponse(good[0].Appended)
	for _, tc := range []struct {
		name string
		mod  func(r *api.EventResponse)
	}{
		{"leaf hash of another leaf", func(r *api.EventResponse) { r.LeafHash = strings.Repeat("0", 64) }},
		{"another id", func(r *api.EventResponse) { r.ID = "x" }},
		{"another seq", func(r *api.EventResponse) { r.Seq = 3 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := resp
			tc.mod(&r)
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				w.WriteHeader(http.StatusCreated)
				json.NewEncoder(w).Encode(r)
			}))
			defer hs.Close()
			c, _ := client.New(hs.URL)
			if _, err := c.Append(context.Background(), []*event.Request{ev("s", "llm.request", "")}); !errors.Is(err, client.ErrWrongLeaf) {
				t.Fatalf("Append = %v, want ErrWrongLeaf", err)
			}
		})
	}
}

func TestHTTPClientAddsTokenOnlyForTheLog(t *testing.T) {
	var got []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = append(got, r.Header.Get("Authorization")) }))
	defer hs.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = append(got, r.Header.Get("Authorization")) }))
	defer other.Close()
	c, _ := client.New(hs.URL, client.WithToken("tok"))
	hc := c.HTTPClient()
	for _, u := range []string{hs.URL + "/checkpoint", other.URL + "/x"} {
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if len(got) != 2 || got[0] != "Bearer tok" || got[1] != "" {
		t.Fatalf("Authorization headers = %q, want the token for the log only", got)
	}
}

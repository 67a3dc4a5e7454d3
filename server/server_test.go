package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

type testServer struct {
	srv   *Server
	ts    *httptest.Server
	dir   string
	admin string
}

func newTestServer(t testing.TB, mod func(*Config)) *testServer {
	t.Helper()
	return newTestServerIn(t, t.TempDir(), func(c *Config) {
		c.CheckpointInterval = 100 * time.Millisecond
		if mod != nil {
			mod(c)
		}
	})
}

// newTestServerIn opens a server on dir (checkpoints every 200 ms, and
// mod's changes), serves it until the test ends, and reads its admin
// token.
func newTestServerIn(t testing.TB, dir string, mod func(*Config)) *testServer {
	t.Helper()
	cfg := Config{DataDir: dir, CheckpointInterval: 200 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := newHTTPTest(t, srv)
	tok, err := os.ReadFile(filepath.Join(cfg.DataDir, AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{srv: srv, ts: ts, dir: cfg.DataDir, admin: strings.TrimSpace(string(tok))}
}

// newHTTPTest serves srv on a loopback port until the test ends, then shuts
// the log down cleanly.
func newHTTPTest(t testing.TB, srv *Server) *httptest.Server {
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close: %v", err)
		}
	})
	return ts
}

func (s *testServer) do(t testing.TB, method, path, token string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, s.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func (s *testServer) post(t testing.TB, session, kind string, payload any) api.EventResponse {
	t.Helper()
	ev := map[string]any{"session": session, "kind": kind, "actor": map[string]string{"type": "agent", "id": "bot"}}
	if payload != nil {
		ev["payload"] = payload
	}
	b, _ := json.Marshal(ev)
	code, body, _ := s.do(t, "POST", "/v1/events", s.admin, b)
	if code != http.StatusCreated {
		t.Fatalf("POST /v1/events = %d %s", code, body)
	}
	var r api.EventResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// size is the log's size once every event acknowledged so far is in it.
func (s *testServer) size(t testing.TB) uint64 {
	if err := s.srv.Log().WaitIndexed(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, err := s.srv.Log().Reader().IntegratedSize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBadInputAppendsNothing(t *testing.T) {
	s := newTestServer(t, func(c *Config) { c.MaxBodyBytes = 2048 })
	ctx := context.Background()
	readTok, _, err := s.srv.Tokens().Create(ctx, auth.Spec{Name: "reader", Tenant: DefaultTenant, Scopes: []string{auth.ScopeRead}})
	if err != nil {
		t.Fatal(err)
	}
	// The token's creation goes into the log before the bad requests.
	if err := s.srv.gov.RecordTokens(ctx); err != nil {
		t.Fatal(err)
	}
	before := s.size(t)
	valid := `{"session":"s1","kind":"llm.request","actor":{"type":"agent","id":"a"}}`
	for _, tc := range []struct {
		name   string
		path   string
		token  string
		body   string
		status int
		code   string
	}{
		{"malformed json", "/v1/events", s.admin, `{"session":`, 400, "invalid_event"},
		{"unknown field", "/v1/events", s.admin, `{"session":"s","kind":"a.b","actor":{"type":"agent","id":"a"},"x":1}`, 400, "invalid_event"},
		{"missing session", "/v1/events", s.admin, `{"kind":"a.b","actor":{"type":"agent","id":"a"}}`, 400, "invalid_event"},
		{"missing kind", "/v1/events", s.admin, `{"session":"s","actor":{"type":"agent","id":"a"}}`, 400, "invalid_event"},
		{"invalid utf8", "/v1/events", s.admin, "{\"session\":\"s\",\"kind\":\"a.b\",\"actor\":{\"type\":\"agent\",\"id\":\"a\xc3\x28\"}}", 400, "invalid_event"},
		{"forced seq", "/v1/events", s.admin, `{"session":"s","kind":"a.b","actor":{"type":"agent","id":"a"},"seq":3}`, 400, "invalid_event"},
		{"oversize", "/v1/events", s.admin, `{"session":"s","kind":"a.b","actor":{"type":"agent","id":"a"},"payload":"` + strings.Repeat("x", 4096) + `"}`, 413, "body_too_large"},
		{"no token", "/v1/events", "", valid, 401, "unauthenticated"},
		{"wrong token", "/v1/events", "lat_nope", valid, 401, "unauthenticated"},
		{"read-only token", "/v1/events", readTok, valid, 403, "forbidden"},
		{"bad wait", "/v1/events?wait=forever", s.admin, valid, 400, "bad_query"},
		{"batch one bad", "/v1/events:batch", s.admin, `{"events":[` + valid + `,{"session":"s"}]}`, 400, "invalid_event"},
		{"batch empty", "/v1/events:batch", s.admin, `{"events":[]}`, 400, "invalid_event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, hdr := s.do(t, "POST", tc.path, tc.token, []byte(tc.body))
			if code != tc.status {
				t.Fatalf("status = %d (%s), want %d", code, body, tc.status)
			}
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("body = %s, want JSON error with code %q", body, tc.code)
			}
			if code == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if n := s.size(t); n != before {
		t.Fatalf("log size after only bad requests = %d, want %d", n, before)
	}
}

func TestSessionChainAndListing(t *testing.T) {
	s := newTestServer(t, nil)
	var evs []api.EventResponse
	for i := range 5 {
		evs = append(evs, s.post(t, "chain", "tool.call", map[string]int{"i": i}))
		s.post(t, "other", "tool.call", nil) // interleave another session
	}
	var prev string
	for i, e := range evs {
		leafBytes, _ := base64.StdEncoding.DecodeString(e.Leaf)
		l, err := event.ParseLeaf(leafBytes)
		if err != nil {
			t.Fatal(err)
		}
		if l.Seq != uint64(i) || e.Seq != uint64(i) {
			t.Errorf("event %d: seq %d/%d", i, l.Seq, e.Seq)
		}
		if l.Prev != prev {
			t.Errorf("event %d: prev %q, want %q", i, l.Prev, prev)
		}
		if got := hex.EncodeToString(event.LeafHash(leafBytes)); got != e.LeafHash {
			t.Errorf("event %d: leaf_hash %s does not hash the returned leaf (%s)", i, e.LeafHash, got)
		}
		prev = e.LeafHash
	}
	code, body, _ := s.do(t, "GET", "/v1/sessions/chain", s.admin, nil)
	if code != 200 {
		t.Fatalf("GET session = %d %s", code, body)
	}
	var got struct {
		Events []api.SessionEntry
	}
	json.Unmarshal(body, &got)
	if len(got.Events) != 5 {
		t.Fatalf("session has %d events, want 5", len(got.Events))
	}
	for i, e := range got.Events {
		if e.Index != evs[i].Index || e.LeafHash != evs[i].LeafHash || e.Seq != uint64(i) {
			t.Errorf("session event %d = %+v, want index %d hash %s", i, e, evs[i].Index, evs[i].LeafHash)
		}
	}
	// Another tenant's reader does not see it.
	tok, _, _ := s.srv.Tokens().Create(context.Background(), auth.Spec{Name: "r2", Tenant: "tenant-b", Scopes: []string{auth.ScopeRead}})
	if code, body, _ := s.do(t, "GET", "/v1/sessions/chain", tok, nil); code != 404 {
		t.Errorf("other tenant reading session = %d %s, want 404", code, body)
	}
}

func TestBatchIsChainedInOrder(t *testing.T) {
	s := newTestServer(t, nil)
	s.post(t, "b", "llm.request", nil)
	body := `{"events":[
 {"session":"b","kind":"llm.response","actor":{"type":"agent","id":"a"}},
 {"session":"c","kind":"tool.call","actor":{"type":"agent","id":"a"}},
 {"session":"b","kind":"tool.call","actor":{"type":"agent","id":"a"},"payload":[1,2]}]}`
	code, b, _ := s.do(t, "POST", "/v1/events:batch", s.admin, []byte(body))
	if code != 201 {
		t.Fatalf("batch = %d %s", code, b)
	}
	var out struct{ Events []api.EventResponse }
	json.Unmarshal(b, &out)
	if len(out.Events) != 3 {
		t.Fatalf("got %d results", len(out.Events))
	}
	if out.Events[0].Seq != 1 || out.Events[1].Seq != 0 || out.Events[2].Seq != 2 {
		t.Fatalf("seqs = %d %d %d, want 1 0 2", out.Events[0].Seq, out.Events[1].Seq, out.Events[2].Seq)
	}
	l, _ := base64.StdEncoding.DecodeString(out.Events[2].Leaf)
	leaf, _ := event.ParseLeaf(l)
	if leaf.Prev != out.Events[0].LeafHash {
		t.Fatalf("third event's prev = %s, want first event's hash %s", leaf.Prev, out.Events[0].LeafHash)
	}
}

func TestPayloadReadIsAudited(t *testing.T) {
	s := newTestServer(t, nil)
	ctx := context.Background()
	payload := map[string]any{"messages": []any{map[string]string{"role": "user", "content": "Patient 4711 has a fever"}}}
	ev := s.post(t, "p", "llm.request", payload)
	audTok, aud, _ := s.srv.Tokens().Create(ctx, auth.Spec{Name: "auditor-1", Tenant: DefaultTenant, Scopes: []string{auth.ScopeAudit}})
	wTok, _, _ := s.srv.Tokens().Create(ctx, auth.Spec{Name: "writer", Tenant: DefaultTenant, Scopes: []string{auth.ScopeWrite}})
	otherTok, _, _ := s.srv.Tokens().Create(ctx, auth.Spec{Name: "aud-b", Tenant: "tenant-b", Scopes: []string{auth.ScopeAudit}})

	path := fmt.Sprintf("/v1/events/%d/payload", ev.Index)
	if code, _, _ := s.do(t, "GET", path, wTok, nil); code != 403 {
		t.Errorf("write-scope payload read = %d, want 403", code)
	}
	if code, _, _ := s.do(t, "GET", path, otherTok, nil); code != 404 {
		t.Errorf("other tenant payload read = %d, want 404", code)
	}
	before := s.size(t)
	code, body, _ := s.do(t, "GET", path, audTok, nil)
	if code != 200 {
		t.Fatalf("payload read = %d %s", code, body)
	}
	var pr api.PayloadResponse
	if err := json.Unmarshal(body, &pr); err != nil {
		t.Fatal(err)
	}
	// The auditor checks the commitment against the leaf, independently.
	leafBytes, _ := base64.StdEncoding.DecodeString(ev.Leaf)
	leaf, _ := event.ParseLeaf(leafBytes)
	pl, _ := base64.StdEncoding.DecodeString(pr.PayloadBase64)
	salt, _ := hex.DecodeString(pr.Salt)
	if !event.CheckCommitment(leaf.Payload, salt, pl) {
		t.Fatal("disclosed payload and salt do not open the leaf's commitment")
	}
	want, _ := json.Marshal(payload)
	if string(pl) != string(want) {
		t.Fatalf("payload = %s, want %s", pl, want)
	}
	// The read was appended as access.read before it was answered.
	if after := s.size(t); after != before+1 {
		t.Fatalf("log grew from %d to %d, want one access.read event", before, after)
	}
	accLeaf, _ := base64.StdEncoding.DecodeString(pr.Access.Leaf)
	acc, err := event.ParseLeaf(accLeaf)
	if err != nil || acc.Kind != "access.read" || acc.Actor.ID != "token."+aud.ID || fmt.Sprint(acc.Attributes["access.index"]) != fmt.Sprint(ev.Index) {
		t.Fatalf("access event = %+v (%v)", acc, err)
	}
	// Erasure makes the payload unreadable (410) while the leaf stays.
	if _, err := s.srv.Vault().EraseSession(ctx, DefaultTenant, "p"); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := s.do(t, "GET", path, audTok, nil); code != 410 {
		t.Fatalf("read after erasure = %d %s, want 410", code, body)
	}
}

// TestTesseraClientVerifies reads the running server with Tessera's own
// client package and checks checkpoints, inclusion and consistency with the
// merkle proof package, then re-hashes every entry bundle into the root.
func TestTesseraClientVerifies(t *testing.T) {
	s := newTestServer(t, nil)
	ctx := context.Background()
	var first []api.EventResponse
	for i := range 300 { // crosses an entry-bundle boundary (256)
		first = append(first, s.post(t, fmt.Sprintf("s%d", i%7), "llm.request", map[string]int{"i": i}))
	}
	u, _ := url.Parse(s.ts.URL + "/")
	// A private log: Tessera's fetcher reads through an http.Client that
	// adds the (global read) token.
	lc, err := client.New(s.ts.URL, client.WithToken(s.admin))
	if err != nil {
		t.Fatal(err)
	}
	f, err := tclient.NewHTTPFetcher(u, lc.HTTPClient())
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(s.srv.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	waitCP := func(size uint64) []byte {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			cp, raw, _, err := tclient.FetchCheckpoint(ctx, f.ReadCheckpoint, v, v.Name())
			if err == nil && cp.Size >= size {
				return raw
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of size >= %d: %v", size, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	raw1 := waitCP(first[len(first)-1].Index + 1) // the log begins with the admin token's creation
	cp1, _, err := checkpoint.Verify(raw1, v)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := tclient.NewProofBuilder(ctx, cp1.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 255, 256, 299} {
		e := first[i]
		p, err := pb.InclusionProof(ctx, e.Index)
		if err != nil {
			t.Fatal(err)
		}
		lh, _ := hex.DecodeString(e.LeafHash)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, e.Index, cp1.Size, lh, p, cp1.Hash); err != nil {
			t.Fatalf("inclusion of %d: %v", e.Index, err)
		}
	}
	// Full re-hash of every entry bundle reproduces the root.
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for bi := uint64(0); bi*layout.EntryBundleWidth < cp1.Size; bi++ {
		b, err := tclient.GetEntryBundle(ctx, f.ReadEntryBundle, bi, cp1.Size)
		if err != nil {
			t.Fatal(err)
		}
		for j, e := range b.Entries {
			if bi*layout.EntryBundleWidth+uint64(j) >= cp1.Size {
				break
			}
			if err := r.Append(rfc6962.DefaultHasher.HashLeaf(e), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, cp1.Hash) {
		t.Fatalf("re-hashed root %x != checkpoint root %x", root, cp1.Hash)
	}

	// Grow, then prove consistency, both with Tessera's proof builder and
	// with the server's /v1/proof/consistency.
	for i := range 40 {
		s.post(t, "late", "tool.result", map[string]int{"i": i})
	}
	raw2 := waitCP(cp1.Size + 40)
	cp2, _, _ := checkpoint.Verify(raw2, v)
	pb2, _ := tclient.NewProofBuilder(ctx, cp2.Size, f.ReadTile)
	cproof, err := pb2.ConsistencyProof(ctx, cp1.Size, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp1.Size, cp2.Size, cproof, cp1.Hash, cp2.Hash); err != nil {
		t.Fatalf("consistency: %v", err)
	}
	code, body, _ := s.do(t, "GET", fmt.Sprintf("/v1/proof/consistency?from=%d&to=%d", cp1.Size, cp2.Size), "", nil)
	if code != 200 {
		t.Fatalf("consistency endpoint = %d %s", code, body)
	}
	var cr struct{ Proof [][]byte }
	json.Unmarshal(body, &cr)
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp1.Size, cp2.Size, cr.Proof, cp1.Hash, cp2.Hash); err != nil {
		t.Fatalf("server consistency proof: %v", err)
	}
	// Entry endpoint at an older size.
	code, body, _ = s.do(t, "GET", fmt.Sprintf("/v1/entries/%d?size=%d", first[10].Index, cp1.Size), s.admin, nil)
	if code != 200 {
		t.Fatalf("entry endpoint = %d %s", code, body)
	}
	var rc api.Receipt
	json.Unmarshal(body, &rc)
	lh, _ := hex.DecodeString(first[10].LeafHash)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, rc.Index, cp1.Size, lh, rc.InclusionProof, cp1.Hash); err != nil {
		t.Fatalf("entry endpoint proof at size %d: %v", cp1.Size, err)
	}
	if code, _, _ := s.do(t, "GET", "/v1/entries/999999", s.admin, nil); code != 404 {
		t.Errorf("entry beyond log = %d, want 404", code)
	}
	// Tile caching headers and 404s: hash tiles are public, entry bundles
	// private (only the reader may cache them).
	for _, tc := range []struct{ path, token, cache string }{
		{"/tile/0/000", "", "public, max-age=31536000, immutable"},
		{"/tile/entries/000", s.admin, "private, max-age=31536000, immutable"},
		{"/checkpoint", "", "no-cache"},
	} {
		code, _, h := s.do(t, "GET", tc.path, tc.token, nil)
		if code != 200 || h.Get("Cache-Control") != tc.cache {
			t.Errorf("GET %s = %d Cache-Control %q, want 200 and %q", tc.path, code, h.Get("Cache-Control"), tc.cache)
		}
	}
	for _, p := range []string{"/tile/0/x999/000", "/tile/entries/500", "/tile/5/000"} {
		if code, _, _ := s.do(t, "GET", p, s.admin, nil); code != 404 {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
}

func TestWaitCheckpointReceipt(t *testing.T) {
	s := newTestServer(t, nil)
	b := []byte(`{"session":"r","kind":"agent.decision","actor":{"type":"human","id":"dr.who"},"attributes":{"decision.outcome":"approved"}}`)
	code, body, _ := s.do(t, "POST", "/v1/events?wait=checkpoint", s.admin, b)
	if code != 201 {
		t.Fatalf("= %d %s", code, body)
	}
	var r api.EventResponse
	json.Unmarshal(body, &r)
	if r.Receipt == nil {
		t.Fatalf("no receipt: %s", body)
	}
	v, _ := checkpoint.NewVerifier(s.srv.VerifierKey())
	cp, _, err := checkpoint.Verify([]byte(r.Receipt.Checkpoint), v)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := base64.StdEncoding.DecodeString(r.Leaf)
	if !bytes.Equal(leaf, r.Receipt.Leaf) {
		t.Fatal("receipt leaf differs from response leaf")
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.Receipt.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(r.Receipt.Leaf), r.Receipt.InclusionProof, cp.Hash); err != nil {
		t.Fatalf("receipt does not verify: %v", err)
	}
	// A tampered leaf must not verify with the same proof.
	bad := bytes.Replace(r.Receipt.Leaf, []byte("approved"), []byte("rejected"), 1)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.Receipt.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(bad), r.Receipt.InclusionProof, cp.Hash); err == nil {
		t.Fatal("tampered leaf verified")
	}
}

func TestConcurrentSessionsStayChained(t *testing.T) {
	s := newTestServer(t, nil)
	var wg sync.WaitGroup
	const writers, per = 16, 20
	for w := range writers {
		wg.Go(func() {
			for range per {
				// Two writers share each session to force contention.
				s.post(t, fmt.Sprintf("cs%d", w%8), "tool.call", nil)
			}
		})
	}
	wg.Wait()
	for i := range 8 {
		_, body, _ := s.do(t, "GET", fmt.Sprintf("/v1/sessions/cs%d", i), s.admin, nil)
		var got struct{ Events []api.SessionEntry }
		json.Unmarshal(body, &got)
		if len(got.Events) != 2*per {
			t.Fatalf("session cs%d has %d events, want %d", i, len(got.Events), 2*per)
		}
		prev := ""
		for j, e := range got.Events {
			data, err := s.srv.Log().ReadLeaf(context.Background(), e.Index, s.size(t))
			if err != nil {
				t.Fatal(err)
			}
			l, _ := event.ParseLeaf(data)
			if l.Seq != uint64(j) || l.Prev != prev {
				t.Fatalf("session cs%d event %d: seq %d prev %q, want %d %q", i, j, l.Seq, l.Prev, j, prev)
			}
			prev = e.LeafHash
		}
	}
}

func TestInsecureKeyRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background())
	for _, f := range []string{LogKeyFile, MasterKeyFile, AdminToken} {
		t.Run(f, func(t *testing.T) {
			p := filepath.Join(dir, f)
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(p, 0o600)
			_, err := Open(context.Background(), Config{DataDir: dir})
			if err == nil || !strings.Contains(err.Error(), "0600") {
				t.Fatalf("Open with %s mode 0644 = %v, want a 0600 error", f, err)
			}
		})
	}
	// Wrong origin for an existing key.
	if _, err := Open(context.Background(), Config{DataDir: dir, Origin: "other.example/log"}); err == nil {
		t.Fatal("Open with a different origin succeeded")
	}
}

// The session index is derived data: deleting it loses nothing.
func TestIndexRebuiltFromLog(t *testing.T) {
	dir := t.TempDir()
	open := func() (*Server, *httptest.Server) {
		srv, err := Open(context.Background(), Config{DataDir: dir, CheckpointInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return srv, httptest.NewServer(srv.Handler())
	}
	srv, ts := open()
	tok, _ := os.ReadFile(filepath.Join(dir, AdminToken))
	s := &testServer{srv: srv, ts: ts, dir: dir, admin: strings.TrimSpace(string(tok))}
	var last api.EventResponse
	for range 300 {
		last = s.post(t, "rebuild", "tool.call", nil)
	}
	ts.Close()
	if err := srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{IndexDB, IndexDB + "-wal", IndexDB + "-shm"} {
		os.Remove(filepath.Join(dir, f))
	}
	srv, ts = open()
	defer func() { ts.Close(); srv.Close(context.Background()) }()
	s.srv, s.ts = srv, ts
	next := s.post(t, "rebuild", "tool.call", nil)
	if next.Seq != 300 {
		t.Fatalf("after rebuilding the index the session continues at seq %d, want 300", next.Seq)
	}
	leaf, _ := base64.StdEncoding.DecodeString(next.Leaf)
	l, _ := event.ParseLeaf(leaf)
	if l.Prev != last.LeafHash {
		t.Fatalf("prev = %s, want %s", l.Prev, last.LeafHash)
	}
	_, body, _ := s.do(t, "GET", "/v1/sessions/rebuild", s.admin, nil)
	var got struct{ Events []api.SessionEntry }
	json.Unmarshal(body, &got)
	if len(got.Events) != 301 {
		t.Fatalf("rebuilt session has %d events, want 301", len(got.Events))
	}
}

// TestConcurrentAnswers: writes answered at once each get their own
// answer (the answers are built in pooled buffers).
func TestConcurrentAnswers(t *testing.T) {
	s := newTestServer(t, nil)
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			session := fmt.Sprintf("conc-%d", c)
			for i := range 5 {
				body := fmt.Sprintf(`{"session":%q,"kind":"llm.request","actor":{"type":"agent","id":"bot"},"payload":{"n":%d,"pad":%q}}`, session, i, strings.Repeat("x", 3000))
				code, b, _ := s.do(t, "POST", "/v1/events?wait=durable", s.admin, []byte(body))
				var r api.EventResponse
				if err := json.Unmarshal(b, &r); code != http.StatusCreated || err != nil || r.Session != session || r.Seq != uint64(i) {
					t.Errorf("write %d of %s = %d %.200s (%v)", i, session, code, b, err)
					return
				}
				l, _ := base64.StdEncoding.DecodeString(r.Leaf)
				if leaf, err := event.ParseLeaf(l); err != nil || leaf.Session != session || hex.EncodeToString(event.LeafHash(l)) != r.LeafHash {
					t.Errorf("write %d of %s: leaf %v of session %q, hash %s", i, session, err, leaf.Session, r.LeafHash)
					return
				}
			}
		})
	}
	wg.Wait()
}

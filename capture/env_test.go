package capture_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// env is a log server (with its capture proxy) in front of a fake upstream.
type env struct {
	t          testing.TB
	ctx        context.Context
	srv        *server.Server
	ts         *httptest.Server
	up         *fakeUpstream
	dir        string
	writeToken string
	auditToken string
	readToken  string
	closeOnce  sync.Once
}

type envOpt func(*server.Config, *httptest.Server)

// withTLS serves the log server (API and proxies) over TLS; clients trust
// it with e.ts.Client() or e.ts.Certificate().
func withTLS(_ *server.Config, ts *httptest.Server) { ts.TLS = &tls.Config{} }

func newEnv(t testing.TB, mode string, opts ...envOpt) *env {
	t.Helper()
	ctx := context.Background()
	up := newFakeUpstream(t)
	dir := t.TempDir()
	cfg := server.Config{
		DataDir: dir, CheckpointInterval: 100 * time.Millisecond, BatchMaxAge: 2 * time.Millisecond,
		Upstreams:   map[string]string{"openai": up.URL, "anthropic": up.URL, "local": up.URL + "/"},
		CaptureMode: mode,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ts := httptest.NewUnstartedServer(nil)
	for _, o := range opts {
		o(&cfg, ts)
	}
	srv, err := server.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	if ts.TLS != nil { // withTLS: the log server on HTTPS (HTTP/2)
		ts.EnableHTTP2 = true
		ts.StartTLS()
	} else {
		ts.Start()
	}
	e := &env{t: t, ctx: ctx, srv: srv, ts: ts, up: up, dir: dir}
	t.Cleanup(e.close)
	e.writeToken = e.token("agent-1", auth.ScopeWrite)
	e.auditToken = e.token("auditor", auth.ScopeAudit, auth.ScopeRead)
	e.readToken = e.token("reader", auth.ScopeRead)
	return e
}

// close stops the HTTP server and closes the log server (once).
func (e *env) close() {
	e.closeOnce.Do(func() {
		e.ts.Close()
		if err := e.srv.Close(context.Background()); err != nil {
			e.t.Errorf("closing server: %v", err)
		}
	})
}

func (e *env) token(name string, scopes ...string) string {
	tok, _, err := e.srv.Tokens().Create(e.ctx, auth.Spec{Name: name, Tenant: server.DefaultTenant, Scopes: scopes})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// logged is a verified event of the log: its leaf, and its payload opened
// against the leaf's commitment.
type logged struct {
	Index     uint64
	Leaf      *event.Leaf
	Payload   []byte
	MediaType string
}

func (ev logged) str(k string) string {
	s, _ := ev.Leaf.Attributes[k].(string)
	return s
}

func (ev logged) num(k string) int64 {
	n, ok := ev.Leaf.Attributes[k].(json.Number)
	if !ok {
		return -1
	}
	i, err := n.Int64()
	if err != nil {
		return -1
	}
	return i
}

func (ev logged) has(k string) bool { _, ok := ev.Leaf.Attributes[k]; return ok }

func (ev logged) strs(k string) []string {
	a, _ := ev.Leaf.Attributes[k].([]any)
	var out []string
	for _, v := range a {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// events reads a session from the log, waiting until it has at least want
// events (or 10 s), and verifies each: the leaf parses and is canonical, it
// is chained to the previous one, and its payload from the vault opens its
// commitment.
func (e *env) events(session string, want int) []logged {
	e.t.Helper()
	l := e.srv.Log()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Everything acknowledged so far, sequenced and indexed.
		if err := l.WaitIndexed(e.ctx); err != nil {
			e.t.Fatal(err)
		}
		entries, err := l.Index().Session(e.ctx, server.DefaultTenant, session, 0, 1000)
		if err != nil {
			e.t.Fatal(err)
		}
		// The follower may have indexed past size meanwhile; every indexed
		// entry is integrated, so a size read now covers them all.
		size, err := l.Reader().IntegratedSize(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(entries) >= want || time.Now().After(deadline) {
			var out []logged
			var prev []byte
			for i, en := range entries {
				data, err := l.ReadLeaf(e.ctx, en.Index, size)
				if err != nil {
					e.t.Fatal(err)
				}
				if !event.IsCanonical(data) {
					e.t.Fatalf("leaf %d is not canonical", en.Index)
				}
				leaf, err := event.ParseLeaf(data)
				if err != nil {
					e.t.Fatal(err)
				}
				if leaf.Seq != uint64(i) || (prev != nil && leaf.Prev != hex.EncodeToString(prev)) {
					e.t.Fatalf("leaf %d: seq %d prev %q breaks the session chain", en.Index, leaf.Seq, leaf.Prev)
				}
				prev = event.LeafHash(data)
				ev := logged{Index: en.Index, Leaf: leaf}
				if leaf.Payload != nil {
					rec, err := e.srv.Vault().Get(e.ctx, leaf.ID)
					if err != nil {
						e.t.Fatalf("payload of %d: %v", en.Index, err)
					}
					if !event.CheckCommitment(leaf.Payload, rec.Salt, rec.Payload) {
						e.t.Fatalf("payload of leaf %d does not open its commitment", en.Index)
					}
					ev.Payload, ev.MediaType = rec.Payload, rec.MediaType
				}
				out = append(out, ev)
			}
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// payloadHTTP reads an event's payload through GET /v1/events/{i}/payload
// and checks the answer opens the leaf's commitment.
func (e *env) payloadHTTP(ev logged) []byte {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.ts.URL+"/v1/events/"+itoa(ev.Index)+"/payload", nil)
	req.Header.Set("Authorization", "Bearer "+e.auditToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("GET payload: %d %s", resp.StatusCode, b)
	}
	var pr api.PayloadResponse
	if err := json.NewDecoder(resp.Body).Decode(&pr); err != nil {
		e.t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(pr.PayloadBase64)
	salt, _ := hex.DecodeString(pr.Salt)
	if !event.CheckCommitment(ev.Leaf.Payload, salt, payload) {
		e.t.Fatalf("payload of %d from the API does not open the leaf's commitment", ev.Index)
	}
	return payload
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// grepDataDir fails if any file under dir (tiles, SQLite databases and their
// WAL files, keys) contains one of secrets.
func grepDataDir(t testing.TB, dir string, secrets ...string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		// The log deletes what it no longer needs as it runs (partial
		// tiles, journal segments): a file gone meanwhile holds nothing.
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		files++
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains the secret %q", p, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("only %d files under %s: the grep did not see the data directory", files, dir)
	}
}

func kinds(evs []logged) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Leaf.Kind
	}
	return out
}

func wantKinds(t testing.TB, evs []logged, want ...string) {
	t.Helper()
	if got := kinds(evs); !slices.Equal(got, want) {
		t.Fatalf("kinds = %v, want %v", got, want)
	}
}

func wantAttrs(t testing.TB, ev logged, want map[string]any) {
	t.Helper()
	for k, w := range want {
		var got any
		switch w := w.(type) {
		case string:
			got = ev.str(k)
		case int:
			got = int(ev.num(k))
		case bool:
			got, _ = ev.Leaf.Attributes[k].(bool)
		case []string:
			got = ev.strs(k)
			if !slices.Equal(got.([]string), w) {
				t.Errorf("%s %s = %v, want %v", ev.Leaf.Kind, k, got, w)
			}
			continue
		case nil:
			if ev.has(k) {
				t.Errorf("%s %s = %v, want absent", ev.Leaf.Kind, k, ev.Leaf.Attributes[k])
			}
			continue
		}
		if got != w {
			t.Errorf("%s %s = %v (%T), want %v", ev.Leaf.Kind, k, got, ev.Leaf.Attributes[k], w)
		}
	}
}

// flaky wraps a Recorder and fails on demand.
type flaky struct {
	capture.Recorder
	fail   chan bool // 1-buffered switch
	failed chan int  // Record calls refused so far (1-buffered counter)
	mu     sync.Mutex
	kinds  map[string]int // refused events by kind
}

func newFlaky(r capture.Recorder) *flaky {
	f := &flaky{Recorder: r, fail: make(chan bool, 1), failed: make(chan int, 1), kinds: map[string]int{}}
	f.fail <- false
	f.failed <- 0
	return f
}

// refusedKind returns how many events of kind were refused.
func (f *flaky) refusedKind(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kinds[kind]
}

func (f *flaky) set(fail bool) { <-f.fail; f.fail <- fail }

func (f *flaky) refused() int { n := <-f.failed; f.failed <- n; return n }

func (f *flaky) Record(ctx context.Context, evs []*event.Request) ([]event.Appended, error) {
	fail := <-f.fail
	f.fail <- fail
	if fail {
		n := <-f.failed
		f.failed <- n + 1
		f.mu.Lock()
		for _, ev := range evs {
			f.kinds[ev.Kind]++
		}
		f.mu.Unlock()
		return nil, errUnavailable
	}
	return f.Recorder.Record(ctx, evs)
}

var errUnavailable = &unavailable{}

type unavailable struct{}

func (*unavailable) Error() string { return "log unavailable (test)" }

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mustClient is a client of the log server at url with token.
func mustClient(url, token string) *client.Client {
	c, err := client.New(url, client.WithToken(token))
	if err != nil {
		panic(err)
	}
	return c
}

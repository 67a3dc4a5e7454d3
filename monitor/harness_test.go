package monitor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	fmtlog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/internal/testproc"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// testLog is a real log server on a loopback httptest server, with hooks
// that let a test replace what the log serves.
type testLog struct {
	t      testing.TB
	dir    string
	srv    *server.Server
	hs     *httptest.Server
	token  string
	vkey   string
	key    note.Verifier
	signer note.Signer
	// base is the log's size when the test begins: the server's own
	// events at start (the admin token's access.token_created).
	base uint64

	mu       sync.Mutex
	override map[string][]byte // path -> body served instead
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newTestLog(t testing.TB, cfg server.Config) *testLog {
	t.Helper()
	l := &testLog{t: t, override: map[string][]byte{}}
	fx := servertest.Start(t, func(c *server.Config) {
		if cfg.DataDir == "" {
			cfg.DataDir = c.DataDir
		}
		if cfg.CheckpointInterval == 0 {
			cfg.CheckpointInterval = c.CheckpointInterval
		}
		cfg.Logger = quietLogger()
		*c = cfg
	}, servertest.WithHandler(func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			l.mu.Lock()
			b, ok := l.override[r.URL.Path]
			l.mu.Unlock()
			if ok {
				w.Write(b)
				return
			}
			h.ServeHTTP(w, r)
		})
	}))
	l.dir, l.srv, l.hs, l.token, l.vkey = fx.Dir, fx.Srv, fx.HS, fx.Admin, fx.Srv.VerifierKey()
	var err error
	if l.base, err = l.srv.Log().Reader().IntegratedSize(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l.key, err = checkpoint.NewVerifier(l.vkey); err != nil {
		t.Fatal(err)
	}
	skey, err := os.ReadFile(filepath.Join(l.dir, server.LogKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if l.signer, err = note.NewSigner(strings.TrimSpace(string(skey))); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *testLog) url() string { return l.hs.URL }

func (l *testLog) serve(path string, body []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if body == nil {
		delete(l.override, path)
	} else {
		l.override[path] = body
	}
}

// ev is an event as the API takes it.
type ev map[string]any

// appendEvents posts events in one batch and returns their indices.
func (l *testLog) appendEvents(evs ...ev) []uint64 {
	l.t.Helper()
	body, _ := json.Marshal(map[string]any{"events": evs})
	req, _ := http.NewRequest(http.MethodPost, l.url()+"/v1/events:batch", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		l.t.Fatalf("append: %d %s", resp.StatusCode, b)
	}
	var out struct {
		Events []struct {
			Index uint64 `json:"index"`
		} `json:"events"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		l.t.Fatal(err)
	}
	idx := make([]uint64, len(out.Events))
	for i, e := range out.Events {
		idx[i] = e.Index
	}
	return idx
}

// checkpoint returns the log's published checkpoint, verified.
func (l *testLog) checkpoint() (*fmtlog.Checkpoint, []byte) {
	l.t.Helper()
	resp, err := http.Get(l.url() + "/checkpoint")
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	cp, _, err := checkpoint.Verify(raw, l.key)
	if err != nil {
		l.t.Fatalf("checkpoint: %v: %s", err, raw)
	}
	return cp, raw
}

// waitSize waits until a published checkpoint covers n entries.
func (l *testLog) waitSize(n uint64) *fmtlog.Checkpoint {
	l.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cp, _ := l.checkpoint()
		if cp.Size >= n {
			return cp
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("log did not reach size %d (at %d)", n, cp.Size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkpointAt returns the log's real checkpoint (bypassing overrides)
// if its size is n.
func (l *testLog) checkpointAt(n uint64) (*fmtlog.Checkpoint, []byte) {
	l.t.Helper()
	cp, raw, err := l.srv.Log().Checkpoint(context.Background())
	if err != nil || cp.Size != n {
		l.t.Fatalf("real checkpoint: size %v, err %v; want size %d", cp, err, n)
	}
	return cp, raw
}

// waitReal waits until the log itself (not what is served) has published
// a checkpoint of at least n entries.
func (l *testLog) waitReal(n uint64) *fmtlog.Checkpoint {
	l.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		cp, _, err := l.srv.Log().Checkpoint(context.Background())
		if err == nil && cp.Size >= n {
			return cp
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.t.Fatalf("log did not reach size %d", n)
	return nil
}

// sign signs a checkpoint with the log's own key: a fork only the log's
// operator (or a thief of its key) could make.
func (l *testLog) sign(size uint64, root []byte) []byte {
	l.t.Helper()
	text := fmtlog.Checkpoint{Origin: l.key.Name(), Size: size, Hash: root}.Marshal()
	b, err := note.Sign(&note.Note{Text: string(text)}, l.signer)
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

func randomHash() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// syncBuffer collects alert lines.
type syncBuffer struct{ testproc.Buffer }

func (b *syncBuffer) alerts(t testing.TB) []Alert { return parseAlerts(t, []byte(b.String())) }

func parseAlerts(t testing.TB, data []byte) []Alert {
	var out []Alert
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var a Alert
		if err := json.Unmarshal(line, &a); err != nil {
			t.Fatalf("alert line %q: %v", line, err)
		}
		if a.Rule == "" || a.Severity == "" || a.Message == "" || a.ID == "" {
			t.Fatalf("alert without rule, severity, message or id: %s", line)
		}
		out = append(out, a)
	}
	return out
}

// runningMonitor is a Monitor running in the background.
type runningMonitor struct {
	t      testing.TB
	m      *Monitor
	out    *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func testConfig(l *testLog, state string) Config {
	return Config{
		Log: testClient(l.url(), l.token), LogKey: l.key, StateDir: state, Poll: 50 * time.Millisecond,
		Logger: quietLogger(),
	}
}

func startMonitor(t testing.TB, cfg Config) *runningMonitor {
	t.Helper()
	out := &syncBuffer{}
	cfg.Stdout = out
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningMonitor{t: t, m: m, out: out, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *runningMonitor) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("monitor: %v", err)
	}
	r.m.Close()
	r.cancel = nil
}

// waitFor waits until an alert matching pred appears.
func (r *runningMonitor) waitFor(pred func(Alert) bool, what string) Alert {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, a := range r.out.alerts(r.t) {
			if pred(a) {
				return a
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("no alert %s; got:\n%s", what, dump(r.out.alerts(r.t)))
	return Alert{}
}

func (r *runningMonitor) waitRule(rule string) Alert {
	r.t.Helper()
	return r.waitFor(func(a Alert) bool { return a.Rule == rule }, rule)
}

// waitPos waits until the monitor evaluated n entries.
func (r *runningMonitor) waitPos(n uint64) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p, _ := r.posSnapshot(); p >= n {
			// Committed; wait until its alerts are written too.
			if c, err := r.m.st.countPending(context.Background(), sinkStdout); err == nil && c == 0 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	p, _ := r.posSnapshot()
	r.t.Fatalf("monitor did not reach position %d (at %d); alerts:\n%s", n, p, dump(r.out.alerts(r.t)))
}

// posSnapshot reads the committed position from the state database.
func (r *runningMonitor) posSnapshot() (uint64, uint64) {
	p, err := r.m.st.loadPosition()
	if err != nil || p == nil {
		return 0, 0
	}
	return p.Pos, p.Size
}

func dump(as []Alert) string {
	var b strings.Builder
	for _, a := range as {
		j, _ := json.Marshal(a)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// fakeWitness is a tlog-witness that cosigns whatever the log sends
// (add-checkpoint) and answers the monitoring read with what it cosigned,
// or with a checkpoint a test sets (a witness that saw another root).
type fakeWitness struct {
	t      testing.TB
	name   string
	vkey   string
	signer note.Signer
	logKey note.Verifier
	hs     *httptest.Server

	mu     sync.Mutex
	latest []byte // cosigned checkpoint (note with log and witness signatures)
	lie    []byte
}

func newFakeWitness(t testing.TB, name string, logKey note.Verifier) *fakeWitness {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	w := &fakeWitness{t: t, name: name, vkey: cv, signer: signer, logKey: logKey}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		_, cp, ok := bytes.Cut(body, []byte("\n\n"))
		if !ok {
			http.Error(rw, "bad request", http.StatusBadRequest)
			return
		}
		sig, err := w.cosign(cp)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusForbidden)
			return
		}
		w.mu.Lock()
		w.latest = append(append([]byte{}, cp...), sig...)
		w.mu.Unlock()
		rw.Write(sig)
	})
	mux.HandleFunc("GET /{id}/checkpoint", func(rw http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != checkpoint.OriginID(logKey.Name()) {
			http.NotFound(rw, r)
			return
		}
		w.mu.Lock()
		b := w.lie
		if b == nil {
			b = w.latest
		}
		w.mu.Unlock()
		if b == nil {
			http.NotFound(rw, r)
			return
		}
		rw.Write(b)
	})
	w.hs = httptest.NewServer(mux)
	t.Cleanup(w.hs.Close)
	return w
}

// cosign returns the witness's signature line for a log-signed checkpoint.
func (w *fakeWitness) cosign(cp []byte) ([]byte, error) {
	n, err := note.Open(cp, note.VerifierList(w.logKey))
	if err != nil {
		return nil, err
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return nil, err
	}
	return signed[len(n.Text)+1:], nil
}

// cosigned returns cp with the witness's cosignature added.
func (w *fakeWitness) cosigned(cp []byte) []byte {
	sig, err := w.cosign(cp)
	if err != nil {
		w.t.Fatal(err)
	}
	return append(append([]byte{}, cp...), sig...)
}

func (w *fakeWitness) policyLine() string {
	return fmt.Sprintf("witness %s %s %s", w.name, w.vkey, w.hs.URL)
}

func (w *fakeWitness) setLie(b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lie = b
}

func mustPolicy(t testing.TB, lines ...string) *checkpoint.Policy {
	t.Helper()
	p, err := checkpoint.ParsePolicy([]byte(strings.Join(lines, "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// bundlePath is the file of entry bundle idx (full) in the log's data dir.
func (l *testLog) file(rel string) string { return filepath.Join(l.dir, server.LogDir, rel) }

// testClient is a client of the log at url with token, retrying quickly.
func testClient(url, token string) *client.Client {
	c, err := client.New(url, client.WithToken(token), client.WithRetry(client.Retry{Attempts: 3, Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}))
	if err != nil {
		panic(err)
	}
	return c
}

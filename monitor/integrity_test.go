package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
	"github.com/llmaudittrail/llmaudittrail/server"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// events makes n valid API events; every k-th (k > 0) calls a forbidden tool.
func events(n, k int, session string) []ev {
	out := make([]ev, n)
	for i := range n {
		tool := "search"
		if k > 0 && i%k == k-1 {
			tool = "shell.exec"
		}
		out[i] = ev{"session": session, "kind": "tool.call",
			"actor":      map[string]string{"type": "agent", "id": "agent-1"},
			"attributes": map[string]any{"gen_ai.tool.name": tool, "n": i}}
	}
	return out
}

// auditOf audits the log once, to compare with what the monitor found.
func auditOf(t *testing.T, l *testLog, p *checkpoint.Policy) *verify.Report {
	t.Helper()
	rep, err := verify.Audit(context.Background(), verify.Config{Log: testClient(l.url(), l.token), LogKey: l.key, Policy: p, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func rules(as []Alert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Rule)
	}
	return out
}

func findingRules(fs []verify.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule)
	}
	return out
}

func dumpFindings(fs []verify.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		j, _ := json.Marshal(f)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

func TestFollowEmptyThenGrowing(t *testing.T) {
	l := newTestLog(t, server.Config{})
	l.waitSize(0)
	cfg := testConfig(l, t.TempDir())
	cfg.Start = StartAtEnd
	cfg.Rules = pack(t, hoursLine, allHours)
	r := startMonitor(t, cfg)
	for i := range 3 {
		l.appendEvents(events(40, 0, fmt.Sprintf("s%d", i))...)
	}
	cp := l.waitSize(120)
	r.waitPos(cp.Size)
	if as := r.out.alerts(t); len(as) != 0 {
		t.Fatalf("alerts on a clean log:\n%s", dump(as))
	}
	if rep := auditOf(t, l, nil); !rep.OK() || rep.Entries < 120 || rep.Sessions != 3+1 { // and access.tokens
		t.Fatalf("audit: %+v", rep)
	}
}

func TestTamperedTile(t *testing.T) {
	l := newTestLog(t, server.Config{})
	l.appendEvents(events(300, 0, "a")...)
	l.waitSize(300)
	if rep := auditOf(t, l, nil); !rep.OK() {
		t.Fatalf("audit before tampering: %s", dumpFindings(rep.Findings))
	}
	path := l.file("tile/0/000")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[5*32+7] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(l, t.TempDir())
	r := startMonitor(t, cfg)
	a := r.waitRule(verify.RuleTileMismatch)
	if a.Details["tile"] != "tile/0/000" || a.Details["node"] != float64(5) {
		t.Fatalf("alert %+v", a)
	}
	r.waitPos(300) // the entries still prove the checkpoint
	if got := rules(r.out.alerts(t)); !slices.Equal(got, []string{verify.RuleTileMismatch}) {
		t.Fatalf("alerts %v", got)
	}
	rep := auditOf(t, l, nil)
	if rep.OK() || !slices.Equal(findingRules(rep.Findings), []string{verify.RuleTileMismatch}) {
		t.Fatalf("audit findings: %s", dumpFindings(rep.Findings))
	}
}

func TestRewrittenEntryBundle(t *testing.T) {
	l := newTestLog(t, server.Config{})
	l.appendEvents(events(300, 0, "a")...)
	l.waitSize(300)
	crafttest.RewriteBundle(t, l.file("tile/entries/000"), func(i int, d []byte) []byte {
		if i == 7 {
			return []byte(strings.Replace(string(d), `"gen_ai.tool.name":"search"`, `"gen_ai.tool.name":"sEarch"`, 1))
		}
		return d
	})
	cfg := testConfig(l, t.TempDir())
	r := startMonitor(t, cfg)
	a := r.waitRule(verify.RuleEntryMismatch)
	if a.Index == nil || *a.Index != 7 {
		t.Fatalf("alert %+v", a)
	}
	time.Sleep(300 * time.Millisecond)
	if p, _ := r.posSnapshot(); p != 0 {
		t.Fatalf("monitor advanced to %d past a rewritten entry", p)
	}
	for _, a := range r.out.alerts(t) {
		if a.Rule != verify.RuleEntryMismatch || *a.Index != 7 {
			t.Fatalf("unexpected alert %+v", a)
		}
	}
	if n := len(r.out.alerts(t)); n != 1 {
		t.Fatalf("%d alerts, want the mismatch once", n)
	}
	rep := auditOf(t, l, nil)
	if rep.OK() || !slices.Contains(findingRules(rep.Findings), verify.RuleEntryMismatch) || slices.Contains(findingRules(rep.Findings), verify.RuleFork) {
		t.Fatalf("audit findings: %s", dumpFindings(rep.Findings))
	}
}

func TestForkedCheckpoint(t *testing.T) {
	l := newTestLog(t, server.Config{})
	l.waitSize(0)
	cfg := testConfig(l, t.TempDir())
	cfg.Start = StartAtEnd
	r := startMonitor(t, cfg)
	l.appendEvents(events(20, 0, "a")...)
	cp := l.waitSize(20)
	r.waitPos(cp.Size)

	// Another root for the verified size.
	l.serve("/checkpoint", l.sign(cp.Size, randomHash()))
	a := r.waitRule(verify.RuleFork)
	if !strings.Contains(a.Message, "two roots") {
		t.Fatalf("fork alert %+v", a)
	}
	// A larger tree whose root the served entries do not reproduce. The
	// monitor keeps seeing the old checkpoint until the fork is served.
	_, old := l.checkpointAt(cp.Size)
	l.serve("/checkpoint", old)
	l.appendEvents(events(10, 0, "b")...)
	cp2 := l.waitReal(cp.Size + 10)
	l.serve("/checkpoint", l.sign(cp2.Size, randomHash()))
	r.waitFor(func(a Alert) bool {
		return a.Rule == verify.RuleFork && a.TreeSize == cp2.Size && strings.Contains(a.Message, "not consistent")
	}, "fork at the larger size")
	// A smaller tree.
	l.serve("/checkpoint", l.sign(cp.Size-5, randomHash()))
	r.waitFor(func(a Alert) bool { return a.Rule == verify.RuleFork && strings.Contains(a.Message, "smaller") }, "shrunk tree")
	if p, _ := r.posSnapshot(); p != cp.Size {
		t.Fatalf("position %d moved on a forked checkpoint", p)
	}
	// The honest checkpoint again: the monitor goes on, nothing else is raised.
	l.serve("/checkpoint", nil)
	r.waitPos(cp2.Size)
	for _, a := range r.out.alerts(t) {
		if a.Rule != verify.RuleFork {
			t.Fatalf("unexpected alert %+v", a)
		}
	}
	if n := len(r.out.alerts(t)); n != 3 {
		t.Fatalf("%d alerts, want 3 forks:\n%s", n, dump(r.out.alerts(t)))
	}
}

func TestWitnessSplitView(t *testing.T) {
	l := newTestLog(t, server.Config{})
	w := newFakeWitness(t, "example.com/witness", l.key)
	l.appendEvents(events(10, 0, "a")...)
	cp := l.waitSize(10)
	cfg := testConfig(l, t.TempDir())
	cfg.Policy = mustPolicy(t, w.policyLine(), "quorum none")
	cfg.WitnessLag = 200 * time.Millisecond
	r := startMonitor(t, cfg)
	// An honest witness that cosigned an older, consistent checkpoint.
	_, raw := l.checkpoint()
	w.setLie(w.cosigned(raw))
	l.appendEvents(events(10, 0, "b")...)
	cp2 := l.waitSize(cp.Size + 10)
	r.waitPos(cp2.Size)
	time.Sleep(200 * time.Millisecond)
	if as := r.out.alerts(t); len(as) != 0 {
		t.Fatalf("alerts with an honest witness:\n%s", dump(as))
	}
	// The witness saw another root for the verified size.
	w.setLie(w.cosigned(l.sign(cp2.Size, randomHash())))
	a := r.waitRule(verify.RuleSplitView)
	if a.Details["witness"] != "example.com/witness" || !strings.Contains(a.Message, "cosigned root") {
		t.Fatalf("alert %+v", a)
	}
	// The witness saw a larger tree than the log ever served.
	w.setLie(w.cosigned(l.sign(cp2.Size+1000, randomHash())))
	r.waitFor(func(a Alert) bool {
		return a.Rule == verify.RuleSplitView && strings.Contains(a.Message, "served at most")
	}, "witness ahead")
	// A one-shot audit sees the other root too.
	w.setLie(w.cosigned(l.sign(cp2.Size, randomHash())))
	rep := auditOf(t, l, cfg.Policy)
	if !slices.Equal(findingRules(rep.Findings), []string{verify.RuleSplitView}) {
		t.Fatalf("audit findings %s", dumpFindings(rep.Findings))
	}
}

func TestWitnessQuorum(t *testing.T) {
	l0 := newTestLog(t, server.Config{})
	w := newFakeWitness(t, "example.com/w1", l0.key)
	l0.hs.Close()
	l0.srv.Close(context.Background())
	// A log witnessed by w: the same data directory, now with a policy.
	policy := w.policyLine() + "\nquorum example.com/w1\n"
	l := newTestLog(t, server.Config{DataDir: l0.dir, WitnessPolicy: []byte(policy)})
	l.appendEvents(events(30, 0, "a")...)
	cp := l.waitSize(30)

	cfg := testConfig(l, t.TempDir())
	cfg.Policy = mustPolicy(t, policy)
	cfg.QuorumAfter = 300 * time.Millisecond
	r := startMonitor(t, cfg)
	r.waitPos(cp.Size)
	time.Sleep(400 * time.Millisecond)
	if as := r.out.alerts(t); len(as) != 0 {
		t.Fatalf("alerts with quorum met:\n%s", dump(as))
	}
	rep := auditOf(t, l, cfg.Policy)
	if !rep.OK() || rep.Witnesses != 1 {
		t.Fatalf("audit: %+v", rep)
	}

	// A monitor whose policy needs a witness the log does not use.
	other := newFakeWitness(t, "example.com/w2", l.key)
	cfg2 := testConfig(l, t.TempDir())
	cfg2.Policy = mustPolicy(t, other.policyLine(), "quorum example.com/w2")
	cfg2.QuorumAfter = 300 * time.Millisecond
	r2 := startMonitor(t, cfg2)
	r2.waitRule(verify.RuleWitnessQuorum)
	time.Sleep(300 * time.Millisecond)
	if n := len(r2.out.alerts(t)); n != 1 {
		t.Fatalf("%d alerts, want one health alert", n)
	}
	if p, s := r2.posSnapshot(); p != 0 || s != 0 {
		t.Fatalf("monitor used a checkpoint without quorum (pos %d size %d)", p, s)
	}
}

// flaky fails a share of requests with 503, like an overloaded CDN.
type flaky struct {
	h    http.Handler
	n    atomic.Int64
	down atomic.Bool
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.down.Load() || f.n.Add(1)%3 == 0 {
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	f.h.ServeHTTP(w, r)
}

func TestTransientErrorsAndUnreachable(t *testing.T) {
	l := newTestLog(t, server.Config{})
	l.appendEvents(events(600, 0, "a")...)
	cp := l.waitSize(600)
	f := &flaky{h: l.hs.Config.Handler}
	hs := httptest.NewServer(f)
	defer hs.Close()
	cfg := testConfig(l, t.TempDir())
	cfg.Log = testClient(hs.URL, l.token)
	cfg.Start = 0
	cfg.UnreachableAfter = 400 * time.Millisecond
	r := startMonitor(t, cfg)
	r.waitPos(cp.Size)
	if as := r.out.alerts(t); len(as) != 0 {
		t.Fatalf("transient errors were alerted:\n%s", dump(as))
	}
	f.down.Store(true)
	r.waitRule(RuleLogUnreachable)
	time.Sleep(500 * time.Millisecond)
	if n := len(r.out.alerts(t)); n != 1 {
		t.Fatalf("%d alerts, want one health alert", n)
	}
	f.down.Store(false)
	l.appendEvents(events(5, 0, "b")...)
	cp2 := l.waitSize(cp.Size + 5)
	r.waitPos(cp2.Size)
}

// failingWriter fails after n writes, like a crash right after a commit.
type failingWriter struct {
	mu   sync.Mutex
	n    int
	buf  syncBuffer
	fail bool
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		return 0, errors.New("stdout closed")
	}
	w.n--
	return w.buf.Write(p)
}

func TestRestartNoLossNoRepeat(t *testing.T) {
	l := newTestLog(t, server.Config{})
	state := t.TempDir()
	l.appendEvents(events(50, 5, "a")...) // forbidden tool at 4, 9, ..., 49
	cp := l.waitSize(50)
	cfg := testConfig(l, state)
	cfg.Start = 0
	cfg.Rules = pack(t, hoursLine, allHours)

	// First run: stdout breaks after 3 alerts; the monitor stops.
	fw := &failingWriter{n: 3}
	cfg.Stdout = fw
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); !errors.Is(err, errFatal) {
		t.Fatalf("Run = %v, want a fatal stdout error", err)
	}
	m.Close()
	first := fw.buf.alerts(t)
	if len(first) != 3 {
		t.Fatalf("first run wrote %d alerts", len(first))
	}

	// Second run: the rest are redelivered, then new entries are evaluated.
	cfg.Stdout = nil
	r := startMonitor(t, cfg)
	r.waitPos(cp.Size)
	l.appendEvents(events(50, 5, "b")...)
	cp2 := l.waitSize(cp.Size + 50)
	r.waitPos(cp2.Size)
	second := r.out.alerts(t)

	seen := map[uint64]int{}
	for _, a := range append(first, second...) {
		if a.Rule != "tool.forbidden" {
			t.Fatalf("unexpected alert %+v", a)
		}
		seen[*a.Index]++
	}
	for _, a := range second[:7] {
		if !a.Redelivery {
			t.Fatalf("alert %d after restart is not marked as a redelivery", *a.Index)
		}
	}
	for i := uint64(0); i < 100; i++ {
		want := 0
		if i%5 == 4 {
			want = 1
		}
		if seen[l.base+i] != want {
			t.Fatalf("index %d alerted %d times, want %d", l.base+i, seen[l.base+i], want)
		}
	}
}

func TestLargeCatchUpInChunks(t *testing.T) {
	l := newTestLog(t, server.Config{})
	l.appendEvents(events(700, 7, "a")...)
	cp := l.waitSize(700)
	cfg := testConfig(l, t.TempDir())
	cfg.Start = 0
	cfg.MaxBatch = 256
	cfg.Rules = pack(t, hoursLine, allHours)
	r := startMonitor(t, cfg)
	r.waitPos(cp.Size)
	var got []uint64
	for _, a := range r.out.alerts(t) {
		got = append(got, *a.Index)
	}
	var want []uint64
	for i := l.base + 6; i < l.base+700; i += 7 {
		want = append(want, i)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("alerted %v, want %v", got, want)
	}
}

func TestWebhookAndAppend(t *testing.T) {
	l := newTestLog(t, server.Config{})
	var (
		mu    sync.Mutex
		keys  []string
		calls atomic.Int64
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var a Alert
		json.NewDecoder(r.Body).Decode(&a)
		if r.Header.Get("Idempotency-Key") != a.ID {
			t.Errorf("Idempotency-Key %q for alert %q", r.Header.Get("Idempotency-Key"), a.ID)
		}
		mu.Lock()
		keys = append(keys, a.ID)
		mu.Unlock()
	}))
	defer hook.Close()
	l.appendEvents(events(20, 10, "a")...) // forbidden at 9, 19
	cp := l.waitSize(20)
	cfg := testConfig(l, t.TempDir())
	cfg.Start = 0
	cfg.Rules = pack(t, hoursLine, allHours)
	cfg.Webhook = hook.URL
	cfg.AppendTo = testClient(l.url(), l.token)
	cfg.Instance = "test"
	cfg.StatusInterval = -1 // TestStatusEvents
	r := startMonitor(t, cfg)
	r.waitPos(cp.Size)
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(keys)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The appended monitor.alert events are in the log; the monitor reads
	// them and does not alert on them again.
	cp2 := l.waitSize(l.base + 22)
	r.waitPos(cp2.Size)
	time.Sleep(300 * time.Millisecond)
	as := r.out.alerts(t)
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 2 || keys[0] != as[0].ID || keys[1] != as[1].ID {
		t.Fatalf("webhook got %v, stdout %s", keys, dump(as))
	}
	if len(as) != 2 {
		t.Fatalf("alerts:\n%s", dump(as))
	}
	for i, a := range as {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/entries/%d", l.url(), l.base+20+uint64(i)), nil)
		req.Header.Set("Authorization", "Bearer "+l.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		vr, err := api.VerifyReceipt(body, l.key, nil)
		if err != nil {
			t.Fatal(err)
		}
		e, err := vr.Event()
		if err != nil || e.Kind != "monitor.alert" || e.Session != "monitor.test" || e.Attributes["monitor.alert_id"] != a.ID ||
			e.Attributes["monitor.rule"] != "tool.forbidden" {
			t.Fatalf("entry %d is %+v (%v), want alert %s", l.base+20+uint64(i), e, err, a.ID)
		}
	}
}

func TestStaleCheckpoint(t *testing.T) {
	l := newTestLog(t, server.Config{})
	l.appendEvents(events(3, 0, "a")...)
	cp := l.waitSize(3)
	cfg := testConfig(l, t.TempDir())
	cfg.MaxCheckpointAge = 500 * time.Millisecond
	r := startMonitor(t, cfg)
	r.waitPos(cp.Size)
	if as := r.out.alerts(t); len(as) != 0 {
		t.Fatalf("alerts on a fresh log:\n%s", dump(as))
	}
	a := r.waitRule(RuleLogStale)
	if a.Source != SourceHealth {
		t.Fatalf("alert %+v", a)
	}
	time.Sleep(700 * time.Millisecond)
	if n := len(r.out.alerts(t)); n != 1 {
		t.Fatalf("%d alerts, want the stale alert once", n)
	}
}

// TestStatusEvents: with an append token the monitor appends monitor.status
// events as it goes, naming what it verified and counting its alerts.
func TestStatusEvents(t *testing.T) {
	l := newTestLog(t, server.Config{})
	l.appendEvents(events(10, 10, "a")...) // forbidden at 9
	l.waitSize(l.base + 10)
	cfg := testConfig(l, t.TempDir())
	cfg.Start = 0
	cfg.Rules = pack(t, hoursLine, allHours)
	cfg.AppendTo = testClient(l.url(), l.token)
	cfg.Instance = "st"
	cfg.StatusInterval = 300 * time.Millisecond
	startMonitor(t, cfg)
	c := testClient(l.url(), l.token)
	deadline := time.Now().Add(15 * time.Second)
	for {
		page, err := c.Session(context.Background(), "monitor.st", client.SessionQuery{})
		if errors.Is(err, client.ErrNotFound) {
			page, err = &api.SessionPage{}, nil // nothing appended yet
		}
		if err != nil {
			t.Fatal(err)
		}
		var statuses []*event.Leaf
		alerts := 0
		for _, e := range page.Events {
			switch e.Kind {
			case "monitor.status":
				r, err := c.Entry(context.Background(), e.Index, 0)
				if err != nil {
					continue // not covered by a checkpoint yet
				}
				l, err := event.ParseLeaf(r.Leaf)
				if err != nil {
					t.Fatal(err)
				}
				statuses = append(statuses, l)
			case "monitor.alert":
				alerts++
			}
		}
		if len(statuses) >= 3 {
			var counted float64
			for _, st := range statuses {
				n, _ := st.Attributes["monitor.alerts_since_last"].(json.Number).Int64()
				size, _ := st.Attributes["monitor.verified_size"].(json.Number).Int64()
				counted += float64(n)
				if st.Attributes["monitor.instance"] != "st" || uint64(size) < l.base+10 {
					t.Fatalf("status %+v", st.Attributes)
				}
			}
			if counted != 1 || alerts != 1 {
				t.Fatalf("statuses count %v alerts, the log holds %d alert events; want 1 and 1", counted, alerts)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d monitor.status events after 15s", len(statuses))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

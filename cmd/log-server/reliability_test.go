package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/internal/dbtest"
	"github.com/llmaudittrail/llmaudittrail/internal/testproc"
	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
	"github.com/llmaudittrail/llmaudittrail/journal"
)

// The reliability suite: each case puts a fault under load, and checks that
// no acknowledged event is lost, every checkpoint seen is consistent with
// the last, every session is one chain, the server recovers by itself or
// refuses clearly (503 with Retry-After, never a 2xx for a write it did not
// keep), and monitor verify audits the whole log afterwards. Each case adds
// a row to the results table (docs/reliability.md), which the suite prints
// and writes to artifacts/reliability.md.

// relRow is one row of the results table.
type relRow struct {
	Case, Storage   string
	Cycles, Acked   int
	Lost            int
	Recovery        time.Duration // the longest over the cycles
	Refused, Served string        // statuses seen during the faults
}

var relRows struct {
	sync.Mutex
	rows []relRow
}

func record(r relRow) {
	relRows.Lock()
	defer relRows.Unlock()
	relRows.rows = append(relRows.rows, r)
}

func TestReliability(t *testing.T) {
	if testing.Short() {
		t.Skip("builds, kills and starves the real binaries")
	}
	bin := buildBinary(t)
	monitor := buildTool(t, "github.com/llmaudittrail/llmaudittrail/cmd/monitor")
	env := &relEnv{bin: bin, monitor: monitor}
	for _, c := range []struct {
		name string
		f    func(*testing.T, *relEnv)
	}{
		{"kill/posix", relKillPOSIX},
		{"kill/s3", relKillS3},
		{"pause/s3", relPauseS3},
		{"mariadb-restart/s3", relMariaDBRestart},
		{"object-store-restart/s3", relObjectStoreRestart},
		{"connections-exhausted/s3", relConnectionsExhausted},
		{"disk-full/posix", relDiskFull},
		{"read-only/posix", relReadOnly},
		{"witness/posix", relWitness},
		{"clock-step/posix", func(t *testing.T, e *relEnv) { relClockStep(t, e, false) }},
		{"clock-step/s3", func(t *testing.T, e *relEnv) { relClockStep(t, e, true) }},
		{"malformed/posix", relMalformed},
	} {
		t.Run(c.name, func(t *testing.T) { c.f(t, env) })
	}
	relRows.Lock()
	defer relRows.Unlock()
	var b strings.Builder
	b.WriteString("| case | storage | cycles | acked | lost | recovery (longest) | answers during the fault |\n|---|---|---|---|---|---|---|\n")
	for _, r := range relRows.rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %s | %s |\n", r.Case, r.Storage, r.Cycles, r.Acked, r.Lost, r.Recovery.Round(10*time.Millisecond), r.Refused)
	}
	t.Logf("reliability results:\n%s", b.String())
	if dir := artifactsDir(); dir != "" {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "reliability.md"), []byte(b.String()), 0o644)
	}
}

// artifactsDir is where tests keep what a reviewer reads: $LLMAUDIT_ARTIFACTS,
// else artifacts/ at the repository's root.
func artifactsDir() string {
	if d := os.Getenv("LLMAUDIT_ARTIFACTS"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "artifacts")
}

type relEnv struct{ bin, monitor string }

// load writes events through urls from several writers to shared sessions
// and keeps what was acknowledged, and every status it was answered.
type load struct {
	urls   []string
	tok    string
	mu     sync.Mutex
	acks   []acked
	status map[string]int
	last   time.Time // last acknowledgement
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startLoad(t *testing.T, urls []string, tok, prefix string, writers, sessions int) *load {
	l := &load{urls: urls, tok: tok, status: map[string]int{}, stop: make(chan struct{})}
	for w := range writers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				l.mu.Lock()
				urls := l.urls
				l.mu.Unlock()
				url := urls[(w+i)%len(urls)]
				session := fmt.Sprintf("%s-%d", prefix, (w+i)%sessions)
				r, status := postStatus(url, tok, session)
				l.mu.Lock()
				l.status[status]++
				if r != nil {
					l.acks = append(l.acks, acked{session, r.Seq, r.Index, r.LeafHash, r.ID, r.Pending})
					l.last = time.Now()
				}
				l.mu.Unlock()
				if r == nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	t.Cleanup(l.halt)
	return l
}

func (l *load) setURLs(urls ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.urls = urls
}

func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// waitAck waits until a write is acknowledged after since, and returns how
// long after since that was.
func (l *load) waitAck(t *testing.T, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		last := l.last
		l.mu.Unlock()
		if last.After(since) {
			return last.Sub(since)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no write was acknowledged within %v of recovery; answers: %v", within, l.statuses())
	return 0
}

// ackVia writes to session through url until a write is acknowledged (30 s
// at most; who names the server in the failure), keeps it with l's
// acknowledgements, and returns how long after since that was.
func (l *load) ackVia(t *testing.T, url, session string, since time.Time, who string) time.Duration {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if r, _ := postStatus(url, l.tok, session); r != nil {
			l.mu.Lock()
			l.acks = append(l.acks, acked{session, r.Seq, r.Index, r.LeafHash, r.ID, r.Pending})
			l.mu.Unlock()
			return time.Since(since)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s acknowledged nothing within 30 s", who)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *load) statuses() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.status))
	for k := range l.status {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, l.status[k]))
	}
	return strings.Join(parts, ", ")
}

func (l *load) snapshotStatus() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]int, len(l.status))
	for k, v := range l.status {
		m[k] = v
	}
	return m
}

// during lists the answers that came while a fault lasted (from before).
func (l *load) during(before map[string]int) string {
	now := l.snapshotStatus()
	var parts []string
	keys := make([]string, 0, len(now))
	for k := range now {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if d := now[k] - before[k]; d > 0 && k != "201" {
			parts = append(parts, fmt.Sprintf("%s ×%d", k, d))
		}
	}
	if len(parts) == 0 {
		return "writes acknowledged throughout"
	}
	return strings.Join(parts, ", ")
}

// postStatus writes one event; status is the HTTP status, or the error's
// kind when there was no answer.
func postStatus(url, tok, session string) (*eventResp, string) {
	body := fmt.Sprintf(`{"session":%q,"kind":"tool.call","actor":{"type":"agent","id":"rel"},"payload":{"pad":%q}}`, session, strings.Repeat("x", 256))
	req, _ := http.NewRequest("POST", url+"/v1/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return nil, "no answer"
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	status := fmt.Sprint(resp.StatusCode)
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		status = "503 without Retry-After"
	}
	if err != nil || resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusAccepted {
		return nil, status
	}
	var r eventResp
	if json.Unmarshal(b, &r) != nil {
		return nil, status + " unparseable"
	}
	r.Pending = resp.StatusCode == http.StatusAccepted
	return &r, status
}

// indexOf asks the log where an event answered 202 went.
func indexOf(url, tok, id string) (uint64, bool) {
	req, _ := http.NewRequest("GET", url+"/v1/events/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var st struct {
		Index *uint64 `json:"index"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil || st.Index == nil {
		return 0, false
	}
	return *st.Index, true
}

// cpWatch keeps every verified checkpoint the log publishes.
type cpWatch struct {
	mu   sync.Mutex
	seen map[uint64][]byte // size -> root
	stop chan struct{}
	done chan struct{}
}

func watchCheckpoints(urls []string, v note.Verifier) *cpWatch {
	w := &cpWatch{seen: map[uint64][]byte{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			resp, err := client.Get(urls[i%len(urls)] + "/checkpoint")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if c, _, err := checkpoint.Verify(b, v); err == nil {
				w.mu.Lock()
				if old, ok := w.seen[c.Size]; ok && !bytes.Equal(old, c.Hash) {
					w.seen[c.Size] = nil // two roots for one size: reported by check
				} else {
					w.seen[c.Size] = c.Hash
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *cpWatch) halt() map[uint64][]byte {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	return w.seen
}

// latest returns the largest checkpoint seen so far.
func (w *cpWatch) latest() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var m uint64
	for s := range w.seen {
		m = max(m, s)
	}
	return m
}

// verifyLog checks the log through url after a case: a checkpoint covers
// every acknowledged event, each has a valid inclusion proof, every
// session written is one chain holding its acknowledged events, every
// checkpoint seen is consistent with the final one, and monitor verify
// audits the whole log. It returns how many acknowledged events are
// missing (the test has failed if any).
func verifyLog(t *testing.T, e *relEnv, url, tok, pubPath string, acks []acked, seen map[uint64][]byte) int {
	t.Helper()
	v := mustVerifierFile(t, pubPath)
	// Events answered 202 (durable, not yet sequenced): where did they go?
	for i := range acks {
		if !acks[i].pending {
			continue
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			if idx, ok := indexOf(url, tok, acks[i].id); ok {
				acks[i].index, acks[i].pending = idx, false
				break
			}
			if time.Now().After(deadline) {
				req, _ := http.NewRequest("GET", url+"/v1/events/"+acks[i].id, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				var body []byte
				if resp, err := client.Do(req); err == nil {
					body, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				t.Fatalf("event %s, answered 202, has no index after 60 s: %s", acks[i].id, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var maxIdx uint64
	for _, a := range acks {
		maxIdx = max(maxIdx, a.index)
	}
	var cp *fmtlog.Checkpoint
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(url + "/checkpoint")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if c, _, err := checkpoint.Verify(b, v); err == nil && c.Size > maxIdx {
				cp = c
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint covers index %d", maxIdx)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every entry bundle, hashed to the checkpoint's root; each
	// acknowledged event is the leaf at its index. (monitor verify, below,
	// checks every session's chain and re-hashes every entry as well.)
	leafHashes := readAllLeaves(t, url, tok, cp)
	// Exactly once: no leaf twice (an event appended again after a crash
	// or a lost lease has the same bytes, hence the same hash).
	at := make(map[string]int, len(leafHashes))
	for i, h := range leafHashes {
		if j, ok := at[string(h)]; ok {
			t.Errorf("the leaf at index %d is the leaf at index %d again", i, j)
			continue
		}
		at[string(h)] = i
	}
	lost := 0
	for _, a := range acks {
		if a.index >= uint64(len(leafHashes)) || hex.EncodeToString(leafHashes[a.index]) != a.leafHash {
			t.Errorf("acknowledged entry %d (session %s seq %d) is not in the log as acknowledged", a.index, a.session, a.seq)
			lost++
		}
	}
	for size, root := range seen {
		if root == nil {
			t.Errorf("two different checkpoints of size %d were published", size)
			continue
		}
		if size == 0 || size > cp.Size {
			continue
		}
		var cr struct{ Proof [][]byte }
		getJSON(t, fmt.Sprintf("%s/v1/proof/consistency?from=%d&to=%d", url, size, cp.Size), "", &cr)
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size, cp.Size, cr.Proof, root, cp.Hash); err != nil {
			t.Errorf("the checkpoint of size %d is not consistent with the final one (%d): %v", size, cp.Size, err)
		}
	}
	out, err := exec.Command(e.monitor, "verify", "--url", url, "--log-key", pubPath, "--token-file", tokenFileFor(t, tok)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK: everything verified") {
		t.Errorf("monitor verify: %v\n%s", err, out)
	}
	return lost
}

func getJSONErr(url, tok string, v any) error {
	req, _ := http.NewRequest("GET", url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s = %d %s", url, resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

// readAllLeaves reads every entry bundle of the tree of cp (with a
// log-wide token), checks that the leaves hash to its root, and returns the
// leaf hashes.
func readAllLeaves(t *testing.T, url, tok string, cp *fmtlog.Checkpoint) [][]byte {
	t.Helper()
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	var out [][]byte
	for i := uint64(0); i*256 < cp.Size; i++ {
		p := layout.PartialTileSize(0, i, cp.Size)
		raw := httpGet(t, url+"/"+layout.EntriesPath(i, p), tok)
		var b api.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			t.Fatalf("entry bundle %d: %v", i, err)
		}
		for _, e := range b.Entries[:min(uint64(len(b.Entries)), cp.Size-i*256)] {
			h := rfc6962.DefaultHasher.HashLeaf(e)
			if err := r.Append(h, nil); err != nil {
				t.Fatal(err)
			}
			out = append(out, h)
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil || !bytes.Equal(root, cp.Hash) {
		t.Fatalf("the %d leaves read hash to %x, the checkpoint of size %d says %x (%v)", len(out), root, cp.Size, cp.Hash, err)
	}
	return out
}

func tokenFileFor(t *testing.T, tok string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustVerifierFile(t *testing.T, path string) note.Verifier {
	t.Helper()
	return mustVerifier(t, strings.TrimSpace(string(mustRead(t, path))))
}

// kill ends p with SIGKILL and waits for it.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.errc
}

// relKillPOSIX kills the only instance of a posix log several times while
// writers load it, and restarts it.
func relKillPOSIX(t *testing.T, e *relEnv) {
	dir := t.TempDir()
	// Small journal segments: released ones are removed all the time, so
	// kills land in the middle of that too.
	flags := []string{"--journal-segment-size", "65536"}
	p := startWith(t, e.bin, dir, nil, flags...)
	tok := readToken(t, dir)
	pub := filepath.Join(dir, "keys", "log.pub")
	l := startLoad(t, []string{p.url}, tok, "kill", 16, 6)
	cw := watchCheckpoints([]string{p.url}, verifier(t, dir))
	const cycles = 5
	var worst time.Duration
	refused := ""
	for i := range cycles {
		time.Sleep(1500 * time.Millisecond)
		before := l.snapshotStatus()
		p.kill()
		time.Sleep(300 * time.Millisecond)
		if i%2 == 1 {
			// Killed again while it starts: opening its storage and
			// putting what its journal holds into the log.
			cmd := exec.Command(e.bin, append([]string{"--data", dir, "--listen", "127.0.0.1:0"}, flags...)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(150 * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
		}
		restart := time.Now()
		p2 := startWith(t, e.bin, dir, nil, flags...)
		l.setURLs(p2.url) // a free port, chosen anew
		p = p2
		cw.halt()
		cw = watchCheckpoints([]string{p.url}, verifier(t, dir))
		worst = max(worst, l.waitAck(t, restart, 30*time.Second))
		refused = l.during(before)
	}
	l.halt()
	seen := cw.halt()
	lost := verifyLog(t, e, p.url, tok, pub, l.acks, seen)
	record(relRow{Case: "SIGKILL of the instance under load (64 KiB journal segments; every other cycle killed again during its restart)", Storage: "posix", Cycles: cycles, Acked: len(l.acks), Lost: lost, Recovery: worst, Refused: refused})
}

// newS3ClusterOn is newS3Cluster on a given database and object store.
func newS3ClusterOn(t *testing.T, bin string, n int, dsn, endpoint, bucket string) *s3Cluster {
	t.Helper()
	c := newS3Cluster(t, bin, n)
	c.dsn, c.endpoint, c.bucket = dsn, endpoint, bucket
	return c
}

func (c *s3Cluster) urls(ps []*proc) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.url)
	}
	return out
}

// relKillS3 kills one of two instances at a time under load through both,
// and restarts it: the survivor keeps acknowledging, and appends that the
// killed one left unfinished are recovered by the next writer of their
// sessions.
func relKillS3(t *testing.T, e *relEnv) {
	c := newS3Cluster(t, e.bin, 2)
	ps := []*proc{c.start(t, 0), c.start(t, 1)}
	tok, _ := c.adminToken(t)
	pub := filepath.Join(c.dirs[0], "keys", "log.pub")
	v := mustVerifierFile(t, pub)
	l := startLoad(t, c.urls(ps), tok, "kill", 16, 6)
	cw := watchCheckpoints(c.urls(ps), v)
	const cycles = 6
	var worst time.Duration
	var refused []string
	for i := range cycles {
		time.Sleep(2 * time.Second)
		k := i % 2
		before := l.snapshotStatus()
		ps[k].kill()
		time.Sleep(500 * time.Millisecond)
		restart := time.Now()
		ps[k] = c.start(t, k)
		l.setURLs(c.urls(ps)...)
		// Recovered: the restarted instance acknowledges a write.
		worst = max(worst, l.ackVia(t, ps[k].url, fmt.Sprintf("kill-%d", i%6), restart, "the restarted instance"))
		refused = append(refused, l.during(before))
	}
	l.halt()
	seen := cw.halt()
	lost := verifyLog(t, e, ps[0].url, tok, pub, l.acks, seen)
	record(relRow{Case: "SIGKILL of one of two instances under load", Storage: "s3", Cycles: cycles, Acked: len(l.acks), Lost: lost, Recovery: worst, Refused: refused[len(refused)-1]})
}

// relPauseS3 stops each of two instances in turn (SIGSTOP) for longer than
// the sequencer lease while writers load the other, then lets it go on
// (SIGCONT): what a long garbage-collection pause, a starved CPU or a
// migrated VM does. The stopped instance, when it holds the lease, is busy
// sequencing the other's writes; the other takes the lease meanwhile and
// sequences the journal. The one that wakes must not append what the new
// holder sequenced, nor lose what it acknowledged. Recovery is the time
// from SIGCONT until the woken instance acknowledges a write itself.
func relPauseS3(t *testing.T, e *relEnv) {
	c := newS3Cluster(t, e.bin, 2)
	ps := []*proc{c.start(t, 0), c.start(t, 1)}
	for _, p := range ps {
		t.Cleanup(func() { p.cmd.Process.Signal(syscall.SIGCONT) })
	}
	tok, _ := c.adminToken(t)
	pub := filepath.Join(c.dirs[0], "keys", "log.pub")
	l := startLoad(t, c.urls(ps), tok, "pause", 16, 6)
	cw := watchCheckpoints(c.urls(ps), mustVerifierFile(t, pub))
	const cycles = 4
	var worst time.Duration
	refused := ""
	for i := range cycles {
		time.Sleep(2 * time.Second)
		p := ps[i%2]
		// The writers go on through the other instance.
		l.setURLs(ps[(i+1)%2].url)
		time.Sleep(200 * time.Millisecond)
		before := l.snapshotStatus()
		p.cmd.Process.Signal(syscall.SIGSTOP)
		time.Sleep(journal.DefaultLease + 2*time.Second)
		refused = l.during(before)
		woke := time.Now()
		p.cmd.Process.Signal(syscall.SIGCONT)
		worst = max(worst, l.ackVia(t, p.url, "pause-woken", woke, "the woken instance"))
		l.setURLs(c.urls(ps)...)
	}
	time.Sleep(time.Second)
	l.halt()
	seen := cw.halt()
	lost := verifyLog(t, e, ps[0].url, tok, pub, l.acks, seen)
	record(relRow{Case: "SIGSTOP of one of two instances for the sequencer lease and 2 s, under load through the other", Storage: "s3",
		Cycles: cycles, Acked: len(l.acks), Lost: lost, Recovery: worst, Refused: refused})
}

// fault is a fault put on the log under load, cycle after cycle: begin
// starts it, it lasts for lasts, end ends it and returns how long the log
// took to recover; check sees the answers given while it lasted.
type fault struct {
	cycles int
	lasts  time.Duration
	begin  func()
	end    func(*load, *cpWatch) time.Duration
	check  func(t *testing.T, refused string)
}

// target is a running log the cases write to: its servers' URLs, the admin
// token and the log's public key file.
type target struct {
	urls     []string
	tok, pub string
}

// runFault runs f on the log of tg under load from writers on sessions,
// verifies the log afterwards, and returns the row of the results table
// without its case and storage.
func runFault(t *testing.T, e *relEnv, tg target, prefix string, writers, sessions int, f fault) relRow {
	l := startLoad(t, tg.urls, tg.tok, prefix, writers, sessions)
	cw := watchCheckpoints(tg.urls, mustVerifierFile(t, tg.pub))
	var worst time.Duration
	refused := ""
	for range f.cycles {
		time.Sleep(2 * time.Second)
		before := l.snapshotStatus()
		f.begin()
		time.Sleep(f.lasts)
		refused = l.during(before)
		if f.check != nil {
			f.check(t, refused)
		}
		worst = max(worst, f.end(l, cw))
	}
	time.Sleep(time.Second)
	l.halt()
	seen := cw.halt()
	lost := verifyLog(t, e, tg.urls[0], tg.tok, tg.pub, l.acks, seen)
	return relRow{Cycles: f.cycles, Acked: len(l.acks), Lost: lost, Recovery: worst, Refused: refused}
}

// runS3Fault runs f on two s3 instances on dsn and the bucket, under load
// from 16 writers on 6 sessions.
func runS3Fault(t *testing.T, e *relEnv, dsn, endpoint, bucket, prefix string, f fault) relRow {
	c := newS3ClusterOn(t, e.bin, 2, dsn, endpoint, bucket)
	ps := []*proc{c.start(t, 0), c.start(t, 1)}
	tok, _ := c.adminToken(t)
	row := runFault(t, e, target{c.urls(ps), tok, filepath.Join(c.dirs[0], "keys", "log.pub")}, prefix, 16, 6, f)
	row.Storage = "s3"
	return row
}

// relMariaDBRestart kills MariaDB under load and starts it again.
func relMariaDBRestart(t *testing.T, e *relEnv) {
	db := dbtest.StartMariaDB(t)
	ep, bucket := dbtest.S3(t)
	row := runS3Fault(t, e, dbtest.CreateDB(t, db.DSN("")), ep, bucket, "db", fault{
		cycles: 2, lasts: 3 * time.Second,
		begin: db.Kill,
		end: func(l *load, _ *cpWatch) time.Duration {
			db.Restart(t)
			return l.waitAck(t, time.Now(), 60*time.Second)
		},
		check: func(t *testing.T, refused string) {
			if !strings.Contains(refused, "503") {
				t.Errorf("with the database down, writes were answered %s; want 503", refused)
			}
		},
	})
	row.Case = "MariaDB killed (SIGKILL) and restarted under load"
	record(row)
}

// relConnectionsExhausted lets the instances' database user have no
// connection at all under load: max_connections lowered to its minimum,
// every free slot held by another client, the instances' connections
// killed. MariaDB refuses them with "Too many connections" (1040), which
// Tessera's driver passes on as text; writes must be refused with 503,
// never 500, and go on by themselves once connections are free again.
func relConnectionsExhausted(t *testing.T, e *relEnv) {
	db := dbtest.StartMariaDB(t)
	admin := openDB(t, db.DSN(""))
	admin.SetMaxOpenConns(1)
	for _, q := range []string{"CREATE DATABASE llmaudit", "CREATE USER 'llm'@'%' IDENTIFIED BY 'llm'", "GRANT ALL ON llmaudit.* TO 'llm'@'%'"} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	ep, bucket := dbtest.S3(t)
	var release func()
	row := runS3Fault(t, e, fmt.Sprintf("llm:llm@tcp(127.0.0.1:%d)/llmaudit", db.Port), ep, bucket, "conns", fault{
		cycles: 2, lasts: 3 * time.Second,
		begin: func() { release = exhaustConnections(t, admin, db.DSN(""), "llm") },
		end: func(l *load, _ *cpWatch) time.Duration {
			release()
			if _, err := admin.Exec("SET GLOBAL max_connections = 151"); err != nil {
				t.Fatal(err)
			}
			return l.waitAck(t, time.Now(), 60*time.Second)
		},
		check: func(t *testing.T, refused string) {
			if !strings.Contains(refused, "503") || strings.Contains(refused, "500") {
				t.Errorf("with no database connection to be had, writes were answered %s; want 503 and no 500", refused)
			}
		},
	})
	row.Case = "database connections exhausted under load (max_connections lowered, every slot held by another client, the instances' connections killed)"
	record(row)
}

// exhaustConnections lowers max_connections to MariaDB's minimum, fills
// every slot with connections of its own, and kills user's connections,
// until user holds none; release closes its connections.
func exhaustConnections(t *testing.T, admin *sql.DB, dsn, user string) (release func()) {
	t.Helper()
	ctx := context.Background()
	if _, err := admin.Exec("SET GLOBAL max_connections = 10"); err != nil {
		t.Fatal(err)
	}
	hog := openDB(t, dsn)
	var hogs []*sql.Conn
	release = func() {
		for _, h := range hogs {
			h.Close()
		}
		hog.Close()
	}
	for range 20 {
		for {
			h, err := hog.Conn(ctx)
			if err == nil {
				err = h.PingContext(ctx)
			}
			if err != nil {
				if h != nil {
					h.Close()
				}
				break
			}
			hogs = append(hogs, h)
		}
		if dbtest.KillConnections(t, admin, "user = ?", user) == 0 {
			return release
		}
	}
	t.Fatalf("%s kept connections to the database", user)
	return nil
}

// relObjectStoreRestart stops the object store under load and starts it
// again: writes are sequenced in MariaDB meanwhile, and integrated when
// the store is back.
func relObjectStoreRestart(t *testing.T, e *relEnv) {
	s3 := dbtest.StartS3(t)
	row := runS3Fault(t, e, dbtest.MariaDB(t), s3.Endpoint, "reliability", "s3", fault{
		cycles: 2, lasts: 4 * time.Second,
		begin: s3.Stop,
		end: func(l *load, cw *cpWatch) time.Duration {
			s3.Restart(t)
			back := time.Now()
			// Recovered: a checkpoint covers the writes made while it was away.
			target := l.maxIndex()
			for cw.latest() <= target {
				if time.Since(back) > 60*time.Second {
					t.Fatalf("no checkpoint covered index %d within 60 s of the object store's return", target)
				}
				time.Sleep(50 * time.Millisecond)
			}
			return time.Since(back)
		},
	})
	row.Case = "object store stopped and restarted under load (recovery: to a checkpoint covering the writes made meanwhile)"
	record(row)
}

func (l *load) maxIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var m uint64
	for _, a := range l.acks {
		m = max(m, a.index)
	}
	return m
}

// smallFS mounts a tmpfs of size bytes at a new directory, or skips the
// test when this process may not mount (it needs root).
func smallFS(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// relDiskFull fills the data directory's file system under load, then frees
// it.
func relDiskFull(t *testing.T, e *relEnv) {
	fs := smallFS(t, "64m")
	dir := filepath.Join(fs, "data")
	p := start(t, e.bin, dir)
	var stop chan struct{}
	var filled sync.WaitGroup
	row := runFault(t, e, target{[]string{p.url}, readToken(t, dir), filepath.Join(dir, "keys", "log.pub")}, "full", 8, 4, fault{
		cycles: 2, lasts: 3 * time.Second,
		// Fill what is left (dd stops at ENOSPC), and again whatever the
		// server frees (the journal drops its released segments, Tessera
		// its stale partial bundles) while the fault lasts.
		begin: func() {
			stop = make(chan struct{})
			filled.Go(func() {
				for i := 0; ; i++ {
					exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(fs, fmt.Sprintf("filler-%d", i)), "bs=4k").Run()
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			})
		},
		end: func(l *load, _ *cpWatch) time.Duration {
			close(stop)
			filled.Wait()
			fillers, _ := filepath.Glob(filepath.Join(fs, "filler-*"))
			for _, f := range fillers {
				os.Remove(f)
			}
			return l.waitAck(t, time.Now(), 30*time.Second)
		},
		check: func(t *testing.T, refused string) {
			if !strings.Contains(refused, "503") {
				t.Errorf("with the disk full, writes were answered %s; want 503", refused)
			}
		},
	})
	row.Case, row.Storage = "data directory's file system full under load, then freed", "posix"
	record(row)
}

// relReadOnly makes the data directory read-only: a running server's
// files cannot be remounted read-only (the kernel refuses while files are
// open for writing), so the server is stopped under load, the file system
// remounted read-only, and the server started on it: it must refuse to
// start, saying why, rather than serve. Then the file system is made
// writable again and the server started.
func relReadOnly(t *testing.T, e *relEnv) {
	fs := smallFS(t, "256m")
	dir := filepath.Join(fs, "data")
	p := start(t, e.bin, dir)
	tok := readToken(t, dir)
	pub := filepath.Join(dir, "keys", "log.pub")
	l := startLoad(t, []string{p.url}, tok, "ro", 8, 4)
	cw := watchCheckpoints([]string{p.url}, verifier(t, dir))
	const cycles = 2
	var worst time.Duration
	refused := ""
	for range cycles {
		time.Sleep(1500 * time.Millisecond)
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := <-p.errc; err != nil {
			t.Fatalf("clean stop: %v", err)
		}
		if out, err := exec.Command("mount", "-o", "remount,ro", fs).CombinedOutput(); err != nil {
			t.Fatalf("remount ro: %v %s", err, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, e.bin, "--data", dir, "--listen", "127.0.0.1:0").CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || timedOut || !strings.Contains(string(out), "read-only file system") {
			t.Fatalf("on a read-only data directory the server did not refuse to start, saying why: %v\n%s", err, out)
		}
		refused = "the server refuses to start: \"... " + lastLine(string(out))[max(0, len(lastLine(string(out)))-40):] + "\""
		if out, err := exec.Command("mount", "-o", "remount,rw", fs).CombinedOutput(); err != nil {
			t.Fatalf("remount rw: %v %s", err, out)
		}
		back := time.Now()
		p = start(t, e.bin, dir)
		l.setURLs(p.url)
		cw.halt()
		cw = watchCheckpoints([]string{p.url}, verifier(t, dir))
		worst = max(worst, l.waitAck(t, back, 30*time.Second))
	}
	l.halt()
	seen := cw.halt()
	lost := verifyLog(t, e, p.url, tok, pub, l.acks, seen)
	record(relRow{Case: "data directory read-only (the server stopped under load, started on it, then on it writable again; recovery: from the remount to the first write)", Storage: "posix", Cycles: cycles, Acked: len(l.acks), Lost: lost, Recovery: worst, Refused: refused})
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return ls[len(ls)-1]
}

// switchable is a witness address that can be made slow or dead.
type switchable struct {
	addr, target string
	mu           sync.Mutex
	delay        time.Duration
	srv          *http.Server
}

func (s *switchable) up(t *testing.T) {
	t.Helper()
	u := mustURL(t, s.target)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		d := s.delay
		s.mu.Unlock()
		time.Sleep(d)
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, u.String()+r.URL.Path, r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	var l net.Listener
	var err error
	for range 50 {
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.srv = &http.Server{Handler: h}
	go s.srv.Serve(l)
	t.Cleanup(func() { s.srv.Close() })
}

func (s *switchable) down() { s.srv.Close() }

func (s *switchable) setDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// relWitness makes the only witness of a fail-closed policy slow (within the
// witness timeout), then dead, then brings it back: writes are acknowledged
// throughout; checkpoints stop while the quorum cannot be met and resume
// when it can.
func relWitness(t *testing.T, e *relEnv) {
	dirs, vkey := presetDirs(t, "scaleout.test/log", 1)
	dir := dirs[0]
	w := witnesstest.StartOurWitness(t, "scaleout.test/log", vkey)
	sw := &switchable{addr: testproc.FreeAddr(t), target: w.URL}
	sw.up(t)
	policy := filepath.Join(t.TempDir(), "policy")
	os.WriteFile(policy, []byte(fmt.Sprintf("witness w %s http://%s\nquorum w\n", w.VerifierKey, sw.addr)), 0o644)
	p := startWith(t, e.bin, dir, nil, "--witness-policy", policy, "--witness-timeout", "2s")
	tok := readToken(t, dir)
	pub := filepath.Join(dir, "keys", "log.pub")
	l := startLoad(t, []string{p.url}, tok, "wit", 8, 4)
	cw := watchCheckpoints([]string{p.url}, mustVerifierFile(t, pub))
	time.Sleep(2 * time.Second)
	// Slow: 1.5 s per cosignature, inside the 2 s timeout.
	sw.setDelay(1500 * time.Millisecond)
	mark := l.maxIndex()
	start := time.Now()
	for cw.latest() <= mark {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("a slow witness stopped checkpoints")
		}
		time.Sleep(50 * time.Millisecond)
	}
	sw.setDelay(0)
	// Dead.
	before := l.snapshotStatus()
	sw.down()
	time.Sleep(time.Second)
	stalled := cw.latest()
	time.Sleep(4 * time.Second)
	if got := cw.latest(); got > stalled {
		t.Errorf("a checkpoint of size %d was published while the only witness was dead", got)
	}
	refused := l.during(before)
	sw.up(t)
	back := time.Now()
	target := l.maxIndex()
	for cw.latest() <= target {
		if time.Since(back) > 30*time.Second {
			t.Fatalf("checkpoints did not resume within 30 s of the witness's return")
		}
		time.Sleep(50 * time.Millisecond)
	}
	recovery := time.Since(back)
	l.halt()
	seen := cw.halt()
	lost := verifyLog(t, e, p.url, tok, pub, l.acks, seen)
	record(relRow{Case: "the only witness slow (1.5 s, within the 2 s timeout), then dead for 5 s, then back (recovery: to a checkpoint covering the writes made meanwhile)", Storage: "posix", Cycles: 1, Acked: len(l.acks), Lost: lost, Recovery: recovery, Refused: refused + "; no checkpoint published while dead"})
}

// relClockStep leaves the time of the last publication an hour in the
// future, as a clock stepped back by an hour does (Tessera's drivers
// publish only once it is a checkpoint interval in the past), and an hour
// in the past, as a step forward does. The process clock itself is not
// stepped: that would step the whole machine's, under the other tests.
func relClockStep(t *testing.T, e *relEnv, s3 bool) {
	var urls []string
	var tok, pub, storage string
	var setPublished func(time.Time)
	if s3 {
		c := newS3Cluster(t, e.bin, 2)
		ps := []*proc{c.start(t, 0), c.start(t, 1)}
		urls = c.urls(ps)
		tok, _ = c.adminToken(t)
		pub = filepath.Join(c.dirs[0], "keys", "log.pub")
		storage = "s3"
		db := openDB(t, c.dsn)
		setPublished = func(at time.Time) {
			if _, err := db.Exec(`UPDATE PubCoord SET publishedAt = ? WHERE id = 0`, at.Unix()); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		dir := t.TempDir()
		p := start(t, e.bin, dir)
		urls = []string{p.url}
		tok = readToken(t, dir)
		pub = filepath.Join(dir, "keys", "log.pub")
		storage = "posix"
		setPublished = func(at time.Time) {
			if err := os.Chtimes(filepath.Join(dir, "log", "checkpoint"), at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	l := startLoad(t, urls, tok, "clock", 8, 4)
	cw := watchCheckpoints(urls, mustVerifierFile(t, pub))
	var worst time.Duration
	for _, step := range []time.Duration{-time.Hour, time.Hour} {
		time.Sleep(2 * time.Second)
		setPublished(time.Now().Add(-step))
		at := time.Now()
		target := l.maxIndex()
		for cw.latest() <= target {
			if time.Since(at) > 30*time.Second {
				t.Fatalf("after a clock step of %v, no checkpoint for 30 s", step)
			}
			time.Sleep(50 * time.Millisecond)
		}
		worst = max(worst, time.Since(at))
	}
	l.halt()
	seen := cw.halt()
	lost := verifyLog(t, e, urls[0], tok, pub, l.acks, seen)
	record(relRow{Case: "clock stepped back 1 h, then forward 1 h (simulated: the time of the last publication set 1 h ahead, then 1 h behind; recovery: to the next checkpoint)", Storage: storage, Cycles: 2, Acked: len(l.acks), Lost: lost, Recovery: worst, Refused: l.during(map[string]int{})})
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// relMalformed sends thousands of malformed requests between good writes:
// each is refused with a 4xx, none with a 5xx or a 2xx, and the good writes
// are all kept.
func relMalformed(t *testing.T, e *relEnv) {
	dir := t.TempDir()
	p := start(t, e.bin, dir)
	tok := readToken(t, dir)
	pub := filepath.Join(dir, "keys", "log.pub")
	l := startLoad(t, []string{p.url}, tok, "mixed", 4, 4)
	cw := watchCheckpoints([]string{p.url}, verifier(t, dir))
	good := `{"session":"s","kind":"tool.call","actor":{"type":"agent","id":"a"}}`
	big := strings.Repeat("x", 5<<20)
	type badReq struct {
		name, method, path, body, token string
		header                          map[string]string
	}
	bad := []badReq{
		{"no token", "POST", "/v1/events", good, "", nil},
		{"unknown token", "POST", "/v1/events", good, "lat_nope", nil},
		{"not JSON", "POST", "/v1/events", "{", tok, nil},
		{"unknown field", "POST", "/v1/events", `{"session":"s","kind":"tool.call","actor":{"type":"agent","id":"a"},"bogus":1}`, tok, nil},
		{"server-set field", "POST", "/v1/events", `{"session":"s","kind":"tool.call","actor":{"type":"agent","id":"a"},"seq":7}`, tok, nil},
		{"reserved kind", "POST", "/v1/events", `{"session":"s","kind":"access.read","actor":{"type":"agent","id":"a"}}`, tok, nil},
		{"bad session id", "POST", "/v1/events", "{\"session\":\"a b\\u0000\",\"kind\":\"tool.call\",\"actor\":{\"type\":\"agent\",\"id\":\"a\"}}", tok, nil},
		{"invalid UTF-8", "POST", "/v1/events", "{\"session\":\"s\xff\",\"kind\":\"tool.call\",\"actor\":{\"type\":\"agent\",\"id\":\"a\"}}", tok, nil},
		{"body over the limit", "POST", "/v1/events", `{"session":"s","payload":"` + big + `"}`, tok, nil},
		{"deep nesting", "POST", "/v1/events", `{"session":"s","kind":"tool.call","actor":{"type":"agent","id":"a"},"payload":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, tok, nil},
		{"batch over the limit", "POST", "/v1/events:batch", `{"events":[` + strings.TrimSuffix(strings.Repeat(good+",", 1001), ",") + `]}`, tok, nil},
		{"bad index", "GET", "/v1/entries/abc", "", tok, nil},
		{"index overflow", "GET", "/v1/entries/99999999999999999999999", "", tok, nil},
		{"dot segments", "GET", "/v1/sessions/%2e%2e%2fadmin", "", tok, nil},
		{"negative limit", "GET", "/v1/sessions/s?limit=-1", "", tok, nil},
		{"bad tile path", "GET", "/tile/0/x/../../keys", "", "", nil},
		{"huge header", "GET", "/checkpoint", "", "", map[string]string{"X-Big": strings.Repeat("h", 2<<20)}},
		{"wrong method", "DELETE", "/v1/events", good, tok, nil},
	}
	counts := map[string]map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	const rounds = 600
	for g := range 4 {
		wg.Go(func() {
			for i := range rounds {
				b := bad[(g+i)%len(bad)]
				req, _ := http.NewRequest(b.method, p.url+b.path, strings.NewReader(b.body))
				if b.token != "" {
					req.Header.Set("Authorization", "Bearer "+b.token)
				}
				for k, v := range b.header {
					req.Header.Set(k, v)
				}
				status := 0
				if resp, err := client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				mu.Lock()
				if counts[b.name] == nil {
					counts[b.name] = map[int]int{}
				}
				counts[b.name][status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	total := 0
	for name, byStatus := range counts {
		for status, n := range byStatus {
			total += n
			if status < 400 || status >= 500 {
				t.Errorf("%s: %d answers with status %d; want 4xx", name, n, status)
			}
		}
	}
	l.halt()
	seen := cw.halt()
	lost := verifyLog(t, e, p.url, tok, pub, l.acks, seen)
	record(relRow{Case: fmt.Sprintf("%d malformed requests of %d kinds among good writes", total, len(bad)), Storage: "posix", Cycles: 1, Acked: len(l.acks), Lost: lost, Refused: "every malformed request 4xx, " + l.during(map[string]int{})})
}

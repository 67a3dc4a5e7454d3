package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
)

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "log-server")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type proc struct {
	cmd  *exec.Cmd
	url  string
	errc chan error
}

var listenRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// start runs the log server on a free port and waits until it listens.
func start(t *testing.T, bin, dir string) *proc {
	t.Helper()
	return startWith(t, bin, dir, nil)
}

// startWith is start with more flags and, if env is not nil, that
// environment.
func startWith(t *testing.T, bin, dir string, env []string, flags ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--data", dir, "--listen", "127.0.0.1:0", "--checkpoint-interval", "100ms"}, flags...)...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, errc: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	go func() { p.errc <- cmd.Wait() }()
	select {
	case a := <-addr:
		p.url = "http://" + a
	case err := <-p.errc:
		t.Fatalf("log-server exited: %v", err)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("log-server did not start")
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return p
}

type acked struct {
	session  string
	seq      uint64
	index    uint64
	leafHash string
}

// TestCrashKeepsAcknowledgedWrites kills the server with SIGKILL while many
// clients write, restarts it, and checks that every acknowledged event is in
// the log with a valid inclusion proof, that the session chains are intact
// and continue, and that the new checkpoint is consistent with the last one
// published before the kill.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	var all []acked
	var lastCP []byte
	for round := range 3 {
		p := start(t, bin, dir)
		tok := readToken(t, dir)
		v := verifier(t, dir)
		acks, cp := writeUntilKilled(t, p, tok, v, round)
		if len(acks) == 0 {
			t.Fatalf("round %d: no write was acknowledged before the kill", round)
		}
		t.Logf("round %d: %d writes acknowledged before SIGKILL", round, len(acks))
		all = append(all, acks...)
		if cp != nil {
			lastCP = cp
		}

		p = start(t, bin, dir)
		checkAfterRestart(t, p, tok, v, all, lastCP)
		// Writes after the restart continue each chain: the new event is
		// the session's next seq and links to its last event (acknowledged
		// or not: a write may be in the log without its answer).
		for s := range 3 {
			session := fmt.Sprintf("r%d-w%d", round, s)
			res := post(t, p.url, tok, session)
			if res == nil {
				t.Fatalf("write after restart refused")
			}
			leaves := sessionLeaves(t, p.url, tok, session)
			if err := checkChain(session, leaves); err != nil {
				t.Fatalf("after a write following the restart: %v", err)
			}
			if last := leaves[len(leaves)-1]; hex.EncodeToString(event.LeafHash(last)) != res.LeafHash {
				t.Fatalf("session %s: the write after the restart is not the session's last event", session)
			}
			all = append(all, acked{session, res.Seq, res.Index, res.LeafHash})
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := <-p.errc; err != nil {
			t.Fatalf("clean shutdown failed: %v", err)
		}
	}
}

func readToken(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "keys", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func verifier(t *testing.T, dir string) note.Verifier {
	b, err := os.ReadFile(filepath.Join(dir, "keys", "log.pub"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type eventResp struct {
	ID       string `json:"id"`
	Index    uint64 `json:"index"`
	Seq      uint64 `json:"seq"`
	Leaf     string `json:"leaf"`
	LeafHash string `json:"leaf_hash"`
}

var client = &http.Client{Timeout: 10 * time.Second}

func post(t *testing.T, url, tok, session string) *eventResp {
	body := fmt.Sprintf(`{"session":%q,"kind":"tool.call","actor":{"type":"agent","id":"crash"},"payload":{"pad":%q}}`, session, strings.Repeat("x", 512))
	req, _ := http.NewRequest("POST", url+"/v1/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return nil // the server died mid-request: not acknowledged
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusCreated {
		return nil
	}
	var r eventResp
	if err := json.Unmarshal(b, &r); err != nil {
		t.Errorf("2xx with unparseable body %q", b)
		return nil
	}
	return &r
}

func writeUntilKilled(t *testing.T, p *proc, tok string, v note.Verifier, round int) ([]acked, []byte) {
	var mu sync.Mutex
	var acks []acked
	var lastCP []byte
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 24 {
		wg.Go(func() {
			// Writers 0-2 own a session across rounds; the others share.
			session := fmt.Sprintf("r%d-w%d", round, w%12)
			if w < 3 {
				session = fmt.Sprintf("r0-w%d", w)
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r := post(t, p.url, tok, session); r != nil {
					mu.Lock()
					acks = append(acks, acked{session, r.Seq, r.Index, r.LeafHash})
					mu.Unlock()
				}
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			resp, err := client.Get(p.url + "/checkpoint")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if _, _, err := checkpoint.Verify(b, v); err == nil {
				mu.Lock()
				lastCP = b
				mu.Unlock()
			}
		}
	})
	time.Sleep(1500 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.errc
	close(stop)
	wg.Wait()
	return acks, lastCP
}

func checkAfterRestart(t *testing.T, p *proc, tok string, v note.Verifier, all []acked, lastCP []byte) {
	t.Helper()
	var maxIdx uint64
	for _, a := range all {
		maxIdx = max(maxIdx, a.index)
	}
	// Wait for a checkpoint covering every acknowledged entry.
	var cp *fmtlog.Checkpoint
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(p.url + "/checkpoint")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if c, _, err := checkpoint.Verify(b, v); err == nil && c.Size > maxIdx {
				cp = c
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint covering index %d after restart", maxIdx)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Every acknowledged write is there, with a valid inclusion proof.
	for _, a := range all {
		var rc struct {
			Index          uint64
			Leaf           []byte
			TreeSize       uint64   `json:"tree_size"`
			InclusionProof [][]byte `json:"inclusion_proof"`
		}
		getJSON(t, fmt.Sprintf("%s/v1/entries/%d?size=%d", p.url, a.index, cp.Size), tok, &rc)
		lh := rfc6962.DefaultHasher.HashLeaf(rc.Leaf)
		if hex.EncodeToString(lh) != a.leafHash {
			t.Fatalf("entry %d: leaf hash %x, acknowledged %s", a.index, lh, a.leafHash)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, a.index, cp.Size, lh, rc.InclusionProof, cp.Hash); err != nil {
			t.Fatalf("entry %d: inclusion proof: %v", a.index, err)
		}
	}
	// Session chains are intact (checkChain), and every acknowledged event
	// is in its session at its seq.
	sessions := map[string]map[uint64]string{}
	for _, a := range all {
		if sessions[a.session] == nil {
			sessions[a.session] = map[uint64]string{}
		}
		sessions[a.session][a.seq] = a.leafHash
	}
	for s, want := range sessions {
		leaves := sessionLeaves(t, p.url, tok, s)
		if err := checkChain(s, leaves); err != nil {
			t.Fatal(err)
		}
		for seq, h := range want {
			if seq >= uint64(len(leaves)) || hex.EncodeToString(event.LeafHash(leaves[seq])) != h {
				t.Fatalf("session %s: acknowledged seq %d (%s) missing after restart", s, seq, h)
			}
		}
	}
	// The new checkpoint is consistent with the last one seen before the kill.
	if lastCP != nil {
		old, _, err := checkpoint.Verify(lastCP, v)
		if err != nil {
			t.Fatal(err)
		}
		if old.Size > cp.Size {
			t.Fatalf("log shrank: %d before the kill, %d after", old.Size, cp.Size)
		}
		if old.Size > 0 && old.Size < cp.Size {
			var cr struct{ Proof [][]byte }
			getJSON(t, fmt.Sprintf("%s/v1/proof/consistency?from=%d&to=%d", p.url, old.Size, cp.Size), "", &cr)
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cp.Size, cr.Proof, old.Hash, cp.Hash); err != nil {
				t.Fatalf("checkpoint after restart is not consistent with the one before the kill: %v", err)
			}
		} else if old.Size == cp.Size && !bytes.Equal(old.Hash, cp.Hash) {
			t.Fatal("same size, different root after restart")
		}
	}
}

// sessionLeaves reads a session's leaves in listing order.
func sessionLeaves(t *testing.T, url, tok, session string) [][]byte {
	t.Helper()
	var page struct{ Events []struct{ Index uint64 } }
	getJSON(t, url+"/v1/sessions/"+session, tok, &page)
	// Entries are served once a published checkpoint covers them.
	if n := len(page.Events); n > 0 {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var cp fmtlog.Checkpoint
			resp, err := client.Get(url + "/checkpoint")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if _, err := cp.Unmarshal(b); err == nil && cp.Size > page.Events[n-1].Index {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint covers entry %d", page.Events[n-1].Index)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var out [][]byte
	for _, e := range page.Events {
		var rc struct{ Leaf []byte }
		getJSON(t, fmt.Sprintf("%s/v1/entries/%d", url, e.Index), tok, &rc)
		out = append(out, rc.Leaf)
	}
	return out
}

// checkChain checks that leaves are a whole session's chain, in order:
// every leaf parses and belongs to session, its seq is its position (from
// 0, no gaps), and its prev is the leaf hash of the one before (none at 0).
func checkChain(session string, leaves [][]byte) error {
	if len(leaves) == 0 {
		return fmt.Errorf("session %s is empty", session)
	}
	var prev string
	for i, data := range leaves {
		l, err := event.ParseLeaf(data)
		if err != nil {
			return fmt.Errorf("session %s, position %d: %w", session, i, err)
		}
		switch {
		case l.Session != session:
			return fmt.Errorf("session %s, position %d: leaf of session %s", session, i, l.Session)
		case l.Seq != uint64(i):
			return fmt.Errorf("session %s: seq %d at position %d (a gap or reordering)", session, l.Seq, i)
		case l.Prev != prev:
			return fmt.Errorf("session %s seq %d: prev %q, want %q", session, l.Seq, l.Prev, prev)
		}
		prev = hex.EncodeToString(event.LeafHash(data))
	}
	return nil
}

// TestCheckChain shows that checkChain fails on a gap, a broken link, a
// reordering and a leaf that does not parse.
func TestCheckChain(t *testing.T) {
	var leaves [][]byte
	var prev string
	for i := range 4 {
		l := event.Leaf{V: event.LeafVersion, ID: fmt.Sprintf("%032x", i), Kind: "tool.call", Time: event.TimeFormat,
			Tenant: "t", Session: "s", Seq: uint64(i), Prev: prev, Actor: event.Actor{Type: "agent", ID: "a"}, Writer: &event.Writer{Token: "t0", Via: event.ViaAPI}}
		b, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, b)
		prev = hex.EncodeToString(event.LeafHash(b))
	}
	if err := checkChain("s", leaves); err != nil {
		t.Fatalf("a whole chain: %v", err)
	}
	relinked := append([][]byte(nil), leaves...)
	relinked[2] = bytes.Replace(leaves[2], []byte(`"prev":"`), []byte(`"prev":"0`), 1)
	for name, bad := range map[string][][]byte{
		"gap":         {leaves[0], leaves[1], leaves[3]},
		"reordered":   {leaves[0], leaves[2], leaves[1], leaves[3]},
		"broken link": relinked,
		"not a leaf":  {leaves[0], []byte("{")},
		"other start": leaves[1:],
		"empty":       nil,
	} {
		if err := checkChain("s", bad); err == nil {
			t.Errorf("%s: checkChain accepted it", name)
		}
	}
}

func getJSON(t *testing.T, url, tok string, v any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

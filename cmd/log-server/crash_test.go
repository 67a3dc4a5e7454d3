package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
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
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
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
	cmd := exec.Command(bin, "--data", dir, "--listen", "127.0.0.1:0", "--checkpoint-interval", "100ms")
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
		// Writes after the restart continue each chain.
		for s := range 3 {
			session := fmt.Sprintf("r%d-w%d", round, s)
			var last *acked
			for i := range all {
				if all[i].session == session && (last == nil || all[i].seq > last.seq) {
					last = &all[i]
				}
			}
			res := post(t, p.url, tok, session)
			if res == nil {
				t.Fatalf("write after restart refused")
			}
			if last != nil {
				leaf, _ := base64.StdEncoding.DecodeString(res.Leaf)
				l, _ := auditlog.ParseLeaf(leaf)
				if l.Seq != last.seq+1 && l.Seq <= last.seq {
					t.Fatalf("session %s continues at seq %d after acked seq %d", session, l.Seq, last.seq)
				}
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
		getJSON(t, fmt.Sprintf("%s/v1/entries/%d?size=%d", p.url, a.index, cp.Size), "", &rc)
		lh := rfc6962.DefaultHasher.HashLeaf(rc.Leaf)
		if hex.EncodeToString(lh) != a.leafHash {
			t.Fatalf("entry %d: leaf hash %x, acknowledged %s", a.index, lh, a.leafHash)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, a.index, cp.Size, lh, rc.InclusionProof, cp.Hash); err != nil {
			t.Fatalf("entry %d: inclusion proof: %v", a.index, err)
		}
	}
	// Session chains are intact: contiguous seq and prev links, and every
	// acknowledged event is in its session at its seq.
	sessions := map[string]map[uint64]string{}
	for _, a := range all {
		if sessions[a.session] == nil {
			sessions[a.session] = map[uint64]string{}
		}
		sessions[a.session][a.seq] = a.leafHash
	}
	for s, want := range sessions {
		var got struct {
			Events []auditlog.SessionEntry
		}
		getJSON(t, p.url+"/v1/sessions/"+s, tok, &got)
		prev := ""
		for i, e := range got.Events {
			if e.Seq != uint64(i) {
				t.Fatalf("session %s: event %d has seq %d", s, i, e.Seq)
			}
			var rc struct{ Leaf []byte }
			getJSON(t, fmt.Sprintf("%s/v1/entries/%d", p.url, e.Index), "", &rc)
			l, err := auditlog.ParseLeaf(rc.Leaf)
			if err != nil {
				t.Fatal(err)
			}
			if l.Prev != prev || l.Seq != e.Seq || l.Session != s {
				t.Fatalf("session %s seq %d: prev %q, want %q", s, e.Seq, l.Prev, prev)
			}
			prev = e.LeafHash
		}
		for seq, h := range want {
			if seq >= uint64(len(got.Events)) || got.Events[seq].LeafHash != h {
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

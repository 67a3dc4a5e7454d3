package main

import (
	"bufio"
	"bytes"
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
	"testing"
	"time"

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
	// A write stuck behind a fault is answered 202 after a second, so that
	// the fault tests see the answers the fault gives new writes.
	cmd := exec.Command(bin, append([]string{"--data", dir, "--listen", "127.0.0.1:0", "--checkpoint-interval", "100ms", "--index-wait", "1s"}, flags...)...)
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
		// LLMAUDIT_TEST_SERVER_LOG names a file that gets every server's
		// log lines (debugging).
		var logf *os.File
		if name := os.Getenv("LLMAUDIT_TEST_SERVER_LOG"); name != "" {
			logf, _ = os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			defer logf.Close()
		}
		for sc.Scan() {
			if logf != nil {
				fmt.Fprintf(logf, "%s %s\n", dir, sc.Text())
			}
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
	id       string // with index 0 and no index known: answered 202 (durable, not yet sequenced)
	pending  bool
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
	Pending  bool   `json:"-"` // answered 202: durable, no index yet
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
	if err := json.Unmarshal(httpGet(t, url, tok), v); err != nil {
		t.Fatal(err)
	}
}

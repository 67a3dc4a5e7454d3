package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	lclient "github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/dbtest"
	"github.com/llmaudittrail/llmaudittrail/internal/keyfile"
	"github.com/llmaudittrail/llmaudittrail/internal/testproc"
	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
)

// s3Cluster is one log on a MariaDB database and an S3 bucket, served by
// several log-server processes.
type s3Cluster struct {
	bin, dsn, endpoint, bucket string
	origin, vkey               string
	dirs                       []string
	policy                     string // witness policy file, if any
	env                        []string
}

// newS3Cluster makes the keys every instance shares (the checkpoint key and
// the vault master key, as an operator would copy them) for n instances.
func newS3Cluster(t *testing.T, bin string, n int) *s3Cluster {
	t.Helper()
	dsn := dbtest.MariaDB(t)
	ep, bucket := dbtest.S3(t)
	c := &s3Cluster{bin: bin, dsn: dsn, endpoint: ep, bucket: bucket, origin: "scaleout.test/log", env: os.Environ()}
	c.dirs, c.vkey = presetDirs(t, c.origin, n)
	return c
}

// presetDirs makes n data directories holding one checkpoint key for
// origin and one vault master key.
func presetDirs(t *testing.T, origin string, n int) (dirs []string, vkey string) {
	t.Helper()
	skey, vkey, err := checkpoint.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	master := make([]byte, 32)
	for i := range master {
		master[i] = byte(i * 7)
	}
	for range n {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"log.key": skey + "\n", "master.key": hex.EncodeToString(master) + "\n"} {
			if err := keyfile.Create(filepath.Join(dir, "keys", name), []byte(data)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "keys", "log.pub"), []byte(vkey+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	return dirs, vkey
}

func (c *s3Cluster) flags(extra ...string) []string {
	f := []string{"--storage", "s3", "--db-dsn", c.dsn, "--s3-endpoint", c.endpoint, "--s3-bucket", c.bucket, "--checkpoint-interval", "1s"}
	if c.policy != "" {
		f = append(f, "--witness-policy", c.policy)
	}
	return append(f, extra...)
}

// start starts instance i.
func (c *s3Cluster) start(t *testing.T, i int, extra ...string) *proc {
	t.Helper()
	return startWith(t, c.bin, c.dirs[i], c.env, c.flags(extra...)...)
}

// adminToken is the admin token, in the data directory of the instance that
// made it (the first to start on the new database).
func (c *s3Cluster) adminToken(t *testing.T) (tok, path string) {
	t.Helper()
	for _, d := range c.dirs {
		p := filepath.Join(d, "keys", "admin.token")
		if b, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(b)), p
		}
	}
	t.Fatal("no instance wrote keys/admin.token")
	return "", ""
}

func buildTool(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// TestScaleOut runs two log-server instances on one MariaDB database and
// one bucket, with two witnesses (ours and litewitness) that must both
// cosign. The load tool writes through both at once to shared sessions and
// verifies every acknowledged event; monitor verify audits the whole log;
// receipts come from either instance; a token revoked in the database
// stops working in both within auth.CacheTTL; the session index of one
// instance lists what the other wrote; the log reads the same from the
// server and, for a public log, straight from the bucket with Tessera's
// client; and Tessera's hammer reads it while it grows.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real binaries")
	}
	bin := buildBinary(t)
	c := newS3Cluster(t, bin, 2)
	ours := witnesstest.StartOurWitness(t, c.origin, c.vkey)
	lite := witnesstest.StartLitewitness(t, c.origin, c.vkey)
	c.policy = filepath.Join(t.TempDir(), "policy")
	if err := os.WriteFile(c.policy, []byte(ours.PolicyLine("ours")+"\n"+lite.PolicyLine("lite")+"\ngroup both 2 ours lite\nquorum both\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := c.start(t, 0)
	b := c.start(t, 1)
	tok, tokPath := c.adminToken(t)
	pubPath := filepath.Join(c.dirs[0], "keys", "log.pub")

	// Load through both instances, shared sessions, every ack verified.
	loadgen := buildTool(t, "github.com/llmaudittrail/llmaudittrail/cmd/loadgen")
	out, err := exec.Command(loadgen, "--url", a.url, "--url", b.url, "--token-file", tokPath, "-c", "16", "-d", "6s",
		"--sessions", "4", "--payload", "256", "--progress", "2s", "--verify", "--log-key", pubPath, "--witness-policy", c.policy).CombinedOutput()
	t.Logf("loadgen:\n%s", out)
	if err != nil || !strings.Contains(string(out), "verify: ok") || !strings.Contains(string(out), "failed=0") {
		t.Fatalf("loadgen through both instances: %v", err)
	}

	// The whole log audits clean, checkpoint cosigned by both witnesses.
	monitor := buildTool(t, "github.com/llmaudittrail/llmaudittrail/cmd/monitor")
	out, err = exec.Command(monitor, "verify", "--url", b.url, "--log-key", pubPath, "--token-file", tokPath, "--witness-policy", c.policy).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK: everything verified") {
		t.Fatalf("monitor verify: %v\n%s", err, out)
	}
	t.Logf("monitor verify:\n%s", out)

	// Receipts from either instance verify under the policy.
	pol, err := checkpoint.ParsePolicy(mustRead(t, c.policy))
	if err != nil {
		t.Fatal(err)
	}
	rv := api.NewReceiptVerifier(mustVerifier(t, c.vkey), pol)
	for _, p := range []*proc{a, b} {
		lc := logClient(t, p.url, tok)
		ws, err := lc.Append(context.Background(), []*event.Request{{Session: "receipts", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "x"}}}, lclient.WaitForCheckpoint())
		if err != nil {
			t.Fatal(err)
		}
		if ws[0].Receipt == nil {
			t.Fatalf("no receipt from %s: %v", p.url, ws[0].ReceiptError)
		}
		if _, err := rv.Verify(ws[0].Receipt); err != nil {
			t.Fatalf("receipt from %s: %v", p.url, err)
		}
	}

	// What one instance writes, the other lists (the shared index).
	la, lb := logClient(t, a.url, tok), logClient(t, b.url, tok)
	w, err := la.Append(context.Background(), []*event.Request{{Session: "cross", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	page, err := lb.Session(context.Background(), "cross", lclient.SessionQuery{})
	if err != nil || len(page.Events) != 1 || page.Events[0].Index != w[0].Index {
		t.Fatalf("instance b lists session cross as %+v, %v", page, err)
	}

	// A token revoked in the database is refused by both within CacheTTL.
	tokenCmd := func(args ...string) string {
		cmd := exec.Command(bin, append([]string{"token"}, args...)...)
		cmd.Env = append(os.Environ(), "LLMAUDIT_DB_DSN="+c.dsn)
		o, err := cmd.Output()
		if err != nil {
			t.Fatalf("token %v: %v", args, err)
		}
		return strings.TrimSpace(string(o))
	}
	agentTok := tokenCmd("create", "--name", "agent", "--scopes", "write,read")
	var id string
	for _, l := range strings.Split(tokenCmd("list"), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "agent" {
			id = f[0]
		}
	}
	for _, p := range []*proc{a, b} {
		if _, err := logClient(t, p.url, agentTok).Append(context.Background(), []*event.Request{{Session: "tok", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "x"}}}); err != nil {
			t.Fatalf("new token at %s: %v", p.url, err)
		}
	}
	tokenCmd("revoke", "--id", id)
	revoked := time.Now()
	for _, p := range []*proc{a, b} {
		for {
			_, err := logClient(t, p.url, agentTok).Append(context.Background(), []*event.Request{{Session: "tok", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "x"}}})
			if errors.Is(err, lclient.ErrUnauthenticated) {
				break
			}
			if time.Since(revoked) > auth.CacheTTL+time.Second {
				t.Fatalf("%s still accepts a token revoked %v ago (bound %v): %v", p.url, time.Since(revoked), auth.CacheTTL, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("revocation took effect in both instances within %v", time.Since(revoked).Round(10*time.Millisecond))

	// Tessera's hammer reads through instance a while both grow the log.
	hammer := testproc.Tool(t, "hammer")
	cmd := exec.Command(hammer, "--log_url", a.url+"/", "--log_public_key", c.vkey,
		"--num_writers", "0", "--num_readers_full", "2", "--num_readers_random", "4", "--max_read_ops", "200",
		"--leaf_write_goal", "300", "--max_runtime", "120s", "--show_ui=false", "--bearer_token", tok)
	var hout strings.Builder
	cmd.Stdout, cmd.Stderr = &hout, &hout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, p := range []*proc{a, b, a, b} {
		lc := logClient(t, p.url, tok)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				lc.Append(context.Background(), []*event.Request{{Session: fmt.Sprint("hammer-", i), Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "x"}}})
			}
		})
	}
	err = <-exited
	close(stop)
	wg.Wait()
	if err != nil || strings.Contains(hout.String(), "E1") {
		t.Fatalf("hammer: %v\n%s", err, hout.String())
	}

	// A public log is read the same straight from the bucket (anonymous
	// reads), with Tessera's client: the checkpoint, its tiles and its
	// entry bundles.
	bucketURL := c.endpoint + "/" + c.bucket + "/"
	raw := httpGet(t, bucketURL+"checkpoint", "")
	cp, err := api.VerifyCheckpoint(raw, mustVerifier(t, c.vkey), pol)
	if err != nil {
		t.Fatalf("the bucket's checkpoint: %v", err)
	}
	f, err := tclient.NewHTTPFetcher(mustURL(t, bucketURL), http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := tclient.NewProofBuilder(context.Background(), cp.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	leaf := w[0].Leaf
	p, err := pb.InclusionProof(context.Background(), w[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.VerifyInclusion(w[0].Index, cp.Size, event.LeafHash(leaf), p, cp.Hash); err != nil {
		t.Fatalf("inclusion from the bucket's tiles: %v", err)
	}
	bi := w[0].Index / 256
	direct, err := f.ReadEntryBundle(context.Background(), bi, partial(bi, cp.Size))
	if err != nil {
		t.Fatal(err)
	}
	viaServer := httpGet(t, fmt.Sprintf("%s/tile/entries/%s", a.url, bundlePath(bi, cp.Size)), tok)
	if !bytes.Equal(direct, viaServer) || !bytes.Contains(direct, leaf) {
		t.Fatal("the entry bundle read from the bucket differs from the one the server serves")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func logClient(t *testing.T, url, tok string) *lclient.Client {
	t.Helper()
	c, err := lclient.New(url, lclient.WithToken(tok))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func httpGet(t *testing.T, url, tok string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
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
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return b
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	t.Helper()
	v, err := checkpoint.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// partial is the width of entry bundle bi in a tree of size entries (0 for
// a full one).
func partial(bi, size uint64) uint8 { return layout.PartialTileSize(0, bi, size) }

// bundlePath is the tlog-tiles path of entry bundle bi below tile/entries/.
func bundlePath(bi, size uint64) string {
	return strings.TrimPrefix(layout.EntriesPath(bi, partial(bi, size)), "tile/entries/")
}

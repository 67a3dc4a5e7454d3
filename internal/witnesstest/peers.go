package witnesstest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/mod/sumdb/note"
	_ "modernc.org/sqlite"

	"github.com/llmaudittrail/llmaudittrail/internal/testproc"
	"github.com/llmaudittrail/llmaudittrail/witness"
)

// Peer is a running witness.
type Peer struct {
	// Name is the witness's key name.
	Name string
	// URL is the submission prefix: requests go to URL + "/add-checkpoint".
	URL string
	// VerifierKey is the witness's cosignature/v1 verifier key.
	VerifierKey string
	// Stop stops the witness (SIGINT, then SIGKILL after 5 s for processes);
	// it also runs at test cleanup and may be called more than once.
	Stop func()
	// DataDir holds the witness's state, for peers that have one.
	DataDir string
}

// PolicyLine returns the witness line of a tessera / Sigsum policy file
// naming this peer as label.
func (p *Peer) PolicyLine(label string) string {
	return fmt.Sprintf("witness %s %s %s", label, p.VerifierKey, p.URL)
}

// Verifier returns a cosignature/v1 verifier for the peer's key.
func (p *Peer) Verifier(t testing.TB) note.Verifier {
	t.Helper()
	v, err := fnote.NewVerifierForCosignatureV1(p.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// LogKey names a log for a witness: its origin and note verifier key.
type LogKey struct {
	Origin      string
	VerifierKey string
}

func logKeys(origin, vkey string, more []LogKey) []LogKey {
	return append([]LogKey{{origin, vkey}}, more...)
}

// StartOurWitness runs our witness (package witness) in-process on an
// httptest server, named "ours.test/witness", configured for the log
// (logOrigin, logVkey) and any more logs.
func StartOurWitness(t testing.TB, logOrigin, logVkey string, more ...LogKey) *Peer {
	t.Helper()
	dir := t.TempDir()
	cfg := &witness.Config{Name: "ours.test/witness"}
	for _, l := range logKeys(logOrigin, logVkey, more) {
		cfg.Logs = append(cfg.Logs, witness.LogConfig{Origin: l.Origin, Key: l.VerifierKey})
	}
	w, err := witness.Open(context.Background(), dir, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w.Handler())
	stop := sync.OnceFunc(func() {
		srv.Close()
		w.Close()
	})
	t.Cleanup(stop)
	return &Peer{Name: cfg.Name, URL: srv.URL, VerifierKey: w.VerifierKey(), Stop: stop, DataDir: dir}
}

// StartOurWitnessProcess builds cmd/witness and runs it as a separate
// process on a loopback port, named "ours.test/witness", configured for
// the log (logOrigin, logVkey) and any more logs.
func StartOurWitnessProcess(t testing.TB, logOrigin, logVkey string, more ...LogKey) *Peer {
	t.Helper()
	bin := BuildOurWitness(t)
	dir := t.TempDir()
	const name = "ours.test/witness"
	cfgPath := filepath.Join(dir, "witness.yaml")
	cfg := fmt.Sprintf("name: %s\nlogs:\n", name)
	for _, l := range logKeys(logOrigin, logVkey, more) {
		cfg += fmt.Sprintf("  - origin: %q\n    key: %q\n", l.Origin, l.VerifierKey)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	out, err := exec.Command(bin, "keygen", "--name", name, "--data", data).Output()
	if err != nil {
		t.Fatalf("witness keygen: %v", err)
	}
	addr := testproc.FreeAddr(t)
	stop := testproc.Start(t, "witness", bin, "--data", data, "--listen", addr, "--config", cfgPath)
	testproc.WaitHTTP(t, "http://"+addr+"/")
	return &Peer{Name: name, URL: "http://" + addr, VerifierKey: strings.TrimSpace(string(out)), Stop: stop, DataDir: data}
}

// BuildOurWitness builds cmd/witness into a temporary directory and returns
// the binary's path.
func BuildOurWitness(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "witness")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/llmaudittrail/llmaudittrail/cmd/witness")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building cmd/witness: %v\n%s", err, out)
	}
	return bin
}

// StartLitewitness runs litewitness (filippo.io/torchwood/cmd/litewitness),
// named "litewitness.test/witness", on a loopback port. Its Ed25519 key is
// served by an ssh-agent (an in-process golang.org/x/crypto/ssh/agent
// keyring on a Unix socket) and the logs are registered in its SQLite
// tables log and key, as witnessctl add-log / add-key would.
func StartLitewitness(t testing.TB, logOrigin, logVkey string, more ...LogKey) *Peer {
	t.Helper()
	bin := testproc.Tool(t, "litewitness")
	const name = "litewitness.test/witness"
	dir := t.TempDir()

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sock := startSSHAgent(t, priv)
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	stdVkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := fnote.VKeyToCosignatureV1(stdVkey)
	if err != nil {
		t.Fatal(err)
	}

	db := filepath.Join(dir, "litewitness.db")
	addr := testproc.FreeAddr(t)
	logs := new(testproc.Buffer)
	stop := testproc.StartOutput(t, "litewitness", logs, bin,
		"-name", name, "-db", db, "-ssh-agent", sock,
		"-key", ssh.FingerprintSHA256(sshPub), "-listen", addr)
	testproc.WaitHTTP(t, "http://"+addr+"/")

	// litewitness created its schema before listening; register the log.
	conn, err := sql.Open("sqlite", db+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	empty := base64.StdEncoding.EncodeToString(rfc6962.DefaultHasher.EmptyRoot())
	for _, l := range logKeys(logOrigin, logVkey, more) {
		if _, err := conn.Exec(`INSERT INTO log (origin, tree_size, tree_hash) VALUES (?, 0, ?)`, l.Origin, empty); err != nil {
			t.Fatalf("registering log with litewitness: %v", err)
		}
		if _, err := conn.Exec(`INSERT INTO key (origin, key) VALUES (?, ?)`, l.Origin, l.VerifierKey); err != nil {
			t.Fatalf("registering log key with litewitness: %v", err)
		}
	}

	// Cross-check our derivation of its verifier key with the one it logs.
	m := regexp.MustCompile(`vkey="?([^"\s]+)`).FindStringSubmatch(logs.String())
	if m == nil || m[1] != vkey {
		t.Fatalf("litewitness verifier key %q, derived %q\n%s", m, vkey, logs.String())
	}
	return &Peer{Name: name, URL: "http://" + addr, VerifierKey: vkey, Stop: stop, DataDir: dir}
}

// StartOmniwitness runs omniwitness (github.com/transparency-dev/witness/
// cmd/omniwitness), named "omniwitness.test/witness", with its HTTP and
// metrics listeners on loopback ports, a SQLite database, and the logs
// added with --additional_logs. It makes no outbound requests: no
// distributor or public witness network URL is configured.
func StartOmniwitness(t testing.TB, logOrigin, logVkey string, more ...LogKey) *Peer {
	t.Helper()
	bin := testproc.Tool(t, "omniwitness")
	const name = "omniwitness.test/witness"
	dir := t.TempDir()

	skey, stdVkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := fnote.VKeyToCosignatureV1(stdVkey)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "witness.key")
	if err := os.WriteFile(keyPath, []byte(skey), 0o600); err != nil {
		t.Fatal(err)
	}
	logsPath := filepath.Join(dir, "logs.yaml")
	logsYAML := "Logs:\n"
	for _, l := range logKeys(logOrigin, logVkey, more) {
		logsYAML += fmt.Sprintf("  - Origin: %q\n    PublicKey: %q\n", l.Origin, l.VerifierKey)
	}
	if err := os.WriteFile(logsPath, []byte(logsYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, metrics := testproc.FreeAddr(t), testproc.FreeAddr(t)
	stop := testproc.Start(t, "omniwitness", bin,
		"--listen", addr, "--metrics_listen", metrics,
		"--private_key_path", keyPath,
		"--db_file", filepath.Join(dir, "omniwitness.db"),
		"--additional_logs", logsPath)
	testproc.WaitHTTP(t, "http://"+addr+"/")
	return &Peer{Name: name, URL: "http://" + addr, VerifierKey: vkey, Stop: stop, DataDir: dir}
}

// startSSHAgent serves an ssh-agent keyring holding priv on a Unix socket
// and returns the socket path. The path is kept short: Unix socket paths
// are limited to about 100 bytes.
func startSSHAgent(t testing.TB, priv ed25519.PrivateKey) string {
	t.Helper()
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv, Comment: "litewitness test key"}); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "wt")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				agent.ServeAgent(keyring, c)
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		os.RemoveAll(dir)
	})
	return sock
}

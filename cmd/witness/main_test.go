package main_test

import (
	"bufio"
	"bytes"
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

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/internal/hsm/hsmtest"
	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
)

const name = "witness.test/cmd"

// proc is a running cmd/witness.
type proc struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// start runs the witness binary and waits until it is listening, or until
// it exits (then addr is empty).
func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("witness output:\n%s", p.output())
		}
	})
	select {
	case p.addr = <-ready:
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("witness did not start:\n%s", p.output())
	}
	return p
}

func writeConfig(t *testing.T, dir string, logs ...*witnesstest.Log) string {
	t.Helper()
	cfg := "name: " + name + "\nlogs:\n"
	for _, l := range logs {
		cfg += fmt.Sprintf("  - origin: %q\n    key: %q\n", l.Origin, l.VerifierKey)
	}
	path := filepath.Join(dir, "witness.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func post(t *testing.T, addr string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/add-checkpoint", "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func latest(t *testing.T, addr, origin string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/" + checkpoint.OriginID(origin) + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestKeygen(t *testing.T) {
	bin := witnesstest.BuildOurWitness(t)
	data := filepath.Join(t.TempDir(), "data")
	out, err := exec.Command(bin, "keygen", "--name", name, "--data", data).Output()
	if err != nil {
		t.Fatal(err)
	}
	vkey := strings.TrimSpace(string(out))
	if _, err := fnote.NewVerifierForCosignatureV1(vkey); err != nil || !strings.HasPrefix(vkey, name+"+") {
		t.Fatalf("keygen printed %q (%v), want a cosignature/v1 vkey named %s", out, err, name)
	}
	pub, err := os.ReadFile(filepath.Join(data, "witness.pub"))
	if err != nil || string(pub) != vkey+"\n" {
		t.Fatalf("witness.pub = %q (%v), want %q", pub, err, vkey+"\n")
	}
	st, err := os.Stat(filepath.Join(data, "witness.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("witness.key: %v, mode %v; want 0600", err, st.Mode())
	}
	key, _ := os.ReadFile(filepath.Join(data, "witness.key"))
	if _, err := note.NewSigner(strings.TrimSpace(string(key))); err != nil {
		t.Fatalf("witness.key is not a note signer key: %v", err)
	}

	// A second keygen must not replace the key.
	cmd := exec.Command(bin, "keygen", "--name", name, "--data", data)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "exists") {
		t.Errorf("second keygen: %v %q, want failure mentioning that the key exists", err, out)
	}
	if again, _ := os.ReadFile(filepath.Join(data, "witness.key")); !bytes.Equal(again, key) {
		t.Errorf("second keygen replaced the key")
	}
	// Usage errors exit 2.
	err = exec.Command(bin, "keygen", "--data", data).Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("keygen without --name: %v, want exit status 2", err)
	}
}

func TestRefusesReadableKey(t *testing.T) {
	bin := witnesstest.BuildOurWitness(t)
	dir := t.TempDir()
	l := witnesstest.NewLog(t, "log.test/a")
	cfg := writeConfig(t, dir, l)
	data := filepath.Join(dir, "data")
	if err := exec.Command(bin, "keygen", "--name", name, "--data", data).Run(); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o644, 0o604} {
		if err := os.Chmod(filepath.Join(data, "witness.key"), mode); err != nil {
			t.Fatal(err)
		}
		p := start(t, bin, "--data", data, "--listen", "127.0.0.1:0", "--config", cfg)
		<-p.done
		if p.addr != "" || p.cmd.ProcessState.ExitCode() != 1 {
			t.Errorf("mode %#o: witness started (addr %q, exit %d)", mode, p.addr, p.cmd.ProcessState.ExitCode())
		}
		want := fmt.Sprintf("has mode %#o: key file is accessible by group or others (want mode 0600)", mode)
		if !strings.Contains(p.output(), want) {
			t.Errorf("mode %#o: output %q does not say %q", mode, p.output(), want)
		}
	}
}

// TestRestartAfterSIGKILL runs the real binary, SIGKILLs it with a request
// in flight, restarts it on the same data directory and checks that every
// acknowledged checkpoint survived and that the key did not change.
func TestRestartAfterSIGKILL(t *testing.T) {
	bin := witnesstest.BuildOurWitness(t)
	dir := t.TempDir()
	l := witnesstest.NewLog(t, "log.test/restart")
	l.Append(400)
	cfg := writeConfig(t, dir, l)
	data := filepath.Join(dir, "data") // no keygen: generated on first start

	p := start(t, bin, "--data", data, "--listen", "127.0.0.1:0", "--config", cfg)
	if p.addr == "" {
		t.Fatalf("witness did not start")
	}
	if !strings.Contains(p.output(), "generated witness key") {
		t.Errorf("first start did not report generating a key")
	}
	pub, err := os.ReadFile(filepath.Join(data, "witness.pub"))
	if err != nil {
		t.Fatal(err)
	}
	vkey := strings.TrimSpace(string(pub))

	// Grow the log one request at a time; kill the witness after the 20th
	// acknowledgement while the next request is in flight.
	acked := uint64(0)
	var inFlight uint64
	killed := make(chan struct{})
	for i := 1; ; i++ {
		size := uint64(i) * 7
		body := l.AddRequest(t, acked, size)
		if i == 21 {
			inFlight = size
			go func() {
				time.Sleep(time.Duration(i%3) * 100 * time.Microsecond)
				p.cmd.Process.Signal(syscall.SIGKILL)
				close(killed)
			}()
			resp, err := http.Post("http://"+p.addr+"/add-checkpoint", "text/plain", bytes.NewReader(body))
			if err == nil {
				if resp.StatusCode == 200 {
					acked = size
				}
				resp.Body.Close()
			}
			break
		}
		if status, resp := post(t, p.addr, body); status != 200 {
			t.Fatalf("request %d: %d %q", i, status, resp)
		}
		acked = size
	}
	<-killed
	<-p.done
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("witness was not killed by SIGKILL: %v", p.cmd.ProcessState)
	}

	p2 := start(t, bin, "--data", data, "--listen", "127.0.0.1:0", "--config", cfg)
	if p2.addr == "" {
		t.Fatalf("witness did not restart")
	}
	if strings.Contains(p2.output(), "generated witness key") {
		t.Errorf("restart generated a new key")
	}
	status, body := latest(t, p2.addr, l.Origin)
	if status != 200 {
		t.Fatalf("GET checkpoint after restart: %d %q", status, body)
	}
	var got uint64
	fmt.Sscanf(strings.SplitN(body, "\n", 3)[1], "%d", &got)
	// The acknowledged state must have survived; the in-flight one may
	// have been committed without being acknowledged.
	if got != acked && got != inFlight {
		t.Fatalf("after SIGKILL the witness is at %d; acknowledged %d, in flight %d", got, acked, inFlight)
	}
	t.Logf("acknowledged %d, in flight %d, restored %d", acked, inFlight, got)

	// The restored checkpoint verifies with the log key and the unchanged
	// witness key.
	logV, _ := note.NewVerifier(l.VerifierKey)
	wV, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := note.Open([]byte(body), note.VerifierList(logV, wV)); err != nil || len(n.Sigs) != 2 {
		t.Fatalf("restored checkpoint does not verify with the log and witness keys: %v", err)
	}
	if status, resp := post(t, p2.addr, l.AddRequest(t, 0, 390)); status != 409 || resp != fmt.Sprintf("%d\n", got) {
		t.Errorf("old 0 after restart: %d %q, want 409 %q", status, resp, fmt.Sprintf("%d\n", got))
	}
	status, cosig := post(t, p2.addr, l.AddRequest(t, got, 390))
	if status != 200 {
		t.Fatalf("extending after restart: %d %q", status, cosig)
	}
	if _, err := note.Open(append(l.Checkpoint(t, 390), cosig...), note.VerifierList(wV)); err != nil {
		t.Errorf("cosignature after restart does not verify with the original key: %v", err)
	}

	// SIGINT shuts down gracefully.
	p2.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p2.done:
	case <-time.After(10 * time.Second):
		t.Fatal("witness did not exit on SIGINT")
	}
	if code := p2.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(p2.output(), "shutting down") {
		t.Errorf("SIGINT: exit %d, output %q", code, p2.output())
	}
}

// TestWitnessKeyInSoftHSM: the witness's key made with keygen
// --signing-key in a SoftHSM2 token cosigns there; the cosignature verifies
// with the printed verifier key, and no private key is in the data
// directory.
func TestWitnessKeyInSoftHSM(t *testing.T) {
	tk := hsmtest.New(t, "llmaudit-witness")
	bin := witnesstest.BuildOurWitness(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	uri := tk.URI("witness")
	out, err := exec.Command(bin, "keygen", "--name", name, "--data", data, "--signing-key", uri).Output()
	if err != nil {
		t.Fatalf("keygen: %v", err)
	}
	vkey := strings.TrimSpace(string(out))
	l := witnesstest.NewLog(t, "log.test/hsm")
	l.Append(10)
	cfg := writeConfig(t, dir, l)
	p := start(t, bin, "--data", data, "--listen", "127.0.0.1:0", "--config", cfg, "--signing-key", uri)
	if p.addr == "" {
		t.Fatalf("witness did not start:\n%s", p.output())
	}
	status, resp := post(t, p.addr, l.AddRequest(t, 0, 10))
	if status != 200 {
		t.Fatalf("add-checkpoint = %d %q", status, resp)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	cosigned := append(l.Checkpoint(t, 10), []byte(resp)...)
	if n, err := note.Open(cosigned, note.VerifierList(v)); err != nil || len(n.Sigs) != 1 {
		t.Fatalf("the HSM cosignature does not verify with %s: %v", vkey, err)
	}
	if _, err := os.Stat(filepath.Join(data, "witness.key")); !os.IsNotExist(err) {
		t.Fatalf("witness.key exists with a PKCS#11 key (%v)", err)
	}
}

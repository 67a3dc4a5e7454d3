package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/internal/testproc"
	"github.com/llmaudittrail/llmaudittrail/monitor"
	"github.com/llmaudittrail/llmaudittrail/server"
	"github.com/llmaudittrail/llmaudittrail/signature"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "monitor-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "monitor")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building monitor: %v\n%s", err, out)
		os.Exit(1)
	}
	// The process-wide loggers, once, before any test starts a server that
	// logs through them (a command run in-process later leaves them alone).
	if _, err := newLogger("warn"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type logServer struct {
	fx     *servertest.Server
	t      *testing.T
	dir    string
	srv    *server.Server
	hs     *httptest.Server
	token  string
	tokenF string // path of the admin token file (0600)
	pub    string // path of the verifier key file
	rules  string // path of the rule pack with all-day business hours
}

func startLog(t *testing.T, opts ...func(*server.Config)) *logServer {
	t.Helper()
	s := servertest.Start(t, func(cfg *server.Config) {
		for _, o := range opts {
			o(cfg)
		}
	})
	l := &logServer{fx: s, t: t, dir: s.Dir, srv: s.Srv, hs: s.HS, token: s.Admin, tokenF: s.AdminFile, pub: s.LogPub}
	pack, err := os.ReadFile("../../monitor/rules/llm-agents.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := strings.Replace(string(pack), `business_hours: {timezone: "", start: 7, end: 19, days: [1, 2, 3, 4, 5]}`,
		"business_hours: {timezone: UTC, start: 0, end: 24, days: [1, 2, 3, 4, 5, 6, 7]}", 1)
	l.rules = filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(l.rules, []byte(p), 0o644)
	return l
}

func (l *logServer) close() { l.fx.Close() }

// appendBatch appends n tool calls; the i-th (global counter) is forbidden
// when i%5 == 4. It returns the indices of the forbidden ones.
func (l *logServer) appendBatch(session string, n int) []uint64 {
	l.t.Helper()
	evs := make([]map[string]any, n)
	for i := range n {
		evs[i] = map[string]any{"session": session, "kind": "tool.call", "actor": map[string]string{"type": "agent", "id": "a1"},
			"attributes": map[string]any{"gen_ai.tool.name": map[bool]string{true: "shell.exec", false: "search"}[i%5 == 4]}}
	}
	body, _ := json.Marshal(map[string]any{"events": evs})
	req, _ := http.NewRequest(http.MethodPost, l.hs.URL+"/v1/events:batch", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Events []struct{ Index uint64 } `json:"events"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	var forbidden []uint64
	for i, e := range out.Events {
		if i%5 == 4 {
			forbidden = append(forbidden, e.Index)
		}
	}
	return forbidden
}

func (l *logServer) size() uint64 {
	cp, _, err := l.srv.Log().Checkpoint(context.Background())
	if err != nil {
		return 0
	}
	return cp.Size
}

type run struct {
	cmd    *exec.Cmd
	out    *testproc.Buffer
	errOut *testproc.Buffer
	done   chan struct{}
}

func startBinary(t *testing.T, args ...string) *run {
	t.Helper()
	r := &run{cmd: exec.Command(binary, args...), out: &testproc.Buffer{}, errOut: &testproc.Buffer{}, done: make(chan struct{})}
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.errOut
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.done })
	return r
}

func alertsIn(t *testing.T, s string) []monitor.Alert {
	var out []monitor.Alert
	for _, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var a monitor.Alert
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("bad alert line %q: %v", line, err)
		}
		out = append(out, a)
	}
	return out
}

// TestKillAndRestart SIGKILLs the monitor binary several times while the
// log grows and checks that every expected alert was written, and that no
// alert was written twice except as a marked redelivery of one that the
// killed process may not have finished recording.
func TestKillAndRestart(t *testing.T) {
	l := startLog(t)
	state := t.TempDir()
	args := []string{"--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF, "--rules", l.rules, "--state", state, "--start", "0", "--poll", "50ms", "--log-level", "warn"}

	var (
		mu   sync.Mutex
		want []uint64
	)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := range 40 {
			f := l.appendBatch(fmt.Sprintf("s%d", i%4), 25)
			mu.Lock()
			want = append(want, f...)
			mu.Unlock()
			time.Sleep(40 * time.Millisecond)
		}
	}()

	var outputs []string
	kills := 0
	for {
		r := startBinary(t, args...)
		lastStart := time.Now()
		writing := true
		select {
		case <-writerDone:
			writing = false
		default:
		}
		if writing || kills < 3 {
			time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond)
			r.cmd.Process.Signal(syscall.SIGKILL)
			<-r.done
			kills++
			outputs = append(outputs, r.out.String())
			continue
		}
		// Last run: wait until every expected alert is out, then stop it cleanly.
		<-writerDone
		mu.Lock()
		total := len(want)
		mu.Unlock()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			seen := map[uint64]bool{}
			for _, s := range append(outputs, r.out.String()) {
				for _, a := range alertsIn(t, s) {
					seen[*a.Index] = true
				}
			}
			if len(seen) >= total && time.Since(lastStart) > time.Second {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		r.cmd.Process.Signal(syscall.SIGTERM)
		<-r.done
		if code := r.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("monitor exited %d after SIGTERM: %s", code, r.errOut.String())
		}
		outputs = append(outputs, r.out.String())
		break
	}

	wanted := map[uint64]bool{}
	for _, i := range want {
		wanted[i] = true
	}
	plain, redelivered := map[uint64]int{}, map[uint64]int{}
	for _, s := range outputs {
		for _, a := range alertsIn(t, s) {
			if a.Rule != "tool.forbidden" || a.Index == nil || !wanted[*a.Index] {
				t.Fatalf("unexpected alert %+v", a)
			}
			if a.Redelivery {
				redelivered[*a.Index]++
			} else {
				plain[*a.Index]++
			}
		}
	}
	dups := 0
	for i := range wanted {
		switch {
		case plain[i]+redelivered[i] == 0:
			t.Errorf("alert for entry %d lost", i)
		case plain[i] > 1:
			t.Errorf("alert for entry %d written %d times", i, plain[i])
		case plain[i]+redelivered[i] > 1:
			dups++
		}
	}
	t.Logf("%d kills, %d entries, %d alerts expected, %d marked redeliveries of an alert already written", kills, l.size(), len(want), dups)
}

func TestBadRuleFileRejected(t *testing.T) {
	l := startLog(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("version: 1\nrules:\n  - name: x\n    severity: low\n    match: e.kind == nosuch\n"), 0o644)
	r := startBinary(t, "--url", l.hs.URL, "--log-key", l.pub, "--rules", bad, "--state", t.TempDir())
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(r.errOut.String(), bad+`:5: rule "x": match: undeclared reference to 'nosuch'`) {
		t.Fatalf("exit %d, stderr %q", code, r.errOut.String())
	}
}

func TestVerifyCommand(t *testing.T) {
	l := startLog(t)
	for i := range 3 {
		l.appendBatch(fmt.Sprintf("s%d", i), 100)
	}
	// 300 events after the admin token's access.token_created.
	for l.size() < 301 {
		time.Sleep(20 * time.Millisecond)
	}
	r := startBinary(t, "verify", "--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(r.out.String(), "OK: everything verified") ||
		!strings.Contains(r.errOut.String(), "verified 301/301 entries") {
		t.Fatalf("verify: exit %d\nstdout %s\nstderr %s", code, r.out.String(), r.errOut.String())
	}
	// Tamper with a tile: verify must fail.
	path := filepath.Join(l.dir, server.LogDir, "tile/0/000")
	b, _ := os.ReadFile(path)
	b[40] ^= 0xff
	os.WriteFile(path, b, 0o644)
	r = startBinary(t, "verify", "--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(r.out.String(), "FAIL log.tile_mismatch") {
		t.Fatalf("verify after tampering: exit %d\nstdout %s", code, r.out.String())
	}
	// An unreachable log cannot be audited.
	r = startBinary(t, "verify", "--url", "http://127.0.0.1:1", "--log-key", l.pub)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 2 {
		t.Fatalf("verify of nothing: exit %d", code)
	}
}

func TestVerifyReceiptCommand(t *testing.T) {
	l := startLog(t)
	body, _ := json.Marshal(map[string]any{"session": "r", "kind": "tool.call", "actor": map[string]string{"type": "agent", "id": "a1"}})
	req, _ := http.NewRequest(http.MethodPost, l.hs.URL+"/v1/events?wait=checkpoint", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, rb, 0o644)
	bad := filepath.Join(dir, "bad.json")
	// Entry 0 is the admin token's access.token_created.
	os.WriteFile(bad, bytes.Replace(rb, []byte(`"index":1`), []byte(`"index":0`), 2), 0o644)

	r := startBinary(t, "verify-receipt", "--log-key", l.pub, good)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(r.out.String(), "OK "+good+": index 1") {
		t.Fatalf("exit %d: %s %s", code, r.out.String(), r.errOut.String())
	}
	r = startBinary(t, "verify-receipt", "--log-key", l.pub, good, bad)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(r.out.String(), "FAIL "+bad) {
		t.Fatalf("exit %d: %s", code, r.out.String())
	}

	// The tlog-proof form: the receipt's tlog_proof and the answer of
	// GET /v1/entries/1/proof, checked with the policy the server wrote
	// (keys/policy, which names the log: no --log-key), and a copy with a
	// flipped proof hash.
	rc, err := api.ParseReceipt(rb)
	if err != nil || rc.TlogProof == "" {
		t.Fatalf("receipt without tlog_proof: %s (%v)", rb, err)
	}
	fromReceipt := filepath.Join(dir, "receipt.tlog-proof")
	os.WriteFile(fromReceipt, []byte(rc.TlogProof), 0o644)
	req, _ = http.NewRequest(http.MethodGet, l.hs.URL+"/v1/entries/1/proof", nil)
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fromRoute := filepath.Join(dir, "entry.tlog-proof")
	os.WriteFile(fromRoute, pb, 0o644)
	rc.InclusionProof[0][3] ^= 0x10
	flippedText, _ := rc.MarshalTlogProof()
	flipped := filepath.Join(dir, "flipped.tlog-proof")
	os.WriteFile(flipped, flippedText, 0o644)
	policy := filepath.Join(l.dir, server.PolicyFile)
	r = startBinary(t, "verify-receipt", "--witness-policy", policy, fromReceipt, fromRoute, flipped)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(r.out.String(), "OK "+fromReceipt+": index 1") ||
		!strings.Contains(r.out.String(), "OK "+fromRoute+": index 1") || !strings.Contains(r.out.String(), "FAIL "+flipped+": receipt inclusion proof does not verify") {
		t.Fatalf("tlog-proofs: exit %d: %s %s", code, r.out.String(), r.errOut.String())
	}
}

// TestVerifySignatureCommand: an exported signature verifies offline with
// the log key alone; a transplanted one (the statement moved to another
// record) does not; monitor verify counts the signature.
func TestVerifySignatureCommand(t *testing.T) {
	l := startLog(t)
	ctx := context.Background()
	admin, _ := client.New(l.hs.URL, client.WithToken(l.token))
	w, err := admin.Append(ctx, []*event.Request{
		{Session: "gl", Kind: "llm.response", Actor: event.Actor{Type: "agent", ID: "ledger-bot"}, Payload: json.RawMessage(`{"entry":"JE-1"}`)},
		{Session: "gl", Kind: "llm.response", Actor: event.Actor{Type: "agent", ID: "ledger-bot"}, Payload: json.RawMessage(`{"entry":"JE-2"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	const secret = "controller secret 1"
	if _, err := admin.Enroll(ctx, api.Enrollment{ID: "cfo", PrintedName: "Grace Hopper", Secret: secret, IdentityVerifiedBy: "hr.jones"}); err != nil {
		t.Fatal(err)
	}
	tok, _, err := l.srv.Tokens().Create(ctx, auth.Spec{Name: "cfo", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeSign, auth.ScopeRead}, Actors: []string{"cfo"}})
	if err != nil {
		t.Fatal(err)
	}
	cfo, _ := client.New(l.hs.URL, client.WithToken(tok))
	sig, err := cfo.Sign(ctx, api.SignRequest{Signer: "cfo", Secret: secret, Index: w[0].Index, LeafHash: hex.EncodeToString(w[0].LeafHash), Meaning: "approved", Reason: "JE-1 matches the invoice"}, client.WaitForCheckpoint())
	if err != nil {
		t.Fatal(err)
	}
	export, err := cfo.SignatureExport(ctx, sig.Event.Index)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "signature.json")
	os.WriteFile(good, export, 0o644)
	// The transplant: the same statement and signature, claimed for JE-2.
	var x map[string]any
	json.Unmarshal(export, &x)
	x["statement"] = strings.Replace(x["statement"].(string), fmt.Sprintf(`"index":%d`, w[0].Index), fmt.Sprintf(`"index":%d`, w[1].Index), 1)
	x["record"] = nil
	b, _ := json.Marshal(x)
	bad := filepath.Join(dir, "transplanted.json")
	os.WriteFile(bad, b, 0o644)

	// The answer of POST /v1/signatures, saved as it came: it holds no
	// receipts, so on its own it is refused with the way to its export;
	// with --url the export is fetched and must carry its statement and
	// signature.
	answer, _ := json.Marshal(sig)
	posted := filepath.Join(dir, "posted.json")
	os.WriteFile(posted, answer, 0o644)
	r := startBinary(t, "verify-signature", "--log-key", l.pub, posted)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(r.out.String(), fmt.Sprintf("GET /v1/signatures/%d", sig.Event.Index)) {
		t.Fatalf("a POST answer without --url: exit %d: %s %s", code, r.out.String(), r.errOut.String())
	}
	tokF := filepath.Join(dir, "cfo.token")
	os.WriteFile(tokF, []byte(tok), 0o600)
	r = startBinary(t, "verify-signature", "--log-key", l.pub, "--url", l.hs.URL, "--token-file", tokF, posted)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(r.out.String(), "the POST answer's statement and signature are the export's") {
		t.Fatalf("a POST answer with --url: exit %d: %s %s", code, r.out.String(), r.errOut.String())
	}
	edited := *sig
	edited.StatementText = strings.Replace(sig.StatementText, "approved", "rejected", 1)
	answer, _ = json.Marshal(edited)
	os.WriteFile(posted, answer, 0o644)
	r = startBinary(t, "verify-signature", "--log-key", l.pub, "--url", l.hs.URL, "--token-file", tokF, posted)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(r.out.String(), "is not the statement and signature of the POST answer") {
		t.Fatalf("an edited POST answer: exit %d: %s %s", code, r.out.String(), r.errOut.String())
	}
	// The export asked for by the signed record's index says which index
	// it wants.
	if _, err := cfo.SignatureExport(ctx, w[0].Index); err == nil || !strings.Contains(err.Error(), "human.signature event") {
		t.Fatalf("export by the record's index: %v", err)
	}

	r = startBinary(t, "verify-signature", "--log-key", l.pub, good)
	<-r.done
	want := fmt.Sprintf(`OK %s: "Grace Hopper" (cfo, tenant default) signed entry %d`, good, w[0].Index)
	if code := r.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(r.out.String(), want) || !strings.Contains(r.out.String(), "as approved") {
		t.Fatalf("exit %d: %s %s", code, r.out.String(), r.errOut.String())
	}
	// The signature as tlog-proofs: the signature event's, with the
	// enrollment's and the record's beside it; the record of JE-2 in place
	// of JE-1's is refused.
	var x0 signature.Export
	json.Unmarshal(export, &x0)
	writeProof := func(name, text string) string {
		p := filepath.Join(dir, name+".tlog-proof")
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	evP, enrP, recP := writeProof("event", x0.Event.TlogProof), writeProof("enrollment", x0.Enrollment.TlogProof), writeProof("record", x0.Record.TlogProof)
	other2, _, err := admin.EntryProof(ctx, w[1].Index)
	if err != nil {
		t.Fatal(err)
	}
	je2 := writeProof("je2", string(other2))
	r = startBinary(t, "verify-signature", "--log-key", l.pub, "--enrollment", enrP, "--record", recP, evP)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(r.out.String(), fmt.Sprintf(`OK %s: "Grace Hopper" (cfo, tenant default) signed entry %d`, evP, w[0].Index)) ||
		!strings.Contains(r.out.String(), "record receipt checked") {
		t.Fatalf("tlog-proofs: exit %d: %s %s", code, r.out.String(), r.errOut.String())
	}
	r = startBinary(t, "verify-signature", "--log-key", l.pub, "--enrollment", enrP, "--record", je2, evP)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(r.out.String(), "FAIL "+evP) {
		t.Fatalf("tlog-proofs with another record: exit %d: %s %s", code, r.out.String(), r.errOut.String())
	}
	r = startBinary(t, "verify-signature", "--log-key", l.pub, evP)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(r.out.String(), "needs --enrollment") {
		t.Fatalf("tlog-proof without --enrollment: exit %d: %s %s", code, r.out.String(), r.errOut.String())
	}

	r = startBinary(t, "verify-signature", "--log-key", l.pub, good, bad)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(r.out.String(), "FAIL "+bad+": invalid signature") {
		t.Fatalf("transplant: exit %d: %s", code, r.out.String())
	}
	// Another log's key: the statement is not of that log.
	other := filepath.Join(dir, "other.pub")
	_, vkey, _ := checkpoint.GenerateKey("example.com/other")
	os.WriteFile(other, []byte(vkey), 0o644)
	r = startBinary(t, "verify-signature", "--log-key", other, good)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("another log's key: exit %d: %s", code, r.out.String())
	}
	r = startBinary(t, "verify-signature", good)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 2 {
		t.Fatalf("no --log-key: exit %d", code)
	}

	r = startBinary(t, "verify", "--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(r.out.String(), "signatures  1 checked") {
		t.Fatalf("verify: exit %d\n%s", code, r.out.String())
	}
}

// TestAppendTokenWithDocumentedScopes runs the monitor as docs/monitor.md
// sets it up: one global token with the read and monitor scopes, for
// reading and for --append-token. Its alerts reach the log as monitor.alert
// events; the monitor scope alone appends them (a write scope is not
// needed, and does not come with it: the same token cannot append an
// ordinary event).
func TestAppendTokenWithDocumentedScopes(t *testing.T) {
	l := startLog(t)
	ctx := context.Background()
	tok, _, err := l.srv.Tokens().Create(ctx, auth.Spec{Name: "monitor", Tenant: server.DefaultTenant, Global: true, Scopes: []string{auth.ScopeRead, auth.ScopeMonitor}})
	if err != nil {
		t.Fatal(err)
	}
	tokF := filepath.Join(t.TempDir(), "monitor.token")
	if err := os.WriteFile(tokF, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	forbidden := l.appendBatch("agent-1", 5)
	r := startBinary(t, "--url", l.hs.URL, "--log-key", l.pub, "--token-file", tokF, "--append-token", tokF,
		"--rules", l.rules, "--state", t.TempDir(), "--start", "0", "--poll", "50ms", "--log-level", "warn")
	admin, err := client.New(l.hs.URL, client.WithToken(l.token))
	if err != nil {
		t.Fatal(err)
	}
	session := "monitor." + monitor.DefaultInstance
	deadline := time.Now().Add(30 * time.Second)
	var page *api.SessionPage
	for time.Now().Before(deadline) {
		page, err = admin.Session(ctx, session, client.SessionQuery{})
		if err == nil && slices.ContainsFunc(page.Events, func(e api.SessionEntry) bool { return e.Kind == "monitor.alert" }) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if page == nil || !slices.ContainsFunc(page.Events, func(e api.SessionEntry) bool { return e.Kind == "monitor.alert" }) {
		t.Fatalf("no monitor.alert in session %s after 30 s (%d forbidden calls logged): %v\nmonitor stderr:\n%s", session, len(forbidden), err, r.errOut.String())
	}
	if strings.Contains(r.errOut.String(), "forbidden") {
		t.Fatalf("the monitor was refused on the way:\n%s", r.errOut.String())
	}
	mc, _ := client.New(l.hs.URL, client.WithToken(tok))
	_, err = mc.Append(ctx, []*event.Request{{Session: "x", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "a"}}})
	if !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("a read,monitor token appended an ordinary event: %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestReportCommands runs monitor report and verify-report as binaries: the
// report's exit code follows its summary, the report it wrote recomputes
// identically, and an edited control is found and named (exit 1).
func TestReportCommands(t *testing.T) {
	l := startLog(t)
	l.appendBatch("s1", 20)
	for l.size() < 21 {
		time.Sleep(20 * time.Millisecond)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "sox.json")
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	args := []string{"report", "--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF, "--profile", "sox", "--from", from, "--to", to}
	r := startBinary(t, append(args, "--out", out)...)
	<-r.done
	code := r.cmd.ProcessState.ExitCode()
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("exit %d, no report: %v\n%s", code, err, r.errOut.String())
	}
	var rep struct {
		Controls []struct{ ID, Status string }
		Summary  struct {
			NotSatisfied int `json:"not_satisfied"`
		}
	}
	if err := json.Unmarshal(data, &rep); err != nil || len(rep.Controls) == 0 {
		t.Fatalf("report: %v\n%s", err, data)
	}
	if want := map[bool]int{true: 1, false: 0}[rep.Summary.NotSatisfied > 0]; code != want ||
		!strings.Contains(r.errOut.String(), "report sox over ") {
		t.Fatalf("exit %d with %d not satisfied, want %d\n%s", code, rep.Summary.NotSatisfied, want, r.errOut.String())
	}

	r = startBinary(t, "verify-report", "--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF, out)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(r.out.String(), "OK "+out+": recomputed at checkpoint size") {
		t.Fatalf("verify-report: exit %d\n%s%s", code, r.out.String(), r.errOut.String())
	}

	// Flip the first control's status: the recomputation differs there.
	c := rep.Controls[0]
	flipped := map[string]string{"satisfied": "not-satisfied", "not-satisfied": "satisfied", "not-applicable": "satisfied"}[c.Status]
	if flipped == "" {
		t.Fatalf("unexpected status %q", c.Status)
	}
	old := []byte(`"status":"` + c.Status + `"`)
	i := bytes.Index(data, old)
	if i < 0 {
		t.Fatalf("no %s in the report", old)
	}
	edited := filepath.Join(dir, "edited.json")
	os.WriteFile(edited, editedData(data, i, old, flipped), 0o644)
	r = startBinary(t, "verify-report", "--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF, out, edited)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(r.out.String(), "OK "+out) ||
		!strings.Contains(r.out.String(), "FAIL "+edited) || !strings.Contains(r.out.String(), c.ID) {
		t.Fatalf("edited report: exit %d\n%s%s", code, r.out.String(), r.errOut.String())
	}

	// An edited server answer (the report in it edited, its sha256 left as
	// the server gave it) is a report that does not verify: exit 1, naming
	// the control, as for an edited bare report.
	sum := sha256.Sum256(data)
	answer, _ := json.Marshal(map[string]any{"report": json.RawMessage(editedData(data, i, old, flipped)), "sha256": hex.EncodeToString(sum[:])})
	editedAnswer := filepath.Join(dir, "edited-answer.json")
	os.WriteFile(editedAnswer, answer, 0o644)
	r = startBinary(t, "verify-report", "--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF, editedAnswer)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(r.out.String(), "FAIL "+editedAnswer) || !strings.Contains(r.out.String(), c.ID) {
		t.Fatalf("edited answer: exit %d\n%s%s", code, r.out.String(), r.errOut.String())
	}

	// Usage errors: an unknown profile, a period that ends before it starts.
	for _, bad := range [][]string{
		{"report", "--url", l.hs.URL, "--log-key", l.pub, "--profile", "hipaa", "--from", from, "--to", to},
		{"report", "--url", l.hs.URL, "--log-key", l.pub, "--profile", "sox", "--from", to, "--to", from},
		{"verify-report", "--url", l.hs.URL, "--log-key", l.pub},
	} {
		r = startBinary(t, bad...)
		<-r.done
		if code := r.cmd.ProcessState.ExitCode(); code != 2 {
			t.Errorf("%v: exit %d\n%s", bad, code, r.errOut.String())
		}
	}
}

// editedData is data with the status old at i replaced by flipped.
func editedData(data []byte, i int, old []byte, flipped string) []byte {
	return append(append(append([]byte{}, data[:i]...), `"status":"`+flipped+`"`...), data[i+len(old):]...)
}

// TestReportFormatsOneComputation: monitor report renders one computation
// into every format asked for (--format json,oscal,html --out DIR): one
// digest in all of them, and the payload sample read (and logged) once;
// --at SIZE pins a later run to the same tree (the same controls, anchored
// by the newer checkpoint), and --at REPORT to the same checkpoint (the
// same digest); a pinned report verifies.
func TestReportFormatsOneComputation(t *testing.T) {
	l := startLog(t)
	lc, err := client.New(l.hs.URL, client.WithToken(l.token))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 12 {
		if _, err := lc.Append(ctx, []*event.Request{{Session: fmt.Sprintf("case-%d", i%3), Kind: "llm.response",
			Actor: event.Actor{Type: "agent", ID: "a1"}, Payload: json.RawMessage(fmt.Sprintf(`{"answer":%d}`, i))}}); err != nil {
			t.Fatal(err)
		}
	}
	settled := func() uint64 {
		t.Helper()
		want, _ := l.srv.Log().Reader().IntegratedSize(ctx)
		for range 200 {
			if l.size() >= want {
				return l.size()
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no checkpoint covers size %d", want)
		return 0
	}
	before := settled()
	dir := t.TempDir()
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	args := []string{"report", "--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF, "--profile", "part11", "--from", from, "--to", to}
	run := func(extra ...string) *run {
		t.Helper()
		r := startBinary(t, append(slices.Clone(args), extra...)...)
		<-r.done
		if code := r.cmd.ProcessState.ExitCode(); code != 0 && code != 1 {
			t.Fatalf("%v: exit %d\n%s", extra, code, r.errOut.String())
		}
		return r
	}
	// The PDF, printed by Chromium, is read back with pdftotext.
	formats, pdf := "json,oscal,html", false
	if _, err := compliance.ChromiumPath(""); err == nil {
		if _, err := exec.LookPath("pdftotext"); err == nil {
			formats, pdf = formats+",pdf", true
		}
	}
	if !pdf {
		t.Log("no Chromium or no pdftotext (Debian packages chromium, poppler-utils; .ci/run installs them): the PDF is not checked")
	}
	r := run("--format", formats, "--out", filepath.Join(dir, "all"))
	data, err := os.ReadFile(filepath.Join(dir, "all", "part11-report.json"))
	if err != nil {
		t.Fatalf("%v\n%s", err, r.errOut.String())
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	for _, f := range []string{"part11-report.oscal.json", "part11-report.html"} {
		b, err := os.ReadFile(filepath.Join(dir, "all", f))
		if err != nil || !bytes.Contains(b, []byte(digest)) {
			t.Errorf("%s does not carry the report's digest %s (%v)", f, digest, err)
		}
	}
	if pdf {
		path := filepath.Join(dir, "all", "part11-report.pdf")
		out, err := exec.Command("pdftotext", path, "-").Output()
		// pdftotext may break a long value across lines: compare without
		// whitespace.
		if text := strings.Join(strings.Fields(string(out)), ""); err != nil || !strings.Contains(text, digest) {
			t.Errorf("%s does not carry the report's digest %s (%v):\n%s", path, digest, err, out)
		}
	}
	if !strings.Contains(r.errOut.String(), "sha256 "+digest) {
		t.Errorf("stderr does not name the digest %s:\n%s", digest, r.errOut.String())
	}
	rep, err := compliance.ParseReport(data)
	if err != nil {
		t.Fatal(err)
	}
	read := control(rep, "part11-11.10c").Evidence.Counts["payloads_read_back"]
	if read == 0 || rep.Log.Size != before {
		t.Fatalf("report at size %d (log at %d), %d payloads read back", rep.Log.Size, before, read)
	}
	// The sample was read once, for the three formats: one access.read each.
	after := settled()
	if after-before != uint64(read) {
		t.Errorf("the log grew by %d entries for %d payloads read", after-before, read)
	}

	// --at SIZE: the same tree, anchored by the checkpoint that grew since.
	r = run("--format", "json", "--out", filepath.Join(dir, "pinned.json"), "--at", fmt.Sprint(rep.Log.Size))
	pdata, _ := os.ReadFile(filepath.Join(dir, "pinned.json"))
	pinned, err := compliance.ParseReport(pdata)
	if err != nil {
		t.Fatalf("%v\n%s", err, r.errOut.String())
	}
	// The same controls: only the bundles and tiles read to verify the
	// newer checkpoint may differ.
	judged := func(cs []compliance.ControlResult) []byte {
		for i := range cs {
			delete(cs[i].Evidence.Counts, "bundles")
			delete(cs[i].Evidence.Counts, "tiles_compared")
		}
		b, _ := json.Marshal(cs)
		return b
	}
	a, b := judged(rep.Controls), judged(pinned.Controls)
	if pinned.Log.Size != rep.Log.Size || pinned.Log.Root != rep.Log.Root || pinned.Log.CheckpointSize <= rep.Log.Size ||
		len(pinned.Log.ProofToCheckpoint) == 0 || !bytes.Equal(a, b) {
		t.Errorf("pinned at %d: size %d root %s checkpoint size %d, controls equal %v\n%s\n%s", rep.Log.Size, pinned.Log.Size, pinned.Log.Root,
			pinned.Log.CheckpointSize, bytes.Equal(a, b), a, b)
	}
	v := startBinary(t, "verify-report", "--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF, filepath.Join(dir, "pinned.json"))
	<-v.done
	if code := v.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("verify-report of the pinned report: exit %d\n%s%s", code, v.out.String(), v.errOut.String())
	}

	// --at REPORT: the report's own checkpoint, so the same digest.
	r = run("--format", "html", "--out", filepath.Join(dir, "again.html"), "--at", filepath.Join(dir, "all", "part11-report.json"))
	if h, _ := os.ReadFile(filepath.Join(dir, "again.html")); !bytes.Contains(h, []byte(digest)) || !strings.Contains(r.errOut.String(), "sha256 "+digest) {
		t.Errorf("--at the report: not the digest %s\n%s", digest, r.errOut.String())
	}

	// Several formats need a directory.
	r = startBinary(t, append(slices.Clone(args), "--format", "json,html")...)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("several formats to stdout: exit %d\n%s", code, r.errOut.String())
	}
}

func control(r *compliance.Report, id string) compliance.ControlResult {
	for _, c := range r.Controls {
		if c.ID == id {
			return c
		}
	}
	return compliance.ControlResult{}
}

// TestVerifyReportAnchor: the server's report, saved bare, verifies with
// its report.issued event's tlog-proof given apart (--anchor); another
// entry's tlog-proof anchors nothing (exit 1).
func TestVerifyReportAnchor(t *testing.T) {
	rep, err := compliance.NewReporter(nil, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	l := startLog(t, func(c *server.Config) { c.Compliance, c.Reporter = []string{"sox"}, rep })
	l.appendBatch("s1", 5)
	for l.size() < 6 {
		time.Sleep(20 * time.Millisecond)
	}
	lc, _ := client.New(l.hs.URL, client.WithToken(l.token))
	ctx := context.Background()
	a, err := lc.Report(ctx, api.ReportQuery{Profile: "sox", From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour), Format: api.FormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	if a.JSON.Receipt == nil || a.JSON.Receipt.TlogProof == "" {
		t.Fatalf("the report's answer has no tlog-proof: %s", a.Body)
	}
	dir := t.TempDir()
	bare := filepath.Join(dir, "report.json")
	os.WriteFile(bare, a.JSON.Report, 0o644)
	anchor := filepath.Join(dir, "anchor.tlog-proof")
	os.WriteFile(anchor, []byte(a.JSON.Receipt.TlogProof), 0o644)
	other, _, err := lc.EntryProof(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(dir, "wrong.tlog-proof")
	os.WriteFile(wrong, other, 0o644)
	base := []string{"verify-report", "--url", l.hs.URL, "--log-key", l.pub, "--token-file", l.tokenF}
	r := startBinary(t, append(base, "--anchor", anchor, bare)...)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(r.out.String(), fmt.Sprintf("anchored by the report.issued event at entry %d", a.JSON.Event.Index)) {
		t.Fatalf("--anchor: exit %d\n%s%s", code, r.out.String(), r.errOut.String())
	}
	r = startBinary(t, append(base, "--anchor", wrong, bare)...)
	<-r.done
	if code := r.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(r.out.String(), "FAIL "+bare+": the report's receipt does not anchor it") {
		t.Fatalf("--anchor of another entry: exit %d\n%s%s", code, r.out.String(), r.errOut.String())
	}
}

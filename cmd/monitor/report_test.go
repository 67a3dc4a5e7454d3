package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

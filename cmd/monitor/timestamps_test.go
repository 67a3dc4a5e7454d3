package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/internal/tsatest"
	"github.com/llmaudittrail/llmaudittrail/server"
	"github.com/llmaudittrail/llmaudittrail/tsa"
)

// TestTimestampCommands: with sigstore's timestamp authority, monitor
// verify-receipt --tsa-chain prints when a receipt's entry existed by its
// token and refuses a receipt whose token is another checkpoint's, and
// monitor verify --tsa-chain verifies every timestamp.issued token and
// fails with another TSA's roots.
func TestTimestampCommands(t *testing.T) {
	a := tsatest.Start(t, "cmd TSA")
	srv := servertest.Start(t, func(c *server.Config) {
		c.Timestamps = []tsa.Authority{{URL: a.URL, Chain: a.Chain}}
		c.TimestampInterval = 100 * time.Millisecond
		rep, err := compliance.NewReporter(nil, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Reporter = rep
	})
	begin := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	ctx := context.Background()
	c := srv.Client(srv.Admin)
	w, err := c.Append(ctx, []*event.Request{{Session: "ts", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "a1"}}})
	if err != nil {
		t.Fatal(err)
	}
	idx := w[0].Index
	var rc []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := c.Entry(ctx, idx, 0)
		if err == nil && len(r.Timestamps) > 0 {
			// A later entry, so that a token on a larger checkpoint exists.
			if _, err := c.Append(ctx, []*event.Request{{Session: "ts", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "a1"}}}); err != nil {
				t.Fatal(err)
			}
			rc, _ = json.Marshal(r)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no receipt with a token: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var later []byte
	for {
		ts, err := c.Timestamps(ctx, client.TimestampQuery{})
		if err == nil && len(ts) > 0 && ts[0].TreeSize > idx+1 {
			later, _ = json.Marshal(ts[0].Token)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no later token: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	dir := t.TempDir()
	good, bad, otherChain := filepath.Join(dir, "good.json"), filepath.Join(dir, "bad.json"), filepath.Join(dir, "other.pem")
	os.WriteFile(good, rc, 0o644)
	var r map[string]any
	json.Unmarshal(rc, &r)
	first := r["timestamps"].([]any)[0].(map[string]any)
	var lt string
	json.Unmarshal(later, &lt)
	first["token"] = lt
	b, _ := json.Marshal(r)
	os.WriteFile(bad, b, 0o644)
	os.WriteFile(otherChain, tsatest.NewChain(t, "another TSA"), 0o644)

	run := startBinary(t, "verify-receipt", "--log-key", srv.LogPub, "--tsa-chain", a.ChainFile, good)
	<-run.done
	if code := run.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(run.out.String(), "existed no later than") || !strings.Contains(run.out.String(), "CN=cmd TSA") {
		t.Fatalf("verify-receipt good: exit %d: %s %s", code, run.out.String(), run.errOut.String())
	}
	run = startBinary(t, "verify-receipt", "--log-key", srv.LogPub, "--tsa-chain", a.ChainFile, bad)
	<-run.done
	if code := run.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(run.out.String(), "stamps another message") {
		t.Fatalf("verify-receipt with another checkpoint's token: exit %d: %s", code, run.out.String())
	}

	// A report's answer with tokens (computed at the latest checkpoint,
	// which a token reaches when the TSA stamped it before the stamper's
	// own record was published: try a few times).
	var ans *client.ReportAnswer
	for i := 0; i < 30 && (ans == nil || len(ans.JSON.Timestamps) == 0); i++ {
		w, err := c.Append(ctx, []*event.Request{{Session: "ts", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "a1"}}})
		if err != nil {
			t.Fatal(err)
		}
		n := w[0].Index
		for {
			ts, err := c.Timestamps(ctx, client.TimestampQuery{Covering: &n})
			if err == nil && len(ts) > 0 {
				break
			}
			if time.Now().After(deadline.Add(30 * time.Second)) {
				t.Fatal("no token")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if ans, err = c.Report(ctx, api.ReportQuery{Profile: "part11", From: begin, To: time.Now().UTC().Add(time.Minute).Truncate(time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(ans.JSON.Timestamps) == 0 {
		t.Fatal("no report answer carried a token")
	}
	// The answer's receipt of its report.issued event, with the token on
	// the first checkpoint that covers the event (the server's own receipt,
	// once the TSA stamped such a checkpoint), so that it is checked too.
	if ans.JSON.Receipt == nil {
		t.Fatal("the report's answer carries no receipt")
	}
	var wrapper map[string]json.RawMessage
	if err := json.Unmarshal(ans.Body, &wrapper); err != nil {
		t.Fatal(err)
	}
	for {
		r, err := c.Entry(ctx, ans.JSON.Receipt.Index, 0)
		if err == nil && len(r.Timestamps) > 0 {
			wrapper["receipt"], _ = json.Marshal(r)
			break
		}
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("no token covers the report.issued event: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	goodRep := filepath.Join(dir, "report.json")
	b, _ = json.Marshal(wrapper)
	os.WriteFile(goodRep, b, 0o644)
	run = startBinary(t, "verify-report", "--url", srv.URL, "--log-key", srv.LogPub, "--token-file", srv.AdminFile, "--tsa-chain", a.ChainFile, goodRep)
	<-run.done
	if code := run.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(run.out.String(), "its entries existed no later than") || strings.Count(run.out.String(), "it was issued (the report.issued event at entry") != 1 {
		t.Fatalf("verify-report: exit %d: %s %s", code, run.out.String(), run.errOut.String())
	}
	// A token on a smaller checkpoint in place of the answer's own, then
	// in place of the one the answer's receipt carries (the report's bytes
	// untouched; the receipt's token is often the same as the answer's, on
	// the first checkpoint after the report.issued event).
	swap := func(name, key string) {
		t.Helper()
		w := maps.Clone(wrapper)
		var list []map[string]any
		raw := w[key]
		var obj map[string]json.RawMessage
		if key == "receipt" {
			json.Unmarshal(raw, &obj)
			raw = obj["timestamps"]
		}
		if err := json.Unmarshal(raw, &list); err != nil || len(list) == 0 {
			t.Fatalf("%s: no timestamps in the answer's %s: %v", name, key, err)
		}
		list[0]["token"] = first["token"]
		raw, _ = json.Marshal(list)
		if key == "receipt" {
			obj["timestamps"] = raw
			raw, _ = json.Marshal(obj)
		}
		w[key] = raw
		bad, _ := json.Marshal(w)
		path := filepath.Join(dir, name+".json")
		os.WriteFile(path, bad, 0o644)
		run := startBinary(t, "verify-report", "--url", srv.URL, "--log-key", srv.LogPub, "--token-file", srv.AdminFile, "--tsa-chain", a.ChainFile, path)
		<-run.done
		if code := run.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(run.out.String(), "recomputed identical, but") || !strings.Contains(run.out.String(), "stamps another message") {
			t.Fatalf("verify-report with a swapped token in the answer's %s: exit %d: %s %s", key, code, run.out.String(), run.errOut.String())
		}
	}
	swap("report-bad", "timestamps")
	swap("report-bad-receipt", "receipt")
	// A second "timestamps" in the answer (encoding/json would take the
	// last, an empty list, and check no token) is refused.
	dupRep := filepath.Join(dir, "report-dup.json")
	os.WriteFile(dupRep, append([]byte(`{"timestamps":[],`), ans.Body[1:]...), 0o644)
	run = startBinary(t, "verify-report", "--url", srv.URL, "--log-key", srv.LogPub, "--token-file", srv.AdminFile, "--tsa-chain", a.ChainFile, dupRep)
	<-run.done
	if code := run.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(run.out.String(), "the answer's timestamps") {
		t.Fatalf("verify-report with \"timestamps\" twice: exit %d: %s %s", code, run.out.String(), run.errOut.String())
	}

	run = startBinary(t, "verify", "--url", srv.URL, "--log-key", srv.LogPub, "--token-file", srv.AdminFile, "--tsa-chain", a.ChainFile)
	<-run.done
	if code := run.cmd.ProcessState.ExitCode(); code != 0 || !bytes.Contains([]byte(run.out.String()), []byte("tokens verified")) {
		t.Fatalf("verify: exit %d: %s %s", code, run.out.String(), run.errOut.String())
	}
	run = startBinary(t, "verify", "--url", srv.URL, "--log-key", srv.LogPub, "--token-file", srv.AdminFile, "--tsa-chain", otherChain)
	<-run.done
	if code := run.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(run.out.String(), "FAIL timestamp.invalid") {
		t.Fatalf("verify with another TSA's roots: exit %d: %s", code, run.out.String())
	}
}

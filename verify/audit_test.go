package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/benchlog"
	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
)

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testClient is a client of the log at url with token, retrying quickly.
func testClient(url, token string) *client.Client {
	c, err := client.New(url, client.WithToken(token), client.WithRetry(client.Retry{Attempts: 3, Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}))
	if err != nil {
		panic(err)
	}
	return c
}

func auditCrafted(t *testing.T, c *crafttest.Log) *Report {
	t.Helper()
	rep, err := Audit(context.Background(), Config{Log: testClient(c.HS.URL, ""), LogKey: c.Key, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// craftSessions appends n tool calls, round robin over the sessions.
func craftSessions(c *crafttest.Log, n int, sessions ...string) {
	cs := make([]crafttest.Craft, n)
	for i := range cs {
		cs[i] = crafttest.Craft{Kind: "tool.call", Session: sessions[i%len(sessions)], Attrs: crafttest.Attrs("gen_ai.tool.name", "search", "n", i)}
	}
	c.Add(cs...)
}

func rules(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule)
	}
	return out
}

func dump(fs []Finding) string {
	b, _ := json.MarshalIndent(fs, "", "  ")
	return string(b)
}

func TestAuditCleanLog(t *testing.T) {
	c := crafttest.New(t)
	craftSessions(c, 300, "a", "b", "c")
	c.WaitPublished()
	rep := auditCrafted(t, c)
	if !rep.OK() || rep.Entries != 300 || rep.Size != 300 || rep.Sessions != 3 || rep.Bundles != 2 || rep.Tiles < 2 {
		t.Fatalf("audit of a clean log: %+v", rep)
	}
	// The report says "findings": [] when there are none.
	b, _ := json.Marshal(rep)
	if !strings.Contains(string(b), `"findings":[]`) {
		t.Fatalf("report JSON %s", b)
	}
}

// TestAuditTamperedEntry: an operator rewrites one entry in the log's
// files (a tool name changed after the fact). The audit fails, naming the
// entry; the signed root is not what the entries re-hash to, but the tiles
// still commit to the old entry, so it is a rewritten entry, not a fork.
func TestAuditTamperedEntry(t *testing.T) {
	c := crafttest.New(t)
	craftSessions(c, 300, "a")
	c.WaitPublished()
	if rep := auditCrafted(t, c); !rep.OK() {
		t.Fatalf("audit before tampering: %s", dump(rep.Findings))
	}
	crafttest.RewriteBundle(t, filepath.Join(c.Dir, "tile/entries/000"), func(i int, d []byte) []byte {
		if i == 7 {
			return []byte(strings.Replace(string(d), `"gen_ai.tool.name":"search"`, `"gen_ai.tool.name":"sEarch"`, 1))
		}
		return d
	})
	rep := auditCrafted(t, c)
	if rep.OK() || slices.Contains(rules(rep.Findings), RuleFork) {
		t.Fatalf("audit findings: %s", dump(rep.Findings))
	}
	var found bool
	for _, f := range rep.Findings {
		if f.Rule == RuleEntryMismatch {
			found = true
			if f.Index == nil || *f.Index != 7 || f.Severity != "critical" || f.Source != SourceIntegrity || f.Origin != c.Key.Name() || f.TreeSize != 300 || f.ID == "" {
				t.Errorf("finding %+v", f)
			}
		}
	}
	if !found {
		t.Fatalf("no %s finding: %s", RuleEntryMismatch, dump(rep.Findings))
	}
	// The same tampering, the same finding IDs: receivers drop repeats.
	if again := auditCrafted(t, c); !slices.Equal(ids(again.Findings), ids(rep.Findings)) {
		t.Fatalf("IDs changed between two audits:\n%s\n%s", dump(rep.Findings), dump(again.Findings))
	}
}

func ids(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID)
	}
	slices.Sort(out)
	return out
}

func TestAuditTamperedTile(t *testing.T) {
	c := crafttest.New(t)
	craftSessions(c, 300, "a")
	c.WaitPublished()
	path := filepath.Join(c.Dir, "tile/0/000")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[5*32+7] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := auditCrafted(t, c)
	if !slices.Equal(rules(rep.Findings), []string{RuleTileMismatch}) {
		t.Fatalf("audit findings: %s", dump(rep.Findings))
	}
	if f := rep.Findings[0]; f.Details["tile"] != "tile/0/000" || f.Details["node"] != 5 {
		t.Fatalf("finding %+v", f)
	}
}

// TestAuditSessionChains: every break of a session's seq and prev chain,
// and an entry that is no audit event, is a finding on its entry.
func TestAuditSessionChains(t *testing.T) {
	c := crafttest.New(t)
	craftSessions(c, 4, "ok", "gap", "prev")
	// A session that starts in the middle.
	mid := &event.Leaf{V: event.LeafVersion, ID: strings.Repeat("ab", 16), Kind: "tool.call", Time: time.Now().UTC().Format(event.TimeFormat),
		Tenant: "acme", Session: "late", Seq: 3, Prev: strings.Repeat("00", 32), Actor: event.Actor{Type: "agent", ID: "agent-1"},
		Writer: &event.Writer{Token: "crafted", Via: event.ViaAPI}}
	late, err := mid.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{
		c.Add(crafttest.Craft{Kind: "tool.call", Session: "gap", SkipSeq: true})[0]:  "seq 2 follows seq 0",
		c.Add(crafttest.Craft{Kind: "tool.call", Session: "prev", BadPrev: true})[0]: "does not link",
		c.Add(crafttest.Craft{Raw: late})[0]:                                         "starts at seq 3",
		c.Add(crafttest.Craft{Raw: []byte("not an event")})[0]:                       "not a valid audit event leaf",
	}
	c.Add(crafttest.Craft{Kind: "tool.result", Session: "ok"})
	c.WaitPublished()
	rep := auditCrafted(t, c)
	got := map[uint64]string{}
	for _, f := range rep.Findings {
		if f.Index == nil || (f.Rule != RuleSessionChain && f.Rule != RuleMalformedEntry) {
			t.Errorf("unexpected finding %+v", f)
			continue
		}
		got[*f.Index] = f.Rule + ": " + f.Message
	}
	for i, sub := range want {
		if !strings.Contains(got[i], sub) {
			t.Errorf("entry %d: finding %q, want one containing %q", i, got[i], sub)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d findings, want %d:\n%s", len(got), len(want), dump(rep.Findings))
	}
}

// TestAuditCheckpoint: a checkpoint that does not verify is a finding,
// not an error; an older checkpoint (Config.At) is audited against the
// log's latest.
func TestAuditCheckpoint(t *testing.T) {
	c := crafttest.New(t)
	craftSessions(c, 10, "a")
	c.WaitPublished()
	old, err := c.Reader.ReadCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	craftSessions(c, 10, "a")
	c.WaitPublished()

	_, vkey, _ := checkpoint.GenerateKey(c.Key.Name())
	other, _ := checkpoint.NewVerifier(vkey)
	rep, err := Audit(context.Background(), Config{Log: testClient(c.HS.URL, ""), LogKey: other, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rules(rep.Findings), []string{RuleCheckpointSignature}) || rep.Entries != 0 {
		t.Fatalf("audit with another key: %s", dump(rep.Findings))
	}

	var visited []uint64
	rep, err = Audit(context.Background(), Config{Log: testClient(c.HS.URL, ""), LogKey: c.Key, At: old, Logger: quietLogger(),
		Visit: func(index uint64, leaf, leafHash []byte) error {
			visited = append(visited, index)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Size != 10 || rep.Entries != 10 || rep.Checkpoint != string(old) || len(visited) != 10 || visited[9] != 9 {
		t.Fatalf("audit at size 10: %+v, visited %v", rep, visited)
	}

	stop := errors.New("stop")
	_, err = Audit(context.Background(), Config{Log: testClient(c.HS.URL, ""), LogKey: c.Key, Logger: quietLogger(),
		Visit: func(index uint64, leaf, leafHash []byte) error { return stop }})
	if !errors.Is(err, stop) {
		t.Fatalf("Visit's error: got %v", err)
	}
	if _, err := Audit(context.Background(), Config{LogKey: c.Key}); err == nil {
		t.Fatal("an audit without a log ran")
	}
}

// TestParseHeadOnBenchLeaves checks event.ParseHead, which the audit uses
// for the chain fields, against ParseLeaf on the benchmark's leaves.
func TestParseHeadOnBenchLeaves(t *testing.T) {
	for i := range 80 {
		d := benchlog.Leaf(i)
		h, err := event.ParseHead(d)
		l, lerr := event.ParseLeaf(d)
		if err != nil || lerr != nil || h != l.Head() {
			t.Fatalf("ParseHead(%s) = %+v %v", d, h, err)
		}
	}
	for _, bad := range []string{`{"v":1,"id":"x","kind":"a.b","time":"t","tenant":"t","session":"s","seq":1,"actor":{`, `{"v":2}`, `not json`} {
		if _, err := event.ParseHead([]byte(bad)); err == nil {
			t.Errorf("ParseHead accepted %s", bad)
		}
	}
}

// ExampleAudit audits the log of a log server started with
// `log-server --data data`, with its verifier key and a global read token.
func ExampleAudit() {
	vkey, err := os.ReadFile("data/keys/log.pub")
	if err != nil {
		fmt.Println(err)
		return
	}
	key, err := checkpoint.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		fmt.Println(err)
		return
	}
	lc, err := client.New("http://127.0.0.1:8080", client.WithToken("TOKEN"))
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := Audit(context.Background(), Config{Log: lc, LogKey: key})
	if err != nil {
		fmt.Println("the audit could not run:", err)
		return
	}
	for _, f := range rep.Findings {
		fmt.Println(f.Rule, f.Index, f.Message)
	}
	fmt.Println("verified:", rep.OK())
}

package verify

import (
	"context"
	"encoding/base64"
	"github.com/llmaudittrail/llmaudittrail/event"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
	"github.com/llmaudittrail/llmaudittrail/internal/tsatest"
	"github.com/llmaudittrail/llmaudittrail/timestamp"
)

// published returns the crafted log's checkpoint once it covers every
// entry.
func published(t *testing.T, c *crafttest.Log) []byte {
	t.Helper()
	c.WaitPublished()
	raw, err := c.Reader.ReadCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// token asks the TSA for a token on cp.
func token(t *testing.T, a *tsatest.TSA, cp []byte) []byte {
	t.Helper()
	req, err := timestamp.NewRequest(cp)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := req.Token(tsatest.Post(t, a.URL, req.DER))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func issued(a *tsatest.TSA, size uint64, cp, tok []byte) crafttest.Craft {
	return crafttest.Craft{Kind: event.KindTimestampIssued, Session: "timestamps", ActorType: "system", Actor: "log-server",
		Attrs: crafttest.Attrs("timestamp.tsa", a.URL, "timestamp.tree_size", size, "timestamp.checkpoint", string(cp),
			"timestamp.token", base64.StdEncoding.EncodeToString(tok), "timestamp.time", "")}
}

// TestAuditTimestamps: the audit verifies the tokens of timestamp.issued
// events with the TSA's roots (sigstore's timestamp-server), and finds a
// token whose imprint is another checkpoint, a token on a checkpoint of
// another log, and a TSA whose times go backwards as the tree grows.
func TestAuditTimestamps(t *testing.T) {
	a := tsatest.Start(t, "audit TSA")
	tv, err := timestamp.NewVerifier(a.Chain)
	if err != nil {
		t.Fatal(err)
	}
	audit := func(c *crafttest.Log, tv *timestamp.Verifier) *Report {
		t.Helper()
		rep, err := Audit(context.Background(), Config{Log: testClient(c.HS.URL, ""), LogKey: c.Key, Logger: quietLogger(), Timestamps: tv})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}

	// A good log: two tokens, in order.
	good := crafttest.New(t)
	craftSessions(good, 3, "a")
	cp3 := published(t, good)
	good.Add(issued(a, 3, cp3, token(t, a, cp3)))
	craftSessions(good, 1, "b")
	cp5 := published(t, good)
	good.Add(issued(a, 5, cp5, token(t, a, cp5)))
	published(t, good)
	if rep := audit(good, tv); !rep.OK() || rep.Timestamps != 2 || rep.TimestampsVerified != 2 {
		t.Fatalf("good log: %d timestamps, %d verified, findings %+v", rep.Timestamps, rep.TimestampsVerified, rep.Findings)
	}
	// Without the TSA roots: counted, not verified, no finding.
	if rep := audit(good, nil); !rep.OK() || rep.Timestamps != 2 || rep.TimestampsVerified != 0 {
		t.Fatalf("good log without roots: %d timestamps, %d verified, findings %+v", rep.Timestamps, rep.TimestampsVerified, rep.Findings)
	}
	// With another TSA's roots: every token is a finding.
	other, err := timestamp.NewVerifier(tsatest.NewChain(t, "another TSA"))
	if err != nil {
		t.Fatal(err)
	}
	if rep := audit(good, other); len(rep.Findings) != 2 || rep.Findings[0].Rule != RuleTimestamp {
		t.Fatalf("good log with another TSA's roots: findings %+v", rep.Findings)
	}

	// A bad log.
	bad := crafttest.New(t)
	craftSessions(bad, 3, "a")
	b3 := published(t, bad)
	craftSessions(bad, 2, "b")
	b5 := published(t, bad)
	later := token(t, a, b5) // the larger tree's token first,
	time.Sleep(1100 * time.Millisecond)
	earlier := token(t, a, b3) // the smaller's a second later (genTime has 1 s precision)
	bad.Add(
		issued(a, 3, b3, earlier),
		issued(a, 5, b5, later),             // backwards: size 5 stamped before size 3
		issued(a, 5, b5, earlier),           // imprint: the token of size 3 on size 5's checkpoint
		issued(a, 3, cp3, token(t, a, cp3)), // a checkpoint of another log
	)
	published(t, bad)
	rep := audit(bad, tv)
	want := []string{"timestamp.invalid: the token's imprint", "timestamp.invalid: its checkpoint does not verify", "timestamp.invalid: times go backwards"}
	var got []string
	for _, f := range rep.Findings {
		got = append(got, f.Rule+": "+f.Message)
	}
	if len(rep.Findings) != len(want) {
		t.Fatalf("bad log: findings\n%s", strings.Join(got, "\n"))
	}
	for _, w := range want {
		rule, part, _ := strings.Cut(w, ": ")
		found := false
		for _, f := range rep.Findings {
			found = found || (f.Rule == rule && strings.Contains(f.Message, part))
		}
		if !found {
			t.Errorf("bad log: no finding %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
}

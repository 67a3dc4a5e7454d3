package server_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/internal/tsatest"
	"github.com/llmaudittrail/llmaudittrail/server"
	"github.com/llmaudittrail/llmaudittrail/signature"
	"github.com/llmaudittrail/llmaudittrail/signer"
	"github.com/llmaudittrail/llmaudittrail/timestamp"
	"github.com/llmaudittrail/llmaudittrail/tsa"
)

// waitFor polls f every 50 ms for 30 s at most.
func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tsaVerifiers returns the verifiers of srv's checkpoints and of a's
// tokens.
func tsaVerifiers(t *testing.T, srv *servertest.Server, a *tsatest.TSA) (note.Verifier, *timestamp.Verifier) {
	t.Helper()
	logKey, err := checkpoint.NewVerifier(srv.Srv.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	tv, err := timestamp.NewVerifier(a.Chain)
	if err != nil {
		t.Fatal(err)
	}
	return logKey, tv
}

// TestTimestampsOfCheckpoints runs the log with sigstore's timestamp
// authority: a checkpoint covering an entry is time-stamped, the token is
// served at /v1/timestamps, carried by the entry's receipt (and verifies
// there, and is refused on another checkpoint), and recorded as
// timestamp.issued. With the TSA stopped, appends go on, timestamp.failed
// is recorded once, and tokens resume when it returns.
func TestTimestampsOfCheckpoints(t *testing.T) {
	a := tsatest.Start(t, "test TSA")
	srv := servertest.Start(t, func(c *server.Config) {
		c.Timestamps = []tsa.Authority{{URL: a.URL, Chain: a.Chain}}
		c.TimestampInterval = 100 * time.Millisecond
		c.SignerPolicy = signer.Policy{Time: 1, MemoryKiB: 1024, Threads: 1, MaxFailures: 3}
		rep, err := compliance.NewReporter(nil, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Reporter = rep
	})
	begin := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	ctx := context.Background()
	c := srv.Client(srv.Admin)
	logKey, tv := tsaVerifiers(t, srv, a)
	appendOne := func(name string) uint64 {
		t.Helper()
		start := time.Now()
		w, err := c.Append(ctx, []*event.Request{{Session: "s-" + name, Kind: "agent.decision", Actor: event.Actor{Type: "agent", ID: "a"}}})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("append took %v", d)
		}
		return w[0].Index
	}
	covering := func(idx uint64) []api.Timestamp {
		ts, err := c.Timestamps(ctx, client.TimestampQuery{Covering: &idx})
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	session := func(kind string) []api.SessionEntry {
		page, err := c.Session(ctx, event.SessionTimestamps, client.SessionQuery{Tenant: server.DefaultTenant})
		if err != nil {
			var ce *client.Error
			if errors.As(err, &ce) && ce.StatusCode == 404 {
				return nil
			}
			t.Fatal(err)
		}
		var out []api.SessionEntry
		for _, e := range page.Events {
			if e.Kind == kind {
				out = append(out, e)
			}
		}
		return out
	}

	idx := appendOne("one")
	var ts []api.Timestamp
	waitFor(t, "a token covering the entry", func() bool { ts = covering(idx); return len(ts) > 0 })
	tok := ts[0]
	if tok.TSA != a.URL || tok.TreeSize <= idx {
		t.Fatalf("token %s size %d for entry %d", tok.TSA, tok.TreeSize, idx)
	}
	if _, err := api.VerifyCheckpoint([]byte(tok.Checkpoint), logKey, nil); err != nil {
		t.Fatalf("the stamped checkpoint: %v", err)
	}
	st, err := tv.Verify(tok.Token, []byte(tok.Checkpoint))
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	if !st.Time.Equal(tok.Time) {
		t.Fatalf("token time %v, served %v", st.Time, tok.Time)
	}

	// The receipt carries it, with the entry's inclusion proof.
	rc, err := c.Entry(ctx, idx, 0)
	if err != nil {
		t.Fatal(err)
	}
	rv := api.NewReceiptVerifier(logKey, nil)
	if _, err := rv.Verify(rc); err != nil {
		t.Fatal(err)
	}
	vts, err := rv.VerifyTimestamps(rc, tv)
	if err != nil || len(vts) != 1 || !vts[0].Stamp.Time.Equal(tok.Time) {
		t.Fatalf("VerifyTimestamps = %v, %v", vts, err)
	}

	// The event that records it.
	waitFor(t, "the token's event", func() bool { tok = covering(idx)[0]; return tok.EventIndex != nil })
	var rcv *api.Receipt
	waitFor(t, "a checkpoint covering the token's event", func() bool { rcv, err = c.Entry(ctx, *tok.EventIndex, 0); return err == nil })
	leaf, err := event.ParseLeaf(rcv.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Attributes.String(tsa.AttrCheckpoint) != tok.Checkpoint || leaf.Attributes.String(tsa.AttrToken) != base64.StdEncoding.EncodeToString(tok.Token) {
		t.Fatalf("the event's checkpoint or token is not the served one: %v", leaf.Attributes)
	}
	if n, _ := leaf.Attributes.Uint(tsa.AttrTreeSize); n != tok.TreeSize {
		t.Fatalf("the event's tree size %d, the token's %d", n, tok.TreeSize)
	}

	// A signature export: each receipt carries the tokens covering its
	// entry, once one does.
	if _, err := c.Enroll(ctx, api.Enrollment{ID: "dr-ada", PrintedName: "Dr. Ada", Secret: "correct horse battery staple", IdentityVerifiedBy: "hr"}); err != nil {
		t.Fatal(err)
	}
	ada := srv.Client(srv.Token(auth.Spec{Name: "ada", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeSign, auth.ScopeRead}, Actors: []string{"dr-ada"}}))
	rec, err := c.Entry(ctx, idx, 0)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ada.Sign(ctx, api.SignRequest{Signer: "dr-ada", Secret: "correct horse battery staple", Index: idx, LeafHash: rec.LeafHash, Meaning: "approved"})
	if err != nil {
		t.Fatal(err)
	}
	var export signature.Export
	waitFor(t, "a signature export whose receipts all carry tokens", func() bool {
		raw, err := ada.SignatureExport(ctx, sig.Event.Index)
		if err != nil {
			return false
		}
		if err := json.Unmarshal(raw, &export); err != nil {
			t.Fatal(err)
		}
		return len(export.Event.Timestamps) > 0 && len(export.Enrollment.Timestamps) > 0 && len(export.Record.Timestamps) > 0
	})
	for _, r := range []*api.Receipt{export.Enrollment, export.Event, export.Record} {
		if _, err := rv.Verify(r); err != nil {
			t.Fatal(err)
		}
		if _, err := rv.VerifyTimestamps(r, tv); err != nil {
			t.Fatalf("export receipt %d: %v", r.Index, err)
		}
	}
	if export.Record.Timestamps[0].TreeSize != tok.TreeSize {
		t.Fatalf("the record's token is on size %d, not the first covering one, %d", export.Record.Timestamps[0].TreeSize, tok.TreeSize)
	}

	// A report carries the tokens of the first time-stamped checkpoint at
	// least as large as its own, with the consistency proof to it. A
	// report is computed at the latest checkpoint, which a token reaches
	// when the TSA stamped it before the stamper's own event was
	// published: try a few times.
	var report *client.ReportAnswer
	for i := 0; i < 30 && (report == nil || len(report.JSON.Timestamps) == 0); i++ {
		n := appendOne("report" + string(rune('a'+i)))
		waitFor(t, "a token on the report's entries", func() bool { return len(covering(n)) > 0 })
		if report, err = c.Report(ctx, api.ReportQuery{Profile: "part11", From: begin, To: time.Now().UTC().Add(time.Minute).Truncate(time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(report.JSON.Timestamps) == 0 {
		t.Fatal("no report carried a token")
	}
	rl, err := c.Entry(ctx, report.JSON.Event.Index, 0)
	if err != nil {
		t.Fatal(err)
	}
	rleaf, err := event.ParseLeaf(rl.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	rsize, _ := rleaf.Attributes.Uint("report.checkpoint_size")
	rroot, err := hex.DecodeString(rleaf.Attributes.String("report.checkpoint_root"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.VerifyTreeTimestamps(rsize, rroot, report.JSON.Timestamps, logKey, nil, tv); err != nil {
		t.Fatalf("the report's timestamps: %v", err)
	}
	if _, err := api.VerifyTreeTimestamps(rsize, rroot, []api.Timestamp{{TSA: tok.TSA, TreeSize: tok.TreeSize, Checkpoint: tok.Checkpoint, Token: tok.Token}}, logKey, nil, tv); err == nil {
		t.Fatal("a token on a checkpoint smaller than the report's verified for it")
	}

	// With the TSA down: appends go on, the outage is recorded once.
	a.Stop()
	for i := range 3 {
		appendOne("down" + string(rune('a'+i)))
		time.Sleep(150 * time.Millisecond)
	}
	waitFor(t, "timestamp.failed", func() bool { return len(session(tsa.KindFailed)) > 0 })
	if d := srv.Srv.Stamper().Down(); len(d) != 1 || d[0] != a.URL {
		t.Fatalf("Down() = %v", d)
	}
	last := appendOne("during")
	time.Sleep(500 * time.Millisecond)
	if n := len(session(tsa.KindFailed)); n != 1 {
		t.Fatalf("%d timestamp.failed events for one outage", n)
	}
	if got := covering(last); len(got) != 0 {
		t.Fatalf("a token covers %d while the TSA is down: %+v", last, got)
	}

	// Back: the entries appended meanwhile get their token.
	a.Restart()
	waitFor(t, "a token after the outage", func() bool { return len(covering(last)) > 0 })
	if d := srv.Srv.Stamper().Down(); len(d) != 0 {
		t.Fatalf("Down() = %v after the TSA returned", d)
	}
	after := covering(last)[0]
	if after.Time.Before(tok.Time) || after.TreeSize <= tok.TreeSize {
		t.Fatalf("token after the outage: size %d at %v, before: size %d at %v", after.TreeSize, after.Time, tok.TreeSize, tok.Time)
	}

	// Once nothing else is appended, the stamper does not stamp its own
	// timestamp.issued events: their number stays put.
	time.Sleep(500 * time.Millisecond)
	settled := len(session(tsa.KindIssued))
	time.Sleep(time.Second)
	if n := len(session(tsa.KindIssued)); n != settled {
		t.Fatalf("timestamp.issued went from %d to %d with no other append: the stamper stamps its own records", settled, n)
	}

	// A receipt whose timestamp carries the token of another checkpoint
	// is refused.
	rc.Timestamps[0].Token = after.Token
	if _, err := rv.VerifyTimestamps(rc, tv); !errors.Is(err, api.ErrReceiptTimestamp) || !errors.Is(err, timestamp.ErrImprint) {
		t.Fatalf("VerifyTimestamps(another checkpoint's token) = %v", err)
	}
}

// TestTimestampFromUntrustedChain: a TSA whose tokens do not chain to the
// root configured for it gets no token stored or served; its failure is
// recorded as timestamp.failed, and appends go on.
func TestTimestampFromUntrustedChain(t *testing.T) {
	a := tsatest.Start(t, "real TSA")
	srv := servertest.Start(t, func(c *server.Config) {
		c.Timestamps = []tsa.Authority{{URL: a.URL, Chain: tsatest.NewChain(t, "configured TSA")}}
		c.TimestampInterval = 100 * time.Millisecond
	})
	ctx := context.Background()
	c := srv.Client(srv.Admin)
	w, err := c.Append(ctx, []*event.Request{{Session: "s", Kind: "agent.decision", Actor: event.Actor{Type: "agent", ID: "a"}}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "timestamp.failed", func() bool {
		page, err := c.Session(ctx, event.SessionTimestamps, client.SessionQuery{Tenant: server.DefaultTenant})
		return err == nil && len(page.Events) > 0 && page.Events[0].Kind == tsa.KindFailed
	})
	leaf := func() *event.Leaf {
		page, _ := c.Session(ctx, event.SessionTimestamps, client.SessionQuery{Tenant: server.DefaultTenant})
		var r *api.Receipt
		waitFor(t, "the failure's entry", func() bool { r, err = c.Entry(ctx, page.Events[0].Index, 0); return err == nil })
		l, err := event.ParseLeaf(r.Leaf)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}()
	if e := leaf.Attributes.String(tsa.AttrError); !strings.Contains(e, "signature or certificate chain") {
		t.Fatalf("timestamp.failed error %q", e)
	}
	if ts, err := c.Timestamps(ctx, client.TimestampQuery{Covering: &w[0].Index}); err != nil || len(ts) != 0 {
		t.Fatalf("tokens %v, %v from an untrusted TSA", ts, err)
	}
}

// TestTimestampsOnEnvelopeLog: on logs of leaf version 3 and 4 the log's
// entry is the envelope, and a receipt's tokens verify with the envelope
// at the entry's index (the body's hash is not in the tree).
func TestTimestampsOnEnvelopeLog(t *testing.T) {
	for _, v := range []int{3, 4} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			a := tsatest.Start(t, "envelope TSA")
			srv := servertest.Start(t, func(c *server.Config) {
				c.Timestamps = []tsa.Authority{{URL: a.URL, Chain: a.Chain}}
				c.TimestampInterval = 100 * time.Millisecond
				c.LeafVersion = v
			})
			ctx := context.Background()
			c := srv.Client(srv.Admin)
			logKey, tv := tsaVerifiers(t, srv, a)
			w, err := c.Append(ctx, []*event.Request{{Session: "env", Kind: "agent.decision", Actor: event.Actor{Type: "agent", ID: "a"}}})
			if err != nil {
				t.Fatal(err)
			}
			var rc *api.Receipt
			waitFor(t, "a receipt with a token", func() bool {
				rc, err = c.Entry(ctx, w[0].Index, 0)
				return err == nil && len(rc.Timestamps) > 0
			})
			if rc.Envelope == nil {
				t.Fatalf("a receipt of leaf version %d without its envelope", v)
			}
			rv := api.NewReceiptVerifier(logKey, nil)
			if _, err := rv.Verify(rc); err != nil {
				t.Fatal(err)
			}
			if vts, err := rv.VerifyTimestamps(rc, tv); err != nil || len(vts) != len(rc.Timestamps) {
				t.Fatalf("VerifyTimestamps on leaf version %d = %v, %v", v, vts, err)
			}
		})
	}
}

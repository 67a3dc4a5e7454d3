package log

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/api/layout"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/journal"
)

// crash stops l the way a killed process does: nothing is drained,
// released or published; what is on disk stays as it is.
func (l *Log) crash(closeAll func()) {
	l.closing.Store(true)
	l.seqStop()
	l.cancel()
	l.wg.Wait()
	l.journal.Close()
	// The databases and vault are closed so that the next open takes
	// them over; the log is not shut down (no checkpoint is published).
	l.shutdown = func(context.Context) error { return nil }
	closeAll()
}

// durableLoad appends n events with payloads to sessions, acknowledged at
// durability, and returns them.
func durableLoad(t *testing.T, l *Log, n int, sessions ...string) []event.Appended {
	t.Helper()
	var out []event.Appended
	for i := range n {
		r := req(sessions[i%len(sessions)])
		r.Payload = json.RawMessage(fmt.Sprintf(`{"call":%d,"text":"%s"}`, i, "patient notes that compress well, patient notes that compress well"))
		a, err := l.AppendWait(context.Background(), "t", testWriter, []*event.Request{r}, WaitDurable)
		if err != nil {
			t.Fatal(err)
		}
		if a[0].Indexed {
			t.Fatal("an append acknowledged at durability came back with an index while the sequencer is held")
		}
		out = append(out, a...)
	}
	return out
}

// checkExactlyOnce checks that the log holds exactly the acked events, each
// once, each session's chain whole, and every payload in the vault.
func checkExactlyOnce(t *testing.T, l *Log, acked []event.Appended) {
	t.Helper()
	ctx := context.Background()
	if err := l.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	size, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if size != uint64(len(acked)) {
		t.Errorf("the log holds %d entries; %d were acknowledged", size, len(acked))
	}
	seen := map[string]int{}
	type head struct {
		seq  uint64
		hash []byte
	}
	heads := map[string]head{}
	for bi := uint64(0); bi*layout.EntryBundleWidth < size; bi++ {
		b, err := l.readBundle(ctx, bi, size)
		if err != nil {
			t.Fatal(err)
		}
		for _, leaf := range b.Entries {
			h, err := event.ParseHead(leaf)
			if err != nil {
				t.Fatal(err)
			}
			seen[h.ID]++
			prev, ok := heads[h.Session]
			switch {
			case !ok && (h.Seq != 0 || h.Prev != ""):
				t.Errorf("session %s begins at seq %d", h.Session, h.Seq)
			case ok && (h.Seq != prev.seq+1 || h.Prev != hex.EncodeToString(prev.hash)):
				t.Errorf("session %s: seq %d does not chain on seq %d", h.Session, h.Seq, prev.seq)
			}
			heads[h.Session] = head{h.Seq, event.LeafHash(leaf)}
		}
	}
	for _, a := range acked {
		if seen[a.ID] != 1 {
			t.Errorf("acknowledged event %s (session %s seq %d) is in the log %d times", a.ID, a.Session, a.Seq, seen[a.ID])
		}
		rec, err := l.vault.Get(ctx, a.ID)
		if err != nil {
			t.Errorf("payload of %s: %v", a.ID, err)
			continue
		}
		leaf, _ := event.ParseLeaf(a.Leaf)
		if !event.CheckCommitment(leaf.Payload, rec.Salt, rec.Payload) {
			t.Errorf("payload of %s does not match its commitment", a.ID)
		}
	}
}

// An event acknowledged at durability is in the log after a crash before
// it was sequenced: the journal puts it there on the next start, once.
func TestCrashBeforeSequencing(t *testing.T) {
	dir := t.TempDir()
	l, closeAll := openTestLog(t, dir, func(c *Config) { c.holdSequencer = make(chan struct{}) })
	acked := durableLoad(t, l, 40, "a", "b", "c")
	if n, _ := l.reader.IntegratedSize(context.Background()); n != 0 {
		t.Fatalf("%d entries in the log while the sequencer is held", n)
	}
	l.crash(closeAll)

	l2, closeAll2 := openTestLog(t, dir, nil)
	defer closeAll2()
	checkExactlyOnce(t, l2, acked)
	// The chains continue after recovery.
	more := durableLoad(t, l2, 3, "a")
	if more[0].Seq != 14 {
		t.Fatalf("session a continues at seq %d, want 14", more[0].Seq)
	}
	checkExactlyOnce(t, l2, append(acked, more...))
}

// A crash after entries were sequenced and before their journal records
// were released: the next start finds them in the log by event id and does
// not append them again.
func TestCrashBeforeRelease(t *testing.T) {
	dir := t.TempDir()
	var chunks atomic.Int32
	l, closeAll := openTestLog(t, dir, func(c *Config) {
		c.afterSequence = func(ctx context.Context) {
			chunks.Add(1)
			<-ctx.Done() // never released
		}
	})
	acked := durableLoad(t, l, 1, "a")
	deadline := time.Now().Add(10 * time.Second)
	for chunks.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if chunks.Load() == 0 {
		t.Fatal("nothing was sequenced")
	}
	l.crash(closeAll)

	l2, closeAll2 := openTestLog(t, dir, nil)
	defer closeAll2()
	checkExactlyOnce(t, l2, acked)
}

// A crash in the middle of recovery (some of the journal's records
// sequenced, none released) and another start: each record once.
func TestCrashDuringRecovery(t *testing.T) {
	dir := t.TempDir()
	l, closeAll := openTestLog(t, dir, func(c *Config) { c.holdSequencer = make(chan struct{}) })
	acked := durableLoad(t, l, 60, "a", "b")
	l.crash(closeAll)

	// Recovery in chunks of 16, killed while the second chunk is
	// sequenced and not released: New gives up when its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	var chunks atomic.Int32
	_, _, err := openTestLogCtx(t, ctx, dir, func(c *Config) {
		c.BatchMaxSize = 16
		c.afterSequence = func(sctx context.Context) {
			if chunks.Add(1) == 2 {
				cancel()
				<-sctx.Done()
			}
		}
	})
	if err == nil || chunks.Load() != 2 {
		t.Fatalf("New during a recovery that was stopped: %v after %d chunks", err, chunks.Load())
	}

	l3, closeAll3 := openTestLog(t, dir, nil)
	defer closeAll3()
	checkExactlyOnce(t, l3, acked)
}

// A journal record the engine cannot read stops the sequencer rather than
// being skipped; the start that recovers it fails with ErrSequencerStopped
// instead of waiting forever, and leaves the record in the journal.
func TestUnreadableRecordStopsStart(t *testing.T) {
	dir := t.TempDir()
	j, err := journal.OpenFile(journal.FileConfig{Dir: filepath.Join(dir, "journal")})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Append(context.Background(), []*journal.Entry{{Data: []byte("not a record")}}); err != nil {
		t.Fatal(err)
	}
	j.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, err = openTestLogCtx(t, ctx, dir, nil)
	if !errors.Is(err, ErrSequencerStopped) {
		t.Fatalf("New over an unreadable journal record = %v, want ErrSequencerStopped", err)
	}
	j, err = journal.OpenFile(journal.FileConfig{Dir: filepath.Join(dir, "journal")})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.Depth() != 1 {
		t.Fatalf("the journal holds %d records after the failed start, want the unreadable one", j.Depth())
	}
}

// The same record met while running: Healthy says so (the server's
// /healthz answers 503), and Close does not wait for it.
func TestUnreadableRecordWhileRunning(t *testing.T) {
	l := newTestLog(t, nil)
	if err := l.Healthy(); err != nil {
		t.Fatal(err)
	}
	if err := l.journal.Append(context.Background(), []*journal.Entry{{Data: []byte("not a record")}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for l.Healthy() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := l.Healthy(); !errors.Is(err, ErrSequencerStopped) {
		t.Fatalf("Healthy = %v, want ErrSequencerStopped", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.WaitIndexed(ctx); !errors.Is(err, ErrSequencerStopped) {
		t.Fatalf("WaitIndexed = %v, want ErrSequencerStopped", err)
	}
}

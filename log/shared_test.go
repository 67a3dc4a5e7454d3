package log

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/backend"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/index"
	"github.com/llmaudittrail/llmaudittrail/internal/dbtest"
	"github.com/llmaudittrail/llmaudittrail/journal"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// s3Log is one database and bucket that several engines (instances) share.
type s3Log struct {
	dsn, endpoint, bucket string
	signer                note.Signer
	verifier              note.Verifier
}

func newS3Log(t *testing.T) *s3Log {
	t.Helper()
	dsn := dbtest.MariaDB(t)
	ep, bucket := dbtest.S3(t)
	skey, vkey, _ := checkpoint.GenerateKey("test/shared")
	s, _ := checkpoint.NewSigner(skey)
	v, _ := checkpoint.NewVerifier(vkey)
	return &s3Log{dsn: dsn, endpoint: ep, bucket: bucket, signer: s, verifier: v}
}

// instance opens one more engine on the shared log.
func (sl *s3Log) instance(t *testing.T, mod func(*Config)) *Log {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := backend.Open(ctx, backend.Config{Kind: backend.S3, DSN: sl.dsn, S3: backend.S3Config{Endpoint: sl.endpoint, Bucket: sl.bucket}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	vlt, err := vault.Open(b.Vault, bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Driver: b.Driver, Signer: sl.signer, Verifier: sl.verifier, Vault: vlt, CheckpointInterval: time.Second, Logger: logger,
		IndexDB: func(r tessera.LogReader) (*index.Index, error) { return index.Open(b.Index, r, logger) },
		Journal: b.Journal, CheckpointPoll: b.CheckpointPoll(), Locker: b.State, Health: b.Health}
	if mod != nil {
		mod(&cfg)
	}
	l, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l.Close(cctx)
		vlt.Close()
		b.Close()
	})
	return l
}

// appendConcurrently appends n events to one session from each of the
// engines, with several writers per engine, and returns what was acked.
func appendConcurrently(t *testing.T, engines []*Log, writers, n int, session string) []event.Appended {
	t.Helper()
	var mu sync.Mutex
	var acked []event.Appended
	var wg sync.WaitGroup
	for _, l := range engines {
		for range writers {
			wg.Go(func() {
				for range n {
					out, err := l.Append(context.Background(), "t", testWriter, []*event.Request{req(session)})
					if err != nil {
						t.Errorf("Append: %v", err)
						return
					}
					mu.Lock()
					acked = append(acked, out...)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return acked
}

// checkChain checks that the acked events of a session are one chain: seqs
// 0..n-1 each once, each prev the leaf hash of the event before, in log
// order.
func checkChain(l *Log, acked []event.Appended) error {
	slices.SortFunc(acked, func(a, b event.Appended) int { return int(a.Seq) - int(b.Seq) })
	for i, a := range acked {
		if a.Seq != uint64(i) {
			return fmt.Errorf("acked seqs are not 0..%d: position %d has seq %d", len(acked)-1, i, a.Seq)
		}
		leaf, err := event.ParseLeaf(a.Leaf)
		if err != nil {
			return err
		}
		want := ""
		if i > 0 {
			want = hex.EncodeToString(acked[i-1].LeafHash)
			if acked[i-1].Index >= a.Index {
				return fmt.Errorf("seq %d is at index %d, not after seq %d at %d", a.Seq, a.Index, i-1, acked[i-1].Index)
			}
		}
		if leaf.Prev != want {
			return fmt.Errorf("seq %d: prev %q, want %q", a.Seq, leaf.Prev, want)
		}
	}
	return nil
}

// Two instances appending to one session at once make one chain: the
// session lock in the shared database orders them.
func TestSharedSessionTwoInstances(t *testing.T) {
	sl := newS3Log(t)
	a, b := sl.instance(t, nil), sl.instance(t, nil)
	acked := appendConcurrently(t, []*Log{a, b}, 4, 10, "shared")
	if len(acked) != 80 {
		t.Fatalf("%d events acked, want 80", len(acked))
	}
	if err := checkChain(a, acked); err != nil {
		t.Fatal(err)
	}
	// Both instances list the session the same, from the shared index.
	for _, l := range []*Log{a, b} {
		evs, err := l.Session(context.Background(), "t", "shared", 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 80 || evs[79].Seq != 79 {
			t.Fatalf("Session lists %d events", len(evs))
		}
	}
}

// An instance whose sequencer does not run (another holds the lease)
// still answers its appends' indices: the other instance sequences them,
// and this one finds them in the shared session index.
func TestSharedSequencedByOther(t *testing.T) {
	sl := newS3Log(t)
	hold := make(chan struct{})
	a := sl.instance(t, func(c *Config) { c.holdSequencer = hold })
	b := sl.instance(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := a.Append(ctx, "t", testWriter, []*event.Request{req("other"), req("other")})
	if err != nil {
		t.Fatal(err)
	}
	if !out[0].Indexed || !out[1].Indexed || out[1].Index <= out[0].Index {
		t.Fatalf("appended %+v", out)
	}
	leaf, err := b.ReadLeaf(ctx, out[1].Index, out[1].Index+1)
	if err != nil || !bytes.Equal(leaf, out[1].Leaf) {
		t.Fatalf("the leaf at %d is not the one appended through the other instance: %v", out[1].Index, err)
	}
	close(hold)
}

// losingJournal is a shared journal whose group appends always lose their
// sessions' heads, as a slow instance's can to a fast one's time after
// time; AppendChained is the journal's own.
type losingJournal struct {
	*journal.SQL
	appends, chained atomic.Int32
}

func (j *losingJournal) Append(_ context.Context, entries []*journal.Entry) error {
	j.appends.Add(1)
	moved := &journal.HeadsMovedError{}
	for _, e := range entries {
		moved.Sessions = append(moved.Sessions, [2]string{e.Tenant, e.Session})
	}
	return moved
}

func (j *losingJournal) AppendChained(ctx context.Context, sessions [][2]string, chain func(map[[2]string]journal.Head) ([]*journal.Entry, error)) error {
	j.chained.Add(1)
	return j.SQL.AppendChained(ctx, sessions, chain)
}

// An append whose group loses its sessions' heads to other instances again
// and again is chained on heads it locks first, and goes through on the
// heads the other instance left: one instance's writes are not refused
// because another writes faster to the same sessions.
func TestSharedHeadsLostAgain(t *testing.T) {
	sl := newS3Log(t)
	var lj *losingJournal
	a := sl.instance(t, func(c *Config) {
		open := c.Journal
		c.Journal = func() (journal.Store, error) {
			s, err := open()
			if err != nil {
				return nil, err
			}
			lj = &losingJournal{SQL: s.(*journal.SQL)}
			return lj, nil
		}
	})
	b := sl.instance(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// b writes first: a's view of the session is behind.
	first, err := b.Append(ctx, "t", testWriter, []*event.Request{req("contended"), req("contended")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.Append(ctx, "t", testWriter, []*event.Request{req("contended"), req("other"), req("contended")})
	if err != nil {
		t.Fatalf("an append that lost the heads %d times: %v", lj.appends.Load(), err)
	}
	if n, c := lj.appends.Load(), lj.chained.Load(); n != groupHeadTries || c != 1 {
		t.Errorf("%d group appends and %d chained ones; want %d and 1", n, c, groupHeadTries)
	}
	if out[0].Seq != 2 || out[1].Seq != 0 || out[2].Seq != 3 {
		t.Errorf("chained at seqs %d, %d, %d; want 2, 0, 3", out[0].Seq, out[1].Seq, out[2].Seq)
	}
	// One chain, through both instances, and a's head is where the
	// chained append left it.
	more, err := a.Append(ctx, "t", testWriter, []*event.Request{req("contended")})
	if err != nil || more[0].Seq != 4 {
		t.Fatalf("the next append through a: %+v, %v", more, err)
	}
	evs, err := b.Session(ctx, "t", "contended", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 || evs[1].ID != first[1].ID || evs[2].ID != out[0].ID || evs[3].ID != out[2].ID || evs[4].ID != more[0].ID {
		t.Fatalf("the session has %+v; want the 5 events appended, in order", evs)
	}
	var prev []byte
	for i, e := range evs {
		leaf, err := b.Leaf(ctx, e.Index)
		if err != nil {
			t.Fatal(err)
		}
		h, err := event.ParseHead(leaf)
		if err != nil || h.Seq != uint64(i) || h.Prev != hex.EncodeToString(prev) {
			t.Fatalf("event %d of the session: %+v, %v (prev should be %x)", i, h, err, prev)
		}
		prev = event.LeafHash(leaf)
	}
}

// A session read waits only for its own session: with another session's
// write durable and no instance sequencing the journal (the lease holder
// gone, the next one not started), a session that the index covers to its
// head is listed at once, and one with an event in flight is not listed
// without it.
func TestSharedSessionReadWaitsForItsSession(t *testing.T) {
	sl := newS3Log(t)
	hold := make(chan struct{})
	a := sl.instance(t, func(c *Config) { c.holdSequencer = hold })
	t.Cleanup(sync.OnceFunc(func() { close(hold) }))
	b := sl.instance(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done, err := b.Append(ctx, "t", testWriter, []*event.Request{req("done"), req("done")})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AppendWait(ctx, "t", testWriter, []*event.Request{req("pending")}, WaitDurable); err != nil {
		t.Fatal(err)
	}
	evs, err := a.Session(ctx, "t", "done", 0, 10)
	if err != nil || len(evs) != 2 || evs[1].ID != done[1].ID {
		t.Fatalf("the session the index covers: %+v, %v", evs, err)
	}
	sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer scancel()
	if evs, err := a.Session(sctx, "t", "pending", 0, 10); err == nil {
		t.Fatalf("a session whose acknowledged event is not sequenced was listed: %+v", evs)
	}
}

package log

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/llmaudittrail/llmaudittrail/journal"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/index"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

func newTestLog(t testing.TB, mod func(*Config)) *Log {
	t.Helper()
	l, closeAll := openTestLog(t, t.TempDir(), mod)
	t.Cleanup(closeAll)
	return l
}

var testSKey, testVKey, _ = checkpoint.GenerateKey("test/log")

// openTestLog opens a log in dir; closeAll closes it and its databases.
func openTestLog(t testing.TB, dir string, mod func(*Config)) (l *Log, closeAll func()) {
	t.Helper()
	l, closeAll, err := openTestLogCtx(t, context.Background(), dir, mod)
	if err != nil {
		t.Fatal(err)
	}
	return l, closeAll
}

// openTestLogCtx is openTestLog with New's context, returning New's error
// (with the databases closed).
func openTestLogCtx(t testing.TB, ctx context.Context, dir string, mod func(*Config)) (l *Log, closeAll func(), err error) {
	t.Helper()
	s, _ := checkpoint.NewSigner(testSKey)
	v, _ := checkpoint.NewVerifier(testVKey)
	drv, err := posix.New(ctx, posix.Config{Path: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	vdb, err := sqldb.OpenSQLite(filepath.Join(dir, "vault.db"), sqlitedb.Durable)
	if err != nil {
		t.Fatal(err)
	}
	vlt, err := vault.Open(vdb, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqldb.OpenSQLite(filepath.Join(dir, "index.db"), sqlitedb.Rebuildable)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{Driver: drv, Signer: s, Verifier: v, Vault: vlt, CheckpointInterval: 100 * time.Millisecond, Logger: logger,
		Journal: journal.FileOpener(journal.FileConfig{Dir: filepath.Join(dir, "journal"), Logger: logger}),
		IndexDB: func(r tessera.LogReader) (*index.Index, error) { return index.Open(db, r, logger) }}
	if mod != nil {
		mod(&cfg)
	}
	l, err = New(ctx, cfg)
	if err != nil {
		vlt.Close()
		vdb.Close()
		db.Close()
		return nil, nil, err
	}
	return l, func() {
		if !l.closing.Load() { // not crashed (journal_test.go)
			l.Close(context.Background())
		}
		vlt.Close()
		vdb.Close()
		db.Close()
	}, nil
}

func req(session string) *event.Request {
	return &event.Request{Session: session, Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "a"}}
}

func TestPushback(t *testing.T) {
	l := newTestLog(t, func(c *Config) { c.MaxInFlight = 2 })
	ctx := context.Background()
	if !l.Busy(3) || l.Busy(2) {
		t.Fatalf("Busy(3), Busy(2) = %v, %v with MaxInFlight 2, want true, false", l.Busy(3), l.Busy(2))
	}
	// Refused before the events are prepared: an invalid event too.
	if _, err := l.Append(ctx, "t", testWriter, []*event.Request{req("a"), req("b"), {Session: "c"}}); !errors.Is(err, ErrPushback) {
		t.Fatalf("Append of 3 (one invalid) with MaxInFlight 2 = %v, want ErrPushback", err)
	}
	if _, err := l.Append(ctx, "t", testWriter, []*event.Request{req("a"), req("b"), req("c")}); !errors.Is(err, ErrPushback) || !errors.Is(err, tessera.ErrPushback) {
		t.Fatalf("Append of 3 with MaxInFlight 2 = %v, want ErrPushback", err)
	}
	// Nothing was appended, and the slots were given back.
	if n, _ := l.Reader().IntegratedSize(ctx); n != 0 {
		t.Fatalf("log size %d after pushback, want 0", n)
	}
	res, err := l.Append(ctx, "t", testWriter, []*event.Request{req("a"), req("a")})
	if err != nil || len(res) != 2 || res[1].Seq != 1 {
		t.Fatalf("Append after pushback = %+v, %v", res, err)
	}
}

func TestInvalidTenantAndOversizeLeaf(t *testing.T) {
	l := newTestLog(t, nil)
	ctx := context.Background()
	if _, err := l.Append(ctx, "bad tenant", testWriter, []*event.Request{req("a")}); !errors.Is(err, event.ErrInvalidEvent) {
		t.Fatalf("bad tenant = %v", err)
	}
	// 64 attributes of 4 KiB each: every value is valid, the leaf is not.
	big := req("a")
	big.Attributes = map[string]json.RawMessage{}
	for i := range event.MaxAttributes {
		big.Attributes[fmt.Sprintf("k%d", i)] = json.RawMessage(`"` + strings.Repeat("x", event.MaxAttrValueLength) + `"`)
	}
	if _, err := l.Append(ctx, "t", testWriter, []*event.Request{big}); !errors.Is(err, event.ErrInvalidEvent) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversize leaf = %v, want ErrInvalidEvent about the limit", err)
	}
	if n, _ := l.Reader().IntegratedSize(ctx); n != 0 {
		t.Fatalf("log size %d after rejected events, want 0", n)
	}
}

var testWriter = event.Writer{Token: "t0k3n", Via: event.ViaAPI}

// TestWaitRoom: a writer that finds MaxInFlight events in flight waits for
// a place, which sequencing frees, and is told no when none comes free in
// time.
func TestWaitRoom(t *testing.T) {
	hold := make(chan struct{})
	l := newTestLog(t, func(c *Config) { c.MaxInFlight = 2; c.holdSequencer = hold })
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release) // before the log's Close, which waits for the sequencer
	ctx := context.Background()
	if _, err := l.AppendWait(ctx, "t", testWriter, []*event.Request{req("a"), req("b")}, WaitDurable); err != nil {
		t.Fatal(err)
	}
	if !l.Busy(1) {
		t.Fatal("two durable events with the sequencer held leave room for a third with MaxInFlight 2")
	}
	start := time.Now()
	if l.WaitRoom(ctx, 1, 200*time.Millisecond) {
		t.Fatal("WaitRoom found room while the sequencer is held")
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("WaitRoom gave up after %v, before its 200ms", d)
	}
	if l.WaitRoom(ctx, 1, 0) {
		t.Fatal("WaitRoom without a wait found room")
	}
	// Sequencing frees the places while a writer waits.
	room := make(chan bool)
	go func() { room <- l.WaitRoom(ctx, 1, 30*time.Second) }()
	time.Sleep(100 * time.Millisecond)
	release()
	select {
	case ok := <-room:
		if !ok {
			t.Fatal("WaitRoom found no room once the held events were sequenced")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("WaitRoom did not return once the held events were sequenced")
	}
	if _, err := l.AppendWait(ctx, "t", testWriter, []*event.Request{req("c")}, WaitIndex); err != nil {
		t.Fatalf("an append after the wait: %v", err)
	}
}

package log

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	tapi "github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/llmaudittrail/llmaudittrail/event"
)

func v3(c *Config) { c.LeafVersion = event.LeafVersionEnvelope }

// TestEnvelopeRecovery: a log of leaf version 3 recovers a crash in the
// middle of recovery as a version 2 log does (each acknowledged event once,
// chains whole, read through the bodies), and what Tessera holds is one
// envelope per event, each committing to its body and carrying its
// tenant's tag.
func TestEnvelopeRecovery(t *testing.T) {
	dir := t.TempDir()
	l, closeAll := openTestLog(t, dir, func(c *Config) { v3(c); c.holdSequencer = make(chan struct{}) })
	acked := durableLoad(t, l, 40, "a", "b")
	for _, a := range acked {
		if _, err := event.OpenEnvelope(a.Envelope, a.Leaf, nil); err != nil {
			t.Fatalf("write answer's envelope: %v", err)
		}
	}
	l.crash(closeAll)

	ctx, cancel := context.WithCancel(context.Background())
	var chunks atomic.Int32
	_, _, err := openTestLogCtx(t, ctx, dir, func(c *Config) {
		v3(c)
		c.BatchMaxSize = 16
		c.afterSequence = func(sctx context.Context) {
			if chunks.Add(1) == 2 {
				cancel()
				<-sctx.Done()
			}
		}
	})
	if err == nil {
		t.Fatal("New during a stopped recovery succeeded")
	}
	l3, closeAll3 := openTestLog(t, dir, v3)
	defer closeAll3()
	checkExactlyOnce(t, l3, acked)

	size, err := l3.stored.IntegratedSize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := l3.TenantKey("t")
	raw, err := l3.Reader().ReadEntryBundle(context.Background(), 0, layout.PartialTileSize(0, 0, size))
	if err != nil {
		t.Fatal(err)
	}
	var b tapi.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		t.Fatal(err)
	}
	bodies, err := l3.Bodies(context.Background(), "", 0, size, size)
	if err != nil || len(bodies) != len(b.Entries) {
		t.Fatalf("Bodies = %d, %v; the bundle holds %d", len(bodies), err, len(b.Entries))
	}
	for i, e := range b.Entries {
		if _, err := event.OpenEnvelope(e, bodies[i].Body, &key); err != nil {
			t.Errorf("entry %d: %v", i, err)
		}
	}
}

// TestLeafVersionKept: a log keeps the version of its first entry.
func TestLeafVersionKept(t *testing.T) {
	for _, tc := range []struct {
		name        string
		first, then func(*Config)
	}{
		{"2 then 3", nil, v3},
		{"3 then 2", v3, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, closeAll := openTestLog(t, dir, tc.first)
			if _, err := l.Append(context.Background(), "t", testWriter, []*event.Request{req("s")}); err != nil {
				t.Fatal(err)
			}
			closeAll()
			_, closeAll, err := openTestLogCtx(t, context.Background(), dir, tc.then)
			if !errors.Is(err, ErrLeafVersion) {
				if closeAll != nil {
					closeAll()
				}
				t.Fatalf("New = %v, want ErrLeafVersion", err)
			}
			l, closeAll = openTestLog(t, dir, tc.first) // and back: fine
			closeAll()
		})
	}
}

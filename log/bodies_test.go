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
func v4(c *Config) { c.LeafVersion = event.LeafVersionFields }

// TestEnvelopeRecovery: a log of leaf version 3 (and one of version 4)
// recovers a crash in the
// middle of recovery as a version 2 log does (each acknowledged event once,
// chains whole, read through the bodies), and what Tessera holds is one
// envelope per event, each committing to its body and carrying its
// tenant's tag (in version 4, also the body's fields, opened with the
// field salt the log serves with the body).
func TestEnvelopeRecovery(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version func(*Config)
	}{{"v3", v3}, {"v4", v4}} {
		t.Run(tc.name, func(t *testing.T) { testEnvelopeRecovery(t, tc.version) })
	}
}

func testEnvelopeRecovery(t *testing.T, withVersion func(*Config)) {
	dir := t.TempDir()
	l, closeAll := openTestLog(t, dir, func(c *Config) { withVersion(c); c.holdSequencer = make(chan struct{}) })
	version := l.LeafVersion()
	acked := durableLoad(t, l, 40, "a", "b")
	for _, a := range acked {
		e, err := event.OpenEnvelope(a.Envelope, a.Leaf, nil)
		if err != nil {
			t.Fatalf("write answer's envelope: %v", err)
		}
		if e.Version() != version || event.CheckFields(&e, a.Leaf, a.FieldSalt) != nil {
			t.Fatalf("write answer's envelope is of version %d (want %d), or its fields do not open with its field salt %x", e.Version(), version, a.FieldSalt)
		}
	}
	l.crash(closeAll)

	ctx, cancel := context.WithCancel(context.Background())
	var chunks atomic.Int32
	_, _, err := openTestLogCtx(t, ctx, dir, func(c *Config) {
		withVersion(c)
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
	l3, closeAll3 := openTestLog(t, dir, withVersion)
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
		env, err := event.OpenEnvelope(e, bodies[i].Body, &key)
		if err != nil {
			t.Errorf("entry %d: %v", i, err)
			continue
		}
		if env.Version() != version {
			t.Errorf("entry %d is of version %d, want %d", i, env.Version(), version)
		}
		if err := event.CheckFields(&env, bodies[i].Body, l3.FieldSalt(bodies[i].Body)); err != nil {
			t.Errorf("entry %d: %v", i, err)
		}
	}
}

// TestLeafVersionKept: a log keeps the version of its first entry: New
// with another leaf version than the log's returns ErrLeafVersion.
func TestLeafVersionKept(t *testing.T) {
	for _, tc := range []struct {
		name        string
		first, then func(*Config)
	}{
		{"2 then 3", nil, v3},
		{"3 then 2", v3, nil},
		{"3 then 4", v3, v4},
		{"4 then 3", v4, v3},
		{"2 then 4", nil, v4},
		{"4 then 2", v4, nil},
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

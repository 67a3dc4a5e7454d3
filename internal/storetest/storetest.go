// Package storetest is the storage conformance suite: one set of tests of
// the server's stores (vault, tokens, session index, chain heads, signers,
// holds and floors, pins and locks) run against every database the server
// runs on (SQLite files, MariaDB), and of the audit engine against every
// storage (posix, s3). A store that passes on one and not the other has a
// dialect bug. Only tests import it.
package storetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/api/layout"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/index"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/journal"
	"github.com/llmaudittrail/llmaudittrail/retention"
	"github.com/llmaudittrail/llmaudittrail/signer"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// Opener returns a new, empty database (closed at cleanup).
type Opener func(t *testing.T) *sqldb.DB

// Run runs every store test on databases from open.
func Run(t *testing.T, open Opener) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, Opener)
	}{
		{"Pin", testPin},
		{"Lock", testLock},
		{"Vault", testVault},
		{"VaultIDsAreExact", testVaultExact},
		{"Bodies", testBodies},
		{"VaultTwoInstances", testVaultTwoInstances},
		{"Pseudonyms", testPseudonyms},
		{"Tokens", testTokens},
		{"Journal", testJournal},
		{"Index", testIndex},
		{"IndexTwoInstances", testIndexTwoInstances},
		{"Signers", testSigners},
		{"Retention", testRetention},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, open) })
	}
}

var ctx = context.Background()

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func masterKey(b byte) []byte { return bytes.Repeat([]byte{b}, vault.MasterKeySize) }

func testPin(t *testing.T, open Opener) {
	db := open(t)
	if first, err := db.Pin(ctx, "log.verifier_key", "k1"); err != nil || !first {
		t.Fatalf("first Pin = %v, %v; want true, nil", first, err)
	}
	if first, err := db.Pin(ctx, "log.verifier_key", "k1"); err != nil || first {
		t.Fatalf("second Pin of the same value = %v, %v; want false, nil", first, err)
	}
	if _, err := db.Pin(ctx, "log.verifier_key", "K1"); !errors.Is(err, sqldb.ErrPinMismatch) {
		t.Fatalf("Pin of another value (case differs) = %v, want ErrPinMismatch", err)
	}
	// A store whose schema version differs is refused.
	if _, err := db.Pin(ctx, "schema.vault", "999"); err != nil {
		t.Fatal(err)
	}
	if _, err := vault.Open(db, masterKey(1)); !errors.Is(err, sqldb.ErrPinMismatch) {
		t.Fatalf("vault.Open on a schema of version 999 = %v, want ErrPinMismatch", err)
	}
}

func testLock(t *testing.T, open Opener) {
	db := open(t)
	a, err := db.Lock(ctx, time.Second, "x", "y")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := db.Lock(ctx, time.Second, "y"); !errors.Is(err, sqldb.ErrLockTimeout) {
		t.Fatalf("Lock of a held name = %v, want ErrLockTimeout", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("the second Lock gave up after %v, before its wait of 1 s", d)
	}
	got := make(chan error, 1)
	go func() {
		b, err := db.Lock(ctx, 10*time.Second, "x")
		if err == nil {
			b.Unlock()
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	a.Unlock()
	if err := <-got; err != nil {
		t.Fatalf("Lock after Unlock = %v", err)
	}
	a.Unlock() // twice is harmless
}

func testVault(t *testing.T, open Opener) {
	db := open(t)
	v, err := vault.Open(db, masterKey(1))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	big := bytes.Repeat([]byte("x"), 3<<20) // a payload larger than MySQL's 64 KiB BLOB
	recs := []vault.Record{
		{ID: "e1", Tenant: "t", Session: "s1", MediaType: "application/json", Salt: bytes.Repeat([]byte{1}, 32), Payload: []byte(`{"a":1}`)},
		{ID: "e2", Tenant: "t", Session: "s1", MediaType: "text/plain", Salt: bytes.Repeat([]byte{2}, 32), Payload: big},
		{ID: "e3", Tenant: "t", Session: "s2", MediaType: "text/plain", Salt: bytes.Repeat([]byte{3}, 32), Payload: []byte("other")},
	}
	if err := v.Put(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		got, err := v.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Payload, r.Payload) || !bytes.Equal(got.Salt, r.Salt) || got.MediaType != r.MediaType || got.Session != r.Session {
			t.Fatalf("Get(%s) differs from what was put", r.ID)
		}
	}
	found, failed, err := v.GetMany(ctx, []string{"e1", "e3", "nope"})
	if err != nil || len(found) != 2 || len(failed) != 0 {
		t.Fatalf("GetMany = %d found, %d failed, %v", len(found), len(failed), err)
	}
	if _, err := v.Get(ctx, "nope"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("Get(unknown) = %v", err)
	}
	if n, err := v.EraseSession(ctx, "t", "s1"); err != nil || n != 2 {
		t.Fatalf("EraseSession = %d, %v; want 2 payloads", n, err)
	}
	if _, err := v.Get(ctx, "e1"); !errors.Is(err, vault.ErrErased) {
		t.Fatalf("Get after erasure = %v, want ErrErased", err)
	}
	if _, err := v.Get(ctx, "e3"); err != nil {
		t.Fatalf("another session's payload after erasure: %v", err)
	}
	if _, err := v.EraseSession(ctx, "t", "s1"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("erasing twice = %v, want ErrNotFound", err)
	}
	// Writing to an erased session is refused.
	if err := v.Put(ctx, vault.Record{ID: "e4", Tenant: "t", Session: "s1", MediaType: "text/plain", Salt: []byte{1}, Payload: []byte("late")}); !errors.Is(err, vault.ErrErased) {
		t.Fatalf("Put into an erased session = %v, want ErrErased", err)
	}
	// Another master key is refused.
	if _, err := vault.Open(db, masterKey(2)); !errors.Is(err, vault.ErrWrongMasterKey) {
		t.Fatalf("Open with another master key = %v", err)
	}
}

// Ids compare byte for byte (MySQL's default collations fold case).
func testVaultExact(t *testing.T, open Opener) {
	db := open(t)
	v, err := vault.Open(db, masterKey(1))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, s := range []string{"Case", "case", "CASE"} {
		if err := v.Put(ctx, vault.Record{ID: "id-" + s, Tenant: "T", Session: s, MediaType: "text/plain", Salt: []byte{1}, Payload: []byte(s)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.EraseSession(ctx, "T", "case"); err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]error{"Case": nil, "case": vault.ErrErased, "CASE": nil} {
		if _, err := v.Get(ctx, "id-"+s); !errors.Is(err, want) {
			t.Fatalf("session %q after erasing %q: %v, want %v", s, "case", err, want)
		}
	}
	if _, err := v.EraseSession(ctx, "t", "Case"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("erasing tenant t (not T) = %v, want ErrNotFound", err)
	}
	// Quotes, backslashes, NUL, LIKE wildcards and non-ASCII in ids come
	// back as they went in (MySQL arguments are quoted by the driver).
	for i, s := range []string{`it's`, `back\slash\`, "nul\x00byte", `100%_off`, "naïve-🔒", `"; DROP TABLE vault_meta; --`} {
		id := fmt.Sprintf("odd-%d-%s", i, s)
		if err := v.Put(ctx, vault.Record{ID: id, Tenant: s, Session: s, MediaType: "text/plain", Salt: []byte{1}, Payload: []byte(s)}); err != nil {
			t.Fatalf("Put(%q): %v", s, err)
		}
		got, err := v.Get(ctx, id)
		if err != nil || got.Session != s || got.Tenant != s || string(got.Payload) != s {
			t.Fatalf("Get(%q) = %+v, %v", id, got, err)
		}
	}
}

// Two vaults (instances) on one database both create a data key for a new
// session; one key is kept and every payload opens with it.
func testVaultTwoInstances(t *testing.T, open Opener) {
	db := open(t)
	v1, err := vault.Open(db, masterKey(1))
	if err != nil {
		t.Fatal(err)
	}
	defer v1.Close()
	v2, err := vault.Open(db, masterKey(1))
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 100 {
		v := []*vault.Vault{v1, v2}[i%2]
		wg.Go(func() {
			errs <- v.Put(ctx, vault.Record{ID: fmt.Sprintf("p%d", i), Tenant: "t", Session: fmt.Sprintf("s%d", i/10), MediaType: "text/plain", Salt: []byte{1}, Payload: []byte{byte(i)}})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		for _, v := range []*vault.Vault{v1, v2} {
			r, err := v.Get(ctx, fmt.Sprintf("p%d", i))
			if err != nil || r.Payload[0] != byte(i) {
				t.Fatalf("payload %d: %v", i, err)
			}
		}
	}
}

func testPseudonyms(t *testing.T, open Opener) {
	db := open(t)
	v, err := vault.Open(db, masterKey(1))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	p1, err := v.Pseudonym(ctx, "t", "patient-42")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := v.Pseudonym(ctx, "t", "patient-42"); p != p1 {
		t.Fatalf("same value, two pseudonyms: %s, %s", p1, p)
	}
	if p, _ := v.Pseudonym(ctx, "t", "Patient-42"); p == p1 {
		t.Fatal("values that differ in case share a pseudonym")
	}
	if p, _ := v.Pseudonym(ctx, "u", "patient-42"); p == p1 {
		t.Fatal("two tenants share a pseudonym")
	}
	if got, err := v.Resolve(ctx, "t", p1); err != nil || got != "patient-42" {
		t.Fatalf("Resolve = %q, %v", got, err)
	}
	if err := v.ErasePseudonym(ctx, "t", p1); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Resolve(ctx, "t", p1); !errors.Is(err, vault.ErrErased) {
		t.Fatalf("Resolve after erasure = %v", err)
	}
	if _, err := v.Lookup(ctx, "t", "patient-42"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("Lookup after erasure = %v", err)
	}
	if p, _ := v.Pseudonym(ctx, "t", "patient-42"); p == p1 || p == "" {
		t.Fatalf("after erasure the value got %q again", p)
	}
}

func testTokens(t *testing.T, open Opener) {
	db := open(t)
	s, err := auth.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Fresh() {
		t.Fatal("a new token store is not Fresh")
	}
	tok, p, err := s.Create(ctx, auth.Spec{Name: "agent", Tenant: "t", Scopes: []string{auth.ScopeWrite, auth.ScopeRead}, Actors: []string{"bot"}})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := auth.Open(db); err != nil || again.Fresh() {
		t.Fatalf("the second Open is Fresh (%v): the admin token would be made twice", err)
	}
	got, err := s.Check(ctx, tok)
	if err != nil || got.ID != p.ID || !got.Has(auth.ScopeRead) || got.Has(auth.ScopeAdmin) || !got.MayActAs("bot") || got.MayActAs("other") {
		t.Fatalf("Check = %+v, %v", got, err)
	}
	if _, err := s.Check(ctx, tok[:len(tok)-1]+"x"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("Check of a wrong token = %v", err)
	}
	ch, err := s.Unlogged(ctx)
	if err != nil || len(ch) != 1 || ch[0].Revoked {
		t.Fatalf("Unlogged = %+v, %v", ch, err)
	}
	if err := s.MarkLogged(ctx, p.ID, false); err != nil {
		t.Fatal(err)
	}
	// A second store (another instance) sees the revocation at once; the
	// first within CacheTTL.
	other, err := auth.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Check(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(ctx, tok); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("Check after Revoke = %v", err)
	}
	deadline := time.Now().Add(auth.CacheTTL + time.Second)
	for {
		if _, err := other.Check(ctx, tok); errors.Is(err, auth.ErrUnauthenticated) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("another instance still accepts a revoked token after %v", auth.CacheTTL+time.Second)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ch, _ := s.Unlogged(ctx); len(ch) != 1 || !ch[0].Revoked {
		t.Fatalf("Unlogged after Revoke = %+v", ch)
	}
	if ps, _ := s.List(ctx); len(ps) != 0 {
		t.Fatalf("List after Revoke = %+v", ps)
	}
}

// testJournal tests the journal of a shared database (journal.SQL): the
// head check, two instances creating one session, the sequencer lease and
// the records' order.
func testJournal(t *testing.T, open Opener) {
	db := open(t)
	if !db.Shared() {
		t.Skip("the SQL journal is for a shared database; a single instance uses journal.File")
	}
	cfg := journal.SQLConfig{Lease: 2 * time.Second, Logger: quiet()}
	a, err := journal.OpenSQL(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := journal.OpenSQL(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	h := func(i byte) []byte { return bytes.Repeat([]byte{i}, 32) }
	entry := func(session string, seq uint64, prev, hash []byte, data string) *journal.Entry {
		return &journal.Entry{Tenant: "t", Session: session, Seq: seq, Prev: prev, Hash: hash, Data: []byte(data)}
	}
	// A new session: seq 0, no prev.
	if err := a.Append(ctx, []*journal.Entry{entry("s", 0, nil, h(1), "s0"), entry("s", 1, h(1), h(2), "s1")}); err != nil {
		t.Fatal(err)
	}
	if next, prev, err := b.Head(ctx, "t", "s"); err != nil || next != 2 || !bytes.Equal(prev, h(2)) {
		t.Fatalf("head after two records = %d %x %v", next, prev, err)
	}
	// The same append again (a try whose commit answer was lost): taken as
	// committed, not written twice, not refused.
	if err := a.Append(ctx, []*journal.Entry{entry("s", 0, nil, h(1), "s0"), entry("s", 1, h(1), h(2), "s1")}); err != nil {
		t.Fatalf("the same append again: %v", err)
	}
	// An append that does not extend the head is refused, with nothing
	// stored: another instance chained on a head that moved.
	var moved *journal.HeadsMovedError
	if err := b.Append(ctx, []*journal.Entry{entry("u", 0, nil, h(9), "u0"), entry("s", 1, h(1), h(3), "s1 again")}); !errors.As(err, &moved) || len(moved.Sessions) != 1 || moved.Sessions[0] != [2]string{"t", "s"} {
		t.Fatalf("an append on a stale head = %v", err)
	}
	if next, _, _ := a.Head(ctx, "t", "u"); next != 0 {
		t.Fatalf("a refused append moved another session's head to %d", next)
	}
	// Two instances creating one session at once: one wins, the other is
	// told the head moved.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, j := range []*journal.SQL{a, b} {
		wg.Go(func() {
			errs[i] = j.Append(ctx, []*journal.Entry{entry("new", 0, nil, h(byte(20+i)), fmt.Sprint("new from ", i))})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else if !errors.As(err, &moved) {
			t.Fatalf("the losing creation failed with %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of two instances created session new at seq 0 (%v)", won, errs)
	}
	// One instance holds the lease and reads every record in order; the
	// first read after taking the lease is marked Maybe.
	var leader, other *journal.SQL
	type read struct {
		j    *journal.SQL
		recs []journal.Record
	}
	got := make(chan read, 2)
	for _, j := range []*journal.SQL{a, b} {
		go func() {
			// Less than the lease: the leader does not renew it once it
			// has read, and the other must not take it over meanwhile.
			c, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			defer cancel()
			recs, _ := j.Next(c, 100)
			got <- read{j, recs}
		}()
	}
	var recs []journal.Record
	for range 2 {
		if r := <-got; r.recs != nil {
			if recs != nil {
				t.Fatal("both instances read the journal: two hold the lease")
			}
			recs, leader = r.recs, r.j
		}
	}
	if len(recs) != 3 || string(recs[0].Data) != "s0" || string(recs[1].Data) != "s1" || !recs[0].Maybe {
		t.Fatalf("records read = %d, first %q maybe %v", len(recs), recs[0].Data, recs[0].Maybe)
	}
	if leader == a {
		other = b
	} else {
		other = a
	}
	mark, err := leader.Mark(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := other.Passed(ctx, mark); ok {
		t.Fatal("Passed before any record was released")
	}
	// Records handed out and not released are not read again.
	c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if again, err := leader.Next(c, 100); err == nil {
		t.Fatalf("Next read %d records again before they were released", len(again))
	}
	cancel()
	if err := leader.Release(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if ok, err := other.Passed(ctx, mark); !ok || err != nil {
		t.Fatalf("Passed after release = %v %v", ok, err)
	}
	// The leader stops and gives the lease up (no renewal in flight takes
	// it back): the other takes over before the lease would have lapsed,
	// and marks its first records Maybe.
	if err := other.Append(ctx, []*journal.Entry{entry("s", 2, h(2), h(4), "s2")}); err != nil {
		t.Fatal(err)
	}
	leader.Close()
	c, cancel = context.WithTimeout(ctx, cfg.Lease*3/4)
	defer cancel()
	next, err := other.Next(c, 100)
	if err != nil || len(next) != 1 || string(next[0].Data) != "s2" || !next[0].Maybe {
		t.Fatalf("after the leader stopped: %v %+v", err, next)
	}

	// AppendChained chains on the heads it locks first: two instances at
	// once on one new session both go through, one after the other, where
	// Append would have told one that the head moved.
	third, err := journal.OpenSQL(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	chainOn := func(session string, hash []byte, data string) func(map[[2]string]journal.Head) ([]*journal.Entry, error) {
		return func(heads map[[2]string]journal.Head) ([]*journal.Entry, error) {
			hd := heads[[2]string{"t", session}]
			return []*journal.Entry{entry(session, hd.Next, hd.Prev, hash, data)}, nil
		}
	}
	for i, j := range []*journal.SQL{other, third} {
		wg.Go(func() {
			errs[i] = j.AppendChained(ctx, [][2]string{{"t", "chained"}}, chainOn("chained", h(byte(40+i)), fmt.Sprint("chained from ", i)))
		})
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("two chained appends to one new session: %v", errs)
	}
	if next, prev, err := third.Head(ctx, "t", "chained"); err != nil || next != 2 || !(bytes.Equal(prev, h(40)) || bytes.Equal(prev, h(41))) {
		t.Fatalf("head after two chained appends = %d %x %v", next, prev, err)
	}
	// A chain that does not extend the heads it was given stores nothing.
	stale := func(map[[2]string]journal.Head) ([]*journal.Entry, error) {
		return []*journal.Entry{entry("s", 0, nil, h(50), "stale")}, nil
	}
	if err := third.AppendChained(ctx, [][2]string{{"t", "s"}}, stale); err == nil {
		t.Fatal("a chained append that does not extend the locked head was stored")
	}
	if next, prev, err := third.Head(ctx, "t", "s"); err != nil || next != 3 || !bytes.Equal(prev, h(4)) {
		t.Fatalf("head of s after a refused chained append = %d %x %v", next, prev, err)
	}
}

// MemLog is a tessera.LogReader over leaves in memory, as Tessera's reader
// serves them (entry bundles only), for tests of what follows a log.
type MemLog struct {
	mu     sync.Mutex
	leaves [][]byte
}

// Leaves returns the leaves appended so far.
func (m *MemLog) Leaves() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.leaves)
}

// Add appends leaves.
func (m *MemLog) Add(l ...[]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leaves = append(m.leaves, l...)
}

func (m *MemLog) ReadCheckpoint(context.Context) ([]byte, error) { return nil, os.ErrNotExist }
func (m *MemLog) ReadTile(context.Context, uint64, uint64, uint8) ([]byte, error) {
	return nil, os.ErrNotExist
}
func (m *MemLog) NextIndex(ctx context.Context) (uint64, error) { return m.IntegratedSize(ctx) }
func (m *MemLog) IntegratedSize(context.Context) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return uint64(len(m.leaves)), nil
}
func (m *MemLog) ReadEntryBundle(_ context.Context, i uint64, p uint8) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := uint64(p)
	if n == 0 {
		n = layout.EntryBundleWidth
	}
	first := i * layout.EntryBundleWidth
	if first+n > uint64(len(m.leaves)) {
		return nil, os.ErrNotExist
	}
	var b []byte
	for _, l := range m.leaves[first : first+n] {
		b = binary.BigEndian.AppendUint16(b, uint16(len(l)))
		b = append(b, l...)
	}
	return b, nil
}

func leaf(t *testing.T, tenant, session string, seq uint64, kind string, at time.Time) []byte {
	t.Helper()
	l := &event.Leaf{V: event.LeafVersion, ID: event.NewID(), Kind: kind, Tenant: tenant, Session: session, Seq: seq,
		Time: at.UTC().Format(event.TimeFormat), Actor: event.Actor{Type: "agent", ID: "a"},
		Writer: &event.Writer{Token: "tok", Via: event.ViaAPI}}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testIndex(t *testing.T, open Opener) {
	db := open(t)
	ml := &MemLog{}
	x, err := index.Open(db, ml, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// 600 leaves: three bundles, the last partial; two sessions that
	// differ only in case, interleaved.
	for i := range 600 {
		s := []string{"Sess", "sess"}[i%2]
		ml.Add(leaf(t, "t", s, uint64(i/2), event.KindToolCall, t0.Add(time.Duration(i)*time.Second)))
	}
	if err := x.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if x.Size() != 600 {
		t.Fatalf("Size = %d", x.Size())
	}
	ml.Add([]byte("not an event"), leaf(t, "t", "Sess", 300, event.KindToolResult, t0.Add(time.Hour)))
	if err := x.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if x.Size() != 602 {
		t.Fatalf("Size after an unparseable leaf = %d, want 602", x.Size())
	}
	seq, h, ok, err := x.Head(ctx, "t", "Sess")
	if err != nil || !ok || seq != 300 || len(h) != 32 {
		t.Fatalf("Head = %d, %x, %v, %v", seq, h, ok, err)
	}
	evs, err := x.Session(ctx, "t", "sess", 295, 10)
	if err != nil || len(evs) != 5 || evs[0].Seq != 295 || evs[0].Index != 591 {
		t.Fatalf("Session = %+v, %v", evs, err)
	}
	if _, _, ok, _ := x.Head(ctx, "T", "Sess"); ok {
		t.Fatal("tenant T finds tenant t's session")
	}
	lt, ok, err := x.LatestTime(ctx, "t", []string{"Sess"})
	if err != nil || !ok || !lt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("LatestTime = %v, %v, %v", lt, ok, err)
	}
	// Reopened, the index starts where it was.
	y, err := index.Open(db, ml, quiet())
	if err != nil || y.Size() != 602 {
		t.Fatalf("reopened index size = %d, %v", y.Size(), err)
	}
}

// Two indexes (instances) on one database catch up at once: every leaf
// is indexed once, and each sees the size the other reached.
func testIndexTwoInstances(t *testing.T, open Opener) {
	db := open(t)
	ml := &MemLog{}
	x1, err := index.Open(db, ml, quiet())
	if err != nil {
		t.Fatal(err)
	}
	x2, err := index.Open(db, ml, quiet())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		ml.Add(leaf(t, "t", fmt.Sprint("s", i%7), uint64(i/7), event.KindToolCall, time.Now()))
	}
	var wg sync.WaitGroup
	for _, x := range []*index.Index{x1, x2} {
		wg.Go(func() {
			if err := x.CatchUp(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, x := range []*index.Index{x1, x2} {
		if x.Size() != 1000 {
			t.Fatalf("Size = %d", x.Size())
		}
	}
	total := 0
	for s := range 7 {
		evs, err := x2.Session(ctx, "t", fmt.Sprint("s", s), 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range evs {
			if e.Seq != uint64(i) || e.Index != uint64(i*7+s) {
				t.Fatalf("session s%d entry %d = %+v", s, i, e)
			}
		}
		total += len(evs)
	}
	if total != 1000 {
		t.Fatalf("%d entries indexed, want 1000", total)
	}
	// The index is no bigger after a third catch-up from a stale size.
	if err := x1.CatchUp(ctx); err != nil || x1.Size() != 1000 {
		t.Fatalf("CatchUp again: %d, %v", x1.Size(), err)
	}
}

func testSigners(t *testing.T, open Opener) {
	db := open(t)
	s, err := signer.Open(db, signer.Policy{Time: 1, MemoryKiB: 1024, Threads: 1, MaxFailures: 3})
	if err != nil {
		t.Fatal(err)
	}
	sg, err := s.Enroll(ctx, "t", "dr.who", "Dr. Who", "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enroll(ctx, "t", "dr.who", "Dr. Who", "correct horse"); !errors.Is(err, signer.ErrExists) {
		t.Fatalf("second Enroll = %v", err)
	}
	if _, err := s.Enroll(ctx, "t", "Dr.Who", "Dr. Who", "correct horse"); err != nil {
		t.Fatalf("an id differing in case is another signer: %v", err)
	}
	priv, got, err := s.Unseal(ctx, "t", "dr.who", "correct horse")
	if err != nil || got.KeyID != sg.KeyID || !bytes.Equal(priv.Public().(ed25519.PublicKey), sg.Public) {
		t.Fatalf("Unseal = %v, %v", got, err)
	}
	if _, _, err := s.Unseal(ctx, "t", "dr.who", "wrong horse!"); !errors.Is(err, signer.ErrWrongSecret) {
		t.Fatalf("Unseal with a wrong secret = %v", err)
	}
	for range 3 {
		s.Failure(ctx, "t", "dr.who")
	}
	if _, _, err := s.Unseal(ctx, "t", "dr.who", "correct horse"); !errors.Is(err, signer.ErrLocked) {
		t.Fatalf("Unseal after 3 failures = %v, want ErrLocked", err)
	}
	if err := s.Unlock(ctx, "t", "dr.who"); err != nil {
		t.Fatal(err)
	}
	sid, err := s.StartSession(ctx, "t", "dr.who", "tok")
	if err != nil {
		t.Fatal(err)
	}
	if tn, id, err := s.Session(ctx, sid, "tok"); err != nil || tn != "t" || id != "dr.who" {
		t.Fatalf("Session = %s, %s, %v", tn, id, err)
	}
	if _, _, err := s.Session(ctx, sid, "other"); !errors.Is(err, signer.ErrSession) {
		t.Fatalf("Session with another token = %v", err)
	}
	if err := s.RecordSignature(ctx, "t", "dr.who", 5, "approved", 9); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSignature(ctx, "t", "dr.who", 5, "approved", 10); err != nil {
		t.Fatalf("recording a signature twice = %v", err)
	}
	if at, ok, err := s.Signed(ctx, "t", "dr.who", 5, "approved"); err != nil || !ok || at != 9 {
		t.Fatalf("Signed = %d, %v, %v; want the first, 9", at, ok, err)
	}
	if _, ok, _ := s.Signed(ctx, "t", "dr.who", 5, "Approved"); ok {
		t.Fatal("a meaning differing in case counts as signed")
	}
	if err := s.Revoke(ctx, "t", "dr.who"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Unseal(ctx, "t", "dr.who", "correct horse"); !errors.Is(err, signer.ErrRevoked) {
		t.Fatalf("Unseal after Revoke = %v", err)
	}
}

func testRetention(t *testing.T, open Opener) {
	db := open(t)
	s, err := retention.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Place(ctx, "t", "s1", "", "litigation 2026-17")
	if err != nil {
		t.Fatal(err)
	}
	hs, err := s.Held(ctx, "t", []string{"s1", "s2"}, nil)
	if err != nil || len(hs) != 1 || hs[0].ID != h.ID || hs[0].Subject != "" {
		t.Fatalf("Held = %+v, %v", hs, err)
	}
	if hs, _ := s.Held(ctx, "t", []string{"S1"}, nil); len(hs) != 0 {
		t.Fatal("a hold on s1 holds S1")
	}
	if _, err := s.Release(ctx, "u", h.ID); !errors.Is(err, retention.ErrNotFound) {
		t.Fatalf("Release by another tenant = %v", err)
	}
	if _, err := s.Release(ctx, "t", h.ID); err != nil {
		t.Fatal(err)
	}
	if hs, _ := s.Held(ctx, "t", []string{"s1"}, nil); len(hs) != 0 {
		t.Fatalf("Held after Release = %+v", hs)
	}
	if f, p, err := s.Recorded(ctx, "t"); err != nil || f != "" || p != "" {
		t.Fatalf("Recorded before any = %q %q %v", f, p, err)
	}
	for _, f := range []string{"7y", "6m"} {
		if err := s.Record(ctx, "t", f, floorProfile.Name); err != nil {
			t.Fatal(err)
		}
	}
	if f, p, err := s.Recorded(ctx, "t"); err != nil || f != "6m" || p != floorProfile.Name {
		t.Fatalf("Recorded = %q %q %v", f, p, err)
	}
}

// testBodies: the bodies of a log of leaf version 3 are kept under their
// leaf hashes, each once (a body stored again is left as it is), read in
// batches larger than one query, and an unknown hash has none; the
// envelope secret is a function of the master key.
func testBodies(t *testing.T, open Opener) {
	db := open(t)
	v, err := vault.Open(db, masterKey(1))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var bodies [][]byte
	var hashes [][sha256.Size]byte
	for i := range 300 {
		b := []byte(fmt.Sprintf(`{"v":2,"id":"%032x","kind":"k\u0000'\"%d"}`, i, i))
		bodies = append(bodies, b)
		hashes = append(hashes, [sha256.Size]byte(event.LeafHash(b)))
	}
	if err := v.PutBodies(ctx, bodies...); err != nil {
		t.Fatal(err)
	}
	if err := v.PutBodies(ctx, bodies[:10]...); err != nil {
		t.Fatalf("storing bodies again: %v", err)
	}
	unknown := [sha256.Size]byte(event.LeafHash([]byte("never stored")))
	got, err := v.Bodies(ctx, append(hashes, unknown))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(bodies) {
		t.Fatalf("read %d bodies, stored %d", len(got), len(bodies))
	}
	for i, h := range hashes {
		if !bytes.Equal(got[h], bodies[i]) {
			t.Fatalf("body %d came back as %q", i, got[h])
		}
	}
	if _, ok := got[unknown]; ok {
		t.Fatal("a body for a hash never stored")
	}
	v2, err := vault.Open(db, masterKey(1))
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if !bytes.Equal(v.EnvelopeSecret(), v2.EnvelopeSecret()) || len(v.EnvelopeSecret()) < 32 {
		t.Fatal("the envelope secret is not a function of the master key")
	}
}

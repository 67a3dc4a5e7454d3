package storetest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/backend"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/governance"
	"github.com/llmaudittrail/llmaudittrail/index"
	"github.com/llmaudittrail/llmaudittrail/internal/period"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/profile"
	"github.com/llmaudittrail/llmaudittrail/retention"
	"github.com/llmaudittrail/llmaudittrail/signer"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// Storage returns a new, empty storage (closed at cleanup).
type Storage func(t *testing.T) *backend.Backend

// Keys is a log's checkpoint key pair.
type Keys struct {
	Signer   note.Signer
	Verifier note.Verifier
}

// NewKeys makes a checkpoint key pair for origin.
func NewKeys(t testing.TB, origin string) Keys {
	t.Helper()
	skey, vkey, err := checkpoint.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := checkpoint.NewSigner(skey)
	v, _ := checkpoint.NewVerifier(vkey)
	return Keys{s, v}
}

// Engine starts the audit engine on b as the server does, closed at
// cleanup; mods change its configuration first.
func Engine(t testing.TB, b *backend.Backend, k Keys, mods ...func(*auditlog.Config)) *auditlog.Log {
	t.Helper()
	vlt, err := vault.Open(b.Vault, masterKey(1))
	if err != nil {
		t.Fatal(err)
	}
	interval := 100 * time.Millisecond
	if b.Shared() {
		interval = time.Second // the AWS driver's least
	}
	cfg := auditlog.Config{Driver: b.Driver, Signer: k.Signer, Verifier: k.Verifier, Vault: vlt, Journal: b.Journal,
		IndexDB:            func(r tessera.LogReader) (*index.Index, error) { return index.Open(b.Index, r, quiet()) },
		CheckpointInterval: interval, CheckpointPoll: b.CheckpointPoll(), Locker: b.State, Health: b.Health,
		UnstickPublication: b.UnstickPublication, Logger: quiet()}
	for _, m := range mods {
		m(&cfg)
	}
	l, err := auditlog.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close(ctx)
		vlt.Close()
	})
	return l
}

// Governance returns the governance of l with b's stores, as the server
// makes it (retention floors of 0d, a fast signer policy); mods change its
// configuration first.
func Governance(t testing.TB, b *backend.Backend, l *auditlog.Log, mods ...func(*governance.Config)) *governance.Clerk {
	t.Helper()
	signers, err := signer.Open(b.State, signer.Policy{Time: 1, MemoryKiB: 1024, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	holds, err := retention.Open(b.State)
	if err != nil {
		t.Fatal(err)
	}
	floors, err := (&retention.Config{}).Rules(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := governance.Config{Log: l, Signers: signers, Retention: holds, Floors: floors, Logger: quiet()}
	for _, m := range mods {
		m(&cfg)
	}
	g, err := governance.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// RunLog runs the engine's tests, and those of the governance over it, on
// storages from open.
func RunLog(t *testing.T, open Storage) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, *auditlog.Log, *governance.Clerk, Keys)
	}{
		{"AppendAndRead", testAppendAndRead},
		{"Disclose", testDisclose},
		{"Erase", testErase},
		{"EraseEveryRole", testEraseEveryRole},
		{"EraseInsideFloor", testEraseInsideFloor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := NewKeys(t, "test/conformance")
			var mods []func(*governance.Config)
			if tc.name == "EraseInsideFloor" {
				mods = append(mods, withProfiles(t, floorProfile.Name))
			}
			b := open(t)
			l := Engine(t, b, k)
			tc.f(t, l, Governance(t, b, l, mods...), k)
		})
	}
}

// floorProfile is a compliance profile of the suite's own, with a
// six-month floor: the engine enforces whatever floors are registered
// (package profile), and the suite does not link package compliance.
var floorProfile = registered(profile.Profile{Name: "storetest-floor", Title: "The storage conformance suite's floor", Floor: period.Period{Months: 6}})

func registered(p profile.Profile) profile.Profile {
	profile.Register(p)
	return p
}

// withProfiles sets the retention floors of compliance profiles.
func withProfiles(t *testing.T, profiles ...string) func(*governance.Config) {
	floors, err := (&retention.Config{}).Rules(profiles)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *governance.Config) { c.Floors = floors }
}

var writer = event.Writer{Token: "tok1", Via: event.ViaAPI}

func req(session, kind string, payload string) *event.Request {
	r := &event.Request{Session: session, Kind: kind, Actor: event.Actor{Type: "agent", ID: "bot"}}
	if payload != "" {
		r.Payload = json.RawMessage(fmt.Sprintf("%q", payload))
	}
	return r
}

// Appends, chains, corrections, receipts, listings and proofs.
func testAppendAndRead(t *testing.T, l *auditlog.Log, _ *governance.Clerk, k Keys) {
	var all []event.Appended
	for i := range 3 {
		out, err := l.Append(ctx, "t", writer, []*event.Request{req("s", event.KindToolCall, ""), req(fmt.Sprint("other-", i), event.KindToolCall, "")})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, out...)
	}
	// The checkpoint that first covers the first events.
	first, err := l.WaitReceipt(ctx, all[0].Index, all[0].Leaf)
	if err != nil {
		t.Fatal(err)
	}
	// A correction of an entry just appended (sequenced, maybe not yet
	// integrated) is accepted; one of an entry that does not exist, or of
	// another tenant's, is not.
	c := all[len(all)-1].Index
	corr := req("s", event.KindAgentDecision, "")
	corr.Corrects = &c
	out, err := l.Append(ctx, "t", writer, []*event.Request{corr})
	if err != nil {
		t.Fatalf("correcting entry %d: %v", c, err)
	}
	bad := uint64(1 << 40)
	corr.Corrects = &bad
	if _, err := l.Append(ctx, "t", writer, []*event.Request{corr}); !errors.Is(err, event.ErrInvalidEvent) {
		t.Fatalf("correcting a missing entry = %v, want ErrInvalidEvent", err)
	}
	if _, err := l.Append(ctx, "u", writer, []*event.Request{{Session: "x", Kind: event.KindToolCall, Actor: event.Actor{Type: "agent", ID: "b"}, Corrects: &c}}); !errors.Is(err, event.ErrInvalidEvent) {
		t.Fatalf("correcting another tenant's entry = %v, want ErrInvalidEvent", err)
	}
	// The session lists in order, each event chained to the one before.
	evs, err := l.Session(ctx, "t", "s", 0, 100)
	if err != nil || len(evs) != 4 {
		t.Fatalf("Session = %d events, %v", len(evs), err)
	}
	last := out[0]
	rc, err := l.WaitReceipt(ctx, last.Index, last.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	var prev string
	for i, e := range evs {
		r, err := l.Entry(ctx, e.Index, 0)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := event.ParseLeaf(r.Leaf)
		if err != nil {
			t.Fatal(err)
		}
		if leaf.Seq != uint64(i) || leaf.Prev != prev || hex.EncodeToString(event.LeafHash(r.Leaf)) != e.LeafHash {
			t.Fatalf("event %d: seq %d prev %q", i, leaf.Seq, leaf.Prev)
		}
		prev = e.LeafHash
	}
	// Receipts verify, and the later checkpoint is consistent with the
	// first.
	v := api.NewReceiptVerifier(k.Verifier, nil)
	vf, err := v.Verify(first)
	if err != nil {
		t.Fatal(err)
	}
	vl, err := v.Verify(rc)
	if err != nil {
		t.Fatal(err)
	}
	if vl.Checkpoint.Size <= vf.Checkpoint.Size {
		t.Fatalf("checkpoints %d then %d", vf.Checkpoint.Size, vl.Checkpoint.Size)
	}
	p, err := l.Consistency(ctx, vf.Checkpoint.Size, vl.Checkpoint.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, vf.Checkpoint.Size, vl.Checkpoint.Size, p, vf.Checkpoint.Hash, vl.Checkpoint.Hash); err != nil {
		t.Fatalf("consistency %d..%d: %v", vf.Checkpoint.Size, vl.Checkpoint.Size, err)
	}
	// An entry's receipt at the first checkpoint's size.
	r, err := l.Entry(ctx, all[0].Index, vf.Checkpoint.Size)
	if err != nil {
		t.Fatal(err)
	}
	if root, err := proof.RootFromInclusionProof(rfc6962.DefaultHasher, r.Index, r.TreeSize, event.LeafHash(r.Leaf), r.InclusionProof); err != nil || !bytes.Equal(root, vf.Checkpoint.Hash) {
		t.Fatalf("inclusion at size %d: %v", vf.Checkpoint.Size, err)
	}
}

// A payload is disclosed once its read is in the log.
func testDisclose(t *testing.T, l *auditlog.Log, _ *governance.Clerk, _ Keys) {
	out, err := l.Append(ctx, "t", writer, []*event.Request{req("s", event.KindLLMRequest, "the patient's chart")})
	if err != nil {
		t.Fatal(err)
	}
	rd := auditlog.Reader{TokenID: "auditor1", Tenant: "t"}
	d, err := l.Disclose(ctx, rd, out[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(d.Record.Payload, []byte("the patient's chart")) {
		t.Fatalf("payload = %q", d.Record.Payload)
	}
	if d.Access.Index <= out[0].Index {
		t.Fatalf("the access.read event (%d) is not after the read entry (%d)", d.Access.Index, out[0].Index)
	}
	acc, err := event.ParseLeaf(d.Access.Leaf)
	if err != nil || acc.Kind != event.KindAccessRead || acc.Session != "access.auditor1" {
		t.Fatalf("access event = %+v, %v", acc, err)
	}
	if _, err := l.Disclose(ctx, auditlog.Reader{TokenID: "x", Tenant: "u"}, out[0].Index); !errors.Is(err, auditlog.ErrNotFound) {
		t.Fatalf("another tenant's disclosure = %v, want ErrNotFound", err)
	}
	page, err := l.DiscloseSession(ctx, rd, "t", "s", 0, 10, 1<<20)
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("DiscloseSession = %+v, %v", page, err)
	}
}

// Holds stop erasures; an erasure leaves the leaves and destroys the
// payloads.
func testErase(t *testing.T, l *auditlog.Log, g *governance.Clerk, _ Keys) {
	out, err := l.Append(ctx, "t", writer, []*event.Request{req("gone", event.KindLLMRequest, "secret")})
	if err != nil {
		t.Fatal(err)
	}
	rd := auditlog.Reader{TokenID: "dpo", Tenant: "t"}
	h, _, err := g.PlaceHold(ctx, rd, api.Target{Session: "gone"}, "litigation")
	if err != nil {
		t.Fatal(err)
	}
	er := api.ErasureRequest{Target: api.Target{Session: "gone"}, LegalBasis: "gdpr-art17-1a"}
	if _, err := g.Erase(ctx, rd, er); !errors.Is(err, governance.ErrLegalHold) {
		t.Fatalf("Erase under a hold = %v", err)
	}
	if _, _, err := g.ReleaseHold(ctx, rd, h.ID); err != nil {
		t.Fatal(err)
	}
	e, err := g.Erase(ctx, rd, er)
	if err != nil {
		t.Fatal(err)
	}
	if e.Payloads != 1 {
		t.Fatalf("erased %d payloads", e.Payloads)
	}
	if _, err := l.Disclose(ctx, rd, out[0].Index); !errors.Is(err, auditlog.ErrErased) {
		t.Fatalf("Disclose after erasure = %v", err)
	}
	if _, err := l.Append(ctx, "t", writer, []*event.Request{req("gone", event.KindLLMRequest, "more")}); !errors.Is(err, vault.ErrErased) {
		t.Fatalf("a payload into an erased session = %v, want refused", err)
	}
}

// onBehalf is a request made for a person (on_behalf_of).
func onBehalf(session, person, payload string) *event.Request {
	r := req(session, event.KindLLMRequest, payload)
	r.Actor.OnBehalfOf = person
	return r
}

// refusedErasure checks that an erasure was refused with want and that it
// destroyed nothing and appended nothing: the payload at index still
// discloses and the pseudonym ps still resolves.
func refusedErasure(t *testing.T, l *auditlog.Log, g *governance.Clerk, rd auditlog.Reader, er api.ErasureRequest, want error, index uint64, ps string) {
	t.Helper()
	before, err := l.Reader().NextIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := g.Erase(ctx, rd, er); !errors.Is(err, want) {
		if e != nil {
			t.Fatalf("Erase(%+v) erased sessions %v, subject %s, %d payloads; want %v", er, e.Sessions, e.Subject, e.Payloads, want)
		}
		t.Fatalf("Erase(%+v) = %v; want %v", er, err, want)
	}
	if after, err := l.Reader().NextIndex(ctx); err != nil || after != before {
		t.Fatalf("a refused erasure appended: next index %d -> %d (%v)", before, after, err)
	}
	if _, err := l.Disclose(ctx, rd, index); err != nil {
		t.Fatalf("payload %d after a refused erasure: %v", index, err)
	}
	if ps != "" {
		if _, _, err := l.Resolve(ctx, rd, rd.Tenant, ps); err != nil {
			t.Fatalf("pseudonym %s after a refused erasure: %v", ps, err)
		}
	}
}

// pseudonymOf returns the on_behalf_of pseudonym of an appended leaf.
func pseudonymOf(t *testing.T, a event.Appended) string {
	t.Helper()
	leaf, err := event.ParseLeaf(a.Leaf)
	if err != nil || !strings.HasPrefix(leaf.Actor.OnBehalfOf, vault.PseudonymPrefix) {
		t.Fatalf("leaf %s: on_behalf_of %q, %v", a.Leaf, leaf.Actor.OnBehalfOf, err)
	}
	return leaf.Actor.OnBehalfOf
}

// A value is erased in every role it has: a subject erasure finds the
// sessions where it is on_behalf_of, holds on those sessions stop it, and
// a hold on a subject covers the sessions where it is on_behalf_of
// (issue #24, finding 3).
func testEraseEveryRole(t *testing.T, l *auditlog.Log, g *governance.Clerk, _ Keys) {
	rd := auditlog.Reader{TokenID: "dpo", Tenant: "t"}
	out, err := l.Append(ctx, "t", writer, []*event.Request{
		onBehalf("held-3", "dr.trent", "notes dictated by dr trent"),
		onBehalf("s4", "dr.held", "notes for dr held"),
		onBehalf("s5", "dr.free", "notes for dr free"),
	})
	if err != nil {
		t.Fatal(err)
	}
	trent, held, free := pseudonymOf(t, out[0]), pseudonymOf(t, out[1]), pseudonymOf(t, out[2])

	// A hold on the session where dr.trent is on_behalf_of stops the
	// erasure of dr.trent.
	h, _, err := g.PlaceHold(ctx, rd, api.Target{Session: "held-3"}, "litigation")
	if err != nil {
		t.Fatal(err)
	}
	refusedErasure(t, l, g, rd, api.ErasureRequest{Target: api.Target{Subject: "dr.trent"}, LegalBasis: "gdpr-art17-1a"}, governance.ErrLegalHold, out[0].Index, trent)
	if _, _, err := g.ReleaseHold(ctx, rd, h.ID); err != nil {
		t.Fatal(err)
	}

	// A hold on the person dr.held covers the session where dr.held is
	// on_behalf_of, whether the erasure names the session or the person.
	h, _, err = g.PlaceHold(ctx, rd, api.Target{Subject: "dr.held"}, "investigation")
	if err != nil {
		t.Fatal(err)
	}
	refusedErasure(t, l, g, rd, api.ErasureRequest{Target: api.Target{Session: "s4"}, LegalBasis: "gdpr-art17-1a"}, governance.ErrLegalHold, out[1].Index, held)
	refusedErasure(t, l, g, rd, api.ErasureRequest{Target: api.Target{Subject: "dr.held"}, LegalBasis: "gdpr-art17-1a", OverrideReason: "court order"}, governance.ErrLegalHold, out[1].Index, held)
	if _, _, err := g.ReleaseHold(ctx, rd, h.ID); err != nil {
		t.Fatal(err)
	}

	// Without holds (and a floor of 0d), erasing dr.free erases the
	// session where it is on_behalf_of, and its mapping.
	e, err := g.Erase(ctx, rd, api.ErasureRequest{Target: api.Target{Subject: "dr.free"}, LegalBasis: "gdpr-art17-1a"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.Sessions, []string{"s5"}) || e.Subject != free || e.Payloads != 1 {
		t.Fatalf("erasure of dr.free = sessions %v subject %s payloads %d; want [s5] %s 1", e.Sessions, e.Subject, e.Payloads, free)
	}
	if _, err := l.Disclose(ctx, rd, out[2].Index); !errors.Is(err, auditlog.ErrErased) {
		t.Fatalf("Disclose after erasure = %v", err)
	}
	if _, _, err := l.Resolve(ctx, rd, "t", free); err == nil {
		t.Fatal("the erased pseudonym still resolves")
	}
}

// Inside a retention floor, a subject erasure of a value that is only
// on_behalf_of is refused without override_reason, and goes with one.
func testEraseInsideFloor(t *testing.T, l *auditlog.Log, g *governance.Clerk, _ Keys) {
	rd := auditlog.Reader{TokenID: "dpo", Tenant: "t"}
	out, err := l.Append(ctx, "t", writer, []*event.Request{onBehalf("ward-7", "dr.floor", "round notes")})
	if err != nil {
		t.Fatal(err)
	}
	ps := pseudonymOf(t, out[0])
	er := api.ErasureRequest{Target: api.Target{Subject: "dr.floor"}, LegalBasis: "gdpr-art17-1a"}
	refusedErasure(t, l, g, rd, er, governance.ErrRetentionFloor, out[0].Index, ps)
	er.OverrideReason = "supervisory authority order 2026-17"
	e, err := g.Erase(ctx, rd, er)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Override || !slices.Equal(e.Sessions, []string{"ward-7"}) {
		t.Fatalf("override erasure = %+v", e)
	}
}

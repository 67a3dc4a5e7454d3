package governance_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/backend"
	_ "github.com/llmaudittrail/llmaudittrail/compliance" // registers the profiles whose floors the tests use
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/governance"
	"github.com/llmaudittrail/llmaudittrail/internal/storetest"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/retention"
	"github.com/llmaudittrail/llmaudittrail/signature"
	"github.com/llmaudittrail/llmaudittrail/signer"
)

var ctx = context.Background()

// fixture is an engine on a posix storage in a temporary directory and
// the governance over it, as the server makes them.
type fixture struct {
	dir    string
	b      *backend.Backend
	keys   storetest.Keys
	l      *auditlog.Log
	tokens *auth.Store
	g      *governance.Clerk
}

func newFixture(t *testing.T, mods ...func(*governance.Config)) *fixture {
	t.Helper()
	dir := t.TempDir()
	b, err := backend.Open(ctx, backend.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	k := storetest.NewKeys(t, "test/governance")
	l := storetest.Engine(t, b, k)
	tokens, err := auth.Open(b.State)
	if err != nil {
		t.Fatal(err)
	}
	mods = append([]func(*governance.Config){func(c *governance.Config) { c.Tokens = tokens }}, mods...)
	return &fixture{dir: dir, b: b, keys: k, l: l, tokens: tokens, g: storetest.Governance(t, b, l, mods...)}
}

var agent = event.Writer{Token: "tok-agent", Via: event.ViaAPI}

// write appends an event with a payload, for person (on_behalf_of) if
// not "".
func (f *fixture) write(t *testing.T, tenant, session, person, payload string) event.Appended {
	t.Helper()
	r := &event.Request{Session: session, Kind: "llm.request", Actor: event.Actor{Type: "agent", ID: "bot", OnBehalfOf: person},
		Payload: json.RawMessage(fmt.Sprintf("%q", payload))}
	out, err := f.l.Append(ctx, tenant, agent, []*event.Request{r})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// leaf parses an appended leaf and checks that the server wrote it for
// the token tokenID.
func leaf(t *testing.T, a event.Appended, tokenID string) *event.Leaf {
	t.Helper()
	l, err := event.ParseLeaf(a.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	if l.Writer == nil || l.Writer.Via != event.ViaServer || l.Writer.Token != tokenID {
		t.Fatalf("%s event written by %+v, want the server for token %s", l.Kind, l.Writer, tokenID)
	}
	return l
}

// wantAttrs checks a leaf's kind, session, actor and attributes exactly.
func wantAttrs(t *testing.T, l *event.Leaf, kind, session string, actor event.Actor, attrs map[string]any) {
	t.Helper()
	if l.Kind != kind || l.Session != session || l.Actor != actor {
		t.Fatalf("leaf %s in %s by %+v; want %s in %s by %+v", l.Kind, l.Session, l.Actor, kind, session, actor)
	}
	got, _ := json.Marshal(l.Attributes)
	want, _ := json.Marshal(attrs)
	if string(got) != string(want) {
		t.Fatalf("%s attributes\n got %s\nwant %s", kind, got, want)
	}
}

var dpo = auditlog.Reader{TokenID: "tok-dpo", Tenant: "clinic"}

func TestHolds(t *testing.T) {
	f := newFixture(t)
	f.write(t, "clinic", "case-1", "dr.who", "notes")
	h, a, err := f.g.PlaceHold(ctx, dpo, api.Target{Session: "case-1"}, "litigation 2026-17")
	if err != nil {
		t.Fatal(err)
	}
	wantAttrs(t, leaf(t, a, "tok-dpo"), "hold.placed", event.SessionHolds, event.Actor{Type: "human", ID: "token.tok-dpo"},
		map[string]any{"hold.id": h.ID, "hold.reason": "litigation 2026-17", "hold.session": "case-1"})

	hs, as, err := f.g.PlaceHold(ctx, dpo, api.Target{Subject: "dr.who"}, "investigation")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := f.l.Pseudonym(ctx, "clinic", "dr.who")
	if err != nil || hs.Subject != ps {
		t.Fatalf("a hold on a subject holds %q; want its pseudonym %q (%v)", hs.Subject, ps, err)
	}
	wantAttrs(t, leaf(t, as, "tok-dpo"), "hold.placed", event.SessionHolds, event.Actor{Type: "human", ID: "token.tok-dpo"},
		map[string]any{"hold.id": hs.ID, "hold.reason": "investigation", "hold.subject": ps})

	r, a, err := f.g.ReleaseHold(ctx, dpo, h.ID)
	if err != nil || r.ID != h.ID {
		t.Fatalf("ReleaseHold = %+v, %v", r, err)
	}
	wantAttrs(t, leaf(t, a, "tok-dpo"), "hold.released", event.SessionHolds, event.Actor{Type: "human", ID: "token.tok-dpo"},
		map[string]any{"hold.id": h.ID, "hold.session": "case-1"})

	for _, tc := range []struct {
		what string
		err  func() error
		want error
	}{
		{"a second release", func() error { _, _, err := f.g.ReleaseHold(ctx, dpo, h.ID); return err }, auditlog.ErrNotFound},
		{"another tenant's hold", func() error {
			_, _, err := f.g.ReleaseHold(ctx, auditlog.Reader{TokenID: "x", Tenant: "other"}, hs.ID)
			return err
		}, auditlog.ErrNotFound},
		{"no reason", func() error { _, _, err := f.g.PlaceHold(ctx, dpo, api.Target{Session: "case-1"}, " "); return err }, event.ErrInvalidEvent},
		{"session and subject", func() error {
			_, _, err := f.g.PlaceHold(ctx, dpo, api.Target{Session: "case-1", Subject: "dr.who"}, "x")
			return err
		}, event.ErrInvalidEvent},
		{"an unknown subject", func() error { _, _, err := f.g.PlaceHold(ctx, dpo, api.Target{Subject: "nobody"}, "x"); return err }, auditlog.ErrNotFound},
	} {
		t.Run(tc.what, func(t *testing.T) {
			if err := tc.err(); !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
		})
	}

	off := newFixture(t, func(c *governance.Config) { c.Retention = nil })
	if _, _, err := off.g.PlaceHold(ctx, dpo, api.Target{Session: "case-1"}, "x"); !errors.Is(err, governance.ErrNoRetention) {
		t.Fatalf("PlaceHold without a retention store = %v", err)
	}
}

// profiles sets the retention floors of compliance profiles, and of
// tenants by the compliance configuration conf.
func profiles(t *testing.T, conf string, names ...string) func(*governance.Config) {
	t.Helper()
	c := &retention.Config{}
	if conf != "" {
		var err error
		if c, err = retention.ParseConfig([]byte(conf)); err != nil {
			t.Fatal(err)
		}
	}
	floors, err := c.Rules(names)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *governance.Config) { c.Floors = floors }
}

// filesHolding returns the files under dir that hold needle.
func filesHolding(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, needle) {
			hits = append(hits, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// An erasure destroys the payloads, drops the journal's copies of them and
// is recorded with its legal basis; the engine's guarantees hold through
// governance.
func TestErase(t *testing.T) {
	f := newFixture(t)
	w := f.write(t, "clinic", "case-9", "dr.gone", "ERASE-ME")
	keep := f.write(t, "clinic", "case-10", "", "KEEP-ME")
	ps, err := f.l.Pseudonym(ctx, "clinic", "dr.gone")
	if err != nil {
		t.Fatal(err)
	}
	// The session's wrapped data key is in the journal's records (released
	// once sequenced) until an erasure drops them.
	var wrapped []byte
	if err := f.b.Vault.QueryRowContext(ctx, `SELECT wrapped FROM data_keys WHERE tenant = ? AND session = ?`, "clinic", "case-9").Scan(&wrapped); err != nil || len(wrapped) == 0 {
		t.Fatalf("the data key of case-9: %v", err)
	}
	if err := f.l.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	if hits := filesHolding(t, filepath.Join(f.dir, backend.JournalDir), wrapped); len(hits) == 0 {
		t.Fatal("the journal does not hold the wrapped data key before the erasure: the search is blind")
	}

	req := api.ErasureRequest{Target: api.Target{Subject: "dr.gone"}, LegalBasis: "gdpr-art17-1a", Reason: "request of 2026-11-30"}
	e, err := f.g.Erase(ctx, dpo, req)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.Sessions, []string{"case-9"}) || e.Subject != ps || e.Payloads != 1 || e.Override || !e.Forgotten {
		t.Fatalf("erasure %+v", e)
	}
	wantAttrs(t, leaf(t, e.Event, "tok-dpo"), "erasure", event.SessionErasures, event.Actor{Type: "human", ID: "token.tok-dpo"},
		map[string]any{"erasure.floor": "0d", "erasure.legal_basis": "gdpr-art17-1a", "erasure.override": false, "erasure.payloads": 1,
			"erasure.reason": "request of 2026-11-30", "erasure.sessions": []string{"case-9"}, "erasure.subject": ps, "erasure.wal_truncated": true})
	if hits := filesHolding(t, f.dir, wrapped); len(hits) > 0 {
		t.Fatalf("the erased data key is still in %v", hits)
	}
	if _, err := f.l.Disclose(ctx, dpo, w.Index); !errors.Is(err, auditlog.ErrErased) {
		t.Fatalf("Disclose after the erasure = %v, want ErrErased", err)
	}
	if _, err := f.l.Disclose(ctx, dpo, keep.Index); err != nil {
		t.Fatalf("another session's payload after the erasure: %v", err)
	}
	if _, err := f.g.Erase(ctx, dpo, req); !errors.Is(err, auditlog.ErrNotFound) {
		t.Fatalf("erasing an erased subject = %v, want ErrNotFound", err)
	}

	for _, tc := range []struct {
		what string
		req  api.ErasureRequest
		want error
	}{
		{"no legal basis", api.ErasureRequest{Target: api.Target{Session: "case-10"}}, event.ErrInvalidEvent},
		{"an unknown session", api.ErasureRequest{Target: api.Target{Session: "case-404"}, LegalBasis: "x"}, auditlog.ErrNotFound},
	} {
		if _, err := f.g.Erase(ctx, dpo, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.what, err, tc.want)
		}
	}
	off := newFixture(t, func(c *governance.Config) { c.Floors = nil })
	if _, err := off.g.Erase(ctx, dpo, req); !errors.Is(err, governance.ErrNoRetention) {
		t.Fatalf("Erase without floors = %v", err)
	}
}

// Inside the floor an erasure is refused with the date the floor ends,
// and goes with an override, which the event records.
func TestEraseInsideFloor(t *testing.T) {
	f := newFixture(t, profiles(t, "", "eu-ai-act"))
	f.write(t, "clinic", "ward-7", "", "round notes")
	req := api.ErasureRequest{Target: api.Target{Session: "ward-7"}, LegalBasis: "gdpr-art17-1a"}
	_, err := f.g.Erase(ctx, dpo, req)
	var re *governance.RetentionError
	if !errors.As(err, &re) || !errors.Is(err, governance.ErrRetentionFloor) || re.Floor.String() != "6m" || time.Until(re.Until) < 170*24*time.Hour {
		t.Fatalf("Erase inside the floor = %v", err)
	}
	req.OverrideReason = "court order 17"
	e, err := f.g.Erase(ctx, dpo, req)
	if err != nil {
		t.Fatal(err)
	}
	l := leaf(t, e.Event, "tok-dpo")
	if !e.Override || l.Attributes["erasure.override"] != true || l.Attributes["erasure.override_reason"] != "court order 17" || l.Attributes["erasure.floor"] != "6m" {
		t.Fatalf("override erasure %+v, attributes %v", e, l.Attributes)
	}
}

// retentionSets lists the retention.set events in the log.
func retentionSets(t *testing.T, f *fixture, tenants ...string) []*event.Leaf {
	t.Helper()
	if err := f.l.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	var out []*event.Leaf
	for _, tenant := range tenants {
		evs, err := f.l.Index().Session(ctx, tenant, event.SessionRetention, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		size, err := f.l.Reader().IntegratedSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			data, err := f.l.ReadLeaf(ctx, e.Index, size)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, leaf(t, event.Appended{Leaf: data}, governance.DefaultServerToken))
		}
	}
	return out
}

func TestRecordRetention(t *testing.T) {
	f := newFixture(t, profiles(t, "tenants:\n  clinic-a: {profiles: [part11]}\n", "eu-ai-act"))
	for range 2 { // the second records nothing new
		if err := f.g.RecordRetention(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := retentionSets(t, f, "default", "clinic-a")
	if len(got) != 2 {
		t.Fatalf("%d retention.set events, want 2", len(got))
	}
	wantAttrs(t, got[0], "retention.set", event.SessionRetention, event.ServerActor,
		map[string]any{"retention.floor": "6m", "retention.profiles": []string{"eu-ai-act"}, "retention.scope": "default"})
	wantAttrs(t, got[1], "retention.set", event.SessionRetention, event.ServerActor,
		map[string]any{"retention.floor": "7y", "retention.profiles": []string{"eu-ai-act", "part11"}, "retention.scope": "tenant"})

	// No floors configured: nothing to record.
	none := newFixture(t)
	if err := none.g.RecordRetention(ctx); err != nil {
		t.Fatal(err)
	}
	if got := retentionSets(t, none, "default"); len(got) != 0 {
		t.Fatalf("a log without profiles recorded %d floors", len(got))
	}
}

// last returns the last event of a session.
func (f *fixture) last(t *testing.T, tenant, session string) *event.Leaf {
	t.Helper()
	if err := f.l.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := f.l.Index().Session(ctx, tenant, session, 0, 1000)
	if err != nil || len(evs) == 0 {
		t.Fatalf("session %s: %d events, %v", session, len(evs), err)
	}
	data, err := f.l.Leaf(ctx, evs[len(evs)-1].Index)
	if err != nil {
		t.Fatal(err)
	}
	l, err := event.ParseLeaf(data)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

const secret = "correct horse battery"

// The lifecycle of a signer and its signatures, each in the log with the
// attributes a third party checks, refusals recorded as signature.failed,
// and an export that verifies offline.
func TestSignatures(t *testing.T) {
	f := newFixture(t)
	admin := auditlog.Reader{TokenID: "tok-admin", Tenant: "clinic"}
	ada := auditlog.Reader{TokenID: "tok-ada", Tenant: "clinic", Actors: []string{"dr-ada"}}
	sg, enr, err := f.g.Enroll(ctx, admin, api.Enrollment{ID: "dr-ada", PrintedName: "Dr. Ada Lovelace", Secret: secret, IdentityVerifiedBy: "hr.jones"})
	if err != nil {
		t.Fatal(err)
	}
	pub := base64.StdEncoding.EncodeToString(sg.Public)
	wantAttrs(t, leaf(t, enr, "tok-admin"), "signer.enrolled", "signer.dr-ada", event.Actor{Type: "human", ID: "hr.jones"},
		map[string]any{"signer.enrolled_by_token": "tok-admin", "signer.id": "dr-ada", "signer.identity_verified_by": "hr.jones",
			"signer.key_id": sg.KeyID, "signer.printed_name": "Dr. Ada Lovelace", "signer.public_key": pub})
	if _, _, err := f.g.Enroll(ctx, admin, api.Enrollment{ID: "dr-bob", PrintedName: "Bob", Secret: secret}); !errors.Is(err, event.ErrInvalidEvent) {
		t.Fatalf("an enrollment without identity_verified_by = %v", err)
	}

	rec := f.write(t, "clinic", "journal", "", "accrual 4711")
	lh := hex.EncodeToString(rec.LeafHash)
	req := api.SignRequest{Signer: "dr-ada", Secret: secret, Index: rec.Index, LeafHash: strings.ToUpper(lh), Meaning: "approved", Reason: "matches the invoice"}
	sd, err := f.g.Sign(ctx, ada, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := signature.Verify(sg.Public, sd.Statement, sd.Signature); err != nil {
		t.Fatal(err)
	}
	if sd.Statement.LeafHash != lh || sd.Statement.Origin != f.l.Origin() || sd.Statement.PrintedName != "Dr. Ada Lovelace" || sd.SigningSession == "" {
		t.Fatalf("signed %+v, session %q", sd.Statement, sd.SigningSession)
	}
	sl := leaf(t, sd.Event, "tok-ada")
	if sl.Kind != event.KindHumanSignature || sl.Session != "journal" || sl.Actor != (event.Actor{Type: "human", ID: "dr-ada"}) ||
		sl.Attributes[signature.AttrComponents] != governance.ComponentsAll || sl.Attributes[signature.AttrStatement] != string(sd.StatementBytes) ||
		fmt.Sprint(sl.Attributes[signature.AttrIndex]) != fmt.Sprint(rec.Index) || sl.Attributes[signature.AttrMeaning] != "approved" {
		t.Fatalf("signature event %+v", sl)
	}

	other := f.write(t, "other", "journal", "", "another tenant's record")
	for _, tc := range []struct {
		what   string
		r      auditlog.Reader
		mod    func(*api.SignRequest)
		want   error
		reason string
	}{
		{"a token not bound to the signer", admin, nil, governance.ErrNotBound, "not_bound"},
		{"a wrong secret", ada, func(r *api.SignRequest) { r.Secret = "not the secret at all" }, signer.ErrWrongSecret, "wrong_secret"},
		{"another leaf hash", ada, func(r *api.SignRequest) { r.LeafHash = hex.EncodeToString(other.LeafHash) }, governance.ErrLeafMismatch, "leaf_mismatch"},
		{"no such record", ada, func(r *api.SignRequest) { r.Index = 1 << 40 }, auditlog.ErrNotFound, "unknown_record"},
		{"another tenant's record", ada, func(r *api.SignRequest) { r.Index = other.Index }, auditlog.ErrNotFound, "unknown_record"},
		{"a second signature", ada, nil, governance.ErrAlreadySigned, "already_signed"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			r := req
			if tc.mod != nil {
				tc.mod(&r)
			}
			if _, err := f.g.Sign(ctx, tc.r, r); !errors.Is(err, tc.want) {
				t.Fatalf("Sign = %v, want %v", err, tc.want)
			}
			wantAttrs(t, f.last(t, "clinic", "signer.dr-ada"), signature.KindFailed, "signer.dr-ada", event.ServerActor,
				map[string]any{"signature.failure": tc.reason, "signature.token_id": tc.r.TokenID, "signer.id": "dr-ada"})
		})
	}

	// The export of the signature verifies offline with the log's key; it
	// is addressed by the signature event's index, not the record's.
	if _, err := f.l.WaitReceipt(ctx, sd.Event.Index, sd.Event.Leaf); err != nil {
		t.Fatal(err)
	}
	x, err := f.g.ExportSignature(ctx, ada, sd.Event.Index)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(x)
	v, err := signature.VerifyExport(data, f.keys.Verifier, nil)
	if err != nil || v.EnrollmentIndex != enr.Index || !v.RecordChecked || v.EventIndex == nil || *v.EventIndex != sd.Event.Index {
		t.Fatalf("VerifyExport = %+v, %v", v, err)
	}
	if _, err := f.g.ExportSignature(ctx, ada, rec.Index); !errors.Is(err, auditlog.ErrNotFound) {
		t.Fatalf("an export at the record's index = %v, want ErrNotFound", err)
	}
	if _, err := f.g.ExportSignature(ctx, auditlog.Reader{TokenID: "x", Tenant: "other"}, sd.Event.Index); !errors.Is(err, auditlog.ErrNotFound) {
		t.Fatalf("another tenant's export = %v, want ErrNotFound", err)
	}

	// Rotation, unlock and revocation.
	rot, a, err := f.g.RotateSigner(ctx, ada, "dr-ada", secret, "a new secret for ada")
	if err != nil || rot.KeyID == sg.KeyID {
		t.Fatalf("RotateSigner = %+v, %v", rot, err)
	}
	wantAttrs(t, leaf(t, a, "tok-ada"), "signer.key_rotated", "signer.dr-ada", event.Actor{Type: "human", ID: "dr-ada"},
		map[string]any{"signer.id": "dr-ada", "signer.key_id": rot.KeyID, "signer.printed_name": "Dr. Ada Lovelace",
			"signer.public_key": base64.StdEncoding.EncodeToString(rot.Public)})
	if a, err = f.g.UnlockSigner(ctx, admin, "dr-ada"); err != nil {
		t.Fatal(err)
	}
	wantAttrs(t, leaf(t, a, "tok-admin"), "signer.unlocked", "signer.dr-ada", event.Actor{Type: "human", ID: "token.tok-admin"},
		map[string]any{"signer.id": "dr-ada"})
	if a, err = f.g.RevokeSigner(ctx, admin, "dr-ada", "badge lost"); err != nil {
		t.Fatal(err)
	}
	wantAttrs(t, leaf(t, a, "tok-admin"), "signer.revoked", "signer.dr-ada", event.Actor{Type: "human", ID: "token.tok-admin"},
		map[string]any{"signer.id": "dr-ada", "signer.revoke_reason": "badge lost"})
	rec2 := f.write(t, "clinic", "journal", "", "accrual 4712")
	if _, err := f.g.Sign(ctx, ada, api.SignRequest{Signer: "dr-ada", Secret: "a new secret for ada", Index: rec2.Index, LeafHash: hex.EncodeToString(rec2.LeafHash), Meaning: "approved"}); !errors.Is(err, signer.ErrRevoked) {
		t.Fatalf("a revoked signer signs: %v", err)
	}

	off := newFixture(t, func(c *governance.Config) { c.Signers = nil })
	if _, err := off.g.Sign(ctx, ada, req); !errors.Is(err, governance.ErrNoSigners) {
		t.Fatalf("Sign without a signer store = %v", err)
	}
}

// sessionKinds lists the kinds of a session's events.
func (f *fixture) sessionKinds(t *testing.T, tenant, session string) []string {
	t.Helper()
	if err := f.l.WaitIndexed(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := f.l.Index().Session(ctx, tenant, session, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

// Token changes made on the store are recorded once each, in the token's
// tenant, before the token is served.
func TestTokens(t *testing.T) {
	f := newFixture(t)
	_, p, err := f.tokens.Create(ctx, auth.Spec{Name: "agent-9", Tenant: "clinic-a", Scopes: []string{auth.ScopeWrite}, Actors: []string{"bot-9"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.g.EnsureToken(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	created := f.last(t, "clinic-a", event.SessionTokens)
	at := created.Attributes["token.at"]
	wantAttrs(t, created, event.KindTokenCreated, event.SessionTokens, event.ServerActor,
		map[string]any{"token.actors": []string{"bot-9"}, "token.at": at, "token.global": false, "token.id": p.ID,
			"token.name": "agent-9", "token.scopes": []string{"write"}, "token.tenant": "clinic-a"})
	if created.Writer.Token != governance.DefaultServerToken || created.Writer.Via != event.ViaServer {
		t.Fatalf("token event written by %+v", created.Writer)
	}
	// Recorded once: EnsureToken knows it, RecordTokens finds nothing new.
	if err := f.g.EnsureToken(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.g.RecordTokens(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.tokens.Revoke(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.g.RecordTokens(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := f.sessionKinds(t, "clinic-a", event.SessionTokens), []string{event.KindTokenCreated, event.KindTokenRevoked}; !slices.Equal(got, want) {
		t.Fatalf("token events %v, want %v", got, want)
	}
	// A token made after a Clerk started is recorded before it is served.
	_, p2, err := f.tokens.Create(ctx, auth.Spec{Name: "auditor", Tenant: "clinic-a", Scopes: []string{auth.ScopeAudit}, Global: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.g.EnsureToken(ctx, p2.ID); err != nil {
		t.Fatal(err)
	}
	l := f.last(t, "clinic-a", event.SessionTokens)
	if l.Kind != event.KindTokenCreated || l.Attributes["token.id"] != p2.ID || l.Attributes["token.global"] != true ||
		fmt.Sprint(l.Attributes["token.actors"]) != "[]" {
		t.Fatalf("the second token's event %+v", l)
	}
}

// A report is anchored by report.issued, in the reader's tenant, with its
// digest and checkpoint.
func TestIssueReport(t *testing.T) {
	f := newFixture(t)
	auditor := auditlog.Reader{TokenID: "tok-auditor", Tenant: "clinic-a", AllTenants: true}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))
	q := api.ReportQuery{Profile: "part11", From: from, To: from.AddDate(0, 6, 0), Format: api.FormatJSON, Tenant: api.AllTenants}
	a, err := f.g.IssueReport(ctx, auditor, governance.Report{Query: q, SHA256: strings.Repeat("ab", 32), CheckpointSize: 42, CheckpointRoot: strings.Repeat("cd", 32)})
	if err != nil {
		t.Fatal(err)
	}
	l := leaf(t, a, "tok-auditor")
	if l.Tenant != "clinic-a" {
		t.Fatalf("report.issued in tenant %s", l.Tenant)
	}
	wantAttrs(t, l, event.KindReportIssued, event.SessionReports, event.ServerActor,
		map[string]any{"report.checkpoint_root": strings.Repeat("cd", 32), "report.checkpoint_size": 42, "report.format": "json",
			"report.from": "2025-12-31T23:00:00Z", "report.profile": "part11", "report.sha256": strings.Repeat("ab", 32),
			"report.tenant": api.AllTenants, "report.to": "2026-06-30T23:00:00Z"})
}

package verify

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
	"github.com/llmaudittrail/llmaudittrail/signature"
)

// sigCraft writes enrollments, records and signatures into a crafted log,
// as the log server would, and lets a test forge what it never writes.
type sigCraft struct {
	c    *crafttest.Log
	t    *testing.T
	keys map[string]ed25519.PrivateKey
}

func (s *sigCraft) enroll(kind, id, name string) (ed25519.PrivateKey, uint64) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	i := s.c.Add(crafttest.Craft{Kind: kind, Session: "signer." + id, ActorType: "human", Actor: "hr-officer",
		Attrs: crafttest.Attrs(signature.AttrSigner, id, signature.AttrPrintedName, name,
			signature.AttrPublicKey, base64.StdEncoding.EncodeToString(pub), signature.AttrKeyID, signature.KeyID(pub))})
	s.keys[id] = priv
	return priv, i[0]
}

// record appends an llm.response and returns its index and leaf hash.
func (s *sigCraft) record(session string) (uint64, string) {
	data := s.c.Leaf(crafttest.Craft{Kind: "llm.response", Session: session, Attrs: crafttest.Attrs("gen_ai.response.model", "gpt-4o")})
	i := s.c.Add(crafttest.Craft{Raw: data})
	return i[0], hex.EncodeToString(event.LeafHash(data))
}

func (s *sigCraft) statement(id, name string, priv ed25519.PrivateKey, index uint64, leafHash string) *signature.Statement {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	return &signature.Statement{
		Origin: s.c.Key.Name(), Index: index, LeafHash: leafHash, Meaning: "approved", Tenant: "acme",
		Signer: id, PrintedName: name, KeyID: signature.KeyID(priv.Public().(ed25519.PublicKey)),
		Time: time.Now().UTC().Format(event.TimeFormat), Nonce: hex.EncodeToString(nonce),
	}
}

// sign appends a human.signature carrying st signed with priv.
func (s *sigCraft) sign(session string, st *signature.Statement, priv ed25519.PrivateKey, tamper func([]byte)) uint64 {
	msg, err := st.Message()
	if err != nil {
		s.t.Fatal(err)
	}
	sig := ed25519.Sign(priv, msg)
	if tamper != nil {
		tamper(sig)
	}
	canon, _ := st.Marshal()
	i := s.c.Add(crafttest.Craft{Kind: event.KindHumanSignature, Session: session, ActorType: "human", Actor: st.Signer,
		Attrs: crafttest.Attrs(signature.AttrStatement, string(canon), signature.AttrSignature, base64.StdEncoding.EncodeToString(sig),
			signature.AttrSigner, st.Signer, signature.AttrMeaning, st.Meaning)})
	return i[0]
}

// TestAuditSignatures: the audit (monitor verify) checks every human.signature against
// the key enrolled in the log at that time. Good signatures pass; each kind
// of forgery is one finding on its own entry.
func TestAuditSignatures(t *testing.T) {
	c := crafttest.New(t)
	s := &sigCraft{c: c, t: t, keys: map[string]ed25519.PrivateKey{}}
	const name = "Dr. Ada Lovelace"
	priv, _ := s.enroll(signature.KindEnrolled, "dr-ada", name)
	rec, lh := s.record("triage-1")
	rec2, lh2 := s.record("triage-2")
	good := s.statement("dr-ada", name, priv, rec, lh)
	s.sign("triage-1", good, priv, nil)
	s.sign("triage-2", s.statement("dr-ada", name, priv, rec2, lh2), priv, nil)
	c.WaitPublished()
	rep := auditCrafted(t, c)
	if !rep.OK() || rep.Signatures != 2 {
		t.Fatalf("clean log: signatures %d, findings %v", rep.Signatures, rep.Findings)
	}

	want := map[uint64]string{}
	// A flipped bit of the Ed25519 signature.
	want[s.sign("triage-1", s.statement("dr-ada", name, priv, rec, lh), priv, func(b []byte) { b[5] ^= 1 })] = "does not verify"
	// The same statement and signature again: a replay.
	want[s.sign("triage-1", good, priv, nil)] = "replays the statement"
	// Transplanted: a genuine signature over record rec's index with
	// record rec2's leaf hash.
	want[s.sign("triage-1", s.statement("dr-ada", name, priv, rec, lh2), priv, nil)] = "not the log's entry"
	// Made with a key that was never enrolled.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	want[s.sign("triage-1", s.statement("dr-ada", name, other, rec, lh), other, nil)] = "not the key"
	// A printed name other than the enrolled one.
	want[s.sign("triage-1", s.statement("dr-ada", "Dr. A. Imposter", priv, rec, lh), priv, nil)] = "printed name"
	// A statement of another log.
	st := s.statement("dr-ada", name, priv, rec, lh)
	st.Origin = "example.com/other"
	want[s.sign("triage-1", st, priv, nil)] = "signs a record of log"
	// A signer nobody enrolled.
	want[s.sign("triage-1", s.statement("nobody", "No Body", priv, rec, lh), priv, nil)] = "is not enrolled"
	// The same id enrolled a second time (for another person).
	_, again := s.enroll(signature.KindEnrolled, "dr-ada", "Mallory")
	want[again] = "enrolled a second time"
	// A key rotation is fine: signatures with the new key verify, with the
	// old one they do not.
	newKey, _ := s.enroll(signature.KindKeyRotated, "dr-ada", name)
	s.sign("triage-2", s.statement("dr-ada", name, newKey, rec2, lh2), newKey, nil)
	want[s.sign("triage-2", s.statement("dr-ada", name, priv, rec2, lh2), priv, nil)] = "not the key"
	// After revocation nothing verifies.
	c.Add(crafttest.Craft{Kind: signature.KindRevoked, Session: "signer.dr-ada", ActorType: "human", Actor: "token.admin", Attrs: crafttest.Attrs(signature.AttrSigner, "dr-ada")})
	want[s.sign("triage-2", s.statement("dr-ada", name, newKey, rec2, lh2), newKey, nil)] = "was revoked"
	c.WaitPublished()

	rep = auditCrafted(t, c)
	got := map[uint64]string{}
	for _, f := range rep.Findings {
		if f.Rule != RuleSignature || f.Index == nil {
			t.Errorf("unexpected finding %+v", f)
			continue
		}
		got[*f.Index] = f.Message
	}
	for i, sub := range want {
		if !strings.Contains(got[i], sub) {
			t.Errorf("entry %d: finding %q, want one containing %q", i, got[i], sub)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d findings, want %d: %v", len(got), len(want), got)
	}
}

package compliance

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
	"github.com/llmaudittrail/llmaudittrail/signature"
)

// world writes a crafted log with one tenant's period in it: what a
// well-run deployment records (tokens, floors, signers, an approved
// configuration, agent traffic under gates, signatures, a lock-out the
// monitor alerted, oversight, an incident notified in time, the monitor
// reporting throughout). A test changes one thing to seed a violation.
type world struct {
	t        *testing.T
	c        *crafttest.Log
	from, to time.Time
	clock    time.Time
	keys     map[string]ed25519.PrivateKey
	names    map[string]string
	// seeded violations
	skip  map[string]bool
	floor string
	// what the test looks for
	at map[string]uint64
}

const tenant = "acme"

var (
	serverWr = &event.Writer{Token: "log-server", Via: event.ViaServer}
	adaTok   = &event.Writer{Token: "tok-ada", Via: event.ViaServer}
	bobTok   = &event.Writer{Token: "tok-bob", Via: event.ViaServer}
	monTok   = &event.Writer{Token: "tok-monitor", Via: event.ViaAPI}
	agentWr  = &event.Writer{Token: "crafted", Via: event.ViaAPI}
)

func newWorld(t *testing.T) *world {
	from := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	return &world{t: t, c: crafttest.New(t), from: from, to: from.Add(6 * time.Hour), clock: from.Add(-3 * time.Hour),
		keys: map[string]ed25519.PrivateKey{}, names: map[string]string{}, skip: map[string]bool{}, at: map[string]uint64{}}
}

// testParams are the parameters of the world's reports.
func testParams() Params {
	p := DefaultParams()
	p.SampleSize = 4
	p.RequireWitnessQuorum = false
	p.Gates = []Gate{{Tools: []string{"prescription.issue"}, Meaning: "approved"}}
	p.TwoPersonTools = []string{"biometric.identify"}
	p.MonitorStatusInterval = Duration(30 * time.Minute)
	return p
}

// add appends one event at the world's clock, which it advances.
func (w *world) add(cr crafttest.Craft) (uint64, []byte) {
	w.t.Helper()
	w.clock = w.clock.Add(time.Minute)
	if cr.At.IsZero() {
		cr.At = w.clock
	}
	if cr.Tenant == "" {
		cr.Tenant = tenant
	}
	if cr.Writer == nil {
		cr.Writer = agentWr
	}
	if cr.ActorType == "" {
		cr.ActorType, cr.Actor = "agent", "triage-bot"
	}
	data := w.c.Leaf(cr)
	i := w.c.Add(crafttest.Craft{Raw: data})
	return i[0], event.LeafHash(data)
}

func (w *world) token(id, name string, scopes ...string) {
	w.add(crafttest.Craft{Kind: "access.token_created", Session: "access.tokens", ActorType: "system", Actor: "log-server", Writer: serverWr,
		Attrs: crafttest.Attrs("token.id", id, "token.name", name, "token.tenant", tenant, "token.scopes", scopes, "token.global", false, "token.actors", []string{})})
}

func (w *world) enroll(id, name string) uint64 {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	w.keys[id], w.names[id] = priv, name
	i, _ := w.add(crafttest.Craft{Kind: signature.KindEnrolled, Session: "signer." + id, ActorType: "human", Actor: "hr.jones", Writer: serverWr,
		Attrs: crafttest.Attrs(signature.AttrSigner, id, signature.AttrPrintedName, name, signature.AttrPublicKey, base64.StdEncoding.EncodeToString(pub),
			signature.AttrKeyID, signature.KeyID(pub), signature.AttrVerifiedBy, "hr.jones")})
	return i
}

// sign appends a valid human.signature of record (index, leaf hash) by
// signer in session, with the components and signing session given.
func (w *world) sign(signer string, wr *event.Writer, session string, index uint64, leafHash []byte, meaning, components, signSession string) uint64 {
	w.t.Helper()
	priv := w.keys[signer]
	nonce := make([]byte, 16)
	rand.Read(nonce)
	w.clock = w.clock.Add(time.Minute)
	st := &signature.Statement{Origin: w.c.Key.Name(), Index: index, LeafHash: hex.EncodeToString(leafHash), Meaning: meaning,
		Tenant: tenant, Signer: signer, PrintedName: w.names[signer], KeyID: signature.KeyID(priv.Public().(ed25519.PublicKey)),
		Time: w.clock.Format(event.TimeFormat), Nonce: hex.EncodeToString(nonce)}
	msg, err := st.Message()
	if err != nil {
		w.t.Fatal(err)
	}
	canon, _ := st.Marshal()
	i, _ := w.add(crafttest.Craft{Kind: event.KindHumanSignature, Session: session, ActorType: "human", Actor: signer, Writer: wr, At: w.clock,
		Attrs: crafttest.Attrs(signature.AttrStatement, string(canon), signature.AttrSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(priv, msg)),
			signature.AttrSigner, signer, signature.AttrPrintedName, w.names[signer], signature.AttrMeaning, meaning, signature.AttrIndex, index,
			signature.AttrComponents, components, signature.AttrSession, signSession)})
	return i
}

func (w *world) status() {
	w.add(crafttest.Craft{Tenant: "default", Kind: "monitor.status", Session: "monitor.main", ActorType: "system", Actor: "monitor.main", Writer: monTok,
		Attrs: crafttest.Attrs("monitor.instance", "main")})
}

// build writes the world; skip names parts to leave out and the test's
// own additions run through hooks.
func (w *world) build(hooks map[string]func()) {
	w.t.Helper()
	hook := func(name string) {
		if h := hooks[name]; h != nil {
			h()
		}
	}
	// Before the period: tokens, the floor, signers, an approved configuration.
	w.add(crafttest.Craft{Tenant: "default", Kind: "access.token_created", Session: "access.tokens", ActorType: "system", Actor: "log-server", Writer: serverWr,
		Attrs: crafttest.Attrs("token.id", "tok-monitor", "token.name", "monitor", "token.tenant", "default", "token.scopes", []string{"read", "monitor"}, "token.global", true, "token.actors", []string{})})
	w.token("crafted", "triage-bot", "write")
	w.token("tok-ada", "dr-ada", "sign", "read")
	w.token("tok-bob", "cfo-bob", "sign", "read")
	floor := "7y"
	if w.floor != "" {
		floor = w.floor
	}
	w.at["floor"], _ = w.add(crafttest.Craft{Kind: "retention.set", Session: "retention", ActorType: "system", Actor: "log-server", Writer: serverWr,
		Attrs: crafttest.Attrs("retention.floor", floor, "retention.profiles", []string{"part11", "sox", "eu-ai-act"}, "retention.scope", "tenant")})
	w.enroll("dr-ada", "Dr. Ada Lovelace")
	w.enroll("cfo-bob", "Bob Controller")
	if !w.skip["config"] {
		cfg, cfgHash := w.add(crafttest.Craft{Kind: "config.change", Session: "config", ActorType: "human", Actor: "eng-carol",
			Attrs: crafttest.Attrs("config.agent", "triage-bot", "config.model", "gpt-4o", "config.sha256", "c0ffee01", "config.prompt_sha256", strings.Repeat("a", 64))})
		w.sign("cfo-bob", bobTok, "config", cfg, cfgHash, "approved", "signer+secret", "sess-bob-1")
	}
	hook("before")

	// The period.
	w.clock = w.from
	w.status()
	for round := range 4 {
		session := []string{"case-1", "case-2", "case-3", "case-4"}[round]
		w.add(crafttest.Craft{Kind: "llm.request", Session: session, Attrs: crafttest.Attrs("gen_ai.request.model", "gpt-4o", "capture.system_prompt.sha256", strings.Repeat("a", 64))})
		resp, rh := w.add(crafttest.Craft{Kind: "llm.response", Session: session, Attrs: crafttest.Attrs("gen_ai.response.model", "gpt-4o")})
		if !w.skip["gate-signature"] || round != 1 {
			w.at["sig"+session] = w.sign("dr-ada", adaTok, session, resp, rh, "approved", "signer+secret", "sess-ada-"+session)
		}
		w.at["gated"+session], _ = w.add(crafttest.Craft{Kind: "tool.call", Session: session, Attrs: crafttest.Attrs("gen_ai.tool.name", "prescription.issue")})
		w.add(crafttest.Craft{Kind: "tool.result", Session: session, Attrs: crafttest.Attrs("gen_ai.tool.name", "prescription.issue")})
		w.clock = w.clock.Add(25 * time.Minute)
		w.status()
	}
	// Two people approve an identification before it runs.
	req, reqh := w.add(crafttest.Craft{Kind: "llm.request", Session: "id-1", Attrs: crafttest.Attrs("gen_ai.request.model", "gpt-4o")})
	rec, rh := w.add(crafttest.Craft{Kind: "agent.decision", Session: "id-1", Attrs: crafttest.Attrs("decision.outcome", "proposed")})
	w.sign("dr-ada", adaTok, "id-1", rec, rh, "approved", "signer+secret", "sess-ada-id")
	// Later in the same signing session, the secret alone.
	w.sign("dr-ada", adaTok, "id-1", req, reqh, "reviewed", "secret", "sess-ada-id")
	if !w.skip["second-person"] {
		w.sign("cfo-bob", bobTok, "id-1", rec, rh, "approved", "signer+secret", "sess-bob-2")
	}
	w.at["biometric"], _ = w.add(crafttest.Craft{Kind: "tool.call", Session: "id-1", Attrs: crafttest.Attrs("gen_ai.tool.name", "biometric.identify")})
	w.status()
	// A lock-out, alerted by the monitor; oversight; a correction.
	for range 3 {
		w.add(crafttest.Craft{Kind: signature.KindFailed, Session: "signer.cfo-bob", ActorType: "system", Actor: "log-server", Writer: serverWr,
			Attrs: crafttest.Attrs(signature.AttrSigner, "cfo-bob", "signature.failure", "wrong_secret")})
	}
	lock, _ := w.add(crafttest.Craft{Kind: signature.KindLocked, Session: "signer.cfo-bob", ActorType: "system", Actor: "log-server", Writer: serverWr,
		Attrs: crafttest.Attrs(signature.AttrSigner, "cfo-bob")})
	// The alert is in the report's tenant: a tenant's report counts the
	// alerts of its own tenant only (monitor.alert is not log-wide).
	w.add(crafttest.Craft{Kind: "monitor.alert", Session: "monitor.main", ActorType: "system", Actor: "monitor.main", Writer: monTok,
		Attrs: crafttest.Attrs("monitor.rule", "signer.locked", "monitor.index", lock)})
	w.add(crafttest.Craft{Kind: "human.override", Session: "case-2", ActorType: "human", Actor: "dr-ada", Writer: adaTok})
	w.status()
	// A serious incident, notified in time.
	w.add(crafttest.Craft{Kind: "incident.reported", Session: "incidents", ActorType: "human", Actor: "qa.lead",
		Attrs: crafttest.Attrs("incident.id", "INC-1", "incident.classification", "widespread", "incident.aware_at", w.clock.Format(time.RFC3339))})
	w.at["note"], _ = w.add(crafttest.Craft{Kind: "note.added", Session: "notes", ActorType: "human", Actor: "qa.lead", Attrs: crafttest.Attrs("note.text", "original")})
	hook("during")
	w.clock = w.clock.Add(30 * time.Minute)
	w.add(crafttest.Craft{Kind: "incident.notified", Session: "incidents", ActorType: "human", Actor: "qa.lead", Attrs: crafttest.Attrs("incident.id", "INC-1")})
	for w.clock.Before(w.to.Add(-20 * time.Minute)) {
		w.clock = w.clock.Add(25 * time.Minute)
		if !w.skip["late-status"] {
			w.status()
		} else {
			w.add(crafttest.Craft{Kind: "tool.result", Session: "late", Attrs: crafttest.Attrs("gen_ai.tool.name", "search")})
		}
	}
	hook("end")
	w.c.WaitPublished()
}

func (w *world) compute(profile string, p Params) *Report {
	w.t.Helper()
	r, err := Compute(context.Background(), w.source(), Query{Profile: profile, Tenant: tenant, From: w.from, To: w.to}, p)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

func (w *world) source() Source {
	c, err := client.New(w.c.HS.URL)
	if err != nil {
		w.t.Fatal(err)
	}
	return Source{Log: c, Key: w.c.Key, Logger: slog.New(slog.DiscardHandler)}
}

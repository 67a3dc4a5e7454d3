package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// envelopeLog is a log server of leaf version 3 (or 4) with three
// tenants' events, each tenant's secrets named so that a test can look for
// them.
type envelopeLog struct {
	s       *servertest.Server
	version int      // event.LeafVersionEnvelope or event.LeafVersionFields
	secrets []string // tenant names, session ids, actors, kinds, attribute values
	size    uint64
}

// envelopeSize is the size of the log's entries.
func (l *envelopeLog) envelopeSize() int {
	if l.version == event.LeafVersionFields {
		return event.EnvelopeSizeFields
	}
	return event.EnvelopeSize
}

var threeTenants = []string{"bank-alpha", "clinic-bravo", "insurer-charlie"}

func startEnvelopeLog(t *testing.T) *envelopeLog {
	t.Helper()
	return startEnvelopeLogVersion(t, event.LeafVersionEnvelope)
}

// startEnvelopeLogVersion is startEnvelopeLog with a log of leaf version
// version (3 or 4).
func startEnvelopeLogVersion(t *testing.T, version int) *envelopeLog {
	t.Helper()
	s := servertest.Start(t, func(c *server.Config) { c.LeafVersion = version })
	l := &envelopeLog{s: s, version: version}
	ctx := context.Background()
	for ti, tenant := range threeTenants {
		c := s.Client(s.Token(auth.Spec{Name: "writer-" + tenant, Tenant: tenant, Scopes: []string{auth.ScopeWrite}}))
		for si := range 2 {
			session := fmt.Sprintf("sess-%s-%d", tenant, si)
			actor := fmt.Sprintf("agent-%s", tenant)
			kind := fmt.Sprintf("custom.step%s", strings.Repeat("x", ti+1))
			model := fmt.Sprintf("model-%s-%d", tenant, si)
			l.secrets = append(l.secrets, tenant, session, actor, kind, model)
			var evs []*event.Request
			for range 3 {
				evs = append(evs, &event.Request{Session: session, Kind: kind, Actor: event.Actor{Type: "agent", ID: actor},
					Attributes: map[string]json.RawMessage{"gen_ai.request.model": json.RawMessage(`"` + model + `"`)},
					Payload:    json.RawMessage(`{"text":"payload of ` + tenant + `"}`)})
			}
			w, err := c.Append(ctx, evs)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range w {
				if len(e.Envelope) != l.envelopeSize() || (version == event.LeafVersionFields) != (len(e.FieldSalt) > 0) {
					t.Fatalf("the write answer carries no envelope of version %d, or no field salt: %+v", version, e.Appended)
				}
			}
			l.size += 3
		}
	}
	l.waitPublished(t)
	return l
}

func (l *envelopeLog) waitPublished(t *testing.T) {
	t.Helper()
	key := l.key(t)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		raw, err := l.s.Client("").Tiles().ReadCheckpoint(context.Background())
		if err != nil {
			continue
		}
		if cp, _, err := checkpoint.Verify(raw, key); err == nil && cp.Size >= l.size {
			l.size = cp.Size
			return
		}
	}
	t.Fatalf("no checkpoint covers %d entries", l.size)
}

func (l *envelopeLog) key(t *testing.T) note.Verifier {
	t.Helper()
	raw, err := os.ReadFile(l.s.LogPub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tenantEntries counts tenant's events among the first size, read with
// the admin's global token.
func (l *envelopeLog) tenantEntries(t *testing.T, tenant string, size uint64) int {
	t.Helper()
	n := 0
	for start := uint64(0); start < size; start += api.MaxBodiesRange {
		bs, err := l.s.Client(l.s.Admin).Bodies(context.Background(), start, min(start+api.MaxBodiesRange, size), size)
		if err != nil {
			t.Fatal(err)
		}
		if start == 0 && size <= api.MaxBodiesRange && uint64(len(bs.Entries)) != size {
			t.Fatalf("a global token read %d bodies of %d", len(bs.Entries), size)
		}
		for _, b := range bs.Entries {
			if h, err := event.ParseHead(b.Body); err == nil && h.Tenant == tenant {
				n++
			}
		}
	}
	return n
}

// tenantKeyFile reads tenant's key with an audit token of the tenant and
// writes it to a file.
func (l *envelopeLog) tenantKeyFile(t *testing.T, tenant string) string {
	t.Helper()
	c := l.s.Client(l.s.Token(auth.Spec{Name: "auditor-key-" + tenant, Tenant: tenant, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}}))
	k, err := c.TenantKey(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), tenant+".key")
	if err := os.WriteFile(p, []byte(k.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEnvelopeBundlesRevealNothing: every entry bundle of a log of leaf
// version 3 (and of version 4, whose envelopes also commit to the body's
// fields) with three tenants, read anonymously, holds no tenant name,
// session id, actor, kind or attribute value, and verifies against the
// signed checkpoint with Tessera's client (its HTTP fetcher, entry bundle
// reader, leaf hashes and proof builder). An anonymous reader gets no
// bodies; each tenant's reader gets its own only.
func TestEnvelopeBundlesRevealNothing(t *testing.T) {
	for _, v := range []int{event.LeafVersionEnvelope, event.LeafVersionFields} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) { testEnvelopeBundlesRevealNothing(t, v) })
	}
}

func testEnvelopeBundlesRevealNothing(t *testing.T, version int) {
	l := startEnvelopeLogVersion(t, version)
	ctx := context.Background()
	u, _ := url.Parse(l.s.URL + "/")
	f, err := tclient.NewHTTPFetcher(u, nil) // no token: anyone
	if err != nil {
		t.Fatal(err)
	}
	v := l.key(t)
	cp, _, _, err := tclient.FetchCheckpoint(ctx, f.ReadCheckpoint, v, v.Name())
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size < l.size {
		t.Fatalf("checkpoint size %d, want %d", cp.Size, l.size)
	}
	hashes, err := tclient.FetchLeafHashes(ctx, f.ReadTile, 0, cp.Size, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := tclient.NewProofBuilder(ctx, cp.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	n := uint64(0)
	for bi := uint64(0); bi*256 < cp.Size; bi++ {
		b, err := tclient.GetEntryBundle(ctx, f.ReadEntryBundle, bi, cp.Size)
		if err != nil {
			t.Fatalf("anonymous read of entry bundle %d: %v", bi, err)
		}
		for i, e := range b.Entries {
			idx := bi*256 + uint64(i)
			if len(e) != l.envelopeSize() {
				t.Errorf("entry %d is %d bytes, not an envelope's %d", idx, len(e), l.envelopeSize())
			}
			if env, err := event.ParseEnvelope(e); err != nil || env.Version() != version {
				t.Errorf("entry %d: %v, or not of version %d", idx, err, version)
			}
			lh := rfc6962.DefaultHasher.HashLeaf(e)
			if !bytes.Equal(lh, hashes[idx]) {
				t.Errorf("entry %d does not hash to the log's leaf hash", idx)
			}
			p, err := pb.InclusionProof(ctx, idx)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, cp.Size, lh, p, cp.Hash); err != nil {
				t.Errorf("entry %d: %v", idx, err)
			}
			all = append(all, e...)
			n++
		}
	}
	if n != cp.Size {
		t.Fatalf("read %d entries, the checkpoint has %d", n, cp.Size)
	}
	for _, s := range append(l.secrets, "payload", "writer", "session", "kind") {
		if bytes.Contains(all, []byte(s)) {
			t.Errorf("an anonymous reader of the entry bundles sees %q", s)
		}
	}
	// The control: the events are in the bodies, for those who may read.
	if _, err := l.s.Client("").Bodies(ctx, 0, cp.Size, cp.Size); err == nil {
		t.Error("an anonymous reader got bodies")
	}
	c := l.s.Client(l.s.Token(auth.Spec{Name: "reader-a", Tenant: threeTenants[0], Scopes: []string{auth.ScopeRead}}))
	bs, err := c.Bodies(ctx, 0, cp.Size, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	// Its own, and the log-wide records (the global admin token's
	// creation), no other tenant's.
	want, logWide := l.tenantEntries(t, threeTenants[0], cp.Size), 0
	for _, b := range bs.Entries {
		h, err := event.ParseHead(b.Body)
		switch {
		case err == nil && h.Tenant != threeTenants[0] && event.BodyLogWide(b.Body):
			logWide++
		case err != nil || h.Tenant != threeTenants[0]:
			t.Errorf("tenant %s got body %d of %q (%v)", threeTenants[0], b.Index, h.Tenant, err)
		}
	}
	if len(bs.Entries) != want+logWide || want < 6 || logWide == 0 {
		t.Errorf("tenant %s read %d bodies, want its %d (6 events and its token records) and the log-wide ones (%d)", threeTenants[0], len(bs.Entries), want, logWide)
	}
	// A session export of a version 3 or 4 log proves its bodies through
	// their envelopes, payloads included.
	auditor := l.s.Client(l.s.Token(auth.Spec{Name: "exporter-a", Tenant: threeTenants[0], Scopes: []string{auth.ScopeRead, auth.ScopeAudit}}))
	x, err := auditor.ExportSession(ctx, "sess-"+threeTenants[0]+"-1", client.ExportQuery{Payloads: true}, v, nil)
	if err != nil {
		t.Fatalf("export of a version %d session: %v", version, err)
	}
	if len(x.Events) != 3 {
		t.Fatalf("export holds %d events, want 3", len(x.Events))
	}
	for _, e := range x.Events {
		if e.LeafErr != nil || e.ChainErr != nil || e.PayloadErr != nil || !strings.Contains(string(e.Payload), "payload of") {
			t.Errorf("exported event %d: leaf %v, chain %v, payload %v %q", e.Index, e.LeafErr, e.ChainErr, e.PayloadErr, e.Payload)
		}
	}
	// A receipt of a version 3 or 4 log proves the envelope and its body.
	rc, err := l.s.Client(l.s.Admin).Entry(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.NewReceiptVerifier(v, nil).Verify(rc); err != nil {
		t.Fatalf("receipt of a version %d entry: %v", version, err)
	}
	// Its tlog-proof carries the envelope as its extra data (the entry the
	// inclusion proof starts from), and verifies alone, without the body.
	raw, bare, err := l.s.Client(l.s.Admin).EntryProof(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != rc.TlogProof {
		t.Errorf("GET /v1/entries/0/proof is not the receipt's tlog_proof:\n%s\n%s", raw, rc.TlogProof)
	}
	if want := "extra " + base64.StdEncoding.EncodeToString(rc.Envelope) + "\n"; !strings.Contains(string(raw), want) {
		t.Errorf("the tlog-proof's extra is not the envelope:\n%s", raw)
	}
	vr, err := api.NewReceiptVerifier(v, nil).Verify(bare)
	if err != nil || vr.Leaf != nil || !bytes.Equal(vr.Envelope, rc.Envelope) || fmt.Sprintf("%x", vr.LeafHash) != rc.LeafHash {
		t.Fatalf("the bare tlog-proof of a version %d entry: %+v, %v", version, vr, err)
	}
	// monitor verify-receipt says what it verified: an envelope of the
	// log's version.
	proofFile := filepath.Join(t.TempDir(), "entry0.tlog-proof")
	if err := os.WriteFile(proofFile, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var vo bytes.Buffer
	if code := verifyReceipt([]string{"--log-key", l.s.LogPub, proofFile}, &vo, io.Discard); code != 0 ||
		!strings.Contains(vo.String(), fmt.Sprintf("an envelope of leaf version %d committing to body %s", version, rc.LeafHash)) {
		t.Errorf("monitor verify-receipt of a version %d tlog-proof: exit %d\n%s", version, code, vo.String())
	}
	other := bytes.Clone(rc.Envelope)
	other[len(other)-3] ^= '0' ^ '1' // the last hex digit (of the body hash; in version 4 of the fields root): 0 and 1 swapped, others to other digits or letters
	if other[len(other)-3] > 'f' || (other[len(other)-3] > '9' && other[len(other)-3] < 'a') {
		other[len(other)-3] = '0'
	}
	flipped := bytes.Replace(raw, []byte(base64.StdEncoding.EncodeToString(rc.Envelope)), []byte(base64.StdEncoding.EncodeToString(other)), 1)
	fr, err := api.ParseTlogProof(flipped)
	if err != nil || bytes.Equal(fr.Envelope, rc.Envelope) {
		t.Fatalf("the tlog-proof with another envelope: %v", err)
	}
	if _, err := api.NewReceiptVerifier(v, nil).Verify(fr); !errors.Is(err, api.ErrReceiptInclusion) {
		t.Errorf("a tlog-proof with another envelope: %v, want ErrReceiptInclusion", err)
	}
	rc.Leaf = append(bytes.Clone(rc.Leaf[:len(rc.Leaf)-1]), ' ')
	rc.LeafHash = fmt.Sprintf("%x", event.LeafHash(rc.Leaf))
	if _, err := api.NewReceiptVerifier(v, nil).Verify(rc); !errors.Is(err, api.ErrReceiptLeafHash) {
		t.Errorf("a receipt with another body: %v, want ErrReceiptLeafHash", err)
	}
}

// TestMonitorVerifyTenant: monitor verify with a tenant's read token and
// its key exits 0 on a clean log; 1 when the operator leaves out one of the
// tenant's bodies (a proxy in front of the server drops it from
// /v1/bodies).
func TestMonitorVerifyTenant(t *testing.T) {
	l := startEnvelopeLog(t)
	tenant := threeTenants[1]
	keyFile := l.tenantKeyFile(t, tenant)
	tokFile := l.s.TokenFile(auth.Spec{Name: "auditor-" + tenant, Tenant: tenant, Scopes: []string{auth.ScopeRead}})
	run := func(u string, extra ...string) (int, string) {
		var out, errb bytes.Buffer
		code := verifyLog(append([]string{"--url", u, "--log-key", l.s.LogPub, "--token-file", tokFile, "--tenant-key", keyFile, "--tenant", tenant}, extra...), &out, &errb)
		return code, out.String() + errb.String()
	}
	l.size++ // the key read is recorded
	l.waitPublished(t)
	want := l.tenantEntries(t, tenant, l.size)
	code, out := run(l.s.URL)
	if code != 0 {
		t.Fatalf("clean log: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, fmt.Sprintf(": %d entries carry its tag", want)) || want < 7 {
		t.Errorf("clean log: output does not count the tenant's %d entries (6 events, the key read, token records)\n%s", want, out)
	}
	// Another tenant's key recognises none of them, and the tenant's token
	// reads no body of its own under it: findings of wrong tags.
	other := l.tenantKeyFile(t, threeTenants[2])
	var o bytes.Buffer
	if code := verifyLog([]string{"--url", l.s.URL, "--log-key", l.s.LogPub, "--token-file", tokFile, "--tenant-key", other}, &o, io.Discard); code != 1 || !strings.Contains(o.String(), verifyRuleWrongTag) {
		t.Errorf("another tenant's key: exit %d, want 1 with %s\n%s", code, verifyRuleWrongTag, o.String())
	}

	// The operator omits one body of the tenant.
	target, _ := url.Parse(l.s.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	dropped := false
	rp.ModifyResponse = func(r *http.Response) error {
		if r.Request.URL.Path != "/v1/bodies" || r.StatusCode != http.StatusOK {
			return nil
		}
		var b api.Bodies
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			return err
		}
		r.Body.Close()
		if len(b.Entries) > 3 {
			b.Entries = append(b.Entries[:3:3], b.Entries[4:]...)
			dropped = true
		}
		raw, _ := json.Marshal(b)
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
		r.Header.Del("Content-Length")
		return nil
	}
	ps := httptest.NewServer(rp)
	defer ps.Close()
	code, out = run(ps.URL)
	if !dropped {
		t.Fatal("the proxy dropped no body")
	}
	if code != 1 || !strings.Contains(out, "tenant.body_missing") {
		t.Errorf("an omitted body: exit %d, want 1 with tenant.body_missing\n%s", code, out)
	}
}

const verifyRuleWrongTag = "tenant.wrong_tag"

// TestMonitorVerifyWrongTag: an operator that writes one of a tenant's
// events under another tag (a crafted log of leaf version 3 plays it) is
// found by monitor verify with the tenant's key, exit 1: as
// tenant.wrong_tag when it serves the body to the tenant, and as a broken
// session chain when it hides the body too.
func TestMonitorVerifyWrongTag(t *testing.T) {
	for _, tc := range []struct {
		name        string
		wrong, hide bool
		code        int
		want        string
	}{
		{"honest", false, false, 0, "OK: everything verified"},
		{"wrong tag", true, false, 1, verifyRuleWrongTag},
		{"wrong tag, body hidden", true, true, 1, "session.chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := crafttest.New(t)
			sealer, err := event.NewEnvelopeSealer(bytes.Repeat([]byte{7}, 32))
			if err != nil {
				t.Fatal(err)
			}
			const tenant = "bank-alpha"
			bodies := map[uint64][]byte{}
			for i := range 4 {
				body := c.Leaf(crafttest.Craft{Tenant: tenant, Session: "s1", Kind: "tool.call"})
				tagFor := tenant
				if i == 1 && tc.wrong {
					tagFor = "somebody-else" // the operator's wrong tag
				}
				env := sealer.Seal(tagFor, body)
				idx := c.Add(crafttest.Craft{Raw: env.Marshal()})[0]
				if i != 1 || !tc.hide {
					bodies[idx] = body
				}
			}
			c.WaitPublished()
			// The operator's server: the crafted log's tiles, and the
			// tenant's bodies as it chooses to serve them.
			target, _ := url.Parse(c.HS.URL)
			rp := httputil.NewSingleHostReverseProxy(target)
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/bodies" {
					rp.ServeHTTP(w, r)
					return
				}
				q := r.URL.Query()
				var start, end, size uint64
				fmt.Sscan(q.Get("start"), &start)
				fmt.Sscan(q.Get("end"), &end)
				fmt.Sscan(q.Get("size"), &size)
				out := api.Bodies{TreeSize: size, Start: start, End: end, Entries: []api.Body{}}
				for i := start; i < end; i++ {
					if b, ok := bodies[i]; ok {
						out.Entries = append(out.Entries, api.Body{Index: i, Body: b})
					}
				}
				json.NewEncoder(w).Encode(out)
			}))
			defer hs.Close()
			pub := filepath.Join(t.TempDir(), "log.pub")
			os.WriteFile(pub, []byte(c.KeyText+"\n"), 0o644)
			keyFile := filepath.Join(t.TempDir(), "tenant.key")
			k := sealer.TenantKey(tenant)
			os.WriteFile(keyFile, []byte(k.String()), 0o600)
			tok := filepath.Join(t.TempDir(), "token")
			os.WriteFile(tok, []byte("any"), 0o600)
			var out bytes.Buffer
			code := verifyLog([]string{"--url", hs.URL, "--log-key", pub, "--token-file", tok, "--tenant-key", keyFile, "--tenant", tenant}, &out, io.Discard)
			if code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Errorf("exit %d, want %d with %s\n%s", code, tc.code, tc.want, out.String())
			}
		})
	}
}

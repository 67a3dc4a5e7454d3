package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	fmtlog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// exportWorld is a log holding session "x" interleaved with session "y"
// (so that the export carries node hashes between its events) and a
// session of another tenant.
type exportWorld struct {
	*testLog
	written []client.Written // session x, in order
	bodies  [][]byte         // their payloads ("" for none)
}

func newExportWorld(t *testing.T) *exportWorld {
	t.Helper()
	w := &exportWorld{testLog: newTestLog(t)}
	ctx := context.Background()
	writer := w.client(t, w.token)
	for round := range 6 {
		var evs []*event.Request
		for i := range 4 {
			p := fmt.Sprintf(`{"round":%d,"i":%d,"text":%q}`, round, i, strings.Repeat("note ", i*40))
			if i == 3 {
				p = "" // an event without payload
			}
			evs = append(evs, ev("x", "tool.call", p), ev("y", "tool.call", `{"other":true}`))
			w.bodies = append(w.bodies, []byte(p))
		}
		res, err := writer.Append(ctx, evs)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(res); i += 2 {
			w.written = append(w.written, res[i])
		}
	}
	bTok, _, err := w.srv.Tokens().Create(ctx, auth.Spec{Name: "writer-b", Tenant: "tenant-b", Scopes: []string{auth.ScopeWrite}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.client(t, bTok).Append(ctx, []*event.Request{ev("b-only", "tool.call", `{"b":1}`)}, client.WaitForCheckpoint()); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *exportWorld) newToken(t *testing.T, name, tenant string, global bool, scopes ...string) (*client.Client, string) {
	t.Helper()
	tok, p, err := w.srv.Tokens().Create(context.Background(), auth.Spec{Name: name, Tenant: tenant, Global: global, Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return w.client(t, tok), p.ID
}

// accessReads lists the access.read events of a token's access session.
func (w *exportWorld) accessReads(t *testing.T, tokenID string) []api.SessionEntry {
	t.Helper()
	p, err := w.admin.Session(context.Background(), event.AccessSession(tokenID), client.SessionQuery{})
	if errors.Is(err, client.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []api.SessionEntry
	for _, e := range p.Events {
		if e.Kind == "access.read" {
			out = append(out, e)
		}
	}
	return out
}

// TestExportSession: an export carries every event of the session, each
// leaf the one the write answered, with its payload for the audit scope;
// it is recorded as exactly one access.read event with payloads and none
// without; tokens see what the session routes let them see.
func TestExportSession(t *testing.T) {
	w := newExportWorld(t)
	ctx := context.Background()
	auditor, audID := w.newToken(t, "auditor", server.DefaultTenant, false, auth.ScopeRead, auth.ScopeAudit)
	// First use of the token logs its creation; settle that before counting.
	if _, err := auditor.Session(ctx, "x", client.SessionQuery{}); err != nil {
		t.Fatal(err)
	}
	if n := len(w.accessReads(t, audID)); n != 0 {
		t.Fatalf("%d access.read events before any read", n)
	}

	x, err := auditor.ExportSession(ctx, "x", client.ExportQuery{Payloads: true}, w.key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !x.Verified() || len(x.Events) != len(w.written) || x.Tenant != server.DefaultTenant || x.Access == nil || x.NextSeq != nil {
		t.Fatalf("export: verified %v, %d events (want %d), tenant %s, access %v, next %v", x.Verified(), len(x.Events), len(w.written), x.Tenant, x.Access, x.NextSeq)
	}
	for i, e := range x.Events {
		want := w.written[i]
		if e.Index != want.Index || !bytes.Equal(e.Leaf, want.Leaf) || !bytes.Equal(e.LeafHash, want.LeafHash) || e.Event.Seq != uint64(i) {
			t.Fatalf("event %d: index %d seq %d, want index %d seq %d (or another leaf)", i, e.Index, e.Event.Seq, want.Index, i)
		}
		wantStatus := api.PayloadOK
		if len(w.bodies[i]) == 0 {
			wantStatus = api.PayloadNone
		}
		if e.Status != wantStatus || !bytes.Equal(e.Payload, w.bodies[i]) {
			t.Fatalf("event %d: status %s payload %q, want %s %q", i, e.Status, e.Payload, wantStatus, w.bodies[i])
		}
	}
	acc := w.accessReads(t, audID)
	if len(acc) != 1 || acc[0].Index != x.Access.Index || acc[0].LeafHash != hex.EncodeToString(x.Access.LeafHash) {
		t.Fatalf("after an export with payloads: access.read events %+v, want the one the export names (%d)", acc, x.Access.Index)
	}
	if l, err := event.ParseLeaf(x.Access.Leaf); err != nil || l.Attributes["access.session"] != "x" || fmt.Sprint(l.Attributes["access.count"]) != fmt.Sprint(len(w.written)) ||
		l.Attributes["access.export"] != true || fmt.Sprint(l.Attributes["access.tree_size"]) != fmt.Sprint(x.Size) || l.Writer.Token != audID {
		t.Fatalf("the access.read event %+v (%v) does not name the export", l, err)
	}

	// Without payloads: the same leaves, no payload, no access.read.
	y, err := auditor.ExportSession(ctx, "x", client.ExportQuery{}, w.key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !y.Verified() || len(y.Events) != len(w.written) || y.Access != nil || y.Events[0].Payload != nil || y.Events[0].Status != "" {
		t.Fatalf("export without payloads: %d events, access %v, first %+v", len(y.Events), y.Access, y.Events[0])
	}
	if n := len(w.accessReads(t, audID)); n != 1 {
		t.Fatalf("%d access.read events after an export without payloads, want still 1", n)
	}
	// From a seq on.
	z, err := auditor.ExportSession(ctx, "x", client.ExportQuery{FromSeq: 20, Payloads: true}, w.key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !z.Verified() || len(z.Events) != len(w.written)-20 || z.Events[0].Event.Seq != 20 {
		t.Fatalf("from seq 20: %d events, verified %v", len(z.Events), z.Verified())
	}
	if n := len(w.accessReads(t, audID)); n != 2 {
		t.Fatalf("%d access.read events after two exports with payloads, want 2", n)
	}

	// Who may export what.
	readOnly, _ := w.newToken(t, "reader", server.DefaultTenant, false, auth.ScopeRead)
	auditOnly, _ := w.newToken(t, "audit-only", server.DefaultTenant, false, auth.ScopeAudit)
	tenantB, _ := w.newToken(t, "auditor-b", "tenant-b", false, auth.ScopeRead, auth.ScopeAudit)
	global, _ := w.newToken(t, "global", server.DefaultTenant, true, auth.ScopeRead, auth.ScopeAudit)
	for _, c := range []struct {
		name string
		c    *client.Client
		id   string
		q    client.ExportQuery
		want error
	}{
		{"read scope, payloads", readOnly, "x", client.ExportQuery{Payloads: true}, client.ErrForbidden},
		{"read scope, no payloads", readOnly, "x", client.ExportQuery{}, nil},
		{"audit scope only, no payloads", auditOnly, "x", client.ExportQuery{}, client.ErrForbidden},
		{"audit scope only, payloads", auditOnly, "x", client.ExportQuery{Payloads: true}, nil},
		{"tenant b, tenant a's session", tenantB, "x", client.ExportQuery{Payloads: true}, client.ErrNotFound},
		{"tenant b, naming tenant a", tenantB, "x", client.ExportQuery{Tenant: server.DefaultTenant, Payloads: true}, client.ErrForbidden},
		{"tenant b, its own", tenantB, "b-only", client.ExportQuery{Payloads: true}, nil},
		{"tenant a, tenant b's session", auditor, "b-only", client.ExportQuery{Payloads: true}, client.ErrNotFound},
		{"tenant a, naming tenant b", auditor, "b-only", client.ExportQuery{Tenant: "tenant-b"}, client.ErrForbidden},
		{"global, naming tenant b", global, "b-only", client.ExportQuery{Tenant: "tenant-b", Payloads: true}, nil},
		{"no such session", auditor, "nope", client.ExportQuery{}, client.ErrNotFound},
	} {
		x, err := c.c.ExportSession(ctx, c.id, c.q, w.key, nil)
		if c.want == nil && (err != nil || !x.Verified() || len(x.Events) == 0) {
			t.Errorf("%s: %v", c.name, err)
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// frames splits an export stream.
func frames(t *testing.T, b []byte) (types []byte, bodies [][]byte) {
	for len(b) > 0 {
		if len(b) < 5 {
			t.Fatalf("a frame header of %d bytes", len(b))
		}
		n := int(binary.BigEndian.Uint32(b[1:5]))
		types, bodies = append(types, b[0]), append(bodies, b[5:5+n])
		b = b[5+n:]
	}
	return types, bodies
}

func join(types []byte, bodies [][]byte) []byte {
	var out []byte
	for i, b := range bodies {
		out = append(out, types[i])
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	return out
}

// eventFields returns the offsets of an event frame's leaf and salt.
func eventFields(body []byte) (leafAt, leafLen, saltAt int) {
	leafLen = int(binary.BigEndian.Uint32(body[8:12]))
	p := 12 + leafLen
	p += 1 + int(body[p]) // status
	p += 1 + int(body[p]) // media type
	return 12, leafLen, p + 1
}

// TestExportRefusesTampering: a server (or anything between it and the
// reader) that alters the stream is caught: a leaf, a node hash, an event
// left out, two events swapped, a stream cut short, a checkpoint of
// another key refuse the whole export; an altered payload or salt is
// refused at its event, whose payload is not handed over.
func TestExportRefusesTampering(t *testing.T) {
	w := newExportWorld(t)
	ctx := context.Background()
	var edit func(types []byte, bodies [][]byte) ([]byte, [][]byte)
	proxy := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		w.srv.Handler().ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if strings.HasSuffix(r.URL.Path, "/export") && rec.Code == http.StatusOK {
			types, bodies := frames(t, body)
			body = join(edit(types, bodies))
		}
		for k, v := range rec.Header() {
			rw.Header()[k] = v
		}
		rw.WriteHeader(rec.Code)
		rw.Write(body)
	}))
	t.Cleanup(proxy.Close)
	c, err := client.New(proxy.URL, client.WithToken(w.token))
	if err != nil {
		t.Fatal(err)
	}
	// nth returns the position of the nth frame of a type.
	nth := func(types []byte, typ byte, n int) int {
		for i, x := range types {
			if x == typ {
				if n == 0 {
					return i
				}
				n--
			}
		}
		t.Fatalf("no frame %c number %d", typ, n)
		return 0
	}
	cases := []struct {
		name string
		edit func(types []byte, bodies [][]byte) ([]byte, [][]byte)
		want error
	}{
		{"a leaf altered", func(types []byte, bodies [][]byte) ([]byte, [][]byte) {
			b := bodies[nth(types, 'E', 5)]
			at, n, _ := eventFields(b)
			copy(b[at:at+n], bytes.Replace(b[at:at+n], []byte(`"tool.call"`), []byte(`"tool.cal1"`), 1))
			return types, bodies
		}, client.ErrExportInclusion},
		{"a node hash altered", func(types []byte, bodies [][]byte) ([]byte, [][]byte) {
			bodies[nth(types, 'N', 2)][3] ^= 1
			return types, bodies
		}, client.ErrExportInclusion},
		{"an event left out", func(types []byte, bodies [][]byte) ([]byte, [][]byte) {
			i := nth(types, 'E', 7)
			return append(types[:i:i], types[i+1:]...), append(bodies[:i:i], bodies[i+1:]...)
		}, client.ErrExportMalformed},
		{"two events swapped", func(types []byte, bodies [][]byte) ([]byte, [][]byte) {
			i, j := nth(types, 'E', 2), nth(types, 'E', 3)
			bodies[i], bodies[j] = bodies[j], bodies[i]
			return types, bodies
		}, client.ErrExportMalformed},
		{"cut short", func(types []byte, bodies [][]byte) ([]byte, [][]byte) {
			i := nth(types, 'E', 10)
			return types[:i], bodies[:i]
		}, client.ErrExportMalformed},
		{"a checkpoint of another key", func(types []byte, bodies [][]byte) ([]byte, [][]byte) {
			var h api.ExportHeader
			json.Unmarshal(bodies[0], &h)
			cp, _, _ := checkpoint.Verify([]byte(h.Checkpoint), w.key)
			skey, _, _ := checkpoint.GenerateKey(cp.Origin)
			s, _ := checkpoint.NewSigner(skey)
			signed, _ := note.Sign(&note.Note{Text: string(fmtlog.Checkpoint{Origin: cp.Origin, Size: cp.Size, Hash: cp.Hash}.Marshal())}, s)
			h.Checkpoint = string(signed)
			bodies[0], _ = json.Marshal(h)
			return types, bodies
		}, client.ErrExportCheckpoint},
	}
	for _, tc := range cases {
		edit = tc.edit
		x, err := c.ExportSession(ctx, "x", client.ExportQuery{Payloads: true}, w.key, nil)
		if !errors.Is(err, tc.want) || x != nil {
			t.Errorf("%s: %v, want %v and nothing returned", tc.name, err, tc.want)
			continue
		}
		t.Logf("%s: refused: %v", tc.name, err)
	}

	// A payload or salt altered: the export verifies, but not that event.
	for _, tc := range []struct {
		name string
		at   func(body []byte) int
	}{
		{"a payload altered", func(b []byte) int { return len(b) - 3 }},
		{"a salt altered", func(b []byte) int { _, _, s := eventFields(b); return s + 1 }},
	} {
		edit = func(types []byte, bodies [][]byte) ([]byte, [][]byte) {
			b := bodies[nth(types, 'E', 4)]
			b[tc.at(b)] ^= 1
			return types, bodies
		}
		x, err := c.ExportSession(ctx, "x", client.ExportQuery{Payloads: true}, w.key, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		e := x.Events[4]
		if x.Verified() || !errors.Is(e.PayloadErr, client.ErrCommitment) || e.Payload != nil || e.Salt != nil {
			t.Fatalf("%s: verified %v, event 4: %v, payload %q", tc.name, x.Verified(), e.PayloadErr, e.Payload)
		}
		for i, o := range x.Events {
			if i != 4 && (o.PayloadErr != nil || o.ChainErr != nil || o.LeafErr != nil) {
				t.Fatalf("%s: event %d: %v %v %v", tc.name, i, o.PayloadErr, o.ChainErr, o.LeafErr)
			}
		}
		t.Logf("%s: refused at entry %d: %v", tc.name, e.Index, e.PayloadErr)
	}
}

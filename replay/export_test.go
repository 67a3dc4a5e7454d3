package replay_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/replay"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// writeInterleaved writes n events of session, each followed by one of
// session+"-other" (so that the export carries node hashes between the
// session's events), every third without a payload.
func writeInterleaved(t *testing.T, w *world, session string, n int) {
	t.Helper()
	c, _ := client.New(w.ts.URL, client.WithToken(w.write))
	var batch []*event.Request
	for i := range n {
		e := &event.Request{Session: session, Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "bot"},
			Attributes: map[string]json.RawMessage{"i": json.RawMessage(fmt.Sprint(i))}}
		if i%3 != 2 {
			e.Payload = json.RawMessage(fmt.Sprintf(`{"i":%d,"text":%q}`, i, strings.Repeat("x", i%200)))
		}
		batch = append(batch, e, &event.Request{Session: session + "-other", Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "bot"}})
		if len(batch) == 500 || i == n-1 {
			if _, err := c.Append(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// sameEvents compares two rebuilds of a session event by event.
func sameEvents(t *testing.T, name string, a, b *replay.Session) {
	t.Helper()
	if len(a.Events) != len(b.Events) || a.Tenant != b.Tenant || a.ID != b.ID || a.Verified() != b.Verified() {
		t.Fatalf("%s: %d events of %s/%s (verified %v) vs %d of %s/%s (%v)", name, len(a.Events), a.Tenant, a.ID, a.Verified(),
			len(b.Events), b.Tenant, b.ID, b.Verified())
	}
	for i := range a.Events {
		x, y := *a.Events[i], *b.Events[i]
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("%s: event %d differs:\n%+v\n%+v", name, i, x, y)
		}
	}
}

// TestRebuildExportEqualsPages: a session rebuilt from its export (one
// request) is the session rebuilt by pages, event for event (leaf, hash,
// seq, payload and its status, every check), with and without payloads,
// with a global token and a tenant's; the export's disclosure is one
// access.read event, the pages' one per page.
func TestRebuildExportEqualsPages(t *testing.T) {
	w := newWorld(t)
	const n = 1300 // more than one chunk of the export, several pages
	writeInterleaved(t, w, "long", n)
	tenantToken := w.token(auth.Spec{Name: "clinic-auditor", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}})
	for _, tenant := range []bool{false, true} {
		for _, payloads := range []bool{true, false} {
			name := fmt.Sprintf("tenant token %v, payloads %v", tenant, payloads)
			src := w.source(w.ts.URL)
			if tenant {
				src.Log, _ = client.New(w.ts.URL, client.WithToken(tenantToken))
			}
			pages := src
			pages.NoExport = true
			q := replay.Query{Session: "long", Payloads: payloads}
			ex, err := replay.Rebuild(context.Background(), src, q)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			pg, err := replay.Rebuild(context.Background(), pages, q)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if ex.Via != replay.ViaExport || pg.Via != replay.ViaPages || !ex.Verified() || len(ex.Events) != n {
				t.Fatalf("%s: via %s and %s, %d events, problems %v", name, ex.Via, pg.Via, len(ex.Events), ex.Problems)
			}
			sameEvents(t, name, ex, pg)
			wantAccess := 0
			if payloads {
				wantAccess = 1
				for i, e := range ex.Events {
					if want := i%3 != 2; (e.PayloadStatus == api.PayloadOK) != want || (e.PayloadStatus != api.PayloadNone) != want ||
						want && !bytes.HasPrefix(e.Payload, fmt.Appendf(nil, `{"i":%d,`, i)) {
						t.Fatalf("%s: event %d: payload %s %q", name, i, e.PayloadStatus, e.Payload)
					}
				}
			}
			if len(ex.Access) != wantAccess || len(pg.Access) != 2*wantAccess {
				t.Fatalf("%s: access.read events: export %d, pages %d", name, len(ex.Access), len(pg.Access))
			}
		}
	}
}

// exportTamper is a server in front of the log that passes each frame of
// an export through edit.
func exportTamper(t *testing.T, w *world, edit func(n int, typ byte, body []byte) []byte) *httptest.Server {
	h := w.srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if strings.HasSuffix(r.URL.Path, "/export") && rec.Code == http.StatusOK {
			var out []byte
			for n := 0; len(body) > 0; n++ {
				typ, size := body[0], int(binary.BigEndian.Uint32(body[1:5]))
				b := edit(n, typ, body[5:5+size])
				out = append(binary.BigEndian.AppendUint32(append(out, typ), uint32(len(b))), b...)
				body = body[5+size:]
			}
			body = out
		}
		for k, v := range rec.Header() {
			rw.Header()[k] = v
		}
		rw.WriteHeader(rec.Code)
		rw.Write(body)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// TestRebuildRefusesTamperedExport: a leaf altered in the export stream
// makes the export fail to verify: nothing of it is used, the rebuild
// says so and reads the session by pages (which, untampered here, verify);
// a payload altered in the stream is refused at its event, and the
// session is not replayable.
func TestRebuildRefusesTamperedExport(t *testing.T) {
	w := newWorld(t)
	writeInterleaved(t, w, "tx", 40)
	clean := w.rebuild("tx")
	if !clean.Verified() || clean.Via != replay.ViaExport {
		t.Fatalf("clean: via %s, %v", clean.Via, clean.Problems)
	}
	events := 0
	leafAltered := exportTamper(t, w, func(n int, typ byte, body []byte) []byte {
		if typ == 'E' {
			if events++; events == 7 {
				return bytes.Replace(body, []byte(`"i":6`), []byte(`"i":9`), 1)
			}
		}
		return body
	})
	s, err := replay.Rebuild(context.Background(), w.source(leafAltered.URL), replay.Query{Session: "tx", Payloads: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Verified() || s.Via != replay.ViaPages || s.Problems[0].Check != replay.CheckInclusion || !strings.Contains(s.Problems[0].Message, "the session export does not verify") {
		t.Fatalf("a leaf altered in the export: via %s, problems %v", s.Via, s.Problems)
	}
	t.Logf("a leaf altered in the export: %s", s.Problems[0])
	sameEvents(t, "read by pages after the export failed", &replay.Session{Tenant: s.Tenant, ID: s.ID, Events: s.Events}, clean)

	events = 0
	payloadAltered := exportTamper(t, w, func(n int, typ byte, body []byte) []byte {
		if typ == 'E' {
			if events++; events == 4 {
				return bytes.Replace(body, []byte(`{"i":3,`), []byte(`{"i":4,`), 1)
			}
		}
		return body
	})
	s, err = replay.Rebuild(context.Background(), w.source(payloadAltered.URL), replay.Query{Session: "tx", Payloads: true})
	if err != nil {
		t.Fatal(err)
	}
	bad := clean.Events[3]
	if s.Verified() || s.Via != replay.ViaExport || len(s.Problems) != 1 || s.Problems[0].Check != replay.CheckPayload || *s.Problems[0].Index != bad.Index ||
		s.Events[3].Payload != nil || s.Events[3].PayloadStatus != replay.PayloadRejected {
		t.Fatalf("a payload altered in the export: via %s, problems %v, event 3 %s %q", s.Via, s.Problems, s.Events[3].PayloadStatus, s.Events[3].Payload)
	}
	t.Logf("a payload altered in the export: %s", s.Problems[0])
	if _, err := replay.NewReplayer(s, replay.Options{}); !errors.Is(err, replay.ErrNotReplayable) {
		t.Fatalf("a session with a tampered payload was accepted for replay: %v", err)
	}
}

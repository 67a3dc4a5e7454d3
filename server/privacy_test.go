package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// TestNoPersonalDataInLeaves writes personal data into every place an
// agent can put it (subject, on_behalf_of, query values, header values,
// payloads), through the event API and the proxy, then reads every entry
// bundle with a global token: no marker is anywhere in the log. The
// audit-scoped read resolves the subject's pseudonym; after the subject is
// erased it no longer does, and the whole log still verifies.
func TestNoPersonalDataInLeaves(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"MARKER-in-the-answer"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}`)
	}))
	defer up.Close()
	s := newTestServer(t, func(c *Config) { c.Upstreams = map[string]string{"openai": up.URL} })
	ctx := context.Background()
	lc, err := client.New(s.ts.URL, client.WithToken(s.admin))
	if err != nil {
		t.Fatal(err)
	}
	const subject = "patient-MARKER-JaneDoe-1985-03-02"
	w, err := lc.Append(ctx, []*event.Request{{
		Session: "case-1", Kind: "agent.decision", Subject: subject,
		Actor:   event.Actor{Type: "agent", ID: "triage-bot", OnBehalfOf: "dr.MARKER.smith@example.com"},
		Payload: json.RawMessage(`{"diagnosis":"MARKER-diagnosis"}`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", s.ts.URL+"/proxy/openai/v1/chat/completions?patient_name=MARKER-Jane&password=MARKER-pw&access-token=MARKER-tok",
		strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"MARKER-prompt"}]}`))
	for k, v := range map[string]string{
		"Content-Type": "application/json", "Authorization": "Bearer sk-MARKER-key",
		"X-Audit-Token": s.admin, "X-Audit-Session": "case-1", "X-Audit-Subject": subject,
		"X-Audit-On-Behalf-Of": "nurse.MARKER@example.com", "User-Agent": "agent of MARKER-alice",
		"OpenAI-Organization": "org-MARKER", "Idempotency-Key": "MARKER-idem", "X-Custom": "MARKER-custom",
	} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("proxied call = %d", resp.StatusCode)
	}
	// An audited read (its access.read leaf must not name anyone either).
	if _, err := lc.Payload(ctx, w[0].Index); err != nil {
		t.Fatal(err)
	}
	s.srv.proxy.Close(ctx) // flush the proxy's records

	// Every entry bundle, as a log-wide reader sees it.
	size := s.size(t)
	s.waitCovered(t, size-1)
	var leaves [][]byte
	for b := uint64(0); b*layout.EntryBundleWidth < size; b++ {
		raw, err := lc.Tiles().ReadEntryBundle(ctx, b, layout.PartialTileSize(0, b, size))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(bytes.ToLower(raw), []byte("marker")) {
			t.Fatalf("entry bundle %d holds a marker:\n%s", b, raw)
		}
		var eb api.EntryBundle
		if err := eb.UnmarshalText(raw); err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, eb.Entries...)
	}
	if len(leaves) < 4 {
		t.Fatalf("%d leaves, want the event, the proxied request and response, and an access.read", len(leaves))
	}
	// The same subject has one pseudonym, whichever way it came in.
	var ps string
	subjects := 0
	for _, d := range leaves {
		l, err := event.ParseLeaf(d)
		if err != nil {
			t.Fatal(err)
		}
		if l.Subject != "" {
			subjects++
			if ps != "" && l.Subject != ps {
				t.Fatalf("the subject has two pseudonyms: %s and %s", ps, l.Subject)
			}
			ps = l.Subject
		}
	}
	if subjects < 3 || !strings.HasPrefix(ps, "ps_") {
		t.Fatalf("%d leaves carry the subject pseudonym %q, want 3", subjects, ps)
	}
	// An auditor resolves it (and that read is logged).
	r, err := lc.Pseudonym(ctx, "", ps)
	if err != nil || r.Value != subject {
		t.Fatalf("Pseudonym(%s) = %+v, %v; want %s", ps, r, err, subject)
	}
	// Erase the subject: the mapping is gone, the log stays valid.
	if err := s.srv.Vault().ErasePseudonym(ctx, DefaultTenant, ps); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Pseudonym(ctx, "", ps); !errors.Is(err, client.ErrErased) {
		t.Fatalf("Pseudonym after erasure = %v, want ErrErased", err)
	}
	d, err := lc.Payload(ctx, w[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Pseudonyms[ps]; ok {
		t.Fatal("the disclosure still resolves the erased subject")
	}
	key, _ := checkpoint.NewVerifier(s.srv.VerifierKey())
	s.waitCovered(t, s.size(t)-1)
	rep, err := verify.Audit(ctx, verify.Config{Log: lc, LogKey: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil || !rep.OK() {
		t.Fatalf("audit after erasure: %v, %+v", err, rep)
	}
}

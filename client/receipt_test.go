package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"

	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

func TestVerifyReceipt(t *testing.T) {
	l := newTestLog(t)
	ctx := context.Background()
	for range 10 {
		if _, err := l.admin.Append(ctx, []*event.Request{ev("a", "llm.request", "")}); err != nil {
			t.Fatal(err)
		}
	}
	resp := writeWithReceipt(t, l, "b")
	vr, err := api.VerifyReceipt(resp, l.key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := vr.Event(); err != nil || ev.Session != "b" || vr.Index != 1+10 { // after the admin token's creation
		t.Fatalf("verified %+v (%v)", vr, err)
	}
	var wrapper struct {
		Receipt json.RawMessage `json:"receipt"`
	}
	json.Unmarshal(resp, &wrapper)
	// GET /v1/entries/{index} answers a bare receipt.
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/entries/%d", l.hs.URL, 3), nil)
	req.Header.Set("Authorization", "Bearer "+l.token)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bare, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if _, err := api.VerifyReceipt(bare, l.key, nil); err != nil {
		t.Fatalf("entry receipt: %v", err)
	}

	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(wrapper.Receipt, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	_, otherKey, _ := checkpoint.GenerateKey(l.key.Name())
	ov, _ := checkpoint.NewVerifier(otherKey)
	for _, tc := range []struct {
		name string
		data []byte
		key  bool
		want error
	}{
		{"other leaf", mutate(func(m map[string]any) { m["leaf"] = base64.StdEncoding.EncodeToString([]byte(`{"v":1}`)) }), false, api.ErrReceiptLeafHash},
		{"other index", mutate(func(m map[string]any) { m["index"] = 9 }), false, api.ErrReceiptInclusion},
		{"short proof", mutate(func(m map[string]any) { m["inclusion_proof"] = m["inclusion_proof"].([]any)[1:] }), false, api.ErrReceiptInclusion},
		{"size", mutate(func(m map[string]any) { m["tree_size"] = 5 }), false, api.ErrReceiptInclusion},
		{"tlog_proof of another entry", mutate(func(m map[string]any) {
			m["tlog_proof"] = strings.Replace(m["tlog_proof"].(string), fmt.Sprintf("\nindex %v\n", m["index"]), "\nindex 3\n", 1)
		}), false, api.ErrReceiptMalformed},
		{"unknown field", mutate(func(m map[string]any) { m["x"] = 1 }), false, api.ErrReceiptMalformed},
		{"key in another case", mutate(func(m map[string]any) { m["Index"] = m["index"]; delete(m, "index") }), false, api.ErrReceiptMalformed},
		{"no receipt", []byte(`{"index":1,"leaf":"e30="}`), false, api.ErrReceiptMalformed},
		{"other log key", wrapper.Receipt, true, api.ErrReceiptCheckpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := l.key
			if tc.key {
				k = ov
			}
			_, err := api.VerifyReceipt(tc.data, k, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// With a policy whose quorum the log does not meet, receipts fail.
	_, wvkey, _ := note.GenerateKey(rand.Reader, "example.com/w")
	cwvkey, _ := fnote.VKeyToCosignatureV1(wvkey)
	pol, err := checkpoint.ParsePolicy([]byte("witness w " + cwvkey + " http://127.0.0.1:1\nquorum w\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.VerifyReceipt(resp, l.key, pol); !errors.Is(err, api.ErrReceiptCheckpoint) {
		t.Fatalf("policy: err = %v", err)
	}
}

// writeWithReceipt writes one event with ?wait=checkpoint and returns the
// raw write response.
func writeWithReceipt(t *testing.T, l *testLog, session string) []byte {
	t.Helper()
	body, _ := json.Marshal(ev(session, "llm.request", ""))
	req, _ := http.NewRequest(http.MethodPost, l.hs.URL+"/v1/events?wait=checkpoint", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	return b
}

// TestEntryProof: the client reads an entry's tlog-proof, which verifies
// and is the entry the write answered; another tenant's reader gets
// ErrNotFound and no proof.
func TestEntryProof(t *testing.T) {
	l := newTestLog(t)
	ctx := context.Background()
	w, err := l.admin.Append(ctx, []*event.Request{ev("p", "tool.call", "")}, client.WaitForCheckpoint())
	if err != nil {
		t.Fatal(err)
	}
	text, rc, err := l.admin.EntryProof(ctx, w[0].Index)
	if err != nil {
		t.Fatal(err)
	}
	if !api.IsTlogProof(text) || string(text) != rc.TlogProof || string(text) != w[0].Receipt.TlogProof {
		t.Fatalf("EntryProof text %q, receipt's %q", text, w[0].Receipt.TlogProof)
	}
	vr, err := api.NewReceiptVerifier(l.key, nil).Verify(rc)
	if err != nil || vr.Index != w[0].Index || !bytes.Equal(vr.Leaf, w[0].Leaf) {
		t.Fatalf("verified %+v, %v", vr, err)
	}
	tok, _, err := l.srv.Tokens().Create(ctx, auth.Spec{Name: "other", Tenant: "other-tenant", Scopes: []string{auth.ScopeRead}})
	if err != nil {
		t.Fatal(err)
	}
	if text, _, err := l.client(t, tok).EntryProof(ctx, w[0].Index); !errors.Is(err, client.ErrNotFound) || text != nil {
		t.Fatalf("another tenant's reader: %q, %v; want ErrNotFound", text, err)
	}
}

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
	"testing"

	fnote "github.com/transparency-dev/formats/note"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

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
	vr, err := client.VerifyReceipt(resp, l.key, nil)
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
	if _, err := client.VerifyReceipt(bare, l.key, nil); err != nil {
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
		{"other leaf", mutate(func(m map[string]any) { m["leaf"] = base64.StdEncoding.EncodeToString([]byte(`{"v":1}`)) }), false, client.ErrReceiptLeafHash},
		{"other index", mutate(func(m map[string]any) { m["index"] = 9 }), false, client.ErrReceiptInclusion},
		{"short proof", mutate(func(m map[string]any) { m["inclusion_proof"] = m["inclusion_proof"].([]any)[1:] }), false, client.ErrReceiptInclusion},
		{"size", mutate(func(m map[string]any) { m["tree_size"] = 5 }), false, client.ErrReceiptInclusion},
		{"unknown field", mutate(func(m map[string]any) { m["x"] = 1 }), false, client.ErrReceiptMalformed},
		{"key in another case", mutate(func(m map[string]any) { m["Index"] = m["index"]; delete(m, "index") }), false, client.ErrReceiptMalformed},
		{"no receipt", []byte(`{"index":1,"leaf":"e30="}`), false, client.ErrReceiptMalformed},
		{"other log key", wrapper.Receipt, true, client.ErrReceiptCheckpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := l.key
			if tc.key {
				k = ov
			}
			_, err := client.VerifyReceipt(tc.data, k, nil)
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
	if _, err := client.VerifyReceipt(resp, l.key, pol); !errors.Is(err, client.ErrReceiptCheckpoint) {
		t.Fatalf("policy: err = %v", err)
	}
}

func FuzzParseReceipt(f *testing.F) {
	f.Add([]byte(`{"index":1,"leaf":"e30=","leaf_hash":"00","tree_size":2,"inclusion_proof":["AA=="],"checkpoint":"x\n2\nAA==\n"}`))
	f.Add([]byte(`{"receipt":{"index":0}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := client.ParseReceipt(data)
		if err == nil && (r.Checkpoint == "" || len(r.Leaf) == 0) {
			t.Fatal("accepted an incomplete receipt")
		}
	})
}

// TestVerifyInclusionMatchesMerkle checks the allocation-free inclusion
// check against transparency-dev/merkle on every index of trees up to 130
// leaves and on corrupted proofs.
func TestVerifyInclusionMatchesMerkle(t *testing.T) {
	tr := testonly.New(rfc6962.DefaultHasher)
	for n := uint64(1); n <= 130; n++ {
		tr.AppendData([]byte(fmt.Sprint(n)))
		root := tr.Hash()
		for i := uint64(0); i < n; i++ {
			p, err := tr.InclusionProof(i, n)
			if err != nil {
				t.Fatal(err)
			}
			lh := tr.LeafHash(i)
			if err := client.VerifyInclusion(i, n, lh, p, root); err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			cases := [][][]byte{append(p, lh)}
			if len(p) > 0 {
				cases = append(cases, p[1:], append([][]byte{lh}, p[1:]...))
			}
			for _, bad := range cases {
				want := proof.VerifyInclusion(rfc6962.DefaultHasher, i, n, lh, bad, root)
				got := client.VerifyInclusion(i, n, lh, bad, root)
				if (want == nil) != (got == nil) {
					t.Fatalf("n=%d i=%d: merkle %v, ours %v", n, i, want, got)
				}
			}
			if i+1 < n && client.VerifyInclusion(i+1, n, lh, p, root) == nil && proof.VerifyInclusion(rfc6962.DefaultHasher, i+1, n, lh, p, root) != nil {
				t.Fatalf("n=%d i=%d: accepted the wrong index", n, i)
			}
		}
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

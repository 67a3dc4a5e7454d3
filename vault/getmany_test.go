package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkGetMany reads a session's payloads as the session export does:
// GetMany of 256 ids at a time, in the session's order, of 1 KiB chat
// requests and their answers (compressed and sealed as the vault stores
// them), 20,000 of them in one session.
//
//	go test ./vault -run '^$' -bench GetMany -benchtime 5x
func BenchmarkGetMany(b *testing.B) {
	ctx := context.Background()
	db := filepath.Join(b.TempDir(), "vault.db")
	v, err := openFile(&testing.T{}, db, key(1))
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	const n = 20_000
	ids := make([]string, n)
	var recs []Record
	for i := range n {
		ids[i] = fmt.Sprintf("%032x", i+1)
		p := fmt.Sprintf(`{"model":"gpt-4o","messages":[{"role":"system","content":"You are a careful agent."},{"role":"user","content":"Question %d: %s"}]}`, i, strings.Repeat("context ", 110))
		if i%2 == 1 {
			p = fmt.Sprintf(`{"id":"chatcmpl-%06d","object":"chat.completion","created":1764600000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Answer %d."},"finish_reason":"stop"}]}`, i, i)
		}
		recs = append(recs, Record{ID: ids[i], Tenant: "t", Session: "s", MediaType: "application/json", Salt: key(byte(i)), Payload: []byte(p)})
		if len(recs) == 1000 {
			if err := v.Put(ctx, recs...); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	b.ResetTimer()
	cpu := cpuTime()
	for b.Loop() {
		for start := 0; start < n; start += 256 {
			found, failed, err := v.GetMany(ctx, ids[start:min(start+256, n)])
			if err != nil || len(failed) > 0 || len(found) != min(256, n-start) {
				b.Fatalf("%d found, %v, %v", len(found), failed, err)
			}
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/1e3/float64(n*b.N), "cpu-µs/payload")
}

// TestGetMany: records of two sessions read together; an erased
// session's are failed with ErrErased, an unknown id is in neither map,
// and a payload sealed under a data key that does not unwrap fails.
func TestGetMany(t *testing.T) {
	ctx := context.Background()
	v, err := openFile(t, filepath.Join(t.TempDir(), "vault.db"), key(1))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var recs []Record
	for i := range 6 {
		recs = append(recs, Record{ID: fmt.Sprintf("e%d", i), Tenant: "t", Session: fmt.Sprintf("s%d", i%3), MediaType: "application/json",
			Salt: key(byte(i)), Payload: fmt.Appendf(nil, `{"n":%d,"text":%q}`, i, strings.Repeat("x", 100*i))})
	}
	if err := v.Put(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	if _, err := v.EraseSession(ctx, "t", "s2"); err != nil {
		t.Fatal(err)
	}
	// s1's wrapped key altered: it no longer unwraps.
	if _, err := v.db.ExecContext(ctx, `UPDATE data_keys SET wrapped = ? WHERE tenant = 't' AND session = 's1'`, bytes.Repeat([]byte{9}, 60)); err != nil {
		t.Fatal(err)
	}
	v.keys = map[sessionKey]*dataKey{}
	found, failed, err := v.GetMany(ctx, []string{"e0", "e1", "e2", "e3", "e4", "e5", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 3} {
		r, ok := found[recs[i].ID]
		if !ok || !bytes.Equal(r.Payload, recs[i].Payload) || !bytes.Equal(r.Salt, recs[i].Salt) || r.Session != recs[i].Session || r.MediaType != recs[i].MediaType {
			t.Errorf("%s: %+v, %v", recs[i].ID, r, ok)
		}
	}
	for _, id := range []string{"e2", "e5"} {
		if !errors.Is(failed[id], ErrErased) {
			t.Errorf("%s: %v, want ErrErased", id, failed[id])
		}
	}
	for _, id := range []string{"e1", "e4"} {
		if failed[id] == nil || errors.Is(failed[id], ErrErased) {
			t.Errorf("%s: %v, want an unwrap error", id, failed[id])
		}
	}
	if _, ok := found["nope"]; ok || failed["nope"] != nil || len(found) != 2 || len(failed) != 4 {
		t.Errorf("found %d, failed %v", len(found), failed)
	}
}

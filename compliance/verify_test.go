package compliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/crafttest"
)

// TestVerifyRecomputes: a report verifies by recomputation at its
// checkpoint, also after the log has grown (older partial tiles are gone);
// a report edited after the fact names the control it changed; a report
// whose range spans a tampered tile fails on the integrity controls.
func TestVerifyRecomputes(t *testing.T) {
	w := newWorld(t)
	w.build(nil)
	r := w.compute("sox", testParams())
	canon, _ := r.Canonical()
	// The log grows past the report's checkpoint.
	for range 300 {
		w.add(crafttest.Craft{Kind: "tool.call", Session: "later", Attrs: crafttest.Attrs("gen_ai.tool.name", "search")})
	}
	w.c.WaitPublished()
	v, err := Verify(context.Background(), w.source(), canon)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Equal || v.SHA256 != Digest(canon) || v.Recomputed != v.SHA256 {
		t.Fatalf("verification of an untouched report: %+v", v)
	}

	// An edited report: one control's status changed.
	var m map[string]any
	json.Unmarshal(canon, &m)
	ctl := m["controls"].([]any)[1].(map[string]any)
	ctl["status"] = NotSatisfied
	edited, _ := json.Marshal(m)
	v, err = Verify(context.Background(), w.source(), edited)
	if err != nil {
		t.Fatal(err)
	}
	if v.Equal || v.Difference != "control "+r.Controls[1].ID || !strings.Contains(v.Detail, "given not-satisfied, recomputed satisfied") {
		t.Fatalf("edited report: %+v", v)
	}

	// A tampered hash tile inside the report's range.
	tile := filepath.Join(w.c.Dir, "tile", "0", "000")
	b, err := os.ReadFile(tile)
	if err != nil {
		t.Fatal(err)
	}
	b[32*20] ^= 0x55
	os.WriteFile(tile, b, 0o644)
	v, err = Verify(context.Background(), w.source(), canon)
	if err != nil {
		t.Fatal(err)
	}
	if v.Equal || v.Difference != "control sox-as1105" {
		t.Fatalf("tampered tile: %+v", v)
	}
	if c := control(v.Report, "sox-as1105"); c.Status != NotSatisfied {
		t.Errorf("sox-as1105 after tampering: %s (%s)", c.Status, c.Evidence.Summary)
	}
	if !bytes.Contains([]byte(v.Detail), []byte("not-satisfied")) {
		t.Errorf("the first difference does not say what failed: %s: %s", v.Difference, v.Detail)
	}
}

// TestPinnedReport: a report pinned below the checkpoint (Source.AtSize)
// judges the log's first entries only, as the report computed when the
// checkpoint was at that size did: a break of the trail after it is not
// its finding. Its tree is anchored by a consistency proof to the newer
// checkpoint, and it verifies by recomputation.
func TestPinnedReport(t *testing.T) {
	w := newWorld(t)
	w.build(nil)
	r := w.compute("part11", testParams())
	w.add(crafttest.Craft{Kind: "tool.result", Session: "case-1", SkipSeq: true, Attrs: crafttest.Attrs("gen_ai.tool.name", "search")})
	w.c.WaitPublished()
	if c := control(w.compute("part11", testParams()), "part11-11.10e"); c.Status != NotSatisfied {
		t.Fatalf("the seq gap after the pin: %s", c.Status)
	}
	src := w.source()
	src.AtSize = r.Log.Size
	p, err := Compute(context.Background(), src, Query{Profile: "part11", Tenant: tenant, From: w.from, To: w.to}, testParams())
	if err != nil {
		t.Fatal(err)
	}
	if p.Log.Size != r.Log.Size || p.Log.Root != r.Log.Root || p.Log.CheckpointSize != w.c.Size || len(p.Log.ProofToCheckpoint) == 0 ||
		!reflect.DeepEqual(p.Range, r.Range) || p.Entries.Total != r.Entries.Total {
		t.Fatalf("pinned: log %+v range %+v, want size %d root %s", p.Log, p.Range, r.Log.Size, r.Log.Root)
	}
	for i, c := range p.Controls {
		if c.Status != r.Controls[i].Status || c.Evidence.Summary != r.Controls[i].Evidence.Summary {
			t.Errorf("%s: pinned %s (%s), at the time %s", c.ID, c.Status, c.Evidence.Summary, r.Controls[i].Status)
		}
	}
	canon, _ := p.Canonical()
	if v, err := Verify(context.Background(), w.source(), canon); err != nil || !v.Equal {
		t.Fatalf("verifying the pinned report: %+v %v", v, err)
	}
	src.AtSize = w.c.Size + 1
	if _, err := Compute(context.Background(), src, Query{Profile: "part11", Tenant: tenant, From: w.from, To: w.to}, testParams()); !errors.Is(err, ErrQuery) {
		t.Errorf("pinned beyond the checkpoint: %v", err)
	}
}

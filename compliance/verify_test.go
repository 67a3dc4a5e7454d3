package compliance

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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

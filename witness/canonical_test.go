package witness_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
	"github.com/llmaudittrail/llmaudittrail/witness"
)

// TestNonCanonicalCheckpointRefused (issue #24, finding 10): a checkpoint
// signed by the log whose text states the right tree in a non-canonical
// form (size "03", a root hash with non-zero base64 padding bits) is a
// malformed request: 400, not cosigned. The canonical text of the same
// tree is then cosigned.
func TestNonCanonicalCheckpointRefused(t *testing.T) {
	const origin = "log.test/canonical"
	l := witnesstest.NewLog(t, origin)
	l.Append(3)
	root := base64.StdEncoding.EncodeToString(l.Root(3))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := strings.IndexByte(alphabet, root[42]) // 4 data bits, 2 padding bits
	paddingBits := root[:42] + string(alphabet[last|1]) + "="
	if b, err := base64.StdEncoding.DecodeString(paddingBits); err != nil || string(b) != string(l.Root(3)) {
		t.Fatalf("the padding-bits spelling does not decode to the root: %v", err)
	}
	for _, tc := range []struct{ name, text string }{
		{"size 03", fmt.Sprintf("%s\n03\n%s\n", origin, root)},
		{"size 003", fmt.Sprintf("%s\n003\n%s\n", origin, root)},
		{"root hash with padding bits", fmt.Sprintf("%s\n3\n%s\n", origin, paddingBits)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tw := newTestWitness(t, l)
			r := tw.post(t, witnesstest.Request(0, nil, l.SignText(t, tc.text)))
			if r.status != http.StatusBadRequest || !strings.Contains(r.body, "not canonical") {
				t.Fatalf("add-checkpoint of %q = %d %q, want 400 not canonical", tc.text, r.status, r.body)
			}
			if _, err := tw.w.Checkpoint(t.Context(), origin); !errors.Is(err, witness.ErrNotCosigned) {
				t.Fatalf("after the refusal, Checkpoint = %v, want ErrNotCosigned", err)
			}
			if r := tw.post(t, l.AddRequest(t, 0, 3)); r.status != http.StatusOK {
				t.Fatalf("canonical add-checkpoint = %d %q, want 200", r.status, r.body)
			}
		})
	}
}

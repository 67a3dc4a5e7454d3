package monitor

import (
	"context"
	"fmt"
	"github.com/llmaudittrail/llmaudittrail/verify"

	fmtlog "github.com/transparency-dev/formats/log"
)

// ExportEntry is a verified entry handed to Config.Export.
type ExportEntry struct {
	Index    uint64
	Leaf     []byte
	LeafHash []byte
}

// ExportCheckpoint is the verified checkpoint that covers exported entries.
type ExportCheckpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	Note   []byte // as the log served it, with its cosignatures
}

// ExportFunc receives verified entries in index order (Config.Export). An
// error stops the monitor from advancing: the entries are handed over again
// at the next poll, and after a restart every entry not recorded as
// evaluated is handed over again, so delivery is at least once.
type ExportFunc func(ctx context.Context, cp ExportCheckpoint, entries []ExportEntry) error

// exportBatch is the most entries handed to Config.Export at once.
const exportBatch = 512

// export hands es to Config.Export before they are recorded as evaluated.
func (m *Monitor) export(ctx context.Context, cp *fmtlog.Checkpoint, raw []byte, es []verify.Entry) error {
	if m.cfg.Export == nil || len(es) == 0 {
		return nil
	}
	c := ExportCheckpoint{Origin: m.origin, Size: cp.Size, Root: cp.Hash, Note: raw}
	for len(es) > 0 {
		n := min(len(es), exportBatch)
		out := make([]ExportEntry, n)
		for i, e := range es[:n] {
			out[i] = ExportEntry{Index: e.Index, Leaf: e.Data, LeafHash: e.Hash}
		}
		if err := m.cfg.Export(ctx, c, out); err != nil {
			return fmt.Errorf("exporting entries %d-%d: %w", es[0].Index, es[n-1].Index, err)
		}
		es = es[n:]
	}
	return nil
}

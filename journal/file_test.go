package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(t *testing.T, cfg FileConfig) (*File, []Record) {
	t.Helper()
	cfg.Logger = quiet
	j, err := OpenFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	recs := drain(j)
	for _, r := range recs {
		if !r.Maybe {
			t.Fatalf("record %d found at open is not marked Maybe", r.Pos)
		}
	}
	return j, recs
}

// drain takes every record Next has now.
func drain(j *File) []Record {
	var out []Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		rs, err := j.Next(ctx, 7)
		cancel()
		if err != nil {
			return out
		}
		out = append(out, rs...)
	}
}

func appendN(t *testing.T, j *File, from, n int) []*Entry {
	t.Helper()
	var es []*Entry
	for i := from; i < from+n; i++ {
		e := &Entry{Data: fmt.Appendf(nil, "record %d", i), Tag: "tag"}
		if err := j.Append(context.Background(), []*Entry{e}); err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	return es
}

func wantRecords(t *testing.T, recs []Record, firstPos uint64, from, n int) {
	t.Helper()
	if len(recs) != n {
		t.Fatalf("got %d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if r.Pos != firstPos+uint64(i) || string(r.Data) != fmt.Sprintf("record %d", from+i) {
			t.Fatalf("record %d = %d %q, want %d %q", i, r.Pos, r.Data, firstPos+uint64(i), fmt.Sprintf("record %d", from+i))
		}
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	j, recs := open(t, FileConfig{Dir: dir})
	if len(recs) != 0 {
		t.Fatalf("a new journal holds %d records", len(recs))
	}
	es := appendN(t, j, 0, 10)
	var seen []uint64
	for _, r := range drain(j) {
		if r.Maybe || r.Tag != "tag" {
			t.Fatalf("record %d appended now: maybe %v, tag %v", r.Pos, r.Maybe, r.Tag)
		}
		seen = append(seen, r.Pos)
	}
	if es[0].Pos != 1 || es[9].Pos != 10 || !slices.Equal(seen, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Fatalf("positions %d..%d, Next gave %v", es[0].Pos, es[9].Pos, seen)
	}
	if j.Recovered() != 0 {
		t.Fatalf("Recovered %d for a new journal", j.Recovered())
	}
	j.Close()
	if fi, err := os.Stat(filepath.Join(dir, segName(1))); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("segment file: %v %v", fi, err)
	}
	j2, recs := open(t, FileConfig{Dir: dir})
	wantRecords(t, recs, 1, 0, 10)
	if j2.Recovered() != 10 {
		t.Fatalf("Recovered %d, want 10", j2.Recovered())
	}
	e := appendN(t, j2, 10, 1)
	if e[0].Pos != 11 {
		t.Fatalf("after reopening the next position is %d, want 11", e[0].Pos)
	}
}

// A record cut short (a crash in the middle of a write, never
// acknowledged) is cut off; the records before it are kept, and the next
// append takes its position.
func TestTornTail(t *testing.T) {
	for _, cut := range []int{1, frameHead - 1, frameHead, frameHead + 3} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			dir := t.TempDir()
			j, _ := open(t, FileConfig{Dir: dir})
			appendN(t, j, 0, 5)
			j.Close()
			path := filepath.Join(dir, segName(1))
			whole, _ := os.ReadFile(path)
			frame := appendFrame(nil, 6, []byte("record 5 that never made it"), true)
			if err := os.WriteFile(path, append(slices.Clone(whole), frame[:cut]...), 0o600); err != nil {
				t.Fatal(err)
			}
			j2, recs := open(t, FileConfig{Dir: dir})
			wantRecords(t, recs, 1, 0, 5)
			if after, _ := os.ReadFile(path); !bytes.Equal(after, whole) {
				t.Fatalf("the torn record was not cut off: %d bytes, want %d", len(after), len(whole))
			}
			if e := appendN(t, j2, 5, 1); e[0].Pos != 6 {
				t.Fatalf("next position %d, want 6", e[0].Pos)
			}
			j2.Close()
			_, recs = open(t, FileConfig{Dir: dir})
			wantRecords(t, recs, 1, 0, 6)
		})
	}
}

// A group commit of which the crash kept some frames and not others (pages
// of one write reach the disk in any order before its fsync) was never
// acknowledged: all of it is cut off, whichever frames survived.
func TestTornGroup(t *testing.T) {
	for name, keep := range map[string][]bool{
		"first frames only":  {true, true, false},
		"last frame only":    {false, false, true},
		"middle frame lost":  {true, false, true},
		"whole but unclosed": {true, true, true}, // the group's last frame never written
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			j, _ := open(t, FileConfig{Dir: dir})
			appendN(t, j, 0, 5)
			j.Close()
			path := filepath.Join(dir, segName(1))
			whole, _ := os.ReadFile(path)
			b := slices.Clone(whole)
			for i, k := range keep {
				end := i == len(keep)-1 && name != "whole but unclosed"
				f := appendFrame(nil, uint64(6+i), fmt.Appendf(nil, "record %d of a lost group", 5+i), end)
				if !k {
					f = make([]byte, len(f)) // a page that never reached the disk reads as zeros
				}
				b = append(b, f...)
			}
			os.WriteFile(path, b, 0o600)
			j2, recs := open(t, FileConfig{Dir: dir})
			wantRecords(t, recs, 1, 0, 5)
			if after, _ := os.ReadFile(path); !bytes.Equal(after, whole) {
				t.Fatalf("the torn group was not cut off: %d bytes, want %d", len(after), len(whole))
			}
			if e := appendN(t, j2, 5, 1); e[0].Pos != 6 {
				t.Fatalf("next position %d, want 6", e[0].Pos)
			}
		})
	}
}

// Damage in the last segment to a group that was followed by another group
// is damage to acknowledged records (a group is written only once the one
// before it is durable), not a torn write: the journal does not open, and
// the segment is left as it is.
func TestDamageInTheLastSegment(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, FileConfig{Dir: dir})
	appendN(t, j, 0, 6) // six groups of one record
	j.Close()
	path := filepath.Join(dir, segName(1))
	b, _ := os.ReadFile(path)
	b[frameHead] ^= 0xff // the first record's data
	os.WriteFile(path, b, 0o600)
	_, err := OpenFile(FileConfig{Dir: dir, Logger: quiet})
	if !errors.Is(err, errDamaged) {
		t.Fatalf("a journal whose last segment is damaged before its last group opened: %v", err)
	}
	t.Log(err)
	if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
		t.Fatal("the damaged segment was changed")
	}
	// The last group alone damaged may be a torn write: cut off.
	b, _ = os.ReadFile(path)
	b[frameHead] ^= 0xff
	b[len(b)-1] ^= 0xff
	os.WriteFile(path, b, 0o600)
	_, recs := open(t, FileConfig{Dir: dir})
	wantRecords(t, recs, 1, 0, 5)
}

// A damaged record in a segment that is not the last cannot be a torn
// write: the journal refuses to open rather than lose what follows.
func TestDamageBeforeTheEnd(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, FileConfig{Dir: dir, SegmentSize: 64})
	appendN(t, j, 0, 6)
	j.Close()
	path := filepath.Join(dir, segName(1))
	b, _ := os.ReadFile(path)
	b[frameHead] ^= 0xff // the first record's data
	os.WriteFile(path, b, 0o600)
	if _, err := OpenFile(FileConfig{Dir: dir, Logger: quiet}); err == nil {
		t.Fatal("a journal with a damaged record before its last segment opened")
	} else {
		t.Log(err)
	}
}

// Released records are removed a segment at a time; what is not released
// comes back after a restart.
func TestRelease(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, FileConfig{Dir: dir, SegmentSize: 100})
	appendN(t, j, 0, 20) // ~ 3 records per segment
	segs := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
		return len(m)
	}
	before := segs()
	if before < 5 {
		t.Fatalf("%d segments for 20 records of ~24 bytes at 100 bytes a segment", before)
	}
	j.Release(context.Background(), []Record{{Pos: 12}})
	if j.Depth() != 8 {
		t.Fatalf("depth %d after releasing 12 of 20", j.Depth())
	}
	appendN(t, j, 20, 1) // the writer collects after a write
	if after := segs(); after >= before {
		t.Fatalf("%d segments after releasing 12 of 20 records, %d before", after, before)
	}
	j.Close()
	_, recs := open(t, FileConfig{Dir: dir})
	if len(recs) < 9 || recs[len(recs)-1].Pos != 21 || recs[0].Pos > 13 {
		t.Fatalf("after release and restart: %d records, %d..%d; want at least 13..21", len(recs), recs[0].Pos, recs[len(recs)-1].Pos)
	}
}

// Forget removes every released record at once, overwritten first.
func TestForget(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, FileConfig{Dir: dir})
	secret := []byte("SECRET-PAYLOAD-BYTES")
	if err := j.Append(context.Background(), []*Entry{{Data: secret}}); err != nil {
		t.Fatal(err)
	}
	j.Release(context.Background(), []Record{{Pos: 1}})
	if err := j.Forget(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	for _, p := range m {
		if b, _ := os.ReadFile(p); bytes.Contains(b, secret) {
			t.Fatalf("%s still holds the released record", p)
		}
	}
	if len(m) != 1 {
		t.Fatalf("%d segments after Forget, want the new empty one", len(m))
	}
	if e := appendN(t, j, 0, 1); e[0].Pos != 2 {
		t.Fatalf("position after Forget %d, want 2", e[0].Pos)
	}
	// A record not released yet: Forget says so.
	if err := j.Forget(context.Background()); !errors.Is(err, ErrNotReleased) {
		t.Fatalf("Forget with a record not released = %v, want ErrNotReleased", err)
	}
	j.Close()
	// A segment left half overwritten by a crash during Forget is not
	// taken for a damaged segment.
	os.WriteFile(filepath.Join(dir, segName(1)+forgotten), make([]byte, 100), 0o600)
	_, recs := open(t, FileConfig{Dir: dir})
	wantRecords(t, recs, 2, 0, 1)
	if left, _ := filepath.Glob(filepath.Join(dir, "*"+forgotten)); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// Concurrent appends share fsyncs, and Next gives every record once, in
// position order.
func TestGroupCommit(t *testing.T) {
	var groups, records atomic.Int64
	j, _ := open(t, FileConfig{Dir: t.TempDir(),
		GroupSize: func(n int) { groups.Add(1); records.Add(int64(n)) }})
	var seen []uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(seen) < 32*20*2 {
			rs, err := j.Next(context.Background(), 100)
			if err != nil {
				return
			}
			for _, r := range rs {
				seen = append(seen, r.Pos)
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := range 20 {
				if err := j.Append(context.Background(), []*Entry{{Data: fmt.Appendf(nil, "%d/%d", w, i)}, {Data: []byte("second")}}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	<-done
	if records.Load() != 32*20*2 || len(seen) != 32*20*2 {
		t.Fatalf("%d records in groups, %d seen; want %d", records.Load(), len(seen), 32*20*2)
	}
	for i, p := range seen {
		if p != uint64(i+1) {
			t.Fatalf("durable saw position %d at %d", p, i)
		}
	}
	t.Logf("%d appends of 2 records in %d groups", 32*20, groups.Load())
	if groups.Load() >= 32*20 {
		t.Fatalf("%d groups for %d concurrent appends: no group commit", groups.Load(), 32*20)
	}
}

func TestTooLarge(t *testing.T) {
	j, _ := open(t, FileConfig{Dir: t.TempDir()})
	if err := j.Append(context.Background(), []*Entry{{Data: make([]byte, MaxRecord+1)}}); err != ErrTooLarge {
		t.Fatalf("a record over MaxRecord: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(appendFrame(appendFrame(nil, 1, []byte("a"), false), 2, []byte("bc"), true))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, segName(1)), b, 0o600)
		j, err := OpenFile(FileConfig{Dir: dir, Logger: quiet})
		if err != nil {
			return
		}
		defer j.Close()
		recs := drain(j)
		for i, r := range recs {
			if r.Pos != uint64(i+1) {
				t.Fatalf("record %d at position %d", i, r.Pos)
			}
		}
		e := &Entry{Data: []byte("next")}
		if err := j.Append(context.Background(), []*Entry{e}); err != nil || e.Pos != uint64(len(recs)+1) {
			t.Fatalf("append after open: %v at %d", err, e.Pos)
		}
	})
}

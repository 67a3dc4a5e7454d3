// Package journal keeps the engine's write-ahead journal: an append is
// acknowledged once its record is durable here, and the log is built from
// the journal behind it.
//
// File is the journal of one log-server on a local file system: append-only
// segment files in a directory, written by one goroutine that gathers every
// append waiting while the previous group was written into one write and one
// fsync (group commit). Records carry their position and a CRC-32C, and the
// last record of each group says so; a group cut short by a crash (it was
// never acknowledged) is cut off when the journal is opened again, and damage
// to a group that was acknowledged stops the journal from opening. Records released by the engine (in the log) are
// removed a segment at a time.
package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Errors.
var (
	// ErrClosed: the journal was closed.
	ErrClosed = errors.New("journal closed")
	// ErrBroken: a write or fsync failed and the journal could not be put
	// back to its last durable state; it takes no more records until it is
	// opened again.
	ErrBroken = errors.New("journal broken by a failed write; restart the server")
	// ErrNotReleased: Forget could not remove every record, some not being
	// released yet (their segment goes once they are, not overwritten).
	ErrNotReleased = errors.New("journal: records not yet released remain")
	// ErrTooLarge: a record exceeds MaxRecord.
	ErrTooLarge = errors.New("journal record too large")
)

// MaxRecord bounds one record.
const MaxRecord = 256 << 20

// Defaults of FileConfig.
const (
	DefaultSegmentSize = 64 << 20
	// DefaultRotateReleased: a segment every record of which is released
	// is replaced by a new one once it holds this much.
	DefaultRotateReleased = 1 << 20
	// DefaultMaxGroup bounds the bytes of one group commit.
	DefaultMaxGroup = 8 << 20
)

// Entry is one record to append.
type Entry struct {
	Data []byte
	// Tenant, Session, Seq and Prev name the session chain the record
	// extends: its event's seq and the leaf hash of the session's previous
	// event (nil at seq 0); Hash is the record's own leaf hash. A store that
	// keeps session heads (HeadStore) checks and advances them.
	Tenant, Session string
	Seq             uint64
	Prev, Hash      []byte
	// Tag is the caller's; Next hands it back with the record when the
	// record was appended by this process.
	Tag any
	// Pos is set by a File journal.
	Pos uint64
}

// Record is one record to sequence.
type Record struct {
	Pos  uint64
	Data []byte
	// Tag is the Entry's Tag, when this process appended the record.
	Tag any
	// Maybe: the record may already be in the log (it was in the journal
	// when the journal was opened, or when this instance took over
	// sequencing); the engine looks for it there before appending it.
	Maybe bool
}

// FileConfig configures a File journal. Zero values take the defaults.
type FileConfig struct {
	// Dir is the journal's directory (created 0700 if missing).
	Dir string
	// SegmentSize: a segment is closed and a new one begun once it
	// reaches this size (DefaultSegmentSize).
	SegmentSize int64
	// GroupSize, if set, is told the number of records of every group.
	GroupSize func(int)
	Logger    *slog.Logger
}

// File is a write-ahead journal in a directory. It is safe for concurrent
// use.
type File struct {
	cfg FileConfig

	groups
	kick   chan struct{}
	forget chan chan error

	released  atomic.Uint64 // every record at or below this is released (0: none; positions start at 1)
	depth     atomic.Int64  // records appended and not released
	recovered uint64        // position of the last record found at open

	// Durable records not yet taken by Next, in order.
	qmu     sync.Mutex
	ready   []Record
	durable uint64        // position of the last durable record
	nready  chan struct{} // signalled when ready grows

	// Owned by the writer goroutine.
	segs   []*segment // oldest first; the last is being written
	next   uint64     // position of the next record
	broken error
}

type segment struct {
	first, last uint64 // last = first-1 while empty
	path        string
	f           *os.File // the last segment only
	size        int64
}

// segName is a segment's file name: its first position.
func segName(first uint64) string { return fmt.Sprintf("%020d.wal", first) }

// OpenFile opens the journal in cfg.Dir, creating it if missing. The
// records it holds come first from Next, marked Maybe. Records are
// numbered from 1.
func OpenFile(cfg FileConfig) (*File, error) {
	if cfg.Dir == "" {
		return nil, errors.New("journal: a directory is required")
	}
	if cfg.SegmentSize <= 0 {
		cfg.SegmentSize = DefaultSegmentSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	// A segment Forget was overwriting when the process stopped.
	if left, _ := filepath.Glob(filepath.Join(cfg.Dir, "*.wal"+forgotten)); len(left) > 0 {
		for _, f := range left {
			if err := zero(f); err != nil {
				return nil, fmt.Errorf("journal: %w", err)
			}
			os.Remove(f)
		}
	}
	names, err := filepath.Glob(filepath.Join(cfg.Dir, "*.wal"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	j := &File{cfg: cfg, groups: newGroups(), kick: make(chan struct{}, 1), forget: make(chan chan error), nready: make(chan struct{}, 1), next: 1}
	var recs []Record
	for i, name := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), ".wal"), 10, 64)
		if err != nil || first == 0 {
			return nil, fmt.Errorf("journal: unexpected file %s", name)
		}
		if i > 0 && first != j.next {
			return nil, fmt.Errorf("journal: segment %s begins at %d, want %d: records are missing", name, first, j.next)
		}
		last := i == len(names)-1
		rs, good, err := readSegment(name, first)
		if errors.Is(err, errDamaged) {
			return nil, fmt.Errorf("journal: segment %s: %w: acknowledged records may be lost, so the journal does not open (see docs/reliability.md)", name, err)
		}
		if err != nil && !last {
			return nil, fmt.Errorf("journal: segment %s is damaged before its end (%v): acknowledged records may be lost", name, err)
		}
		if err != nil {
			cfg.Logger.Warn("journal: cutting off a group commit the last crash left incomplete (never acknowledged)", "segment", name, "at", good, "error", err)
			if err := truncateSync(name, good); err != nil {
				return nil, err
			}
		}
		recs = append(recs, rs...)
		j.next = first + uint64(len(rs))
		j.segs = append(j.segs, &segment{first: first, last: j.next - 1, path: name, size: good})
	}
	if len(j.segs) == 0 {
		if err := j.newSegment(); err != nil {
			return nil, err
		}
	} else {
		s := j.segs[len(j.segs)-1]
		f, err := os.OpenFile(s.path, os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		s.f = f
	}
	j.released.Store(j.segs[0].first - 1)
	j.depth.Store(int64(len(recs)))
	for i := range recs {
		recs[i].Maybe = true
	}
	j.ready = recs
	if len(recs) > 0 {
		j.recovered = recs[len(recs)-1].Pos
	}
	j.durable = j.next - 1
	go j.writer()
	return j, nil
}

// readSegment reads the records of a segment up to the end of its last
// whole group (a frame marked as the end of a group commit); good is the
// offset after it, and err says why reading stopped before the end of the
// file. A group not whole (cut short, or pages of its write lost by a crash
// before its fsync) was never acknowledged, and is not returned.
//
// A damaged frame followed by a whole group and then by more frames is not
// a torn write (a group is written only after the one before it is
// durable): that is damage to acknowledged records, and readSegment says so
// with errDamaged.
func readSegment(path string, first uint64) (recs []Record, good int64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("journal: %w", err)
	}
	pos := first
	var pending []Record // records of a group not yet closed
	for off := 0; off < len(b); {
		data, n, end, err := decodeFrame(b[off:], pos)
		if err != nil {
			if later := groupAfter(b, off, pos); later >= 0 {
				return recs, good, fmt.Errorf("%w: record %d (offset %d): %v, and whole records follow at offset %d", errDamaged, pos, off, err, later)
			}
			return recs, good, err
		}
		pending = append(pending, Record{Pos: pos, Data: data})
		off += n
		pos++
		if end {
			recs = append(recs, pending...)
			pending = pending[:0]
			good = int64(off)
		}
	}
	if len(pending) > 0 {
		return recs, good, fmt.Errorf("records %d..%d: their group is not whole", pending[0].Pos, pending[len(pending)-1].Pos)
	}
	return recs, good, nil
}

// errDamaged: records that were acknowledged cannot be read.
var errDamaged = errors.New("damaged")

// groupAfter looks past a frame that does not decode at off (expected
// position pos) for a whole frame that ends a group and is followed by
// another whole frame, and returns that frame's offset, or -1.
func groupAfter(b []byte, off int, pos uint64) int {
	closed := -1 // end of the first group-ending frame found
	for o := off + 1; o+frameHead <= len(b); o++ {
		p := binary.BigEndian.Uint64(b[o+8:])
		if p <= pos || p-pos > 1<<32 {
			continue
		}
		_, n, end, err := decodeFrame(b[o:], p)
		if err != nil {
			continue
		}
		if closed >= 0 && o >= closed {
			return o
		}
		if end && closed < 0 {
			closed = o + n
		}
	}
	return -1
}

// A frame is: length of data (4 bytes; its top bit marks the last frame of
// a group commit), CRC-32C of the length, the position and the data (4),
// position (8), data; big-endian.
const (
	frameHead = 16
	groupEnd  = 1 << 31
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func frameCRC(h []byte, data []byte) uint32 {
	c := crc32.Update(0, castagnoli, h[0:4])
	c = crc32.Update(c, castagnoli, h[8:16])
	return crc32.Update(c, castagnoli, data)
}

// appendFrame appends a frame; end marks the last frame of a group.
func appendFrame(buf []byte, pos uint64, data []byte, end bool) []byte {
	var h [frameHead]byte
	l := uint32(len(data))
	if end {
		l |= groupEnd
	}
	binary.BigEndian.PutUint32(h[0:], l)
	binary.BigEndian.PutUint64(h[8:], pos)
	binary.BigEndian.PutUint32(h[4:], frameCRC(h[:], data))
	return append(append(buf, h[:]...), data...)
}

func decodeFrame(b []byte, pos uint64) (data []byte, n int, end bool, err error) {
	if len(b) < frameHead {
		return nil, 0, false, io.ErrUnexpectedEOF
	}
	l := binary.BigEndian.Uint32(b[0:])
	size := l &^ groupEnd
	if size > MaxRecord || int(size) > len(b)-frameHead {
		return nil, 0, false, io.ErrUnexpectedEOF
	}
	if p := binary.BigEndian.Uint64(b[8:]); p != pos {
		return nil, 0, false, fmt.Errorf("record at position %d says %d", pos, p)
	}
	data = b[frameHead : frameHead+int(size)]
	if frameCRC(b, data) != binary.BigEndian.Uint32(b[4:]) {
		return nil, 0, false, fmt.Errorf("record %d: checksum mismatch", pos)
	}
	return slices.Clone(data), frameHead + int(size), l&groupEnd != 0, nil
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return f.Sync()
}

// newSegment begins a segment at j.next (writer only).
func (j *File) newSegment() error {
	path := filepath.Join(j.cfg.Dir, segName(j.next))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := syncDir(j.cfg.Dir); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if n := len(j.segs); n > 0 && j.segs[n-1].f != nil {
		j.segs[n-1].f.Close()
		j.segs[n-1].f = nil
	}
	j.segs = append(j.segs, &segment{first: j.next, last: j.next - 1, path: path, f: f})
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: syncing %s: %w", dir, err)
	}
	return nil
}

// Append appends entries as consecutive records and returns once they are
// durable (their positions set, Durable called). Concurrent Appends share
// one write and one fsync. If Append fails, none of the entries is
// acknowledged; records written by a write that then failed are cut off.
func (j *File) Append(ctx context.Context, entries []*Entry) error {
	return j.submit(ctx, entries)
}

// Next returns up to max records in journal order, waiting for one if
// there is none (or until ctx ends).
func (j *File) Next(ctx context.Context, max int) ([]Record, error) {
	for {
		if out := j.TryNext(max); out != nil {
			return out, nil
		}
		select {
		case <-j.nready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-j.done:
			return nil, ErrClosed
		}
	}
}

// TryNext is Next without waiting: the records ready now, in journal
// order, at most max; nil when there are none.
func (j *File) TryNext(max int) []Record {
	j.qmu.Lock()
	defer j.qmu.Unlock()
	n := min(max, len(j.ready))
	if n <= 0 {
		return nil
	}
	out := j.ready[:n:n]
	j.ready = j.ready[n:]
	if len(j.ready) == 0 {
		j.ready = nil
	}
	return out
}

// Recovered is the position of the last record the journal held when it
// was opened (0 if none): session heads are read from the log, so appends
// wait until it is sequenced.
func (j *File) Recovered() uint64 { return j.recovered }

// Release says that recs, taken from Next, are in the log; with every
// record before them, they are dropped a segment at a time.
func (j *File) Release(_ context.Context, recs []Record) error {
	if len(recs) > 0 {
		j.release(recs[len(recs)-1].Pos)
	}
	return nil
}

func (j *File) release(pos uint64) {
	for {
		old := j.released.Load()
		if pos <= old {
			return
		}
		if j.released.CompareAndSwap(old, pos) {
			j.depth.Add(-int64(pos - old))
			break
		}
	}
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// Mark is the position of the last durable record.
func (j *File) Mark(context.Context) (uint64, error) {
	j.qmu.Lock()
	defer j.qmu.Unlock()
	return j.durable, nil
}

// Passed reports whether every record up to mark is released.
func (j *File) Passed(_ context.Context, mark uint64) (bool, error) {
	return j.released.Load() >= mark, nil
}

// Depth is the number of records appended and not yet released.
func (j *File) Depth() int64 { return j.depth.Load() }

// Close stops the journal once the queued appends are written.
func (j *File) Close() error {
	j.stop()
	return nil
}

func (j *File) writer() {
	defer close(j.done)
	defer func() {
		for _, s := range j.segs {
			if s.f != nil {
				s.f.Close()
			}
		}
	}()
	var buf []byte
	for {
		select {
		case r := <-j.queue:
			j.write(j.gather(r), &buf)
			j.collect(false)
		case <-j.kick:
			j.collect(false)
		case answer := <-j.forget:
			answer <- j.collect(true)
		case <-j.closed:
			j.drain(func(b []*appendReq) { j.write(b, &buf) })
			return
		}
	}
}

// write writes one group: one write, one fsync, then Durable, then the
// answers.
func (j *File) write(batch []*appendReq, buf *[]byte) {
	fail := func(err error) {
		for _, r := range batch {
			r.err <- err
		}
	}
	if j.broken != nil {
		fail(j.broken)
		return
	}
	seg := j.segs[len(j.segs)-1]
	b := (*buf)[:0]
	pos := j.next
	var all []*Entry
	for _, r := range batch {
		all = append(all, r.entries...)
	}
	for i, e := range all {
		e.Pos = pos
		b = appendFrame(b, pos, e.Data, i == len(all)-1)
		pos++
	}
	*buf = b
	if cap(*buf) > 4*DefaultMaxGroup {
		*buf = nil
	}
	_, werr := seg.f.WriteAt(b, seg.size)
	if werr == nil {
		werr = seg.f.Sync()
	}
	if werr != nil {
		// Put the segment back to its last durable size; if that fails
		// too, what is on disk is unknown and the journal stops.
		if err := seg.f.Truncate(seg.size); err != nil {
			j.broken = fmt.Errorf("%w: %v (then %v)", ErrBroken, werr, err)
		} else if err := seg.f.Sync(); err != nil {
			j.broken = fmt.Errorf("%w: %v (then %v)", ErrBroken, werr, err)
		}
		j.cfg.Logger.Error("journal: write failed; nothing of the group is acknowledged", "error", werr, "records", len(all))
		fail(fmt.Errorf("journal: %w", werr))
		return
	}
	seg.size += int64(len(b))
	seg.last = pos - 1
	j.next = pos
	j.depth.Add(int64(len(all)))
	if j.cfg.GroupSize != nil {
		j.cfg.GroupSize(len(all))
	}
	j.qmu.Lock()
	for _, e := range all {
		j.ready = append(j.ready, Record{Pos: e.Pos, Data: e.Data, Tag: e.Tag})
	}
	j.durable = pos - 1
	j.qmu.Unlock()
	select {
	case j.nready <- struct{}{}:
	default:
	}
	for _, r := range batch {
		r.err <- nil
	}
	if seg.size >= j.cfg.SegmentSize {
		if err := j.newSegment(); err != nil {
			j.cfg.Logger.Warn("journal: beginning a new segment", "error", err)
		}
	}
}

// collect removes segments whose records are all released, and replaces
// the current one when it is all released and large enough, or when
// forget is set, in which case released segments are overwritten with
// zeros before they are removed, and an error says that some could not be
// (writer only).
func (j *File) collect(forget bool) error {
	rel := j.released.Load()
	cur := j.segs[len(j.segs)-1]
	if cur.last >= cur.first && (forget || cur.last <= rel && cur.size >= DefaultRotateReleased) && j.broken == nil {
		// On forget, a segment with records not yet released is closed too,
		// so that it can go as soon as they are.
		if err := j.newSegment(); err != nil {
			j.cfg.Logger.Warn("journal: beginning a new segment", "error", err)
			if forget {
				return err
			}
		}
	}
	// Oldest first, each removal durable before the next: a crash never
	// leaves a gap between segments (a segment that comes back holds only
	// records the log has, which recovery skips).
	for len(j.segs) > 1 && j.segs[0].last <= rel {
		path := j.segs[0].path
		if forget {
			// Out of the journal's name space first, so that a crash while
			// it is overwritten leaves no damaged segment behind.
			gone := path + forgotten
			if err := os.Rename(path, gone); err != nil {
				return err
			}
			if err := syncDir(j.cfg.Dir); err != nil {
				return err
			}
			if err := zero(gone); err != nil {
				return err
			}
			path = gone
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			j.cfg.Logger.Warn("journal: removing a released segment", "segment", path, "error", err)
			return err
		}
		j.segs = j.segs[1:]
		if err := syncDir(j.cfg.Dir); err != nil {
			j.cfg.Logger.Warn("journal: removing a released segment", "error", err)
			return err
		}
	}
	if forget && len(j.segs) > 1 {
		return ErrNotReleased
	}
	return nil
}

// forgotten marks a segment being overwritten and removed by Forget.
const forgotten = ".forgotten"

// zero overwrites a file with zeros, durably.
func zero(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < st.Size(); off += int64(len(buf)) {
		n := min(int64(len(buf)), st.Size()-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return f.Sync()
}

// Forget removes every released record from the disk at once, overwriting
// it first (an erasure calls it so that no sealed payload or wrapped key of
// an erased session stays in the journal). Records not yet released stay,
// and it fails with ErrNotReleased if there are any.
func (j *File) Forget(ctx context.Context) error {
	answer := make(chan error, 1)
	select {
	case j.forget <- answer:
	case <-j.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-answer:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Store is what the engine needs of a journal: File here, SQL for a
// database that several instances share.
type Store interface {
	// Append makes entries durable, in order, all or none. A store that
	// keeps session heads (HeadStore) fails with a *HeadsMovedError when a
	// session's head is not the one the entries extend.
	Append(ctx context.Context, entries []*Entry) error
	// Next returns the next records to sequence, in order, at most max,
	// waiting until there are some or ctx ends.
	Next(ctx context.Context, max int) ([]Record, error)
	// Release says that recs, taken from Next, are in the log and the
	// vault and may be dropped.
	Release(ctx context.Context, recs []Record) error
	// Recovered is the position of the last record found at open that must
	// be sequenced before appends are taken (0: none, or heads do not
	// depend on it).
	Recovered() uint64
	// Depth is the number of records not yet released (as far as this
	// instance knows).
	Depth() int64
	// Mark names the records durable now; Passed reports whether every
	// one of them has been released.
	Mark(ctx context.Context) (uint64, error)
	Passed(ctx context.Context, mark uint64) (bool, error)
	// Forget removes released records from storage at once (erasure).
	Forget(ctx context.Context) error
	Close() error
}

// HeadStore is a Store that keeps the sessions' chain heads itself, for
// several instances: Append checks and advances them in the transaction
// that makes the records durable.
type HeadStore interface {
	Store
	// Head returns where a session's chain stands: the seq of its next
	// event and the leaf hash of its last (nil before the first).
	Head(ctx context.Context, tenant, session string) (next uint64, prev []byte, err error)
}

// HeadsMovedError: the heads of Sessions are not what the entries
// extended (another instance appended to them); nothing was appended.
type HeadsMovedError struct{ Sessions [][2]string }

func (e *HeadsMovedError) Error() string {
	return fmt.Sprintf("journal: the heads of %d sessions moved", len(e.Sessions))
}

// Opener opens a journal.
type Opener func() (Store, error)

// FileOpener opens a File journal with cfg.
func FileOpener(cfg FileConfig) Opener {
	return func() (Store, error) { return OpenFile(cfg) }
}

package journal

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
)

// SQL is the journal of several log-server instances that share one
// MySQL-compatible database (the s3 storage). Each instance gathers the
// appends waiting while its previous group was committed into one
// transaction, which locks the heads of the sessions they extend, checks
// that each append extends its session's head (else the append fails with
// *HeadsMovedError, for the engine to chain again), inserts the records and
// stores the new heads: no named lock, and a handful of round trips per
// group. The instance that holds the sequencer lease (a row renewed every
// second, in the database's time) reads the records in order and releases
// them by deleting them.
//
// Two appends to one session commit one after the other (the head row is
// locked), so a session's records are read in the order they were
// appended.
type SQL struct {
	db     *sqldb.DB
	pool   *sql.DB
	cfg    SQLConfig
	holder string

	groups

	kick chan struct{} // an append of this instance committed
	want atomic.Bool   // the engine's sequencer has asked for records
	wake chan struct{} // ... for the first time
	// leaseDone is closed when leaseLoop has stopped: Close gives the lease
	// up only after, so that no renewal in flight takes it back.
	leaseDone chan struct{}

	lmu        sync.Mutex
	leaseUntil time.Time // monotonic: the lease is ours until then
	maybeUpTo  int64     // records up to this position were there when the lease was taken

	depth atomic.Int64

	// Records handed out by Next and not yet released (the engine reads
	// the next chunk while the previous one is sequenced).
	omu sync.Mutex
	out map[uint64]bool
}

// SQLConfig configures a SQL journal. Zero values take the defaults.
type SQLConfig struct {
	// Lease is how long a sequencer lease lasts unless renewed
	// (DefaultLease); it is renewed every Lease/5.
	Lease time.Duration
	// MaxChunkBytes bounds the record bytes one Next returns
	// (DefaultMaxChunkBytes).
	MaxChunkBytes int
	// GroupSize, if set, is told the number of records of every group.
	GroupSize func(int)
	Logger    *slog.Logger
}

// Defaults of SQLConfig.
const (
	DefaultLease         = 5 * time.Second
	DefaultMaxChunkBytes = 32 << 20
)

// SQLConns is the pool a SQL journal opens on the database.
const SQLConns = 2

// SQLSchema is the journal's tables (sqldb's portable DDL, MySQL only):
// the records, the sessions' chain heads (the table an earlier version's
// chain locks used; dirty_since is left NULL), and the sequencer lease.
var SQLSchema = []string{
	`CREATE TABLE IF NOT EXISTS journal_records (
  pos BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  data {blob} NOT NULL){table}`,
	`CREATE TABLE IF NOT EXISTS session_heads (
  tenant {id} NOT NULL, session {id} NOT NULL,
  next_seq {int} NOT NULL, prev {hash},
  dirty_since {int},
  PRIMARY KEY (tenant, session)){table}`,
	`CREATE TABLE IF NOT EXISTS journal_lease (
  name {name} PRIMARY KEY, holder {name} NOT NULL, until_ms {int} NOT NULL){table}`,
}

// SQLSchemaVersion is the version of SQLSchema.
const SQLSchemaVersion = 1

// OpenSQL opens the journal in db (creating its tables if needed).
func OpenSQL(db *sqldb.DB, cfg SQLConfig) (*SQL, error) {
	if !db.Shared() {
		return nil, errors.New("journal: the SQL journal needs a shared (MySQL) database")
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.MaxChunkBytes <= 0 {
		cfg.MaxChunkBytes = DefaultMaxChunkBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx := context.Background()
	if _, err := db.Schema(ctx, "journal", SQLSchemaVersion, SQLSchema...); err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, db.InsertIgnore()+` INTO journal_lease (name, holder, until_ms) VALUES ('sequencer', '', 0)`); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	id := make([]byte, 8)
	rand.Read(id)
	j := &SQL{db: db, pool: db.Pool(SQLConns), cfg: cfg, holder: hex.EncodeToString(id),
		groups: newGroups(),
		kick:   make(chan struct{}, 1), wake: make(chan struct{}, 1), leaseDone: make(chan struct{}), out: map[uint64]bool{}}
	go j.writer()
	go j.leaseLoop()
	return j, nil
}

// leaseLoop takes the sequencer lease when it is free (once the engine has
// asked for records: its sequencer runs) and renews it while this instance
// holds it, every Lease/5, whatever the sequencer is doing.
func (j *SQL) leaseLoop() {
	defer close(j.leaseDone)
	t := time.NewTicker(j.cfg.Lease / 5)
	defer t.Stop()
	for {
		var taken bool
		var err error
		if j.want.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), j.cfg.Lease/5)
			_, taken, err = j.lease(ctx)
			cancel()
		}
		switch {
		case err != nil:
			j.cfg.Logger.Warn("journal: taking the sequencer lease", "error", err)
		case taken:
			j.cfg.Logger.Info("journal: this instance sequences the shared journal now")
			select {
			case j.kick <- struct{}{}:
			default:
			}
		}
		select {
		case <-j.closed:
			return
		case <-t.C:
		case <-j.wake:
		}
	}
}

// Holds reports whether this instance holds the sequencer lease, with at
// least a second to go: the engine appends to the log only while it does.
func (j *SQL) Holds() bool { return j.holds() }

// Append makes entries durable in one transaction with the other appends
// waiting, after checking that they extend their sessions' heads.
func (j *SQL) Append(ctx context.Context, entries []*Entry) error {
	return j.submit(ctx, entries)
}

func (j *SQL) writer() {
	defer close(j.done)
	for {
		select {
		case r := <-j.queue:
			j.commitAll(j.gather(r))
		case <-j.closed:
			j.drain(j.commitAll)
			return
		}
	}
}

// commitAll commits a group, retrying transient database errors (a
// deadlock between two instances creating one session), and answers each
// append.
func (j *SQL) commitAll(batch []*appendReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var moved map[*appendReq]*HeadsMovedError
	var err error
	for try := 1; ; try++ {
		err = sqldb.Retry(ctx, func() (err error) {
			moved, err = j.commit(ctx, batch)
			return err
		})
		// Another instance created one of the sessions first (no gap
		// lock holds them apart): the next try sees its head.
		if !sqldb.Duplicate(err) || try == 5 {
			break
		}
	}
	n := 0
	for _, r := range batch {
		switch {
		case err != nil:
			r.err <- fmt.Errorf("journal: %w", err)
		case moved[r] != nil:
			r.err <- moved[r]
		default:
			n += len(r.entries)
			r.err <- nil
		}
	}
	if err == nil && n > 0 {
		j.stored(n)
	}
}

// stored counts n records committed and wakes the sequencer.
func (j *SQL) stored(n int) {
	j.depth.Add(int64(n))
	if j.cfg.GroupSize != nil {
		j.cfg.GroupSize(n)
	}
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

type headKey struct{ tenant, session string }

type head struct {
	next   uint64
	prev   []byte
	exists bool
}

// commit stores the appends of batch that extend their sessions' heads in
// one transaction; moved names the others.
func (j *SQL) commit(ctx context.Context, batch []*appendReq) (moved map[*appendReq]*HeadsMovedError, err error) {
	tx, err := j.pool.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var keys []headKey
	seen := map[headKey]bool{}
	for _, r := range batch {
		for _, e := range r.entries {
			k := headKey{e.Tenant, e.Session}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sortHeadKeys(keys)
	heads, err := lockHeads(ctx, tx, keys)
	if err != nil {
		return nil, err
	}
	// Each append, in order, against the heads as the ones before it left
	// them.
	moved = map[*appendReq]*HeadsMovedError{}
	var accepted []*Entry
	for _, r := range batch {
		if committed(r, heads) {
			// An earlier try of this group committed, and its answer was
			// lost with the connection: the heads are this append's own.
			continue
		}
		next := map[headKey]head{}
		var bad []headKey
		for _, e := range r.entries {
			k := headKey{e.Tenant, e.Session}
			h, ok := next[k]
			if !ok {
				h = heads[k]
			}
			if h.next != e.Seq || !bytes.Equal(h.prev, e.Prev) {
				if len(bad) == 0 || bad[len(bad)-1] != k {
					bad = append(bad, k)
				}
				continue
			}
			next[k] = head{next: e.Seq + 1, prev: e.Hash, exists: heads[k].exists}
		}
		if len(bad) > 0 {
			me := &HeadsMovedError{}
			for _, k := range bad {
				me.Sessions = append(me.Sessions, [2]string{k.tenant, k.session})
			}
			moved[r] = me
			continue
		}
		for k, h := range next {
			heads[k] = h
		}
		accepted = append(accepted, r.entries...)
	}
	if len(accepted) == 0 {
		return moved, nil
	}
	if err := insertRecords(ctx, tx, accepted); err != nil {
		return nil, err
	}
	if err := storeHeads(ctx, tx, accepted, heads); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return moved, nil
}

// sortHeadKeys puts keys in the one order every instance locks heads in:
// two transactions never wait for each other's rows crosswise.
func sortHeadKeys(keys []headKey) {
	slices.SortFunc(keys, func(a, b headKey) int {
		if c := strings.Compare(a.tenant, b.tenant); c != 0 {
			return c
		}
		return strings.Compare(a.session, b.session)
	})
}

// Head is where a session's chain stands: the seq of its next event and the
// leaf hash of its last (nil before the first).
type Head struct {
	Next uint64
	Prev []byte
}

// AppendChained makes durable the entries that chain returns, in a
// transaction of its own that first locks the heads of sessions (tenant,
// session) and hands them to chain, so that no other instance moves them
// between the chaining and the commit. It is the way out for an append whose
// group lost the heads to other instances' groups several times in a row
// (each loss is a HeadsMovedError, and an instance slower than another can
// lose every time). chain must chain its entries on the heads it is given,
// and may be called more than once (a deadlock, or a session another
// instance created meanwhile, tries again).
func (j *SQL) AppendChained(ctx context.Context, sessions [][2]string, chain func(map[[2]string]Head) ([]*Entry, error)) error {
	keys := make([]headKey, len(sessions))
	for i, s := range sessions {
		keys[i] = headKey{s[0], s[1]}
	}
	sortHeadKeys(keys)
	var n int
	var err error
	var last chainedTry
	for try := 1; ; try++ {
		err = sqldb.Retry(ctx, func() (err error) {
			n, err = j.commitChained(ctx, keys, chain, &last)
			return err
		})
		if !sqldb.Duplicate(err) || try == 5 {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.stored(n)
	return nil
}

// chainedTry is what a try of AppendChained that reached its commit left:
// the heads it stored and how many records.
type chainedTry struct {
	heads map[headKey]head
	n     int
}

// commitChained is one try of AppendChained; it returns how many records it
// stored. When the heads are exactly those the previous try left, that
// try's commit went through and its answer was lost with the connection.
func (j *SQL) commitChained(ctx context.Context, keys []headKey, chain func(map[[2]string]Head) ([]*Entry, error), last *chainedTry) (int, error) {
	tx, err := j.pool.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	heads, err := lockHeads(ctx, tx, keys)
	if err != nil {
		return 0, err
	}
	if last.heads != nil && sameHeads(heads, last.heads) {
		return last.n, nil
	}
	given := make(map[[2]string]Head, len(keys))
	for _, k := range keys {
		given[[2]string{k.tenant, k.session}] = Head{heads[k].next, heads[k].prev}
	}
	entries, err := chain(given)
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	for _, e := range entries {
		k := headKey{e.Tenant, e.Session}
		h, ok := heads[k]
		if !ok && !slices.Contains(keys, k) {
			return 0, fmt.Errorf("an entry of session %s, whose head was not locked", e.Session)
		}
		if h.next != e.Seq || !bytes.Equal(h.prev, e.Prev) {
			return 0, fmt.Errorf("an entry of session %s does not extend the head it was given", e.Session)
		}
		heads[k] = head{next: e.Seq + 1, prev: e.Hash, exists: h.exists}
	}
	if err := insertRecords(ctx, tx, entries); err != nil {
		return 0, err
	}
	if err := storeHeads(ctx, tx, entries, heads); err != nil {
		return 0, err
	}
	*last = chainedTry{heads, len(entries)}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return len(entries), nil
}

// sameHeads reports whether the locked heads are those another try left
// (leaf hashes name unique events: no other append leaves the same).
func sameHeads(locked, left map[headKey]head) bool {
	for k, h := range left {
		l, ok := locked[k]
		if !ok || !l.exists || l.next != h.next || !bytes.Equal(l.prev, h.prev) {
			return false
		}
	}
	return len(left) > 0
}

// committed reports whether the heads are exactly where r leaves its
// sessions: r's own records are in, written by an earlier try whose commit
// was answered with an error (leaf hashes name unique events, so no other
// append leaves the same heads).
func committed(r *appendReq, heads map[headKey]head) bool {
	last := map[headKey]*Entry{}
	for _, e := range r.entries {
		last[headKey{e.Tenant, e.Session}] = e
	}
	for k, e := range last {
		h := heads[k]
		if !h.exists || h.next != e.Seq+1 || !bytes.Equal(h.prev, e.Hash) {
			return false
		}
	}
	return len(last) > 0
}

// lockHeads reads and locks the heads of keys (missing ones as empty).
func lockHeads(ctx context.Context, tx *sql.Tx, keys []headKey) (map[headKey]head, error) {
	heads := make(map[headKey]head, len(keys))
	const chunk = 200
	for start := 0; start < len(keys); start += chunk {
		part := keys[start:min(len(keys), start+chunk)]
		args := make([]any, 0, 2*len(part))
		for _, k := range part {
			args = append(args, k.tenant, k.session)
		}
		rows, err := tx.QueryContext(ctx, `SELECT tenant, session, next_seq, prev FROM session_heads WHERE (tenant, session) IN ((?, ?)`+
			strings.Repeat(", (?, ?)", len(part)-1)+`) FOR UPDATE`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k headKey
			var next int64
			var prev []byte
			if err := rows.Scan(&k.tenant, &k.session, &next, &prev); err != nil {
				rows.Close()
				return nil, err
			}
			heads[k] = head{next: uint64(next), prev: prev, exists: true}
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	return heads, nil
}

// insertBytes bounds one INSERT statement (MariaDB's max_allowed_packet
// is 16 MiB by default).
const insertBytes = 8 << 20

func insertRecords(ctx context.Context, tx *sql.Tx, entries []*Entry) error {
	for start := 0; start < len(entries); {
		end, size := start, 0
		for end < len(entries) && (end == start || size+len(entries[end].Data) < insertBytes) && end-start < 512 {
			size += len(entries[end].Data)
			end++
		}
		args := make([]any, end-start)
		for i, e := range entries[start:end] {
			args[i] = e.Data
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO journal_records (data) VALUES (?)`+strings.Repeat(", (?)", end-start-1), args...); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// storeHeads writes the heads the accepted entries moved: new sessions
// with a plain INSERT (a session another instance created meanwhile fails
// it, and the group is tried again), the others updated.
func storeHeads(ctx context.Context, tx *sql.Tx, entries []*Entry, heads map[headKey]head) error {
	done := map[headKey]bool{}
	var ins, upd []any
	for _, e := range entries {
		k := headKey{e.Tenant, e.Session}
		if done[k] {
			continue
		}
		done[k] = true
		h := heads[k]
		if h.exists {
			upd = append(upd, k.tenant, k.session, int64(h.next), h.prev)
		} else {
			ins = append(ins, k.tenant, k.session, int64(h.next), h.prev)
		}
	}
	if len(ins) > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO session_heads (tenant, session, next_seq, prev) VALUES (?, ?, ?, ?)`+
			strings.Repeat(", (?, ?, ?, ?)", len(ins)/4-1), ins...); err != nil {
			return err
		}
	}
	if len(upd) > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO session_heads (tenant, session, next_seq, prev) VALUES (?, ?, ?, ?)`+
			strings.Repeat(", (?, ?, ?, ?)", len(upd)/4-1)+
			` ON DUPLICATE KEY UPDATE next_seq = VALUES(next_seq), prev = VALUES(prev), dirty_since = NULL`, upd...); err != nil {
			return err
		}
	}
	return nil
}

// Head returns where a session's chain stands.
func (j *SQL) Head(ctx context.Context, tenant, session string) (next uint64, prev []byte, err error) {
	var n int64
	err = j.db.QueryRowContext(ctx, `SELECT next_seq, prev FROM session_heads WHERE tenant = ? AND session = ?`, tenant, session).Scan(&n, &prev)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("journal: reading the head of session %s: %w", session, err)
	}
	return uint64(n), prev, nil
}

// lease takes or renews the sequencer lease; it reports whether this
// instance holds it, and whether it was just taken from nobody or another.
func (j *SQL) lease(ctx context.Context) (held, taken bool, err error) {
	start := time.Now()
	res, err := j.db.ExecContext(ctx, `UPDATE journal_lease
SET holder = ?, until_ms = ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) + ?
WHERE name = 'sequencer' AND (holder = ? OR until_ms < ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000))`,
		j.holder, j.cfg.Lease.Milliseconds(), j.holder)
	if err != nil {
		return false, false, err
	}
	n, _ := res.RowsAffected()
	j.lmu.Lock()
	defer j.lmu.Unlock()
	had := time.Now().Before(j.leaseUntil)
	if n == 1 {
		// Count the lease from before the statement was sent, less a
		// margin for the clocks' rates.
		j.leaseUntil = start.Add(j.cfg.Lease * 4 / 5)
		if !had {
			// Every record there now may have been sequenced by the
			// previous holder.
			var m sql.NullInt64
			if err := j.db.QueryRowContext(ctx, `SELECT MAX(pos) FROM journal_records`).Scan(&m); err != nil {
				j.leaseUntil = time.Time{}
				return false, false, err
			}
			j.maybeUpTo = m.Int64
		}
		return true, !had, nil
	}
	// MySQL reports 0 rows affected for an update that changes nothing;
	// ours always changes until_ms, so 0 means another holds the lease.
	j.leaseUntil = time.Time{}
	return false, false, nil
}

// holds reports whether the lease is ours for at least another second.
func (j *SQL) holds() bool {
	j.lmu.Lock()
	defer j.lmu.Unlock()
	return time.Until(j.leaseUntil) > time.Second
}

// Next returns the oldest records, while this instance holds the
// sequencer lease; it waits (taking or renewing the lease as it can) until
// there are some. Records read first after the lease was taken are marked
// Maybe: the previous holder may have sequenced them before it stopped.
func (j *SQL) Next(ctx context.Context, max int) ([]Record, error) {
	if !j.want.Swap(true) {
		select {
		case j.wake <- struct{}{}:
		default:
		}
	}
	idle := 5 * time.Millisecond
	for {
		select {
		case <-j.closed:
			return nil, ErrClosed
		default:
		}
		if j.holds() {
			recs, err := j.read(ctx, max)
			if err != nil {
				return nil, err
			}
			if len(recs) > 0 {
				j.lmu.Lock()
				upTo := j.maybeUpTo
				j.lmu.Unlock()
				for i := range recs {
					recs[i].Maybe = int64(recs[i].Pos) <= upTo
				}
				return recs, nil
			}
			idle = min(2*idle, 100*time.Millisecond)
		} else {
			idle = j.cfg.Lease / 5
		}
		t := time.NewTimer(idle)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-j.closed:
			t.Stop()
			return nil, ErrClosed
		case <-j.kick:
			idle = 5 * time.Millisecond
		case <-t.C:
		}
		t.Stop()
	}
}

// read reads the oldest records, at most max and MaxChunkBytes (but at
// least one).
func (j *SQL) read(ctx context.Context, max int) ([]Record, error) {
	j.omu.Lock()
	skip := len(j.out)
	j.omu.Unlock()
	rows, err := j.db.QueryContext(ctx, `SELECT pos, LENGTH(data) FROM journal_records ORDER BY pos LIMIT ?`, max+skip)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var want []any
	size := 0
	j.omu.Lock()
	for rows.Next() {
		var pos int64
		var n int
		if err := rows.Scan(&pos, &n); err != nil {
			j.omu.Unlock()
			rows.Close()
			return nil, fmt.Errorf("journal: %w", err)
		}
		if j.out[uint64(pos)] {
			continue
		}
		if len(want) == max || len(want) > 0 && size+n > j.cfg.MaxChunkBytes {
			break
		}
		want, size = append(want, pos), size+n
	}
	j.omu.Unlock()
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if len(want) == 0 {
		return nil, nil
	}
	rows, err = j.db.QueryContext(ctx, `SELECT pos, data FROM journal_records WHERE pos IN (?`+strings.Repeat(", ?", len(want)-1)+`) ORDER BY pos`, want...)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		var pos int64
		if err := rows.Scan(&pos, &r.Data); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		r.Pos = uint64(pos)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j.omu.Lock()
	for _, r := range out {
		j.out[r.Pos] = true
	}
	j.omu.Unlock()
	return out, nil
}

// Return gives back records taken by Next that this instance will not
// sequence (it lost the lease): they are read again when it holds the lease
// again, if they are still there.
func (j *SQL) Return(recs []Record) {
	j.omu.Lock()
	defer j.omu.Unlock()
	for _, r := range recs {
		delete(j.out, r.Pos)
	}
}

// Release deletes recs (whoever holds the lease by now: they are in the
// log either way).
func (j *SQL) Release(ctx context.Context, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	args := make([]any, len(recs))
	for i, r := range recs {
		args[i] = int64(r.Pos)
	}
	if _, err := j.db.ExecContext(ctx, `DELETE FROM journal_records WHERE pos IN (?`+strings.Repeat(", ?", len(recs)-1)+`)`, args...); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.depth.Add(-int64(len(recs)))
	j.omu.Lock()
	for _, r := range recs {
		delete(j.out, r.Pos)
	}
	j.omu.Unlock()
	return nil
}

// Recovered is 0: heads are kept in the database, so appends need not wait
// for the journal to be sequenced.
func (j *SQL) Recovered() uint64 { return 0 }

// Depth counts the records this instance appended less those it released
// (the sequencer's instance may release others' records: it can go below
// zero on one instance and above on another; the database holds the
// truth).
func (j *SQL) Depth() int64 { return max(0, j.depth.Load()) }

// Mark is the position of the last record committed now.
func (j *SQL) Mark(ctx context.Context) (uint64, error) {
	var pos sql.NullInt64
	if err := j.db.QueryRowContext(ctx, `SELECT MAX(pos) FROM journal_records`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("journal: %w", err)
	}
	return uint64(pos.Int64), nil
}

// Passed reports whether every record up to mark has been released.
func (j *SQL) Passed(ctx context.Context, mark uint64) (bool, error) {
	var one int
	err := j.db.QueryRowContext(ctx, `SELECT 1 FROM journal_records WHERE pos <= ? LIMIT 1`, int64(mark)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("journal: %w", err)
	}
	return false, nil
}

// Forget does nothing: released records are deleted rows already (what the
// database's own logs keep is outside the journal's reach; see
// docs/scale-out.md).
func (j *SQL) Forget(context.Context) error { return nil }

// Close stops the journal once the queued appends are committed, and gives
// up the lease.
func (j *SQL) Close() error {
	j.stop()
	<-j.leaseDone
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	j.db.ExecContext(ctx, `UPDATE journal_lease SET until_ms = 0 WHERE name = 'sequencer' AND holder = ?`, j.holder)
	return j.pool.Close()
}

// SQLOpener opens a SQL journal.
func SQLOpener(db *sqldb.DB, cfg SQLConfig) Opener {
	return func() (Store, error) { return OpenSQL(db, cfg) }
}

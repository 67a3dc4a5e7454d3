package index

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	tapi "github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/signature"
)

// Session search (GET /v1/sessions): per session, where it is in the log
// (first and last index and time, its event count), and the terms it can
// be found by (event kinds, agents, subject and on-behalf-of pseudonyms
// (which erasures and holds use too, see People), models, and the
// monitor.alert and human.signature events about its entries). Like the
// rest of the index it is derived: store() feeds it (storeSearch) in the
// same transaction as the entries, under the lock on the indexed size that
// serialises instances sharing the index, and an index made before it
// existed is filled from the log at its next store.
//
// The tables are created with the index's (Schema includes searchSchema,
// in sqldb's portable DDL). The statements run on SQLite and
// MariaDB alike: terms are inserted with the dialect's INSERT IGNORE,
// many rows a statement; on MariaDB a session's row is read FOR UPDATE and
// then inserted or updated, its positions merged in Go (a portable
// two-value maximum does not exist, and MariaDB evaluates SET left to
// right); on SQLite one upsert merges a batch's session rows. Storing a range
// twice is harmless: terms are sets, positions are minima and maxima, and
// the count is the last seq plus one.

// searchSchema is the search's tables, created with Schema.
var searchSchema = []string{
	`CREATE TABLE IF NOT EXISTS search_sessions (
  tenant {id} NOT NULL, session {id} NOT NULL, first_idx {int} NOT NULL, last_idx {int} NOT NULL,
  first_time {time} NOT NULL, last_time {time} NOT NULL, events {int} NOT NULL,
  PRIMARY KEY (tenant, session)){table}`,
	`CREATE INDEX IF NOT EXISTS search_sessions_last ON search_sessions (last_idx)`,
	`CREATE TABLE IF NOT EXISTS search_terms (
  tenant {id} NOT NULL, session {id} NOT NULL, field {id} NOT NULL, value {name} NOT NULL,
  PRIMARY KEY (tenant, session, field, value)){table}`,
	`CREATE INDEX IF NOT EXISTS search_terms_value ON search_terms (field, value)`,
}

// Statements ({insert-ignore} is the dialect's INSERT IGNORE, {for-update}
// its FOR UPDATE).
const (
	sqlSearchSizeInit   = `{insert-ignore} INTO index_meta (k, v) VALUES ('search_size', 0)`
	sqlSearchSize       = `SELECT v FROM index_meta WHERE k = 'search_size'`
	sqlSearchSizeUpdate = `UPDATE index_meta SET v = ? WHERE k = 'search_size'`
	sqlSessionGet       = `SELECT first_idx, last_idx, first_time, last_time, events FROM search_sessions WHERE tenant = ? AND session = ?{for-update}`
	sqlSessionInsert    = `INSERT INTO search_sessions (tenant, session, first_idx, last_idx, first_time, last_time, events) VALUES (?, ?, ?, ?, ?, ?, ?)`
	sqlSessionUpdate    = `UPDATE search_sessions SET first_idx = ?, last_idx = ?, first_time = ?, last_time = ?, events = ? WHERE tenant = ? AND session = ?`
	// SQLite: a batch's session rows merged in one upsert per
	// rowsPerInsert sessions (its UPDATE reads the row as it was).
	sqlSessionsUpsert = `INSERT INTO search_sessions (tenant, session, first_idx, last_idx, first_time, last_time, events) VALUES `
	sqlSessionsMerge  = ` ON CONFLICT (tenant, session) DO UPDATE SET
  first_time = CASE WHEN excluded.first_idx < first_idx THEN excluded.first_time ELSE first_time END, first_idx = min(first_idx, excluded.first_idx),
  last_time = CASE WHEN excluded.last_idx > last_idx THEN excluded.last_time ELSE last_time END, last_idx = max(last_idx, excluded.last_idx),
  events = max(events, excluded.events)`
	sqlTermInsert   = `{insert-ignore} INTO search_terms (tenant, session, field, value) VALUES (?, ?, ?, ?)`
	sqlTermsInsert  = `{insert-ignore} INTO search_terms (tenant, session, field, value) VALUES ` // insertRows
	sqlEntrySession = `SELECT tenant, session FROM entries WHERE idx = ?`
	sqlSearchSelect = `SELECT s.tenant, s.session, s.first_idx, s.last_idx, s.first_time, s.last_time, s.events,
  (SELECT COUNT(*) FROM search_terms a WHERE a.tenant = s.tenant AND a.session = s.session AND a.field = 'alert'),
  (SELECT COUNT(*) FROM search_terms g WHERE g.tenant = s.tenant AND g.session = s.session AND g.field = 'signature')
FROM search_sessions s WHERE 1 = 1`
	sqlSearchHas   = ` AND EXISTS (SELECT 1 FROM search_terms t WHERE t.tenant = s.tenant AND t.session = s.session AND t.field = ? AND t.value = ?)`
	sqlSearchAny   = ` AND EXISTS (SELECT 1 FROM search_terms t WHERE t.tenant = s.tenant AND t.session = s.session AND t.field = ?)`
	sqlSearchNone  = ` AND NOT EXISTS (SELECT 1 FROM search_terms t WHERE t.tenant = s.tenant AND t.session = s.session AND t.field = ?)`
	sqlSearchOrder = ` ORDER BY s.last_idx DESC LIMIT ?`
	sqlSearchShown = `SELECT field, value FROM search_terms WHERE tenant = ? AND session = ? AND field IN ('agent', 'model') ORDER BY field, value LIMIT 40`
)

// dialect fills in a statement's dialect-specific words.
func (x *Index) dialect(stmt string) string {
	return strings.NewReplacer("{insert-ignore}", x.db.InsertIgnore(), "{for-update}", x.db.ForUpdate()).Replace(stmt)
}

// Term fields.
const (
	termKind      = "kind"
	termAgent     = "agent"
	termSubject   = "subject"
	termBehalf    = "on_behalf_of"
	termModel     = "model"
	termAlert     = "alert"     // value: the index of a monitor.alert about the session
	termSignature = "signature" // value: the index of a human.signature on one of its entries
)

// maxTermValue caps a term's value ({name}: 255 characters).
const maxTermValue = 255

// storeSearch indexes for search the leaves from..end
// (leaves[i] is the leaf at first+i), in tx, the transaction of store that
// holds the lock on the indexed size. If the search is behind (an index
// made before it existed, or extended by an instance without it), the
// leaves before from are read from the log first. It returns the batch
// written (nil if none), whose terms the caller remembers once tx commits.
func (x *Index) storeSearch(ctx context.Context, tx *sql.Tx, first uint64, leaves [][]byte, from, end uint64) (*searchBatch, error) {
	if _, err := tx.ExecContext(ctx, x.dialect(sqlSearchSizeInit)); err != nil {
		return nil, fmt.Errorf("the session search's size: %w", err)
	}
	var done int64
	if err := tx.QueryRowContext(ctx, sqlSearchSize).Scan(&done); err != nil {
		return nil, fmt.Errorf("the session search's size: %w", err)
	}
	if uint64(done) >= end {
		return nil, nil
	}
	b := newSearchBatch()
	if uint64(done) < from {
		// The search is behind the entries (made empty, or extended by
		// an instance without it): the terms remembered may be gone.
		x.forgetTerms()
		start := time.Now()
		if err := x.backfillSearch(ctx, b, uint64(done), from); err != nil {
			return nil, fmt.Errorf("filling the session search from the log: %w", err)
		}
		x.logger.Info("session search filled from the log", "from", done, "to", from, "took", time.Since(start))
	}
	for i := max(from, uint64(done)); i < end; i++ {
		b.add(i, leaves[i-first])
	}
	if err := x.writeSearch(ctx, tx, b); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, sqlSearchSizeUpdate, int64(end)); err != nil {
		return nil, err
	}
	return b, nil
}

// maxStoredTerms bounds Index.stored; past it the set starts again empty.
const maxStoredTerms = 1 << 15

// storedTerm reports whether t is known to be in the search_terms table.
func (x *Index) storedTerm(t term) bool {
	x.termsMu.Lock()
	defer x.termsMu.Unlock()
	_, ok := x.stored[t]
	return ok
}

// forgetTerms empties the set of terms known to be stored.
func (x *Index) forgetTerms() {
	x.termsMu.Lock()
	defer x.termsMu.Unlock()
	x.stored = nil
}

// rememberTerms notes the terms of b as stored: call it once the
// transaction that wrote them has committed.
func (x *Index) rememberTerms(b *searchBatch) {
	x.termsMu.Lock()
	defer x.termsMu.Unlock()
	if x.stored == nil || len(x.stored)+len(b.terms) > maxStoredTerms {
		x.stored = make(map[term]struct{}, len(b.terms))
	}
	for t := range b.terms {
		x.stored[t] = struct{}{}
	}
}

// backfillSearch adds the log's leaves from..to to b.
func (x *Index) backfillSearch(ctx context.Context, b *searchBatch, from, to uint64) error {
	return x.forEachLeaf(ctx, from, to, b.add)
}

// forEachLeaf calls f with each leaf of the log from..to and its index,
// reading an entry bundle at a time.
func (x *Index) forEachLeaf(ctx context.Context, from, to uint64, f func(index uint64, leaf []byte)) error {
	for from < to {
		bi := from / layout.EntryBundleWidth
		end := min((bi+1)*layout.EntryBundleWidth, to)
		raw, err := x.reader.ReadEntryBundle(ctx, bi, layout.PartialTileSize(0, bi, end))
		if err != nil {
			return fmt.Errorf("reading entry bundle %d: %w", bi, err)
		}
		var eb tapi.EntryBundle
		if err := eb.UnmarshalText(raw); err != nil {
			return fmt.Errorf("parsing entry bundle %d: %w", bi, err)
		}
		first := bi * layout.EntryBundleWidth
		if uint64(len(eb.Entries)) < end-first {
			return fmt.Errorf("entry bundle %d has %d entries, want %d", bi, len(eb.Entries), end-first)
		}
		for i := from; i < end; i++ {
			f(i, eb.Entries[i-first])
		}
		from = end
	}
	return nil
}

type sessionKey struct{ tenant, session string }

type sessionAgg struct {
	firstIdx, lastIdx   uint64
	firstTime, lastTime string
	events              uint64
}

type term struct {
	sessionKey
	field, value string
}

// searchBatch collects what a run of leaves adds to the search, so that a
// batch of one session's events writes its row once.
type searchBatch struct {
	sessions map[sessionKey]*sessionAgg
	order    []sessionKey
	terms    map[term]bool
	// about are the entries that alerts and signatures name, to be mapped
	// to their sessions: entry index -> marks.
	about map[uint64][]term
	// otel are the calls the capture observed with a trace context
	// (otel.go).
	otel []otelCall
}

func newSearchBatch() *searchBatch {
	return &searchBatch{sessions: map[sessionKey]*sessionAgg{}, terms: map[term]bool{}, about: map[uint64][]term{}}
}

func (b *searchBatch) term(k sessionKey, field, value string) {
	if value == "" || len(value) > maxTermValue {
		return
	}
	b.terms[term{k, field, value}] = true
}

// add adds the leaf at index. A leaf that does not parse is left out, as
// the entries table leaves it out.
func (b *searchBatch) add(index uint64, data []byte) {
	l, err := event.ParseLeaf(data)
	if err != nil {
		return
	}
	k := sessionKey{l.Tenant, l.Session}
	a := b.sessions[k]
	if a == nil {
		a = &sessionAgg{firstIdx: index, lastIdx: index, firstTime: l.Time, lastTime: l.Time}
		b.sessions[k] = a
		b.order = append(b.order, k)
	}
	a.merge(sessionAgg{firstIdx: index, lastIdx: index, firstTime: l.Time, lastTime: l.Time, events: l.Seq + 1})
	b.term(k, termKind, l.Kind)
	b.addOTel(index, l)
	if l.Actor.Type == "agent" {
		b.term(k, termAgent, l.Actor.ID)
	}
	b.term(k, termAgent, str(l.Attributes[event.AttrGenAIAgentID]))
	b.term(k, termSubject, l.Subject)
	b.term(k, termBehalf, l.Actor.OnBehalfOf)
	b.term(k, termModel, str(l.Attributes[event.AttrGenAIRequestModel]))
	b.term(k, termModel, str(l.Attributes[event.AttrGenAIResponseModel]))
	mark := func(attr, field string) {
		if n, ok := uintAttr(l.Attributes[attr]); ok && n < index {
			b.about[n] = append(b.about[n], term{field: field, value: strconv.FormatUint(index, 10)})
		}
	}
	switch l.Kind {
	case event.KindMonitorAlert:
		mark(event.AttrMonitorIndex, termAlert)
	case event.KindHumanSignature:
		mark(signature.AttrIndex, termSignature)
	}
}

func (a *sessionAgg) merge(o sessionAgg) {
	if o.firstIdx < a.firstIdx {
		a.firstIdx, a.firstTime = o.firstIdx, o.firstTime
	}
	if o.lastIdx > a.lastIdx {
		a.lastIdx, a.lastTime = o.lastIdx, o.lastTime
	}
	a.events = max(a.events, o.events)
}

func str(v any) string { s, _ := v.(string); return s }

func uintAttr(v any) (uint64, bool) {
	switch n := v.(type) {
	case json.Number:
		u, err := strconv.ParseUint(n.String(), 10, 64)
		return u, err == nil
	case float64:
		return uint64(n), n >= 0 && n == float64(uint64(n))
	}
	return 0, false
}

// writeSearch stores the batch in tx. Every statement is prepared once per
// batch: parsing SQL per session was a tenth of the server's CPU at load.
func (x *Index) writeSearch(ctx context.Context, tx *sql.Tx, b *searchBatch) error {
	prep := func(q string) (*sql.Stmt, error) { return tx.PrepareContext(ctx, q) }
	if len(b.about) > 0 {
		about, err := prep(sqlEntrySession)
		if err != nil {
			return err
		}
		defer about.Close()
		for idx, marks := range b.about {
			var k sessionKey
			err := about.QueryRowContext(ctx, int64(idx)).Scan(&k.tenant, &k.session)
			if errors.Is(err, sql.ErrNoRows) {
				continue // not an entry of ours: nothing to mark
			}
			if err != nil {
				return err
			}
			for _, m := range marks {
				b.term(k, m.field, m.value)
			}
		}
	}
	if len(b.order) > 0 && x.db.Dialect == sqldb.SQLite {
		rows := make([]any, 0, 7*len(b.order))
		for _, k := range b.order {
			a := b.sessions[k]
			rows = append(rows, k.tenant, k.session, int64(a.firstIdx), int64(a.lastIdx), a.firstTime, a.lastTime, int64(a.events))
		}
		if err := insertRowsThen(ctx, tx, sqlSessionsUpsert, 7, rows, sqlSessionsMerge); err != nil {
			return fmt.Errorf("indexing sessions for search: %w", err)
		}
	} else if len(b.order) > 0 {
		get, err := prep(x.dialect(sqlSessionGet))
		if err != nil {
			return err
		}
		defer get.Close()
		insert, err := prep(sqlSessionInsert)
		if err != nil {
			return err
		}
		defer insert.Close()
		update, err := prep(sqlSessionUpdate)
		if err != nil {
			return err
		}
		defer update.Close()
		for _, k := range b.order {
			a := b.sessions[k]
			var cur sessionAgg
			var fi, li, ev int64
			err := get.QueryRowContext(ctx, k.tenant, k.session).Scan(&fi, &li, &cur.firstTime, &cur.lastTime, &ev)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				_, err = insert.ExecContext(ctx, k.tenant, k.session, int64(a.firstIdx), int64(a.lastIdx), a.firstTime, a.lastTime, int64(a.events))
			case err == nil:
				cur.firstIdx, cur.lastIdx, cur.events = uint64(fi), uint64(li), uint64(ev)
				cur.merge(*a)
				_, err = update.ExecContext(ctx, int64(cur.firstIdx), int64(cur.lastIdx), cur.firstTime, cur.lastTime, int64(cur.events), k.tenant, k.session)
			}
			if err != nil {
				return fmt.Errorf("indexing session %s/%s for search: %w", k.tenant, k.session, err)
			}
		}
	}
	if len(b.otel) > 0 {
		ins, err := prep(x.dialect(sqlOTelInsert))
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, c := range b.otel {
			if _, err := ins.ExecContext(ctx, c.tenant, c.trace, c.span, int64(c.idx)); err != nil {
				return fmt.Errorf("indexing an observed call's trace context: %w", err)
			}
		}
	}
	if len(b.terms) == 0 {
		return nil
	}
	rows := make([]any, 0, 4*len(b.terms))
	for t := range b.terms {
		// A session's events repeat its kind, agent and model: a term
		// stored by a committed transaction is not inserted again (terms
		// are never deleted). At 512 sessions this was a third of the
		// index's CPU.
		if !x.storedTerm(t) {
			rows = append(rows, t.tenant, t.session, t.field, t.value)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if err := insertRows(ctx, tx, x.dialect(sqlTermsInsert), 4, rows); err != nil {
		return fmt.Errorf("indexing search terms: %w", err)
	}
	return nil
}

// Search lists the sessions q selects, the most recent (by their last
// entry) first, a page at a time; q.Tenant "" searches every tenant. The
// list covers the indexed prefix of the log (call WaitFor first to include
// recent writes). q's time range selects sessions whose span (first to
// last event) overlaps it. Next is set when more sessions follow.
func (x *Index) Search(ctx context.Context, q api.SessionSearch) (*api.SessionList, error) {
	var b strings.Builder
	b.WriteString(sqlSearchSelect)
	var args []any
	if q.Tenant != "" {
		b.WriteString(` AND s.tenant = ?`)
		args = append(args, q.Tenant)
	}
	if !q.From.IsZero() {
		b.WriteString(` AND s.last_time >= ?`)
		args = append(args, q.From.UTC().Format(event.TimeFormat))
	}
	if !q.To.IsZero() {
		b.WriteString(` AND s.first_time < ?`)
		args = append(args, q.To.UTC().Format(event.TimeFormat))
	}
	for _, f := range []struct{ field, value string }{{termAgent, q.Agent}, {termSubject, q.Subject}, {termModel, q.Model}, {termKind, q.Kind}} {
		if f.value != "" {
			b.WriteString(sqlSearchHas)
			args = append(args, f.field, f.value)
		}
	}
	for _, f := range []struct {
		field string
		want  *bool
	}{{termAlert, q.HasAlert}, {termSignature, q.HasSignature}} {
		switch {
		case f.want == nil:
		case *f.want:
			b.WriteString(sqlSearchAny)
			args = append(args, f.field)
		default:
			b.WriteString(sqlSearchNone)
			args = append(args, f.field)
		}
	}
	if q.Cursor != "" {
		before, err := strconv.ParseUint(q.Cursor, 10, 63)
		if err != nil {
			return nil, fmt.Errorf("%w: bad cursor", ErrBadSearch)
		}
		b.WriteString(` AND s.last_idx < ?`)
		args = append(args, int64(before))
	}
	limit := q.Limit
	if limit <= 0 || limit > api.MaxSessionSearchLimit {
		limit = api.DefaultSessionSearchLimit
	}
	b.WriteString(sqlSearchOrder)
	args = append(args, limit+1)
	rows, err := x.db.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := &api.SessionList{Sessions: []api.SessionSummary{}}
	for rows.Next() {
		var s api.SessionSummary
		var fi, li, ev int64
		if err := rows.Scan(&s.Tenant, &s.Session, &fi, &li, &s.FirstTime, &s.LastTime, &ev, &s.Alerts, &s.Signatures); err != nil {
			return nil, err
		}
		s.FirstIndex, s.LastIndex, s.Events = uint64(fi), uint64(li), uint64(ev)
		s.Agents, s.Models = []string{}, []string{}
		out.Sessions = append(out.Sessions, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(out.Sessions) > limit {
		out.Sessions = out.Sessions[:limit]
		out.Next = strconv.FormatUint(out.Sessions[limit-1].LastIndex, 10)
	}
	for i := range out.Sessions {
		s := &out.Sessions[i]
		if err := x.shown(ctx, s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// shown fills in a session's agents and models.
func (x *Index) shown(ctx context.Context, s *api.SessionSummary) error {
	rows, err := x.db.QueryContext(ctx, sqlSearchShown, s.Tenant, s.Session)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var f, v string
		if err := rows.Scan(&f, &v); err != nil {
			return err
		}
		if f == termAgent {
			s.Agents = append(s.Agents, v)
		} else {
			s.Models = append(s.Models, v)
		}
	}
	return rows.Err()
}

// ErrBadSearch is returned (wrapped) by Search for a query it cannot run
// (a cursor it did not make).
var ErrBadSearch = errors.New("bad session search")

// searchVersion is the version of what storeSearch indexes. Version 2
// added the on_behalf_of term, on which erasures and holds rely: Open
// fills it in for what an older version indexed (upgradeSearch).
const searchVersion = 2

// upgradeSearch brings the search of an index made by an older version up
// to searchVersion before the index is used: it adds, from the log, the
// on_behalf_of terms of every leaf the older version indexed for search
// (below search_size), and fills a search behind the indexed size. The
// indexed size is left as it is, so instances that read the index go on.
// Every instance of a log must run this version before erasures are
// trusted: one of the older version would index new leaves without the
// term (docs/scale-out.md, upgrades).
func (x *Index) upgradeSearch(ctx context.Context) error {
	v, err := x.meta(ctx, "search_version")
	if err != nil || v >= searchVersion {
		return err
	}
	done, err := x.meta(ctx, "search_size")
	if err != nil {
		return err
	}
	if done > 0 {
		start := time.Now()
		b := newSearchBatch()
		if err := x.forEachLeaf(ctx, 0, uint64(done), func(_ uint64, data []byte) {
			if l, err := event.ParseLeaf(data); err == nil {
				b.term(sessionKey{l.Tenant, l.Session}, termBehalf, l.Actor.OnBehalfOf)
			}
		}); err != nil {
			return fmt.Errorf("upgrading the session search: %w", err)
		}
		if err := x.writeTerms(ctx, b); err != nil {
			return fmt.Errorf("upgrading the session search: %w", err)
		}
		x.logger.Info("session search upgraded: on_behalf_of terms filled from the log", "from_version", v, "entries", done, "terms", len(b.terms), "took", time.Since(start))
	}
	return sqldb.Retry(ctx, func() error {
		tx, err := x.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		// A search behind the indexed size (an index older than the
		// search) is filled up to it now, as the next store would, so that
		// everything indexed can be found.
		var indexed int64
		if err := tx.QueryRowContext(ctx, `SELECT v FROM index_meta WHERE k = 'indexed_size'`+x.db.ForUpdate()).Scan(&indexed); err != nil {
			return err
		}
		if _, err := x.storeSearch(ctx, tx, uint64(indexed), nil, uint64(indexed), uint64(indexed)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM index_meta WHERE k = 'search_version'`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO index_meta (k, v) VALUES ('search_version', ?)`, searchVersion); err != nil {
			return err
		}
		return tx.Commit()
	})
}

// meta reads an index_meta value; 0 if there is none.
func (x *Index) meta(ctx context.Context, k string) (int64, error) {
	var v int64
	err := x.db.QueryRowContext(ctx, `SELECT v FROM index_meta WHERE k = ?`, k).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("reading the index's %s: %w", k, err)
	}
	return v, nil
}

// writeTerms stores the terms of b (only) in one transaction.
func (x *Index) writeTerms(ctx context.Context, b *searchBatch) error {
	return sqldb.Retry(ctx, func() error {
		tx, err := x.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for t := range b.terms {
			if _, err := tx.ExecContext(ctx, x.dialect(sqlTermInsert), t.tenant, t.session, t.field, t.value); err != nil {
				return err
			}
		}
		return tx.Commit()
	})
}

// People returns the pseudonyms that appear, as subject or as
// on_behalf_of, in any of sessions of tenant, sorted. It covers the
// indexed prefix of the log (call WaitFor first).
func (x *Index) People(ctx context.Context, tenant string, sessions []string) ([]string, error) {
	var out []string
	for chunk := range slices.Chunk(sessions, 500) {
		q := `SELECT value FROM search_terms WHERE tenant = ? AND field IN (?, ?) AND session IN (?` + strings.Repeat(", ?", len(chunk)-1) + `)`
		args := []any{tenant, termSubject, termBehalf}
		for _, s := range chunk {
			args = append(args, s)
		}
		vals, err := x.strings(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, vals...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// SessionsOf returns the sessions of tenant in which pseudonym appears as
// subject or as on_behalf_of, sorted. It covers the indexed prefix of the
// log (call WaitFor first).
func (x *Index) SessionsOf(ctx context.Context, tenant, pseudonym string) ([]string, error) {
	out, err := x.strings(ctx, `SELECT session FROM search_terms WHERE field IN (?, ?) AND value = ? AND tenant = ?`, termSubject, termBehalf, pseudonym, tenant)
	if err != nil {
		return nil, err
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// strings runs a query of one string column.
func (x *Index) strings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := x.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

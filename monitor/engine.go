package monitor

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

// kvReader reads persisted engine state; nil means all state is in memory.
type kvReader interface {
	get(ns, key string) ([]byte, bool, error)
}

// Namespaces of persisted engine state.
const (
	nsSession = "s"
	nsGroup   = "g"
)

// sessionState is the monitor's view of a session's hash chain.
type sessionState struct {
	Seq   uint64 `json:"seq"`
	Hash  string `json:"hash"`
	Time  int64  `json:"time"` // unix nanoseconds of the last event
	Count uint64 `json:"count"`
	Index uint64 `json:"index"`
}

// groupState is a rule's state for one group.
type groupState struct {
	Last  *typedValue `json:"last,omitempty"`
	Hits  []int64     `json:"hits,omitempty"` // event times (unix ns) inside the window
	N     int64       `json:"n,omitempty"`    // baseline samples
	Mean  float64     `json:"mean,omitempty"`
	Var   float64     `json:"var,omitempty"`
	Fired int64       `json:"fired,omitempty"` // event time of the last alert
}

// typedValue keeps a CEL value's type across JSON.
type typedValue struct {
	T string `json:"t"`
	V string `json:"v"`
}

func toTyped(v any) *typedValue {
	switch x := v.(type) {
	case int64:
		return &typedValue{"i", fmt.Sprint(x)}
	case uint64:
		return &typedValue{"u", fmt.Sprint(x)}
	case float64:
		b, _ := json.Marshal(x)
		return &typedValue{"f", string(b)}
	case bool:
		return &typedValue{"b", fmt.Sprint(x)}
	case string:
		return &typedValue{"s", x}
	case nil:
		return nil
	default:
		b, _ := json.Marshal(x)
		return &typedValue{"j", string(b)}
	}
}

func (t *typedValue) native() any {
	if t == nil {
		return nil
	}
	switch t.T {
	case "i":
		var x int64
		fmt.Sscan(t.V, &x)
		return x
	case "u":
		var x uint64
		fmt.Sscan(t.V, &x)
		return x
	case "f":
		var x float64
		json.Unmarshal([]byte(t.V), &x)
		return x
	case "b":
		return t.V == "true"
	case "s":
		return t.V
	default:
		var x any
		json.Unmarshal([]byte(t.V), &x)
		return x
	}
}

// engine evaluates rules over verified entries, in log order.
type engine struct {
	rules     *Rules
	origin    string
	fromStart bool
	kv        kvReader
	logger    *slog.Logger
	maxCached int

	sessions map[string]*sessionState
	groups   map[string]*groupState
	dirty    map[[2]string]bool
	errs     map[string]int

	// the rule parameters the log sets (config.go)
	configs      map[string]*configState // by configKey; nil: none recorded
	tenantParams map[string]map[string]any
}

func newEngine(rules *Rules, origin string, fromStart bool, kv kvReader, logger *slog.Logger) *engine {
	if rules == nil {
		rules = &Rules{params: map[string]any{}}
	}
	return &engine{
		rules: rules, origin: origin, fromStart: fromStart, kv: kv, logger: logger, maxCached: 200_000,
		sessions: map[string]*sessionState{}, groups: map[string]*groupState{},
		dirty: map[[2]string]bool{}, errs: map[string]int{},
		configs: map[string]*configState{}, tenantParams: map[string]map[string]any{},
	}
}

func (en *engine) session(key string) (*sessionState, error) {
	if s, ok := en.sessions[key]; ok {
		return s, nil
	}
	var s *sessionState
	if en.kv != nil {
		b, ok, err := en.kv.get(nsSession, key)
		if err != nil {
			return nil, err
		}
		if ok {
			s = new(sessionState)
			if err := json.Unmarshal(b, s); err != nil {
				return nil, fmt.Errorf("session state %q: %w", key, err)
			}
		}
	}
	en.sessions[key] = s // nil: not seen
	return s, nil
}

func (en *engine) group(key string) (*groupState, error) {
	if g, ok := en.groups[key]; ok {
		return g, nil
	}
	g := new(groupState)
	if en.kv != nil {
		b, ok, err := en.kv.get(nsGroup, key)
		if err != nil {
			return nil, err
		}
		if ok {
			if err := json.Unmarshal(b, g); err != nil {
				return nil, fmt.Errorf("rule state %q: %w", key, err)
			}
		}
	}
	en.groups[key] = g
	return g, nil
}

// kvWrite is one changed state record.
type kvWrite struct {
	ns, key string
	val     []byte
}

// flush returns the state changed since the last flush, and forgets clean
// cached state beyond the cache limit when state is persisted.
func (en *engine) flush() []kvWrite {
	out := make([]kvWrite, 0, len(en.dirty))
	for k := range en.dirty {
		var v any
		switch k[0] {
		case nsSession:
			v = en.sessions[k[1]]
		case nsGroup:
			v = en.groups[k[1]]
		case nsConfig:
			v = en.configs[k[1]]
		}
		b, _ := json.Marshal(v)
		out = append(out, kvWrite{ns: k[0], key: k[1], val: b})
	}
	clear(en.dirty)
	if en.kv != nil && len(en.sessions)+len(en.groups) > en.maxCached {
		clear(en.sessions)
		clear(en.groups)
	}
	return out
}

// activation resolves rule variables without building a map per event.
type activation struct {
	e             map[string]any
	params        map[string]any
	session       map[string]any
	monitor       map[string]any
	eventTime     time.Time
	after, before any
	value, last   any
	count         int64
	baseline      map[string]any
	group         string
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "e":
		return a.e, true
	case "params":
		return a.params, true
	case "session":
		return a.session, true
	case "monitor":
		return a.monitor, true
	case "event_time":
		return a.eventTime, true
	case "integrated_after":
		return nullIfNil(a.after), true
	case "integrated_before":
		return nullIfNil(a.before), true
	case "value":
		return nullIfNil(a.value), true
	case "last":
		return nullIfNil(a.last), true
	case "count":
		return a.count, true
	case "group":
		return a.group, true
	case "baseline":
		if a.baseline == nil {
			return map[string]any{}, true
		}
		return a.baseline, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

func nullIfNil(v any) any {
	if v == nil {
		return types.NullValue
	}
	return v
}

// eventMap is the CEL view of a leaf.
func eventMap(l *event.Leaf, index uint64, leafHash []byte) map[string]any {
	attrs := make(map[string]any, len(l.Attributes))
	for k, v := range l.Attributes {
		attrs[k] = celValue(v)
	}
	m := map[string]any{
		"v": int64(l.V), "id": l.ID, "kind": l.Kind, "time": l.Time, "tenant": l.Tenant,
		"session": l.Session, "seq": int64(l.Seq), "prev": l.Prev,
		"actor":      map[string]any{"type": l.Actor.Type, "id": l.Actor.ID, "on_behalf_of": l.Actor.OnBehalfOf},
		"attributes": attrs, "index": int64(index), "leaf_hash": hex.EncodeToString(leafHash),
	}
	if l.Payload != nil {
		m["payload"] = map[string]any{"alg": l.Payload.Alg, "digest": l.Payload.Digest, "size": int64(l.Payload.Size), "media_type": l.Payload.MediaType}
	}
	if l.Corrects != nil {
		m["corrects"] = int64(*l.Corrects)
	}
	return m
}

// celValue converts a decoded JSON value (json.Number for numbers) to
// int64 or float64, in lists and objects too.
func celValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = celValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = celValue(e)
		}
		return out
	}
	return v
}

func toNative(v ref.Val) any {
	switch v.Type() {
	case types.NullType:
		return nil
	case types.IntType, types.UintType, types.DoubleType, types.StringType, types.BoolType:
		return v.Value()
	}
	return v.Value()
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	}
	return 0, false
}

// evalContext carries what the engine knows about when an entry was
// integrated: after integratedAfter (the previous verified checkpoint was
// observed without it) and before integratedBefore.
type evalContext struct {
	integratedAfter, integratedBefore *time.Time
}

// evaluate runs every rule over one verified entry and updates the state.
// Entries that are not valid leaves yield a log.malformed_entry alert.
func (en *engine) evaluate(e verify.Entry, ec evalContext) ([]Alert, error) {
	idx := e.Index
	if e.Leaf == nil {
		msg := "entry is not a valid audit event leaf"
		if e.Err != nil {
			msg += ": " + e.Err.Error()
		}
		return []Alert{{
			ID: verify.FindingID(en.origin, verify.RuleMalformedEntry, fmt.Sprint(idx)), Rule: verify.RuleMalformedEntry,
			Severity: "high", Index: &idx, Message: msg, Origin: en.origin, Source: SourceIntegrity,
		}}, nil
	}
	l := e.Leaf
	et, err := time.Parse(time.RFC3339Nano, l.Time)
	if err != nil {
		et = time.Unix(0, 0).UTC()
	}
	skey := l.Tenant + "\x00" + l.Session
	ss, err := en.session(skey)
	if err != nil {
		return nil, err
	}
	sess := map[string]any{"seen": ss != nil}
	if ss != nil {
		sess["last_seq"] = int64(ss.Seq)
		sess["last_hash"] = ss.Hash
		sess["last_time"] = time.Unix(0, ss.Time).UTC()
		sess["count"] = int64(ss.Count)
		sess["last_index"] = int64(ss.Index)
	} else {
		sess["count"] = int64(0)
	}
	params, err := en.paramsFor(l.Tenant)
	if err != nil {
		return nil, err
	}
	a := &activation{
		e: eventMap(l, idx, e.EventHash()), params: params, session: sess,
		monitor: map[string]any{"from_start": en.fromStart}, eventTime: et.UTC(),
	}
	if ec.integratedAfter != nil {
		a.after = *ec.integratedAfter
	}
	if ec.integratedBefore != nil {
		a.before = *ec.integratedBefore
	}
	var alerts []Alert
	for _, r := range en.rules.rules {
		al, err := en.evalRule(r, a, l, idx, et)
		if err != nil {
			return nil, err
		}
		if al != nil {
			alerts = append(alerts, *al)
		}
	}
	// Built-in session tracking, after the rules saw the previous head.
	if ss == nil {
		ss = new(sessionState)
		en.sessions[skey] = ss
	}
	ss.Seq, ss.Hash, ss.Time, ss.Index = l.Seq, hex.EncodeToString(e.EventHash()), et.UnixNano(), idx
	ss.Count++
	en.dirty[[2]string{nsSession, skey}] = true
	en.seeConfig(idx, l)
	return alerts, nil
}

func (en *engine) ruleError(r *rule, field string, err error) {
	en.errs[r.name]++
	if n := en.errs[r.name]; n == 1 || n%10000 == 0 {
		en.logger.Warn("rule evaluation error (treated as no match)", "rule", r.name, "field", field, "error", err, "count", n)
	}
}

func (en *engine) evalBool(r *rule, field string, p cel.Program, a *activation) bool {
	v, _, err := p.Eval(a)
	if err != nil {
		en.ruleError(r, field, err)
		return false
	}
	b, ok := v.(types.Bool)
	if !ok {
		en.ruleError(r, field, fmt.Errorf("result is %s, not bool", v.Type()))
		return false
	}
	return bool(b)
}

func (en *engine) evalRule(r *rule, a *activation, l *event.Leaf, idx uint64, et time.Time) (*Alert, error) {
	a.value, a.last, a.count, a.baseline, a.group = nil, nil, 0, nil, ""
	if !en.evalBool(r, "match", r.match, a) {
		return nil, nil
	}
	group := ""
	if r.groupBy != nil {
		v, _, err := r.groupBy.Eval(a)
		if err != nil {
			en.ruleError(r, "group_by", err)
			return nil, nil
		}
		s, ok := v.Value().(string)
		if !ok {
			s = fmt.Sprint(v.Value())
		}
		group = s
		a.group = s
	}
	gkey := r.name + "\x00" + group
	gs, err := en.group(gkey)
	if err != nil {
		return nil, err
	}
	changed := false
	if r.value != nil {
		v, _, err := r.value.Eval(a)
		if err != nil {
			en.ruleError(r, "value", err)
			return nil, nil
		}
		a.value = toNative(v)
		a.last = gs.Last.native()
	}
	var z float64
	var sampled bool
	if r.baseline != nil {
		x, ok := toFloat(a.value)
		if !ok {
			en.ruleError(r, "value", fmt.Errorf("baseline value %v is not a number", a.value))
			return nil, nil
		}
		std := max(math.Sqrt(gs.Var), r.baseline.MinStddev)
		z = (x - gs.Mean) / std
		a.baseline = map[string]any{"mean": gs.Mean, "stddev": std, "z": z, "samples": gs.N}
		sampled = gs.N >= int64(r.baseline.MinSamples)
		// Update: cumulative mean until min_samples, then EWMA.
		alpha := max(r.baseline.Alpha, 1/float64(gs.N+1))
		d := x - gs.Mean
		gs.Mean += alpha * d
		gs.Var = (1 - alpha) * (gs.Var + alpha*d*d)
		gs.N++
		changed = true
	}
	fire := true
	if r.condition != nil {
		fire = en.evalBool(r, "condition", r.condition, a)
	}
	if r.baseline != nil && fire {
		switch r.baseline.Direction {
		case "up":
			fire = sampled && z >= r.baseline.Z
		case "down":
			fire = sampled && z <= -r.baseline.Z
		default:
			fire = sampled && math.Abs(z) >= r.baseline.Z
		}
	}
	if r.value != nil {
		gs.Last = toTyped(a.value)
		changed = true
	}
	t := et.UnixNano()
	if fire && r.window > 0 {
		cut := t - int64(r.window)
		keep := gs.Hits[:0]
		for _, h := range gs.Hits {
			if h > cut {
				keep = append(keep, h)
			}
		}
		gs.Hits = append(keep, t)
		a.count = int64(len(gs.Hits))
		changed = true
		if len(gs.Hits) >= r.threshold {
			gs.Hits = nil
		} else {
			fire = false
		}
	}
	if fire && r.cooldown > 0 && gs.Fired != 0 && t-gs.Fired < int64(r.cooldown) {
		fire = false
	}
	if fire {
		gs.Fired = t
		changed = true
	}
	if changed {
		en.dirty[[2]string{nsGroup, gkey}] = true
	}
	if !fire {
		return nil, nil
	}
	msg := r.description
	if r.message != nil {
		if v, _, err := r.message.Eval(a); err != nil {
			en.ruleError(r, "message", err)
		} else if s, ok := v.Value().(string); ok {
			msg = s
		}
	}
	if msg == "" {
		msg = r.name
	}
	al := &Alert{
		ID: verify.FindingID(en.origin, r.name, fmt.Sprint(idx)), Rule: r.name, Severity: r.severity, Index: &idx,
		Message: msg, Origin: en.origin, Tenant: l.Tenant, Session: l.Session, EventID: l.ID, Kind: l.Kind,
		EventTime: l.Time, Group: group, Source: SourceRule,
	}
	if a.count > 0 {
		al.Details = map[string]any{"count": a.count, "window": r.window.String()}
	}
	if a.baseline != nil {
		al.Details = map[string]any{"value": a.value, "mean": a.baseline["mean"], "stddev": a.baseline["stddev"], "z": z}
	}
	return al, nil
}

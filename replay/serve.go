package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/llmapi"
)

// Verdicts of a re-execution.
const (
	Reproduced = "reproduced" // every recorded attempt was requested again, and no request differed in a decision-relevant field
	Diverged   = "diverged"   // a request differed in a decision-relevant field, or one more was made than recorded
	Incomplete = "incomplete" // the agent stopped before it made every recorded request
)

// Divergence codes: stable, for scripts.
const (
	CodeRequestDiffers  = "RPL1001" // a field of the request differs from the recorded request
	CodeEndpointDiffers = "RPL1002" // another provider or API path than recorded
	CodeUnexpected      = "RPL1003" // more requests than the session recorded
	CodeUnpairedID      = "RPL1004" // a provider id (call_…, toolu_…) does not pair with the one recorded
	CodeNotJSON         = "RPL1005" // the request body is not JSON
	CodeNotRequested    = "RPL2001" // recorded attempts the agent never requested (incomplete)
)

// Relevance of a divergence.
const (
	Benign   = "benign"   // ids, timestamps, fields marked volatile, transport options
	Decision = "decision" // messages, tool arguments, model, tools, sampling: what the model decides on
)

// Divergence is one difference between a new request and the recorded one.
type Divergence struct {
	Step      int    `json:"step"`  // the call's step in the timeline
	Index     uint64 `json:"index"` // log index of the recorded request
	Path      string `json:"path"`  // JSON path of the first differing field
	Recorded  any    `json:"recorded"`
	New       any    `json:"new"`
	Code      string `json:"code"`
	Relevance string `json:"relevance"`
}

// Verdict is the outcome of a re-execution.
type Verdict struct {
	Verdict     string       `json:"verdict"`
	Tenant      string       `json:"tenant"`
	Session     string       `json:"session"`
	Size        uint64       `json:"checkpoint_size"`
	Root        string       `json:"checkpoint_root"`
	Recorded    int          `json:"recorded_attempts"`
	Served      int          `json:"served_attempts"`
	Requests    int          `json:"requests"`
	Differences []Divergence `json:"differences"`
	Reason      string       `json:"reason,omitempty"`
}

// Timing of streamed responses.
type Timing struct {
	// Scale multiplies the recorded time to first byte and duration; 0
	// answers instantly.
	Scale float64
}

// ParseTiming parses instant, recorded or scaled:F.
func ParseTiming(s string) (Timing, error) {
	switch {
	case s == "instant" || s == "":
		return Timing{}, nil
	case s == "recorded":
		return Timing{Scale: 1}, nil
	case strings.HasPrefix(s, "scaled:"):
		f, err := strconv.ParseFloat(strings.TrimPrefix(s, "scaled:"), 64)
		if err != nil || f < 0 || f > 100 {
			return Timing{}, fmt.Errorf("timing %q: scaled:F with 0 <= F <= 100", s)
		}
		return Timing{Scale: f}, nil
	}
	return Timing{}, fmt.Errorf("timing %q: instant, recorded or scaled:F", s)
}

// Options of a Replayer.
type Options struct {
	Timing Timing
	// Volatile are JSON paths of request fields not compared (a.b,
	// messages[*].name); a path covers everything below it.
	Volatile []string
	// AllDifferences lists every difference and keeps serving the recorded
	// responses; otherwise the first decision-relevant difference ends the
	// run.
	AllDifferences bool
	Logger         *slog.Logger
}

// recorded is one recorded attempt of a call.
type recorded struct {
	step      int
	reqIndex  uint64
	req       any // the request body, decoded
	upstream  string
	provider  string
	api       string // capture.api: its format's name, then the API
	path      string
	status    int
	mediaType string
	body      []byte
	requestID string
	ttfb, dur time.Duration
	served    bool
}

// ErrNotReplayable: the session cannot be replayed (it did not verify, or
// a payload it needs is not there).
var ErrNotReplayable = errors.New("the session cannot be replayed")

// Replayer answers an agent's provider requests from a rebuilt session's
// recorded responses, at the capture proxy's paths (/proxy/UPSTREAM/...,
// UPSTREAM the name a call was recorded through, or its provider's: see
// Upstreams), and compares each new request with the recorded one. What
// it knows of the providers' formats (their tool results, the ids they
// mint, the fields a model decides on, their error bodies) it reads from
// the llmapi registry, which package capture fills: a program that replays
// links it.
type Replayer struct {
	s     *Session
	opts  Options
	wire  wire
	mu    sync.Mutex
	calls []*recorded
	next  int
	ids   idMap
	v     Verdict
	ended bool
	done  chan struct{}
}

// ErrNoProviders: no provider format is registered (llmapi), so requests
// cannot be compared: the program does not link package capture.
var ErrNoProviders = errors.New("replay: no LLM provider format is registered (llmapi); link package capture")

// NewReplayer prepares a replay of s, which must have been rebuilt with
// its payloads and verified.
func NewReplayer(s *Session, opts Options) (*Replayer, error) {
	wire, err := newWire()
	if err != nil {
		return nil, err
	}
	if !s.Verified() {
		return nil, fmt.Errorf("%w: %d verification problem(s), first: %s", ErrNotReplayable, len(s.Problems), s.Problems[0])
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Replayer{s: s, opts: opts, wire: wire, ids: idMap{rec: map[string]string{}, new: map[string]string{}}, done: make(chan struct{})}
	tl := NewTimeline(s)
	stepOf := map[uint64]int{}
	for _, st := range tl.Steps {
		for _, i := range st.Events {
			stepOf[i] = st.N
		}
	}
	byIndex := map[uint64]*Event{}
	for _, e := range s.Events {
		byIndex[e.Index] = e
	}
	for _, st := range tl.Steps {
		if st.Call == nil {
			continue
		}
		for _, a := range st.Call.Attempts {
			req := byIndex[a.Request]
			if req == nil || req.Leaf.Kind != event.KindLLMRequest {
				continue // a response whose request is not in the session
			}
			if req.PayloadStatus != api.PayloadOK {
				return nil, fmt.Errorf("%w: the request at entry %d has no payload (%s)", ErrNotReplayable, a.Request, req.PayloadStatus)
			}
			c := &recorded{step: st.N, reqIndex: a.Request, upstream: req.Leaf.Attributes.String(event.AttrCaptureUpstream),
				provider: req.Leaf.Attributes.String(event.AttrGenAIProviderName), api: req.Leaf.Attributes.String(event.AttrCaptureAPI),
				path: req.Leaf.Attributes.String(event.AttrURLPath)}
			if err := decodeJSON(req.Payload, &c.req); err != nil {
				return nil, fmt.Errorf("%w: the request at entry %d is not JSON: %v", ErrNotReplayable, a.Request, err)
			}
			c.req = normalize(c.req)
			if a.Response == nil {
				return nil, fmt.Errorf("%w: the request at entry %d has no recorded response", ErrNotReplayable, a.Request)
			}
			resp := byIndex[*a.Response]
			c.status = a.Status
			c.requestID = resp.Leaf.Attributes.String(event.AttrCaptureUpstreamRequestID)
			c.ttfb = time.Duration(a.TTFBMS * float64(time.Millisecond))
			c.dur = time.Duration(a.DurationMS * float64(time.Millisecond))
			if resp.Leaf.Payload != nil {
				if resp.PayloadStatus != api.PayloadOK {
					return nil, fmt.Errorf("%w: the response at entry %d has no payload (%s)", ErrNotReplayable, *a.Response, resp.PayloadStatus)
				}
				c.body, c.mediaType = resp.Payload, resp.MediaType
			}
			if c.status == 0 {
				return nil, fmt.Errorf("%w: the response at entry %d has no status (the upstream did not answer)", ErrNotReplayable, *a.Response)
			}
			r.calls = append(r.calls, c)
		}
	}
	r.v = Verdict{Tenant: s.Tenant, Session: s.ID, Size: s.Size, Root: fmt.Sprintf("%x", s.Root), Recorded: len(r.calls), Differences: []Divergence{}}
	if len(r.calls) == 0 {
		return nil, fmt.Errorf("%w: the session has no recorded model call", ErrNotReplayable)
	}
	return r, nil
}

// Done is closed when the run has ended: every recorded attempt was
// served, or a divergence ended it.
func (r *Replayer) Done() <-chan struct{} { return r.done }

// Verdict is the run's verdict so far.
func (r *Replayer) Verdict() Verdict {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.v
	v.Differences = slices.Clone(r.v.Differences)
	switch {
	case slices.ContainsFunc(v.Differences, func(d Divergence) bool { return d.Relevance == Decision }):
		v.Verdict = Diverged
	case v.Served < v.Recorded:
		v.Verdict = Incomplete
		v.Reason = fmt.Sprintf("%d of %d recorded attempts were not requested (%s)", v.Recorded-v.Served, v.Recorded, CodeNotRequested)
	default:
		v.Verdict = Reproduced
	}
	return v
}

func (r *Replayer) end() {
	if !r.ended {
		r.ended = true
		close(r.done)
	}
}

// maxRequestBytes caps a request body.
const maxRequestBytes = 32 << 20

// ServeHTTP answers one provider request.
func (r *Replayer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rest, ok := strings.CutPrefix(req.URL.Path, "/proxy/")
	upstream, path, _ := strings.Cut(rest, "/")
	if !ok || req.Method != http.MethodPost {
		http.Error(w, "replay serves POST /proxy/UPSTREAM/..., UPSTREAM one of "+strings.Join(r.Upstreams(), ", "), http.StatusNotFound)
		return
	}
	path = "/" + path
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxRequestBytes))
	if err != nil {
		http.Error(w, "request body: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	r.mu.Lock()
	r.v.Requests++
	if r.ended && !r.opts.AllDifferences && slices.ContainsFunc(r.v.Differences, func(d Divergence) bool { return d.Relevance == Decision }) {
		r.mu.Unlock()
		r.refuse(w, upstream, nil, "the replay has ended: the run diverged earlier")
		return
	}
	c, diffs := r.match(upstream, path, body)
	r.v.Differences = append(r.v.Differences, diffs...)
	decisive := slices.ContainsFunc(diffs, func(d Divergence) bool { return d.Relevance == Decision })
	if c == nil || (decisive && !r.opts.AllDifferences) {
		r.end()
		r.mu.Unlock()
		msg := "no recorded request to answer this one"
		if len(diffs) > 0 {
			d := diffs[0]
			msg = fmt.Sprintf("%s at step %d (recorded request at entry %d): %s recorded %s, new %s", d.Code, d.Step, d.Index, d.Path, jsonText(d.Recorded), jsonText(d.New))
		}
		r.opts.Logger.Info("replay: diverged", "detail", msg)
		r.refuse(w, upstream, r.calls[min(r.next, len(r.calls)-1)], msg)
		return
	}
	c.served = true
	r.v.Served++
	for r.next < len(r.calls) && r.calls[r.next].served {
		r.next++
	}
	if r.next == len(r.calls) {
		r.end()
	}
	r.mu.Unlock()
	r.answer(w, c)
}

// match finds the recorded attempt a request answers: the next in order,
// or among the next few outstanding ones an exact match (calls the agent
// made in parallel).
func (r *Replayer) match(upstream, path string, body []byte) (*recorded, []Divergence) {
	if r.next >= len(r.calls) {
		last := r.calls[len(r.calls)-1]
		return nil, []Divergence{{Step: last.step, Index: last.reqIndex, Path: "", Code: CodeUnexpected, Relevance: Decision,
			Recorded: nil, New: fmt.Sprintf("%s %s", upstream, path)}}
	}
	var v any
	if err := decodeJSON(body, &v); err != nil {
		c := r.calls[r.next]
		return nil, []Divergence{{Step: c.step, Index: c.reqIndex, Code: CodeNotJSON, Relevance: Decision, New: err.Error()}}
	}
	v = normalize(v)
	first := r.calls[r.next]
	diffs := r.compare(first, upstream, path, v)
	if slices.ContainsFunc(diffs, func(d Divergence) bool { return d.Relevance == Decision }) {
		seen := 0
		for _, c := range r.calls[r.next+1:] {
			if c.served {
				continue
			}
			if seen++; seen > 8 {
				break
			}
			if d := r.compare(c, upstream, path, v); len(d) == 0 {
				return c, nil
			}
		}
	}
	if !r.opts.AllDifferences {
		for i, d := range diffs {
			if d.Relevance == Decision {
				return first, diffs[i : i+1]
			}
		}
	}
	return first, diffs
}

func (r *Replayer) compare(c *recorded, upstream, path string, v any) []Divergence {
	var out []Divergence
	add := func(p string, rec, nw any, code, rel string) {
		out = append(out, Divergence{Step: c.step, Index: c.reqIndex, Path: p, Recorded: rec, New: nw, Code: code, Relevance: rel})
	}
	if !c.servedAt(upstream) || path != c.path {
		add("", c.provider+" "+c.path, upstream+" "+path, CodeEndpointDiffers, Decision)
		return out
	}
	ids := r.ids.clone()
	cmp := &comparer{ids: ids, wire: &r.wire, volatile: r.opts.Volatile, add: func(p string, rec, nw any, code string) {
		add(p, rec, nw, code, r.wire.relevance(p, code))
	}}
	cmp.value(c.req, v)
	hasDecision := slices.ContainsFunc(out, func(d Divergence) bool { return d.Relevance == Decision })
	if !hasDecision || r.opts.AllDifferences {
		r.ids = ids // bind the ids only once the request is accepted
	}
	return out
}

// servedAt reports whether a request to upstream (/proxy/UPSTREAM/) is
// one to the upstream c was recorded through: its name, its provider's
// system, or a name that stands for its provider (llmapi.ForUpstream:
// /proxy/NAME/ for a call to NAME's host, recorded through the
// interception proxy with the host as its upstream).
func (c *recorded) servedAt(upstream string) bool {
	if upstream == c.upstream || upstream == c.provider {
		return true
	}
	p, ok := llmapi.ForUpstream(upstream)
	return ok && c.provider != "" && p.System == c.provider
}

// Upstreams are the upstream names the recorded calls are served under
// (/proxy/NAME/...): each call's upstream, or for one recorded through the
// interception proxy (whose upstream is a host), its provider's name.
func (r *Replayer) Upstreams() []string {
	var out []string
	for _, c := range r.calls {
		name := c.upstream
		if p, ok := llmapi.ForHost(name); ok { // the interception proxy's
			name = p.Name
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// wire is what a replay knows of the registered provider formats.
type wire struct {
	formats  []llmapi.Format
	decision map[string]bool // top-level request fields the model decides on
	ids      *regexp.Regexp  // provider ids, their prefix the first group
}

func newWire() (wire, error) {
	w := wire{formats: llmapi.Formats(), decision: map[string]bool{"": true}}
	if len(w.formats) == 0 {
		return w, ErrNoProviders
	}
	var prefixes []string
	for _, f := range w.formats {
		for _, d := range f.DecisionFields() {
			w.decision[d] = true
		}
		for _, p := range f.IDPrefixes() {
			if p = regexp.QuoteMeta(p); !slices.Contains(prefixes, p) {
				prefixes = append(prefixes, p)
			}
		}
	}
	if len(prefixes) == 0 {
		prefixes = []string{`[^\x00-\x{10FFFF}]`} // no ids: matches nothing
	}
	w.ids = regexp.MustCompile(`^(` + strings.Join(prefixes, "|") + `)[_-][A-Za-z0-9_-]{4,}$`)
	return w, nil
}

// relevance says whether a differing field is one the model decides on:
// a field of the provider formats' DecisionFields, or an unpaired id.
func (w *wire) relevance(path, code string) string {
	if code == CodeUnpairedID {
		return Decision
	}
	top, _, _ := strings.Cut(path, ".")
	top, _, _ = strings.Cut(top, "[")
	if w.decision[top] {
		return Decision
	}
	return Benign
}

// idPrefix is the kind of provider id s is ("call", "toolu", ...), or "".
func (w *wire) idPrefix(s string) string {
	if m := w.ids.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

// toolResult reports whether v is a tool result of a registered format,
// and the call it answers.
func (w *wire) toolResult(v any) (string, bool) {
	for _, f := range w.formats {
		if id, ok := f.ToolResult(v); ok {
			return id, true
		}
	}
	return "", false
}

// idMap pairs provider ids of the record with those of the new run, one
// to one.
type idMap struct{ rec, new map[string]string }

func (m idMap) clone() idMap {
	n := idMap{rec: make(map[string]string, len(m.rec)), new: make(map[string]string, len(m.new))}
	for k, v := range m.rec {
		n.rec[k] = v
	}
	for k, v := range m.new {
		n.new[k] = v
	}
	return n
}

type comparer struct {
	ids      idMap
	wire     *wire
	volatile []string
	add      func(path string, rec, nw any, code string)
	path     []string // where value is, as a stack
}

func pathString(p []string) string {
	var b strings.Builder
	for _, s := range p {
		if strings.HasPrefix(s, "[") {
			b.WriteString(s)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

func (c *comparer) isVolatile(p []string) bool {
	for _, v := range c.volatile {
		pat := splitPath(v)
		if len(pat) > len(p) {
			continue
		}
		ok := true
		for i, t := range pat {
			if t != p[i] && !(t == "[*]" && strings.HasPrefix(p[i], "[")) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func splitPath(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ".") {
		name, idx, found := strings.Cut(part, "[")
		if name != "" {
			out = append(out, name)
		}
		for found {
			var i string
			i, idx, _ = strings.Cut(idx, "]")
			out = append(out, "["+i+"]")
			_, idx, found = strings.Cut(idx, "[")
		}
	}
	return out
}

func (c *comparer) diff(rec, nw any, code string) { c.add(pathString(c.path), rec, nw, code) }

func (c *comparer) value(rec, nw any) {
	if len(c.volatile) > 0 && c.isVolatile(c.path) {
		return
	}
	switch rv := rec.(type) {
	case map[string]any:
		nv, ok := nw.(map[string]any)
		if !ok {
			c.diff(rec, nw, CodeRequestDiffers)
			return
		}
		keys := make([]string, 0, len(rv)+len(nv))
		for k := range rv {
			keys = append(keys, k)
		}
		for k := range nv {
			if _, ok := rv[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			c.path = append(c.path, k)
			a, inRec := rv[k]
			b, inNew := nv[k]
			switch {
			case len(c.volatile) > 0 && c.isVolatile(c.path):
			case !inRec || !inNew:
				c.diff(a, b, CodeRequestDiffers)
			default:
				c.value(a, b)
			}
			c.path = c.path[:len(c.path)-1]
		}
	case []any:
		nv, ok := nw.([]any)
		if !ok {
			c.diff(rec, nw, CodeRequestDiffers)
			return
		}
		for i := 0; i < min(len(rv), len(nv)); {
			if n := c.toolRun(rv, nv, i); n > 0 {
				i += n
				continue
			}
			c.path = append(c.path, "["+strconv.Itoa(i)+"]")
			c.value(rv[i], nv[i])
			c.path = c.path[:len(c.path)-1]
			i++
		}
		if len(rv) != len(nv) {
			i := min(len(rv), len(nv))
			var a, b any
			if i < len(rv) {
				a = rv[i]
			}
			if i < len(nv) {
				b = nv[i]
			}
			c.path = append(c.path, "["+strconv.Itoa(i)+"]")
			c.diff(a, b, CodeRequestDiffers)
			c.path = c.path[:len(c.path)-1]
		}
	case string:
		ns, ok := nw.(string)
		switch {
		case ok && ns == rv:
			if len(rv) > 6 && c.wire.ids.MatchString(rv) {
				if m, bound := c.ids.rec[rv]; bound && m != ns {
					c.diff(rv, ns, CodeUnpairedID)
				}
				c.ids.rec[rv], c.ids.new[ns] = ns, rv
			}
		case ok && c.wire.idPrefix(rv) != "" && c.wire.idPrefix(rv) == c.wire.idPrefix(ns):
			mr, br := c.ids.rec[rv]
			mn, bn := c.ids.new[ns]
			if (br && mr != ns) || (bn && mn != rv) {
				c.diff(rv, ns, CodeUnpairedID)
				return
			}
			c.ids.rec[rv], c.ids.new[ns] = ns, rv
		default:
			c.diff(rec, nw, CodeRequestDiffers)
		}
	case json.Number:
		nn, ok := nw.(json.Number)
		if !ok || !sameNumber(rv, nn) {
			c.diff(rec, nw, CodeRequestDiffers)
		}
	default:
		if rec != nw {
			c.diff(rec, nw, CodeRequestDiffers)
		}
	}
}

// toolRun compares a run of tool results starting at i in both arrays
// (llmapi.Format.ToolResult: tool messages, tool result blocks or items,
// function responses) of the same length, pairing each recorded
// result with the new one that answers the same call (its id, or the id
// paired with it), whatever order the agent sent them in: calls run in
// parallel finish in any order. It returns the run's length, 0 if there is
// none at i.
func (c *comparer) toolRun(rv, nv []any, i int) int {
	n := 0
	for i+n < len(rv) && i+n < len(nv) {
		_, a := c.wire.toolResult(rv[i+n])
		_, b := c.wire.toolResult(nv[i+n])
		if !a || !b {
			break
		}
		n++
	}
	if n < 2 {
		return 0
	}
	used := make([]bool, n)
	for k := range n {
		rk, _ := c.wire.toolResult(rv[i+k])
		match := -1
		for j := range n {
			if used[j] {
				continue
			}
			nk, _ := c.wire.toolResult(nv[i+j])
			if m, ok := c.ids.new[nk]; (ok && m == rk) || (!ok && nk == rk) {
				match = j
				break
			}
		}
		if match < 0 { // nothing answers this call: compare in order, which says where
			for j := range n {
				if !used[j] {
					match = j
					break
				}
			}
		}
		used[match] = true
		c.path = append(c.path, "["+strconv.Itoa(i+k)+"]")
		c.value(rv[i+k], nv[i+match])
		c.path = c.path[:len(c.path)-1]
	}
	return n
}

func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, e1 := a.Float64()
	y, e2 := b.Float64()
	return e1 == nil && e2 == nil && x == y
}

// normalize copies a decoded request (runs of tool results are paired
// by the comparer, see toolRun).
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}

func decodeJSON(b []byte, v *any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func jsonText(v any) string {
	if v == nil {
		return "nothing"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return event.Shorten(string(b), 200)
}

// refuse answers a request the replay cannot answer, in the error format
// of the provider the request is for (its upstream's, else that of c, the
// recorded call it was compared with), so that the agent's SDK raises it.
func (r *Replayer) refuse(w http.ResponseWriter, upstream string, c *recorded, msg string) {
	f := r.wire.formats[0]
	if p, ok := llmapi.ForUpstream(upstream); ok {
		f = p.Format
	} else if c != nil {
		if g := llmapi.FormatOf(c.api); g != nil {
			f = g
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Replay-Divergence", "1")
	// 422: the SDKs retry 408, 409, 429 and 5xx, which would only repeat
	// the request that diverged.
	w.WriteHeader(http.StatusUnprocessableEntity)
	w.Write(f.ErrorBody(http.StatusUnprocessableEntity, "replay_divergence", msg))
}

// answer writes the recorded response: status, media type, request id,
// and the body byte for byte (an event stream event by event, timed as
// the options say).
func (r *Replayer) answer(w http.ResponseWriter, c *recorded) {
	if c.mediaType != "" {
		w.Header().Set("Content-Type", c.mediaType)
	}
	if c.requestID != "" {
		w.Header().Set("X-Request-Id", c.requestID)
		w.Header().Set("Request-Id", c.requestID)
	}
	w.Header().Set("X-Replay-Entry", strconv.FormatUint(c.reqIndex, 10))
	scale := r.opts.Timing.Scale
	stream := strings.HasPrefix(c.mediaType, "text/event-stream")
	if scale > 0 {
		time.Sleep(time.Duration(float64(c.ttfb) * scale))
	}
	w.WriteHeader(c.status)
	if !stream {
		w.Write(c.body)
		return
	}
	events := splitEvents(c.body)
	var gap time.Duration
	if scale > 0 && len(events) > 1 {
		gap = time.Duration(float64(c.dur-c.ttfb) * scale / float64(len(events)-1))
	}
	rc := http.NewResponseController(w)
	for i, e := range events {
		if i > 0 && gap > 0 {
			time.Sleep(gap)
		}
		if _, err := w.Write(e); err != nil {
			return
		}
		rc.Flush()
	}
}

// splitEvents splits an event stream after each blank line, keeping every
// byte.
func splitEvents(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\n\n"))
		if i < 0 {
			out = append(out, b)
			break
		}
		out = append(out, b[:i+2])
		b = b[i+2:]
	}
	return out
}

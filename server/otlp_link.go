package server

import (
	"context"
	"fmt"
	"sync"

	"github.com/llmaudittrail/llmaudittrail/index"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/otlp"
)

// linkCalls links the inference spans of an export (res.Calls) to the
// calls the capture observed (docs/otel.md, "Calls seen twice"): the
// capture records the traceparent an agent's HTTP instrumentation sends
// (otel.trace_id, otel.parent_span_id of its llm.request) and the index
// keeps them (index.ProxyCalls). A span is the call whose traceparent names
// the span itself (an instrumentation that propagates its own span) or one
// of its children (the HTTP client span under it: in the same export, or
// in an earlier one of the last maxSpanParents spans this instance took;
// a child ends, and is exported, no later than its parent). A linked span
// becomes one llm.span event that names the capture's llm.request, in
// place of its llm.request and llm.response.
//
// The index must cover every call acknowledged before the export, so the
// receiver waits for it first (WaitIndexed), when the export has
// inference spans and the tenant has calls the capture observed with a
// trace context (this instance's capture recorded one, or the index holds
// one). The capture records a call's llm.request before it forwards the
// call in fail-closed mode, so by the time the agent exports the span the
// request is acknowledged.
func (s *Server) linkCalls(ctx context.Context, tenant string, res *otlp.Result) error {
	s.spanParents.add(tenant, res.Parents)
	if len(res.Calls) == 0 {
		return nil
	}
	if !s.traced.has(tenant) {
		any, err := s.log.Index().HasProxyCalls(ctx, tenant)
		if err != nil {
			return fmt.Errorf("%w: %v", auditlog.ErrUnavailable, err)
		}
		if !any {
			return nil // no call of the tenant's to link to
		}
		s.traced.mark(tenant)
	}
	if err := s.log.WaitIndexed(ctx); err != nil {
		return fmt.Errorf("%w: %v", auditlog.ErrUnavailable, err)
	}
	// A span delivered again keeps what its first delivery recorded: its
	// pair, or its llm.span (the link may have become possible, or not be
	// found by this instance, since).
	var ids []string
	for _, c := range res.Calls {
		ids = append(ids, c.RequestID, c.LinkedID)
	}
	held, err := s.log.Index().ByIDs(ctx, ids)
	if err != nil {
		return fmt.Errorf("%w: %v", auditlog.ErrUnavailable, err)
	}
	byTrace := map[string][]int{}
	var traces []string
	for i, c := range res.Calls {
		if byTrace[c.TraceID] == nil {
			traces = append(traces, c.TraceID)
		}
		byTrace[c.TraceID] = append(byTrace[c.TraceID], i)
	}
	for _, trace := range traces {
		cands := map[int][]string{}
		var ask []string
		for _, i := range byTrace[trace] {
			c := res.Calls[i]
			ids := append([]string{c.SpanID}, c.Children...)
			ids = append(ids, s.spanParents.children(tenant, trace, c.SpanID)...)
			cands[i] = ids
			ask = append(ask, ids...)
		}
		found := map[string]index.ProxyCall{}
		ask = dedupe(ask)
		for len(ask) > 0 { // a query's parameters are bounded
			n := min(len(ask), 500)
			part, err := s.log.Index().ProxyCalls(ctx, tenant, trace, ask[:n])
			if err != nil {
				return fmt.Errorf("%w: %v", auditlog.ErrUnavailable, err)
			}
			for id, pc := range part {
				found[id] = pc
			}
			ask = ask[n:]
		}
		for _, i := range byTrace[trace] {
			if _, ok := held[res.Calls[i].RequestID]; ok {
				continue
			}
			if _, ok := held[res.Calls[i].LinkedID]; ok {
				res.Omit(i)
				continue
			}
			for _, id := range cands[i] {
				if pc, ok := found[id]; ok {
					if err := res.Link(i, otlp.CaptureRef{Index: pc.Index, ID: pc.ID}); err != nil {
						s.logger.Warn("otlp: linking a span to the call the capture observed", "error", err)
					}
					break
				}
			}
		}
	}
	res.Compact()
	return nil
}

// tracedTenants are the tenants of which a call with a trace context was
// observed.
type tracedTenants struct{ m sync.Map }

func (t *tracedTenants) mark(tenant string) { t.m.Store(tenant, true) }

func (t *tracedTenants) has(tenant string) bool { _, ok := t.m.Load(tenant); return ok }

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// maxSpanParents is how many span-to-parent relations the receiver keeps
// from earlier exports.
const maxSpanParents = 1 << 16

// spanParents remembers the children of recently exported spans, by
// tenant, trace id and parent span id, the oldest forgotten first.
type spanParents struct {
	mu   sync.Mutex
	kids map[string][]string
	ring []string // keys in the order added, maxSpanParents at most
	next int
}

func (p *spanParents) add(tenant string, rel []otlp.SpanParent) {
	if len(rel) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.kids == nil {
		p.kids = map[string][]string{}
	}
	for _, r := range rel {
		k := tenant + "\x00" + r.TraceID + r.ParentID
		if len(p.ring) < maxSpanParents {
			p.ring = append(p.ring, k)
		} else {
			old := p.ring[p.next]
			if ks := p.kids[old]; len(ks) <= 1 {
				delete(p.kids, old)
			} else {
				p.kids[old] = ks[1:]
			}
			p.ring[p.next] = k
			p.next = (p.next + 1) % maxSpanParents
		}
		p.kids[k] = append(p.kids[k], r.SpanID)
	}
}

func (p *spanParents) children(tenant, trace, span string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ks := p.kids[tenant+"\x00"+trace+span]
	if len(ks) > 16 {
		ks = ks[len(ks)-16:]
	}
	return append([]string(nil), ks...)
}

package verify

import (
	"context"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// bodyCache reads the bodies of a log of leaf version 3 one entry bundle
// at a time, as an audit visits the entries in order.
type bodyCache struct {
	c      *client.Client
	size   uint64
	start  uint64
	loaded bool
	m      map[uint64][]byte
}

func (b *bodyCache) at(ctx context.Context, idx uint64) ([]byte, bool, error) {
	if b.c == nil {
		return nil, false, nil
	}
	start := idx / 256 * 256
	if !b.loaded || b.start != start {
		r, err := b.c.Bodies(ctx, start, min(start+256, b.size), b.size)
		if err != nil {
			return nil, false, fmt.Errorf("reading the bodies of entries %d-: %w", start, err)
		}
		b.m = make(map[uint64][]byte, len(r.Entries))
		for _, e := range r.Entries {
			b.m[e.Index] = e.Body
		}
		b.start, b.loaded = start, true
	}
	body, ok := b.m[idx]
	return body, ok, nil
}

// open returns the body of the verified entry data at idx, checked against
// its envelope, when the audit covers the entry (with key: it carries the
// key's tag); otherwise nil. A problem is a finding.
func (b *bodyCache) open(ctx context.Context, idx uint64, data []byte, key *event.TenantKey, tenant string) ([]byte, *Finding, error) {
	env, err := event.ParseEnvelope(data)
	if err != nil {
		return nil, &Finding{Rule: RuleMalformedEntry, Severity: "high", Source: SourceIntegrity,
			Message: fmt.Sprintf("entry %d is not an envelope of leaf version 3: %v", idx, err)}, nil
	}
	mine := key == nil || key.Recognises(&env)
	body, ok, err := b.at(ctx, idx)
	if err != nil {
		return nil, nil, err
	}
	if !mine {
		if ok {
			if _, err := event.OpenEnvelope(data, body, nil); err == nil {
				return nil, &Finding{Rule: RuleWrongTag, Severity: "critical", Source: SourceIntegrity,
					Message: fmt.Sprintf("entry %d is an event of the tenant's whose envelope does not carry the tenant's tag", idx)}, nil
			}
		}
		return nil, nil, nil
	}
	if !ok {
		return nil, &Finding{Rule: RuleBodyMissing, Severity: "critical", Source: SourceIntegrity,
			Message: fmt.Sprintf("entry %d: the log did not serve the body its envelope commits to", idx)}, nil
	}
	if _, err := event.OpenEnvelope(data, body, nil); err != nil {
		return nil, &Finding{Rule: RuleBodyMismatch, Severity: "critical", Source: SourceIntegrity,
			Message: fmt.Sprintf("entry %d: %v", idx, err)}, nil
	}
	if tenant != "" {
		if h, err := event.ParseHead(body); err == nil && h.Tenant != tenant {
			return nil, &Finding{Rule: RuleBodyMismatch, Severity: "critical", Source: SourceIntegrity,
				Message: fmt.Sprintf("entry %d carries the tag of tenant %s but its body is an event of %s", idx, tenant, event.Clip(h.Tenant, 64))}, nil
		}
	}
	return body, nil, nil
}

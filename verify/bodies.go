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
	salts  map[uint64][]byte // field salts (leaf version 4)
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
		b.salts = make(map[uint64][]byte, len(r.Entries))
		for _, e := range r.Entries {
			b.m[e.Index] = e.Body
			b.salts[e.Index] = e.FieldSalt
		}
		b.start, b.loaded = start, true
	}
	body, ok := b.m[idx]
	return body, ok, nil
}

// servedTo reports whether GET /v1/bodies serves body to a token of
// tenant: an event of the tenant, or a log-wide record (the server's own
// predicate, from the body alone).
func servedTo(tenant string, body []byte) bool {
	h, err := event.ParseHead(body)
	return err == nil && (h.Tenant == tenant || event.BodyLogWide(body))
}

// open returns the body of the verified entry data at idx, checked against
// its envelope, when the audit covers the entry (with key: it carries the
// key's tag, or logKey's, the log-wide records' tag); otherwise nil. A
// problem is a finding.
func (b *bodyCache) open(ctx context.Context, idx uint64, data []byte, key, logKey *event.TenantKey, tenant string) ([]byte, *Finding, error) {
	env, err := event.ParseEnvelope(data)
	if err != nil {
		return nil, &Finding{Rule: RuleMalformedEntry, Severity: "high", Source: SourceIntegrity,
			Message: fmt.Sprintf("entry %d is not an envelope of leaf version 3 or 4: %v", idx, err)}, nil
	}
	logWide := logKey != nil && logKey.Recognises(&env)
	mine := key == nil || key.Recognises(&env) || logWide
	body, ok, err := b.at(ctx, idx)
	if err != nil {
		return nil, nil, err
	}
	if ok && key != nil && tenant != "" && !servedTo(tenant, body) {
		// A body the tenant's own token is not served (a global token
		// reads every body): the audit goes on as the tenant's token
		// would, so that both find the same.
		ok = false
	}
	if !mine {
		if ok {
			if _, err := event.OpenEnvelope(data, body, nil); err == nil {
				if logKey == nil && event.BodyLogWide(body) {
					// A log-wide record, served to every tenant: without
					// the log-wide key its tag is not checked.
					return nil, nil, nil
				}
				return nil, &Finding{Rule: RuleWrongTag, Severity: "critical", Source: SourceIntegrity,
					Message: fmt.Sprintf("entry %d is an event of the tenant's (or a log-wide record) whose envelope carries neither the tenant's tag nor the log-wide one", idx)}, nil
			}
		}
		return nil, nil, nil
	}
	if !ok {
		what := "its envelope commits to"
		if logWide {
			what = "of the log-wide record its envelope commits to"
		}
		return nil, &Finding{Rule: RuleBodyMissing, Severity: "critical", Source: SourceIntegrity,
			Message: fmt.Sprintf("entry %d: the log did not serve the body %s", idx, what)}, nil
	}
	if _, err := event.OpenEnvelope(data, body, nil); err != nil {
		return nil, &Finding{Rule: RuleBodyMismatch, Severity: "critical", Source: SourceIntegrity,
			Message: fmt.Sprintf("entry %d: %v", idx, err)}, nil
	}
	// Leaf version 4: the field commitment, from which chosen fields are
	// disclosed, must be the body's, so that a disclosure says what the
	// body says.
	if err := event.CheckFields(&env, body, b.salts[idx]); err != nil {
		return nil, &Finding{Rule: RuleBodyMismatch, Severity: "critical", Source: SourceIntegrity,
			Message: fmt.Sprintf("entry %d: %v (field salt served: %t)", idx, err, len(b.salts[idx]) > 0)}, nil
	}
	if logWide {
		if !event.BodyLogWide(body) {
			return nil, &Finding{Rule: RuleBodyMismatch, Severity: "critical", Source: SourceIntegrity,
				Message: fmt.Sprintf("entry %d carries the log-wide tag but its body is not a log-wide record", idx)}, nil
		}
		return body, nil, nil
	}
	if tenant != "" {
		if h, err := event.ParseHead(body); err == nil && h.Tenant != tenant {
			return nil, &Finding{Rule: RuleBodyMismatch, Severity: "critical", Source: SourceIntegrity,
				Message: fmt.Sprintf("entry %d carries the tag of tenant %s but its body is an event of %s", idx, tenant, event.Clip(h.Tenant, 64))}, nil
		}
	}
	return body, nil, nil
}

package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// Bodies reads the event bodies of the entries [start, end) of the tree of
// size entries (0: the latest checkpoint's) that the token may read:
// its tenant's and the log-wide records (event.LogWide), or every
// tenant's with a global token (GET /v1/bodies,
// read scope; at most api.MaxBodiesRange entries). The bodies are
// unverified: check each against the entry at its index in the verified
// entry bundles (event.OpenEnvelope on a log of leaf version 3).
func (c *Client) Bodies(ctx context.Context, start, end, size uint64) (*api.Bodies, error) {
	q := url.Values{"start": {strconv.FormatUint(start, 10)}, "end": {strconv.FormatUint(end, 10)}}
	if size > 0 {
		q.Set("size", strconv.FormatUint(size, 10))
	}
	var b api.Bodies
	if err := c.do(ctx, http.MethodGet, "/v1/bodies", q, nil, http.StatusOK, &b); err != nil {
		return nil, err
	}
	if b.Start != start || b.End != end || (size > 0 && b.TreeSize != size) {
		return nil, fmt.Errorf("%w: asked for bodies [%d, %d) of size %d, got [%d, %d) of size %d", errNoAnswer, start, end, size, b.Start, b.End, b.TreeSize)
	}
	last := int64(-1)
	for _, e := range b.Entries {
		if e.Index < start || e.Index >= end || int64(e.Index) <= last {
			return nil, fmt.Errorf("%w: body at index %d outside [%d, %d) or out of order", errNoAnswer, e.Index, start, end)
		}
		last = int64(e.Index)
	}
	return &b, nil
}

// TenantKey reads the key with which tenant ("" for the token's own)
// recognises its entries on a log of leaf version 3 (GET /v1/tenant-key,
// audit scope; the read is recorded in the log).
func (c *Client) TenantKey(ctx context.Context, tenant string) (event.TenantKey, error) {
	r, err := c.TenantKeys(ctx, tenant)
	if err != nil {
		return event.TenantKey{}, err
	}
	return event.ParseTenantKey(r.Key)
}

// TenantKeys is TenantKey's whole answer: the tenant's key and the
// log-wide key (log_key), with which the tenant recognises the log-wide
// records (event.LogWide), each checked to be a key.
func (c *Client) TenantKeys(ctx context.Context, tenant string) (*api.TenantKeyResponse, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	var r api.TenantKeyResponse
	if err := c.do(ctx, http.MethodGet, "/v1/tenant-key", q, nil, http.StatusOK, &r); err != nil {
		return nil, err
	}
	if tenant != "" && r.Tenant != tenant {
		return nil, fmt.Errorf("%w: asked for tenant %s, got %s", errNoAnswer, tenant, r.Tenant)
	}
	if _, err := event.ParseTenantKey(r.Key); err != nil {
		return nil, fmt.Errorf("%w: key: %v", errNoAnswer, err)
	}
	if _, err := event.ParseTenantKey(r.LogKey); err != nil {
		return nil, fmt.Errorf("%w: log_key: %v", errNoAnswer, err)
	}
	return &r, nil
}

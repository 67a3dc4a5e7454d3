package client

import (
	"context"
	"net/http"

	"github.com/llmaudittrail/llmaudittrail/api"
)

// Sessions searches the sessions the token may read (read scope), the most
// recent first, a page at a time: pass the answer's Next as the next
// query's Cursor. The list comes from the server's session index,
// unverified: rebuild a session (package replay) to verify its events.
func (c *Client) Sessions(ctx context.Context, q api.SessionSearch) (*api.SessionList, error) {
	var l api.SessionList
	if err := c.do(ctx, http.MethodGet, "/v1/sessions", q.Values(), nil, http.StatusOK, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

package client

import (
	"context"
	"errors"
	"net/http"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// ErrNotJSON: a message to relay is not a JSON value; nothing was sent.
var ErrNotJSON = errors.New("the MCP message is not JSON")

// RelayMCP sends one message of a stdio MCP connection through the log
// server (POST /v1/mcp/relay, write scope), which records it and answers
// what to do with it: Forward it to the other side, and/or send Reply back
// to the MCP client (a tool call that the server's tool policy denies is
// answered with a JSON-RPC error and not forwarded). A message from the
// server (req.From "server") is always forwarded; what it says cannot be
// unsaid. A session the token may not write in is refused with
// event.ErrReservedSession, a malformed request with a 400 *Error.
func (c *Client) RelayMCP(ctx context.Context, req api.MCPRelayRequest) (*api.MCPRelayResponse, error) {
	if !strictjson.IsJSON(req.Message) {
		return nil, ErrNotJSON
	}
	var r api.MCPRelayResponse
	if err := c.do(ctx, http.MethodPost, "/v1/mcp/relay", nil, req, http.StatusOK, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

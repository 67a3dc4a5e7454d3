package api

import "encoding/json"

// MCPRelayRequest is the body of POST /v1/mcp/relay (write scope): one
// message of a stdio MCP connection, which the wrapper (log-server mcp
// wrap) sends through the log server before it passes it on.
type MCPRelayRequest struct {
	Conn    string          `json:"conn"`    // the wrapper's connection id
	Server  string          `json:"server"`  // the MCP server's name
	Session string          `json:"session"` // the audit session
	From    string          `json:"from"`    // "client" or "server"
	Message json.RawMessage `json:"message"` // the JSON-RPC message
}

// MCPRelayResponse answers POST /v1/mcp/relay: what the wrapper does with
// the message: Forward it (unchanged), and/or send Reply back to the
// client.
type MCPRelayResponse struct {
	Forward json.RawMessage `json:"forward,omitempty"`
	Reply   json.RawMessage `json:"reply,omitempty"`
}

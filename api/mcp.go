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
	// Earlier are messages of the server that the wrapper has already
	// passed on to the client, in the order it read them, all before
	// Message: the server observes them first. The wrapper sends a
	// server's message with the client's next message (or on its own after
	// a short linger) instead of waiting for the log before passing it on.
	Earlier []json.RawMessage `json:"earlier,omitempty"`
	// Seq numbers the first message of the request on its connection
	// (Earlier's, else Message), counting from 1, the rest following on; a
	// message whose number the server has already observed on the
	// connection is not observed again (a request tried again after its
	// answer was lost). 0: not numbered.
	Seq uint64 `json:"seq,omitempty"`
}

// MCPRelayResponse answers POST /v1/mcp/relay: what the wrapper does with
// the message: Forward it (unchanged), and/or send Reply back to the
// client.
type MCPRelayResponse struct {
	Forward json.RawMessage `json:"forward,omitempty"`
	Reply   json.RawMessage `json:"reply,omitempty"`
}

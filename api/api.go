// Package api is the wire format of the LLMAuditTrail log server's HTTP API
// (docs/event-api.md), as Tessera's api package is the format of
// tlog-tiles: the bodies of requests and answers, their query strings, the
// session export stream, receipts and their offline verification, and the
// error body. The server writes these types and decodes the requests, the
// engine and the session index build the answers, and the client sends the
// requests and checks the answers; none of them needs another's code.
//
// The package does no I/O and depends only on the leaf format (event) and
// checkpoint verification.
package api

// ErrorBody is the JSON form of every error answer.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

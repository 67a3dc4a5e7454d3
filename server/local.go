package server

import (
	"net/http"

	"github.com/llmaudittrail/llmaudittrail/client"
)

// internalKey marks a request made in process by LocalClient.
type internalKey struct{}

// LocalClient is a client of this server that calls its handler in
// process, as the server itself: a log-wide reader and auditor named
// ServerTokenID. Its payload reads are appended as access.read like any
// other. Only code in this process can make such requests.
func (s *Server) LocalClient() *client.Client {
	c, err := client.New("http://log-server.internal", client.WithHTTPClient(&http.Client{Transport: inProcess{s: s, addr: "in-process", internal: true}}))
	if err != nil {
		panic(err) // a constant URL
	}
	return c
}

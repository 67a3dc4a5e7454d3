package main

import (
	"log/slog"
	"net/http"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/console"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// consoleFactory builds the auditor console of the server once its log is
// open (nil with --console=false): it reads the log in process, through
// each user's own token, and verifies with the log's key and policy.
func consoleFactory(on bool, chromium string, logger *slog.Logger) server.ConsoleFactory {
	if !on {
		return nil
	}
	return func(s *server.Server) (http.Handler, error) {
		key, err := checkpoint.NewVerifier(s.VerifierKey())
		if err != nil {
			return nil, err
		}
		return console.New(console.Config{Client: s.UserClient, Key: key, Policy: s.Policy(), Chromium: chromium, Logger: logger})
	}
}

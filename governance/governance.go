// Package governance carries out the governance actions of the audit log
// over the engine's append and read API: electronic signers and signatures
// (sign.go, signers.go), legal holds (holds.go), erasure (erase.go),
// records of the retention floors in force (retention.go), token changes
// (tokens.go) and issued reports (reports.go). Each action checks its rules
// against its own store (signer, retention, auth) and the log, and is
// recorded in the log as an event that only the server appends
// (event.ServerOnly), so that the log itself says who signed, held, erased
// or issued what, and when.
//
// The engine (package log) keeps the append path, the reads, the proofs and
// the few hooks these actions need: Append with a server writer, Lock,
// Pseudonym, Leaf and ErasePayloads. The HTTP server maps requests to a
// Clerk's methods and its sentinels to statuses.
package governance

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/event"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/retention"
	"github.com/llmaudittrail/llmaudittrail/signer"
)

// Config configures a Clerk. A store left nil turns its actions off: they
// fail with the sentinel named.
type Config struct {
	// Log is the audit engine the actions are recorded in. Required.
	Log *auditlog.Log
	// Signers keeps electronic signers (Enroll, RotateSigner, RevokeSigner,
	// UnlockSigner, Sign; ErrNoSigners without it).
	Signers *signer.Store
	// Retention keeps legal holds and the floors last recorded (PlaceHold,
	// ReleaseHold, Erase, RecordRetention; ErrNoRetention without it).
	Retention *retention.Store
	// Floors are the retention floors in force (Erase, RecordRetention;
	// ErrNoRetention without them).
	Floors *retention.Rules
	// Tokens keeps the bearer tokens whose changes are recorded
	// (RecordTokens; nothing is recorded without it).
	Tokens *auth.Store
	// ServerToken is the token id written as the writer of the events
	// appended on the server's own account, where no token caused them
	// (retention floors, token changes). Default: DefaultServerToken.
	ServerToken string
	// Logger receives what cannot be answered to a caller (a failed
	// record of a failed attempt). Default: slog.Default().
	Logger *slog.Logger
}

// DefaultServerToken is Config.ServerToken's default, the id of the
// server's own actor (event.ServerActor).
const DefaultServerToken = "log-server"

// Clerk carries out governance actions and records each in the log. It is
// safe for concurrent use.
type Clerk struct {
	cfg      Config
	log      *auditlog.Log
	logger   *slog.Logger
	recorded sync.Map // token id -> true: its creation is in the log
}

// New returns a Clerk over cfg.Log.
func New(cfg Config) (*Clerk, error) {
	if cfg.Log == nil {
		return nil, errors.New("governance: Log is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ServerToken == "" {
		cfg.ServerToken = DefaultServerToken
	}
	return &Clerk{cfg: cfg, log: cfg.Log, logger: cfg.Logger}, nil
}

// record appends ev in tenant, written by the server on r's behalf (the
// person r is, if one).
func (c *Clerk) record(ctx context.Context, tenant string, r auditlog.Reader, ev *event.Request) (event.Appended, error) {
	// AppendAs names the person when a person signed in caused it.
	return c.log.AppendAs(ctx, tenant, r, ev)
}

// strAttrs makes string attributes of key, value pairs, leaving out empty
// values.
func strAttrs(kv ...string) map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			m[kv[i]] = jsonString(kv[i+1])
		}
	}
	return m
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

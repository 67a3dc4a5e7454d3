// Package server is the log server: it opens a data directory (keys, Tessera
// log, vault, state database) and serves the event API, the tlog-tiles read
// API and proofs over HTTP.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/transparency-dev/tessera"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/backend"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/governance"
	"github.com/llmaudittrail/llmaudittrail/index"
	"github.com/llmaudittrail/llmaudittrail/internal/canonpath"
	"github.com/llmaudittrail/llmaudittrail/internal/metrics"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/retention"
	"github.com/llmaudittrail/llmaudittrail/signer"
	"github.com/llmaudittrail/llmaudittrail/tiles"
	"github.com/llmaudittrail/llmaudittrail/tsa"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

// ServerTokenID stands in the writer of events the server appends on its
// own account (retention floors, token changes), where no token caused
// them (governance.Config.ServerToken).
const ServerTokenID = "log-server"

// Defaults. The log's own (batching, checkpoint interval) are the log
// package's DefaultBatchMaxAge and DefaultCheckpointInterval.
const (
	DefaultOrigin       = "localhost/llmaudittrail"
	DefaultTenant       = "default"
	DefaultListen       = "127.0.0.1:8080"
	DefaultMaxBodyBytes = 4 << 20
	DefaultMaxBatch     = 1000
	DefaultReceiptWait  = 30 * time.Second
	// DefaultPushbackWait is how long a write waits for a place among the
	// events in flight before it is refused (503 overloaded).
	DefaultPushbackWait   = 500 * time.Millisecond
	DefaultWitnessTimeout = 5 * time.Second
)

// Config is the log server's configuration; the field comments are the
// reference. Zero values take the defaults above.
type Config struct {
	// DataDir holds the keys (keys/) and, with the posix storage,
	// everything else: log/ (Tessera POSIX tiles), vault.db (payloads),
	// state.db (tokens, signers, holds) and index.db (session index,
	// derived).
	DataDir string
	// Storage is "posix" (default: Tessera's POSIX driver and SQLite in
	// DataDir, one instance) or "s3" (Tessera's AWS driver on the MySQL
	// database DBDSN and the bucket S3, with all server state in that
	// database; several instances may share them). See
	// docs/scale-out.md.
	Storage string
	// DBDSN is the s3 storage's database, in go-sql-driver/mysql form
	// (user:pass@tcp(127.0.0.1:3306)/llmaudit); DBMaxConns bounds this
	// instance's connections to it (sqldb.DefaultMaxConns; Tessera's
	// sequencer has sqldb.DefaultTesseraConns more).
	DBDSN      string
	DBMaxConns int
	// JournalSegmentSize is the posix journal's segment size in bytes
	// (journal.DefaultSegmentSize).
	JournalSegmentSize int64
	// S3 is the s3 storage's bucket.
	S3 backend.S3Config
	// Origin is the log's origin line and checkpoint key name. Empty means
	// the name of the existing key, or DefaultOrigin for a new log.
	Origin string
	// MaxBodyBytes caps every request body (HTTP 413 beyond it).
	MaxBodyBytes int64
	// MaxBatch caps the number of events in one batch request.
	MaxBatch int
	// PublicEntries serves entry contents to anyone (/tile/entries/...,
	// /v1/entries/...), for a log that is public on purpose. Default:
	// private, see docs/event-api.md "Who reads what".
	PublicEntries bool
	// LeafVersion is the version of the log's entries: 2 (default: each
	// entry is the event) or 3 (each entry is an envelope that shows
	// nothing of the event; entry bundles are then public, the events are
	// read with GET /v1/bodies, and each tenant's auditor recognises its
	// entries with its key, GET /v1/tenant-key). A log keeps the version
	// it began with; see docs/leaf-format.md.
	LeafVersion int
	// MaxReads and MaxReadsPerClient bound read answers in progress, in
	// all and per client address (DefaultMaxReads, DefaultMaxReadsPerClient).
	MaxReads, MaxReadsPerClient int
	// ReadDeadline bounds the time a client may take to receive a read
	// answer (DefaultReadDeadline); a reader that takes longer is cut off.
	ReadDeadline time.Duration
	// ReceiptWait bounds how long ?wait=checkpoint waits.
	ReceiptWait time.Duration
	// PushbackWait is how long a write waits, when the log has as many
	// events in flight as it takes (log.Config.MaxInFlight), for a place
	// before it is refused with 503 overloaded (DefaultPushbackWait;
	// negative: refused at once).
	PushbackWait time.Duration
	// CheckpointInterval is how often a checkpoint is published
	// (log.DefaultCheckpointInterval).
	CheckpointInterval time.Duration
	// CheckpointRepublish is how often the checkpoint of a log that has
	// not grown is published (and cosigned) again
	// (log.DefaultCheckpointRepublish).
	CheckpointRepublish time.Duration
	// BatchMaxAge is Tessera's batching delay: an append is sequenced at the
	// latest this long after it arrives (log.DefaultBatchMaxAge).
	BatchMaxAge time.Duration
	// SequenceLinger is how long the sequencer waits for more of the
	// journal while no one waits for an index (log.Config.SequenceLinger:
	// 0 is log.DefaultSequenceLinger, negative none).
	SequenceLinger time.Duration
	// IndexWait bounds how long a write waits for its index before it is
	// answered 202, durable without it (log.DefaultIndexWait).
	IndexWait time.Duration
	// WitnessPolicy, if non-empty, is the witness policy text (C2SP
	// tlog-policy or the Sigsum-style form, see checkpoint.Policy; every
	// witness with its URL); every published checkpoint must satisfy it.
	// keys/policy (PolicyFile) is what auditors use, written from it.
	WitnessPolicy []byte
	// WitnessFailOpen publishes checkpoints even when the policy cannot be
	// met (default: fail closed, nothing is published without quorum).
	WitnessFailOpen bool
	// WitnessTimeout bounds one round of witnessing
	// (DefaultWitnessTimeout).
	WitnessTimeout time.Duration
	// Upstreams are the capture proxy's upstreams, name to base URL, served
	// at /proxy/NAME/...; they add to or replace capture.DefaultUpstreams
	// (each registered provider's default upstream, under its name).
	Upstreams map[string]string
	// WitnessRoots, if set, are the roots the server verifies witnesses'
	// certificates with (default: the system's).
	WitnessRoots *x509.CertPool
	// UpstreamRoots, if set, are the roots the capture proxies (LLM, MCP
	// and interception) verify upstream certificates with (default: the
	// system's).
	UpstreamRoots *x509.CertPool
	// ProxyBodyBudget bounds the request bodies the capture proxies (base
	// URL and interception) hold in memory at once; a call beyond it is
	// answered 503 with Retry-After (0: capture.DefaultBodyBudget).
	ProxyBodyBudget int64
	// Intercept, if set, runs the HTTPS_PROXY interception proxy (served
	// by InterceptHandler); its CA is keys/intercept-ca.pem and .key.
	Intercept *InterceptConfig
	// MCPUpstreams are the MCP servers the Streamable HTTP proxy serves,
	// name to URL, at /mcp/NAME/...
	MCPUpstreams map[string]string
	// MCPToolPolicy, if set, allows and denies MCP tools per token (see
	// docs/capture.md); a denied tools/call is answered with a JSON-RPC
	// error and recorded as tool.denied.
	MCPToolPolicy *MCPToolPolicy
	// CaptureMode is the proxy's capture mode: "fail-closed" (default; the
	// request event is durable before a call goes upstream, or the call is
	// refused) or "fail-open" (calls proceed; gaps are recorded later).
	CaptureMode string
	// Compliance names the compliance profiles of every tenant, each
	// registered in package profile (package compliance registers its
	// profiles when the program links it): their retention floors hold,
	// strictest first. An unknown name stops Open (*profile.UnknownError).
	Compliance []string
	// ComplianceConfig is the compliance configuration file's text
	// (retention.ParseConfig): profiles and floors per tenant.
	ComplianceConfig []byte
	// Reporter, if set, computes the compliance reports of
	// GET /v1/reports/{profile} (compliance.NewReporter; cmd/log-server sets
	// it). Without it the endpoint answers 501. If it is also
	// governance.ComplianceSettings, the server records at start what the
	// profiles switch on (compliance.config events).
	Reporter Reporter
	// Console, if set, builds the auditor console served at /console/
	// (server/console.go); it is called once the log is open.
	Console ConsoleFactory
	// AccessTokens, if set, accepts JWT access tokens of an OpenID
	// provider as bearer tokens, with the console's role mapping
	// (accesstokens.go).
	AccessTokens *AccessTokens
	// Timestamps are the RFC 3161 timestamp authorities that time-stamp
	// the published checkpoints (package tsa; none: no timestamps), once
	// per TimestampInterval (tsa.DefaultInterval) when the log has grown.
	// The tokens are served at GET /v1/timestamps, carried by receipts,
	// and recorded as timestamp.issued events.
	Timestamps        []tsa.Authority
	TimestampInterval time.Duration
	// TimestampClient, if set, makes the requests to the TSAs (default:
	// a client with the system's roots).
	TimestampClient *http.Client
	// SignerPolicy tunes electronic signatures (signer.Policy's defaults:
	// argon2id t=3 m=64 MiB, lock after 5 failures in 15 min).
	SignerPolicy signer.Policy
	// Keys says where the signing key and the vault master key come from
	// (default: keys/log.key and keys/master.key, created on first start).
	Keys   KeySources
	Logger *slog.Logger
}

// Server is an open log server.
type Server struct {
	cfg     Config
	backend *backend.Backend
	keys    *Keys
	log     *auditlog.Log
	gov     *governance.Clerk
	vault   *vault.Vault
	tokens  *auth.Store
	proxy   *capture.Proxy
	mcp     *capture.MCP
	intcp   *capture.Interceptor
	handler http.Handler
	logger  *slog.Logger
	closers []func() error
	policy  *checkpoint.Policy
	reads   *limiter
	Created *Created

	internal  *auth.Principal // the server's own, for LocalClient
	stopWatch context.CancelFunc
	watchDone chan struct{} // WatchTokens returned

	stamper   *tsa.Stamper       // nil without Config.Timestamps
	stopStamp context.CancelFunc // stops the stamper's rounds
	stampDone chan struct{}

	access    *accessTokens // nil without Config.AccessTokens
	reportSem chan struct{} // one report at a time
	exports   *limiter      // session exports in progress (export.go)

	spanParents spanParents   // recent OTLP spans' parents (otlp_link.go)
	traced      tracedTenants // tenants with calls observed with a trace context
}

// Open opens (initialising if needed) the data directory and starts the log.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("a data directory is required")
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.ReceiptWait == 0 {
		cfg.ReceiptWait = DefaultReceiptWait
	}
	if cfg.PushbackWait == 0 {
		cfg.PushbackWait = DefaultPushbackWait
	}
	if cfg.WitnessTimeout == 0 {
		cfg.WitnessTimeout = DefaultWitnessTimeout
	}
	if cfg.MaxReads == 0 {
		cfg.MaxReads = DefaultMaxReads
	}
	if cfg.MaxReadsPerClient == 0 {
		cfg.MaxReadsPerClient = DefaultMaxReadsPerClient
	}
	if cfg.ReadDeadline == 0 {
		cfg.ReadDeadline = DefaultReadDeadline
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	keys, created, err := InitKeys(cfg.DataDir, cfg.Origin, cfg.Keys)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, keys: keys, logger: cfg.Logger, Created: created, reads: newLimiter(cfg.MaxReads, cfg.MaxReadsPerClient),
		exports: newLimiter(maxExports, maxExportsPerClient)}
	ok := false
	defer func() {
		if !ok {
			s.closeAll()
		}
	}()

	// Tessera reaches the witnesses with this client only: its transport
	// measures them (metrics.WitnessTransport).
	wt := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.WitnessRoots != nil {
		wt.TLSClientConfig = &tls.Config{RootCAs: cfg.WitnessRoots, MinVersion: tls.VersionTLS12}
	}
	witnessClient := &http.Client{Transport: metrics.WitnessTransport(wt), Timeout: cfg.WitnessTimeout + 5*time.Second}
	b, err := backend.Open(ctx, backend.Config{Kind: cfg.Storage, DataDir: cfg.DataDir, DSN: cfg.DBDSN, Pool: sqldb.Pool{MaxConns: cfg.DBMaxConns},
		S3: cfg.S3, JournalSegmentSize: cfg.JournalSegmentSize, WitnessClient: witnessClient, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	s.backend = b
	s.closers = append(s.closers, b.Close)
	// Every instance of a log signs with one key: a database of another
	// log is refused.
	if _, err := b.State.Pin(ctx, "log.verifier_key", keys.VKey); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyMismatch, err)
	}
	if s.tokens, err = auth.Open(b.State); err != nil {
		return nil, err
	}
	signers, err := signer.Open(b.State, cfg.SignerPolicy)
	if err != nil {
		return nil, err
	}
	holds, err := retention.Open(b.State)
	if err != nil {
		return nil, err
	}
	rcfg := &retention.Config{}
	if len(cfg.ComplianceConfig) > 0 {
		if rcfg, err = retention.ParseConfig(cfg.ComplianceConfig); err != nil {
			return nil, err
		}
	}
	profiles, err := retention.ParseProfiles(strings.Join(cfg.Compliance, ","))
	if err != nil {
		return nil, err
	}
	floors, err := rcfg.Rules(profiles)
	if err != nil {
		return nil, err
	}
	if err := EnsureAdminToken(ctx, cfg.DataDir, s.tokens, s.tokens.Fresh(), created); err != nil {
		return nil, err
	}
	if s.vault, err = vault.Open(b.Vault, keys.MasterKey); err != nil {
		if errors.Is(err, vault.ErrWrongMasterKey) {
			return nil, fmt.Errorf("%w: the master key given is not the one %s was written with", ErrKeyMismatch, b.Vault.Name)
		}
		return nil, fmt.Errorf("opening vault: %w", err)
	}
	s.closers = append(s.closers, s.vault.Close)

	lc := auditlog.Config{
		Driver:              b.Driver,
		Signer:              keys.Signer,
		Verifier:            keys.Verifier,
		Vault:               s.vault,
		Journal:             b.Journal,
		IndexDB:             func(r tessera.LogReader) (*index.Index, error) { return index.Open(b.Index, r, cfg.Logger) },
		BatchMaxAge:         cfg.BatchMaxAge,
		SequenceLinger:      cfg.SequenceLinger,
		IndexWait:           cfg.IndexWait,
		CheckpointInterval:  cfg.CheckpointInterval,
		CheckpointRepublish: cfg.CheckpointRepublish,
		Logger:              cfg.Logger,
		CheckpointPoll:      b.CheckpointPoll(),
		Locker:              b.State,
		Health:              b.Health,
		UnstickPublication:  b.UnstickPublication,
		LeafVersion:         cfg.LeafVersion,
	}
	if err := s.configureWitnesses(&lc); err != nil {
		return nil, err
	}
	if err := s.writeAuditorPolicy(); err != nil {
		return nil, err
	}
	if err := s.openProxy(); err != nil {
		return nil, err
	}
	if s.log, err = auditlog.New(ctx, lc); err != nil {
		return nil, err
	}
	if s.gov, err = governance.New(governance.Config{Log: s.log, Signers: signers, Retention: holds, Tokens: s.tokens, Floors: floors, ServerToken: ServerTokenID, Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	if len(profiles) > 0 && len(cfg.WitnessPolicy) == 0 {
		cfg.Logger.Warn("compliance reports judge checkpoints against a witness policy, and none is set: "+
			"the controls that need an independent witness (Part 11 §11.10(a) among them) will fail. "+
			"Run a witness (cmd/witness) and start with --witness-policy FILE: see docs/witness.md",
			"compliance", strings.Join(cfg.Compliance, ","))
	}
	if err := s.gov.RecordRetention(ctx); err != nil {
		return nil, fmt.Errorf("recording retention floors: %w", err)
	}
	if cfg.AccessTokens != nil {
		if s.access, err = newAccessTokens(*cfg.AccessTokens); err != nil {
			return nil, err
		}
	}
	if cs, ok := cfg.Reporter.(governance.ComplianceSettings); ok {
		if err := s.gov.RecordCompliance(ctx, cs); err != nil {
			return nil, fmt.Errorf("recording the compliance configuration: %w", err)
		}
	}
	s.reportSem = make(chan struct{}, 1)
	s.internal = &auth.Principal{ID: ServerTokenID, Name: ServerTokenID, Tenant: DefaultTenant, Global: true, Scopes: []string{auth.ScopeRead, auth.ScopeAudit}}
	if err := s.gov.RecordTokens(ctx); err != nil {
		return nil, err
	}
	wctx, stop := context.WithCancel(context.Background())
	s.stopWatch, s.watchDone = stop, make(chan struct{})
	go func() {
		defer close(s.watchDone)
		s.gov.WatchTokens(wctx)
	}()
	if err := s.startStamper(ctx); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	ok = true
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Log is the audit engine behind the server.
func (s *Server) Log() *auditlog.Log { return s.log }

// Tokens is the token store.
func (s *Server) Tokens() *auth.Store { return s.tokens }

// VerifierKey is the log's verifier key in note vkey format.
func (s *Server) VerifierKey() string { return s.keys.VKey }

// Policy is the witness policy in force, or nil.
func (s *Server) Policy() *checkpoint.Policy { return s.policy }

// Close shuts the log down cleanly (a final checkpoint covers every
// acknowledged entry) and closes the databases.
func (s *Server) Close(ctx context.Context) error {
	var err error
	if s.stopWatch != nil {
		s.stopWatch()
		<-s.watchDone
	}
	if s.stopStamp != nil {
		s.stopStamp()
		<-s.stampDone
	}
	if s.proxy != nil {
		// Record pending capture gaps while the log still runs.
		err = s.proxy.Close(ctx)
	}
	if s.mcp != nil {
		err = errors.Join(err, s.mcp.Close(ctx))
	}
	if s.intcp != nil {
		err = errors.Join(err, s.intcp.Close(ctx))
	}
	if s.log != nil {
		err = errors.Join(err, s.log.Close(ctx))
	}
	return errors.Join(err, s.closeAll())
}

func (s *Server) closeAll() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	s.closers = nil
	return errors.Join(errs...)
}

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.limitBody)
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.log.Healthy(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	r.Group(func(r chi.Router) {
		r.Use(s.limitReads)
		t := tiles.Handler(s.log.Reader(), tiles.Options{PrivateEntries: !s.bundlesPublic()})
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			r.Method(m, "/checkpoint", t)
			r.Method(m, "/tile/*", t)
			r.Method(m, "/tile/entries/*", s.entriesGate(t))
		}
		r.Get("/v1/entries/{index}", s.serve(s.getEntry))
		r.Get("/v1/entries/{index}/proof", s.getEntryProof)
		r.Get("/v1/proof/consistency", s.serve(s.getConsistency))
		r.Get("/v1/timestamps", s.serve(s.getTimestamps))
	})
	r.Group(func(r chi.Router) {
		r.Use(s.apiDeadlines)
		// A monitor's or an auditor's token appends its own kinds
		// (event.Permit, per event).
		r.Post("/v1/events", s.authedAny(event.AppendScopes(), s.postEvents))
		r.Post("/v1/events:batch", s.authedAny(event.AppendScopes(), s.postBatch))
		r.Get("/v1/sessions", s.authed(auth.ScopeRead, s.getSessions))
		r.Get("/v1/sessions/{id}", s.authed(auth.ScopeRead, s.getSession))
		r.Get("/v1/sessions/{id}/payloads", s.authed(auth.ScopeAudit, s.getSessionPayloads))
		r.Get("/v1/sessions/{id}/export", s.getSessionExport)
		r.Post("/v1/mcp/relay", s.authed(auth.ScopeWrite, s.postMCPRelay))
		// OpenTelemetry exports (OTLP/HTTP), answered in OTLP's form.
		r.Post(OTLPTracesPath, s.postOTLP(otlpTraces))
		r.Post(OTLPLogsPath, s.postOTLP(otlpLogs))
		r.Post(OTLPMetricsPath, s.postOTLP(otlpMetrics))
		r.Get("/v1/events/{index}/payload", s.authed(auth.ScopeAudit, s.getPayload))
		r.Get("/v1/events/{index}/disclosure", s.authed(auth.ScopeAudit, s.getDisclosure))
		r.Get("/v1/events/{index}", s.authed(auth.ScopeRead, s.getEvent))
		r.Get("/v1/pseudonyms/{pseudonym}", s.authed(auth.ScopeAudit, s.getPseudonym))
		r.Get("/v1/bodies", s.authed(auth.ScopeRead, s.getBodies))
		r.Get("/v1/tenant-key", s.authed(auth.ScopeAudit, s.getTenantKey))
		r.Post("/v1/signers", s.authed(auth.ScopeAdmin, s.postSigner))
		r.Post("/v1/signers/{id}/{action}", s.authed(anyScope, s.postSignerAction))
		r.Post("/v1/signatures", s.authed(auth.ScopeSign, s.postSignature))
		r.Get("/v1/signatures/{index}", s.authed(auth.ScopeRead, s.getSignature))
		r.Post("/v1/holds", s.authed(anyScope, s.oneOf(s.postHold, auth.ScopeAdmin, auth.ScopePrivacy)))
		r.Delete("/v1/holds/{id}", s.authed(anyScope, s.oneOf(s.deleteHold, auth.ScopeAdmin, auth.ScopePrivacy)))
		r.Post("/v1/erasures", s.authed(anyScope, s.oneOf(s.postErasure, auth.ScopeAdmin, auth.ScopePrivacy)))
		r.Get(MetricsPath, s.getMetrics)
	})
	// A report reads the whole log: no API deadline (the client's
	// context, and the one report at a time, bound it).
	r.Get("/v1/reports/{profile}", s.getReport)
	s.mountConsole(r)
	return canonpath.Handler(s.withProxy(r), s.refusePath)
}

// refusePath answers a request whose path is not canonical (see
// internal/canonpath): every route, the proxies' and the console's
// included, decides and serves on one path, or the request is refused
// before any of them sees it.
func (s *Server) refusePath(w http.ResponseWriter, r *http.Request, err error) {
	s.writeError(w, r, errorf(http.StatusBadRequest, "non_canonical_path", "%v", err))
}

// Vault is the payload vault.
func (s *Server) Vault() *vault.Vault { return s.vault }

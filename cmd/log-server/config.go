package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/llmaudittrail/llmaudittrail/backend"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
	"github.com/llmaudittrail/llmaudittrail/internal/connlimit"
	"github.com/llmaudittrail/llmaudittrail/internal/settings"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/journal"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/profile"
	"github.com/llmaudittrail/llmaudittrail/retention"
	"github.com/llmaudittrail/llmaudittrail/server"
	"github.com/llmaudittrail/llmaudittrail/tsa"
)

// Config is the configuration of log-server serve: every setting, with
// its flag, its key in a --config file and its help (the tags, package
// internal/settings), and its default (defaultConfig). The flags, --help,
// docs/commands.md, the keys a --config file may hold and the example file
// in docs/config.md are all made from it, and the tests keep them equal.
//
// A setting is one exported field: its flag:"NAME" tag keeps the flag's
// name, its yaml tag is the same name with _ for - (or "-" for a flag that
// no file may hold: one whose value may carry a secret), its help tag is
// the --help text, where {VAR} is helpVars' text. Its default is the value
// defaultConfig gives it, a constant of the package that owns the setting
// (none: the zero value). Precedence: a flag given on the command line,
// then the --config file, then the default; --db-dsn alone falls back to
// $LLMAUDIT_DB_DSN.
type Config struct {
	// The data and the storage.
	DataDir            string `flag:"data" yaml:"data" help:"data directory (created if missing)"`
	Origin             string `flag:"origin" yaml:"origin" help:"log origin and checkpoint key name (default: the existing key's, or {default_origin})"`
	Storage            string `flag:"storage" yaml:"storage" help:"where the log lives: posix (DATA: Tessera's POSIX driver and SQLite; one instance) or s3 (Tessera's AWS driver on --db-dsn and --s3-bucket; several instances may share them)"`
	DBDSN              string `flag:"db-dsn" yaml:"-" help:"s3 storage: the MariaDB/MySQL database, user:pass@tcp(HOST:3306)/NAME (default: ${dsn_env}, which keeps the password out of the process list)"`
	DBMaxConns         int    `flag:"db-max-conns" yaml:"db_max_conns" help:"s3 storage: the main pool of database connections of this instance (Tessera's sequencer, the locks and the journal open {db_more_conns} more)"`
	S3Endpoint         string `flag:"s3-endpoint" yaml:"s3_endpoint" help:"s3 storage: the S3-compatible store's URL, e.g. http://127.0.0.1:8333 (default: AWS); credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"`
	S3Bucket           string `flag:"s3-bucket" yaml:"s3_bucket" help:"s3 storage: the bucket of tiles and entry bundles (created if missing)"`
	S3Region           string `flag:"s3-region" yaml:"s3_region" help:"s3 storage: the bucket's region (default: $AWS_REGION, else {s3_region})"`
	JournalSegmentSize int64  `flag:"journal-segment-size" yaml:"journal_segment_size" help:"posix storage: bytes at which the write-ahead journal begins a new segment file (released segments are removed whole)"`

	// The log: sequencing, checkpoints, answers.
	CheckpointInterval time.Duration `flag:"checkpoint-interval" yaml:"checkpoint_interval" help:"how often to publish a checkpoint (min 100ms)"`
	BatchMaxAge        time.Duration `flag:"batch-max-age" yaml:"batch_max_age" help:"longest time an event waits to be sequenced"`
	SequenceLinger     time.Duration `flag:"sequence-linger" yaml:"sequence_linger" help:"posix storage: longest time the sequencer waits for more of the journal while no write or read waits for an index (writes acknowledged at ?wait=durable); 0: none"`
	IndexWait          time.Duration `flag:"index-wait" yaml:"index_wait" help:"longest time a write waits for its index (the default ?wait=index); then it is answered 202, durable without it"`
	ReceiptWait        time.Duration `flag:"receipt-wait" yaml:"receipt_wait" help:"longest wait for ?wait=checkpoint"`
	PushbackWait       time.Duration `flag:"pushback-wait" yaml:"pushback_wait" help:"longest time a write waits for a place among the events in flight before it is answered 503 overloaded; 0: answered at once"`
	MaxBodyBytes       int64         `flag:"max-body-bytes" yaml:"max_body_bytes" help:"largest accepted request body"`
	PublicEntries      bool          `flag:"public-entries" yaml:"public_entries" help:"serve entry contents (entry bundles, /v1/entries) to anyone: only for a log that is public on purpose"`
	LeafVersion        int           `flag:"leaf-version" yaml:"leaf_version" help:"version of a new log's entries: 2 (each entry is the event) 3 (each entry is an envelope that shows nothing of the event; entry bundles are public, events are read with GET /v1/bodies, tenants recognise theirs with GET /v1/tenant-key) or 4 (an envelope of version 3 that also commits to each field of the event, so that chosen fields are disclosed: GET /v1/events/N/disclosure?body=...); a log keeps the version it began with (docs/leaf-format.md)"`

	// Witnesses.
	WitnessPolicy   string        `flag:"witness-policy" yaml:"witness_policy" help:"witness policy file (C2SP tlog-policy, or Sigsum-style witness/group/quorum lines; every witness with its URL); checkpoints are published only with quorum; DATA/keys/policy is written from it for auditors"`
	WitnessFailOpen bool          `flag:"witness-fail-open" yaml:"witness_fail_open" help:"publish checkpoints even when the witness policy is not met"`
	WitnessTimeout  time.Duration `flag:"witness-timeout" yaml:"witness_timeout" help:"longest wait for witnesses per checkpoint"`
	CAFile          string        `flag:"ca-file" yaml:"ca_file" help:"PEM file of certificate authorities to trust for https witnesses, besides the system's"`

	// Timestamp authorities (RFC 3161).
	TSAURLs     listFlag      `flag:"tsa-url" yaml:"tsa_url" arg:"URL" help:"URL of an RFC 3161 timestamp authority that time-stamps the published checkpoints (repeatable; each with its --tsa-chain, paired in order; see docs/verifying.md)"`
	TSAChains   listFlag      `flag:"tsa-chain" yaml:"tsa_chain" arg:"FILE" help:"FILE of the PEM certificate chain of the --tsa-url of the same position, ending with its root: tokens must chain to that root (repeatable)"`
	TSAInterval time.Duration `flag:"tsa-interval" yaml:"tsa_interval" help:"how often the latest checkpoint is time-stamped by each --tsa-url, when the log has grown since its last token"`

	// Keys. A file names where a secret is, never the secret.
	SigningKey      string `flag:"signing-key" yaml:"signing_key" help:"checkpoint signing key in a PKCS#11 token, as an RFC 7512 pkcs11: URI (default: DATA/keys/log.key)"`
	MasterKeySource string `flag:"master-key-source" yaml:"master_key_source" help:"where the vault master key comes from: file (keys/master.key), env ({master_key_env}) or keyring:DESC (a user key of the Linux kernel keyring); default env if the variable is set, else file"`

	// Compliance, reports and the console.
	Compliance       string `flag:"compliance" yaml:"compliance" help:"compliance profiles, comma-separated: {profiles} (retention floors {floors}; combined, the strictest wins)"`
	ComplianceConfig string `flag:"compliance-config" yaml:"compliance_config" help:"compliance configuration file (YAML: profiles, retention, tenants; see docs/signatures.md)"`
	Chromium         string `flag:"chromium" yaml:"chromium" help:"Chromium binary for PDF reports (default: chromium on PATH)"`
	Console          bool   `flag:"console" yaml:"console" help:"serve the auditor console at /console/ (--console=false turns it off; see docs/console.md)"`

	// Single sign-on for the console, and the provider's access tokens on
	// the API (docs/console.md). The client secret is in a file.
	ConsoleTokenSignIn   bool   `flag:"console-token-signin" yaml:"console_token_signin" help:"let people sign in to the console with a token of the log (the break-glass way in when the identity provider is down; false: OIDC only)"`
	OIDCIssuer           string `flag:"oidc-issuer" yaml:"oidc_issuer" help:"console single sign-on: the OpenID provider's issuer URL (discovery at ISSUER/.well-known/openid-configuration; see docs/console.md)"`
	OIDCClientID         string `flag:"oidc-client-id" yaml:"oidc_client_id" help:"console single sign-on: the console's client id at the provider"`
	OIDCClientSecretFile string `flag:"oidc-client-secret-file" yaml:"oidc_client_secret_file" help:"console single sign-on: a file (mode 0600) holding the client's secret"`
	OIDCRedirectURL      string `flag:"oidc-redirect-url" yaml:"oidc_redirect_url" help:"console single sign-on: the callback registered at the provider, the console's public URL followed by sso/callback (https://log.example/console/sso/callback)"`
	OIDCRoles            string `flag:"oidc-roles" yaml:"oidc_roles" help:"console single sign-on: the role mapping file (YAML: ID token claims such as groups to a tenant, scopes and a signer id; checked at start, reloaded on SIGHUP)"`
	OIDCName             string `flag:"oidc-name" yaml:"oidc_name" help:"console single sign-on: the provider's name on the sign-in page (default: \"your identity provider\")"`
	OIDCScopes           string `flag:"oidc-scopes" yaml:"oidc_scopes" help:"console single sign-on: the scopes requested besides openid, comma-separated (default: profile,email; add groups where the provider needs it)"`
	OIDCAPIAudience      string `flag:"oidc-api-audience" yaml:"oidc_api_audience" help:"accept JWT access tokens of the --oidc-issuer provider as bearer tokens on the API when they carry this audience (the API's identifier at the provider, not the console's client id), with the --oidc-roles mapping"`

	// The listeners.
	Listen            string `flag:"listen" yaml:"listen" help:"listen address"`
	TLSCert           string `flag:"tls-cert" yaml:"tls_cert" help:"serve HTTPS (API, capture and MCP proxies) with this certificate chain (PEM; reloaded on SIGHUP or change)"`
	TLSKey            string `flag:"tls-key" yaml:"tls_key" help:"the certificate's private key (PEM, mode 0600)"`
	MaxConns          int    `flag:"max-conns" yaml:"max_conns" help:"most client connections open at once on each listener (API, interception, metrics); at the cap the longest-idle connection is closed for a new one, and a new one is closed when all are busy; lowered to fit the open-file limit"`
	MaxConnsPerClient int    `flag:"max-conns-per-client" yaml:"max_conns_per_client" help:"most connections open at once from one client address (IPv4 address or IPv6 /64) on each listener; more are closed at once (0: no cap, e.g. behind a load balancer)"`
	MetricsListen     string `flag:"metrics-listen" yaml:"metrics_listen" help:"if set, serve Prometheus metrics at /metrics on this address to anyone, without TLS (keep it on loopback or a private network; on --listen, /metrics needs a global token with the metrics scope; see docs/metrics.md)"`
	OTLPGRPCListen    string `flag:"otlp-grpc-listen" yaml:"otlp_grpc_listen" help:"if set, serve OTLP/gRPC (trace, logs and metrics services, as POST /v1/traces, /v1/logs and /v1/metrics; a write token in the authorization metadata; TLS as --listen) on this address (see docs/otel.md)"`
	DebugListen       string `flag:"debug-listen" yaml:"debug_listen" help:"if set, serve Go pprof profiles on this address (keep it on loopback)"`
	LogLevel          string `flag:"log-level" yaml:"log_level" help:"debug, info, warn or error"`

	// The Go runtime.
	GCPercent int `flag:"gc-percent" yaml:"gc_percent" help:"the Go garbage collector's target, as GOGC: the heap grows by this percent of the live heap between collections; higher spends less CPU on collection and more memory (docs/performance.md, \"Write path CPU per event\"); $GOGC, when set, wins"`

	// Capture: the proxies and the interception proxy.
	CaptureMode         string        `flag:"capture" yaml:"capture" help:"capture proxy mode: fail-closed (a call goes upstream only once its request is recorded) or fail-open (calls proceed; gaps are recorded later)"`
	Upstreams           upstreamFlags `flag:"upstream" yaml:"upstream" arg:"NAME=BASE_URL" help:"capture proxy upstream NAME=BASE_URL, served at /proxy/NAME/ (repeatable; built in: {upstreams})"`
	ProxyBodyBudget     int64         `flag:"proxy-body-budget" yaml:"proxy_body_budget" help:"request body bytes the capture proxies hold in memory at once, all calls together, taken as the bytes arrive; one agent holds at most half of it, or the largest proxied body if more; a call beyond it is answered 503 with Retry-After (at least {max_request_bytes}, the largest proxied body)"`
	UpstreamCA          string        `flag:"upstream-ca" yaml:"upstream_ca" help:"for tests: PEM file of the roots the capture proxies verify upstream certificates with (default: the system's)"`
	MCPUpstreams        upstreamFlags `flag:"mcp-upstream" yaml:"mcp_upstream" arg:"NAME=URL" help:"MCP server NAME=URL (Streamable HTTP), proxied at /mcp/NAME/ with every tool call recorded (repeatable)"`
	MCPToolPolicy       string        `flag:"mcp-tool-policy" yaml:"mcp_tool_policy" help:"MCP tool policy file (YAML: default and per-token allow and deny lists; see docs/capture.md)"`
	InterceptListen     string        `flag:"intercept-listen" yaml:"intercept_listen" help:"serve the HTTPS_PROXY interception proxy on this address (HTTPS_PROXY=http://agent:TOKEN@ADDR; agents trust DATA/keys/intercept-ca.pem)"`
	InterceptHosts      string        `flag:"intercept-hosts" yaml:"intercept_hosts" help:"file of the hosts whose TLS the interception proxy terminates and records, one host or *.suffix per line (default: the providers' API hosts)"`
	InterceptOther      string        `flag:"intercept-other" yaml:"intercept_other" help:"what the interception proxy does with other hosts: tunnel (bytes passed through unread, to public addresses only: loopback, private, link-local, CGNAT, multicast, reserved and this host's addresses are refused; each tunnel is recorded as a capture.tunnel event) or refuse"`
	InterceptAllow      listFlag      `flag:"intercept-allow" yaml:"intercept_allow" arg:"CIDR" help:"an exception to the tunnel rule: a CIDR, IP address or HOST:PORT that tunnels may reach although internal (repeatable)"`
	InterceptTunnelIdle time.Duration `flag:"intercept-tunnel-idle" yaml:"intercept_tunnel_idle" help:"close a tunnel through which no byte passed either way for this long"`
	InterceptResolve    resolveFlags  `flag:"intercept-resolve" yaml:"intercept_resolve" arg:"HOST=ADDR" help:"for tests: send HOST=ADDR to ADDR instead of HOST's address (repeatable)"`

	// Derived by check.
	profiles []string // Compliance, parsed
}

// defaultDataDir is the data directory of every subcommand by default.
const defaultDataDir = "./data"

// defaultConfig is every setting's default: a constant of the package
// that owns the setting.
func defaultConfig() Config {
	return Config{
		DataDir:             defaultDataDir,
		Storage:             backend.POSIX,
		DBMaxConns:          sqldb.DefaultMaxConns,
		JournalSegmentSize:  journal.DefaultSegmentSize,
		CheckpointInterval:  auditlog.DefaultCheckpointInterval,
		BatchMaxAge:         auditlog.DefaultBatchMaxAge,
		SequenceLinger:      auditlog.DefaultSequenceLinger,
		IndexWait:           auditlog.DefaultIndexWait,
		ReceiptWait:         server.DefaultReceiptWait,
		PushbackWait:        server.DefaultPushbackWait,
		MaxBodyBytes:        server.DefaultMaxBodyBytes,
		WitnessTimeout:      server.DefaultWitnessTimeout,
		LeafVersion:         event.LeafVersion,
		TSAInterval:         tsa.DefaultInterval,
		Console:             true,
		ConsoleTokenSignIn:  true,
		Listen:              server.DefaultListen,
		MaxConns:            connlimit.DefaultMax,
		MaxConnsPerClient:   connlimit.DefaultPerClient,
		LogLevel:            "info",
		GCPercent:           defaultGCPercent,
		CaptureMode:         string(capture.FailClosed),
		Upstreams:           upstreamFlags{},
		ProxyBodyBudget:     capture.DefaultBodyBudget,
		MCPUpstreams:        upstreamFlags{},
		InterceptOther:      capture.DefaultInterceptOther,
		InterceptTunnelIdle: capture.DefaultTunnelIdle,
		InterceptResolve:    resolveFlags{},
	}
}

// helpVars are the texts the help tags name as {VAR}: defaults and lists
// that other packages hold.
func helpVars() map[string]string {
	var names, floors []string
	for _, p := range profile.All() {
		names = append(names, p.Name)
		floors = append(floors, p.Floor.String())
	}
	return map[string]string{
		"default_origin":    server.DefaultOrigin,
		"dsn_env":           dsnEnv,
		"db_more_conns":     fmt.Sprint(sqldb.DefaultTesseraConns + sqldb.LockHolders + journal.SQLConns),
		"s3_region":         backend.S3Region,
		"master_key_env":    server.MasterKeyEnv,
		"profiles":          strings.Join(names, ", "),
		"floors":            strings.Join(floors, ", "),
		"upstreams":         builtinUpstreams(),
		"max_request_bytes": fmt.Sprint(capture.DefaultMaxRequestBytes),
	}
}

// configUsage is the help of --config.
const configUsage = "YAML file of settings: a key per flag, the flag's name with _ for - (every flag but --config and --db-dsn; see docs/config.md); a flag given on the command line overrides the file's key"

// bindConfig returns c bound to a flag per setting on fs (the values c
// holds are the defaults --help shows), and the --config flag.
func bindConfig(fs *flag.FlagSet, c *Config) (*settings.Binding, *string) {
	file := fs.String("config", "", configUsage)
	return settings.Bind(fs, c, helpVars()), file
}

// parseConfig parses the command line args of fs (which bindConfig made
// for c), then the --config file if one is named, and checks the result.
// ok is false when the command must stop with code.
func parseConfig(fs *flag.FlagSet, b *settings.Binding, file *string, c *Config, args []string) (code int, ok bool) {
	if code, ok := cli.Parse(fs, args); !ok {
		return code, false
	}
	if fs.NArg() > 0 {
		return cli.Fail(fs, "unexpected argument %q", fs.Arg(0)), false
	}
	if *file != "" {
		text, err := cli.ReadFile(*file, maxConfigBytes)
		if err == nil {
			err = b.Load(*file, text)
		}
		if err == nil {
			err = c.checkFile(b, *file)
		}
		if err != nil {
			return cli.Fail(fs, "--config: %v", err), false
		}
	}
	if err := c.check(os.Getenv); err != nil {
		return cli.Fail(fs, "%v", err), false
	}
	return 0, true
}

// checkFile refuses a secret that the file holds in a setting that could
// name where the secret is instead: a PKCS#11 URI's pin-value (hsm.URI).
func (c *Config) checkFile(b *settings.Binding, file string) error {
	if line := b.Line("signing_key"); line > 0 && strings.Contains(c.SigningKey, "pin-value") {
		return &settings.Error{File: file, Line: line, Key: "signing_key",
			Msg: "pin-value is a secret, which a file does not hold: name a file of mode 0600 with pin-source=file:PATH"}
	}
	return nil
}

// check checks the settings together, takes --db-dsn from the environment
// (getenv) if it is not given, and parses --compliance.
func (c *Config) check(getenv func(string) string) error {
	if c.MaxConns < 1 || c.MaxConnsPerClient < 0 {
		return fmt.Errorf("--max-conns must be at least 1 and --max-conns-per-client at least 0")
	}
	if c.GCPercent < 1 {
		return fmt.Errorf("--gc-percent must be at least 1")
	}
	if c.SequenceLinger < 0 || c.SequenceLinger > time.Second {
		return fmt.Errorf("--sequence-linger must be between 0 and 1s")
	}
	if c.PushbackWait < 0 || c.PushbackWait > time.Minute {
		return fmt.Errorf("--pushback-wait must be between 0 and 1m")
	}
	if _, err := c.logLevel(); err != nil {
		return fmt.Errorf("--log-level: %v", err)
	}
	flagDSN := c.DBDSN
	if c.DBDSN == "" {
		c.DBDSN = getenv(dsnEnv)
	}
	switch c.Storage {
	case backend.S3:
		if c.DBDSN == "" || c.S3Bucket == "" {
			return fmt.Errorf("--storage s3 needs --db-dsn (or $%s) and --s3-bucket", dsnEnv)
		}
	case backend.POSIX:
		if c.S3Bucket != "" || c.S3Endpoint != "" || flagDSN != "" {
			return fmt.Errorf("--db-dsn and --s3-* need --storage s3")
		}
		c.DBDSN = ""
	default:
		return fmt.Errorf("--storage %q: want posix or s3", c.Storage)
	}
	if len(c.TSAURLs) != len(c.TSAChains) {
		return fmt.Errorf("--tsa-url and --tsa-chain go in pairs: %d URLs, %d chains", len(c.TSAURLs), len(c.TSAChains))
	}
	for _, u := range c.TSAURLs {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("--tsa-url %q: want an http or https URL", u)
		}
	}
	if c.TSAInterval <= 0 {
		return fmt.Errorf("--tsa-interval must be positive")
	}
	var err error
	if c.profiles, err = retention.ParseProfiles(c.Compliance); err != nil {
		return fmt.Errorf("--compliance: %v", err)
	}
	return nil
}

func (c *Config) logLevel() (slog.Level, error) {
	var lvl slog.Level
	err := lvl.UnmarshalText([]byte(c.LogLevel))
	return lvl, err
}

// Command log-server runs an LLMAuditTrail log: the event API, the capture
// proxy, tlog-tiles reads and proofs, on one data directory.
//
//	log-server --data ./data                      serve (creating keys on first start)
//	log-server token create --data ./data --name NAME --tenant T --scopes write,read
//	log-server token revoke --data ./data --id ID
//	log-server token list --data ./data
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with --debug-listen
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/backend"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
	"github.com/llmaudittrail/llmaudittrail/internal/connlimit"
	"github.com/llmaudittrail/llmaudittrail/internal/hsm"
	"github.com/llmaudittrail/llmaudittrail/internal/sqldb"
	"github.com/llmaudittrail/llmaudittrail/journal"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
	"github.com/llmaudittrail/llmaudittrail/retention"
	"github.com/llmaudittrail/llmaudittrail/server"
	"github.com/llmaudittrail/llmaudittrail/vault"
)

func main() {
	args := os.Args[1:]
	var code int
	switch {
	case len(args) > 0 && args[0] == "token":
		code = tokenCmd(args[1:])
	case len(args) > 0 && args[0] == "keygen":
		code = keygen(args[1:])
	case len(args) > 0 && args[0] == "serve":
		code = serve(args[1:])
	case len(args) > 0 && args[0] == "mcp":
		code = mcpCmd(args[1:])
	default:
		code = serve(args)
	}
	os.Exit(code)
}

// exit reports err (if any) and returns the exit code: 0, or 1.
func exit(err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "log-server:", err)
	return 1
}

const serveSynopsis = `log-server [serve] [--data DIR] [--listen ADDR] [flags]
log-server token create|revoke|list --data DIR [flags]
log-server keygen --signing-key pkcs11:URI [--origin NAME]
log-server mcp wrap --url URL --token-file FILE [--session ID] [--name NAME] -- COMMAND [ARGS...]`

func serve(args []string) int {
	fs := cli.NewFlagSet("log-server", serveSynopsis)
	dataDir := fs.String("data", "./data", "data directory (created if missing)")
	origin := fs.String("origin", "", "log origin and checkpoint key name (default: the existing key's, or "+server.DefaultOrigin+")")
	listen := fs.String("listen", server.DefaultListen, "listen address")
	storage := fs.String("storage", backend.POSIX, "where the log lives: posix (DATA: Tessera's POSIX driver and SQLite; one instance) or s3 (Tessera's AWS driver on --db-dsn and --s3-bucket; several instances may share them)")
	dbDSN := fs.String("db-dsn", "", "s3 storage: the MariaDB/MySQL database, user:pass@tcp(HOST:3306)/NAME (default: $"+dsnEnv+", which keeps the password out of the process list)")
	dbMaxConns := fs.Int("db-max-conns", sqldb.DefaultMaxConns, fmt.Sprintf("s3 storage: the main pool of database connections of this instance (Tessera's sequencer, the locks and the journal open %d more)", sqldb.DefaultTesseraConns+sqldb.LockHolders+journal.SQLConns))
	s3Endpoint := fs.String("s3-endpoint", "", "s3 storage: the S3-compatible store's URL, e.g. http://127.0.0.1:8333 (default: AWS); credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	s3Bucket := fs.String("s3-bucket", "", "s3 storage: the bucket of tiles and entry bundles (created if missing)")
	s3Region := fs.String("s3-region", "", "s3 storage: the bucket's region (default: $AWS_REGION, else "+backend.S3Region+")")
	cpInterval := fs.Duration("checkpoint-interval", auditlog.DefaultCheckpointInterval, "how often to publish a checkpoint (min 100ms)")
	batchAge := fs.Duration("batch-max-age", auditlog.DefaultBatchMaxAge, "longest time an event waits to be sequenced")
	segSize := fs.Int64("journal-segment-size", journal.DefaultSegmentSize, "posix storage: bytes at which the write-ahead journal begins a new segment file (released segments are removed whole)")
	indexWait := fs.Duration("index-wait", auditlog.DefaultIndexWait, "longest time a write waits for its index (the default ?wait=index); then it is answered 202, durable without it")
	maxBody := fs.Int64("max-body-bytes", server.DefaultMaxBodyBytes, "largest accepted request body")
	proxyBudget := fs.Int64("proxy-body-budget", capture.DefaultBodyBudget, fmt.Sprintf("request body bytes the capture proxies hold in memory at once, all calls together, taken as the bytes arrive; one agent holds at most half of it, or the largest proxied body if more; a call beyond it is answered 503 with Retry-After (at least %d, the largest proxied body)", capture.DefaultMaxRequestBytes))
	receiptWait := fs.Duration("receipt-wait", server.DefaultReceiptWait, "longest wait for ?wait=checkpoint")
	policyFile := fs.String("witness-policy", "", "witness policy file (witness/group/quorum lines); checkpoints are published only with quorum")
	failOpen := fs.Bool("witness-fail-open", false, "publish checkpoints even when the witness policy is not met")
	witnessTimeout := fs.Duration("witness-timeout", server.DefaultWitnessTimeout, "longest wait for witnesses per checkpoint")
	publicEntries := fs.Bool("public-entries", false, "serve entry contents (entry bundles, /v1/entries) to anyone: only for a log that is public on purpose")
	signingKey := fs.String("signing-key", "", "checkpoint signing key in a PKCS#11 token, as an RFC 7512 pkcs11: URI (default: DATA/keys/log.key)")
	masterSource := fs.String("master-key-source", "", "where the vault master key comes from: file (keys/master.key), env ("+server.MasterKeyEnv+") or keyring:DESC (a user key of the Linux kernel keyring); default env if the variable is set, else file")
	profilesFlag := fs.String("compliance", "", "compliance profiles, comma-separated: part11, sox, eu-ai-act (retention floors 7y, 7y, 6m; combined, the strictest wins)")
	complianceConfig := fs.String("compliance-config", "", "compliance configuration file (YAML: profiles, retention, tenants; see docs/signatures.md)")
	chromium := fs.String("chromium", "", "Chromium binary for PDF reports (default: chromium on PATH)")
	consoleOn := fs.Bool("console", true, "serve the auditor console at /console/ (--console=false turns it off; see docs/console.md)")
	maxConns := fs.Int("max-conns", connlimit.DefaultMax, "most client connections open at once on each listener (API, interception, metrics); at the cap the longest-idle connection is closed for a new one, and a new one is closed when all are busy; lowered to fit the open-file limit")
	maxConnsPerClient := fs.Int("max-conns-per-client", connlimit.DefaultPerClient, "most connections open at once from one client address (IPv4 address or IPv6 /64) on each listener; more are closed at once (0: no cap, e.g. behind a load balancer)")
	upstreams := upstreamFlags{}
	fs.Var(upstreams, "upstream", "capture proxy upstream `NAME=BASE_URL`, served at /proxy/NAME/ (repeatable; built in: "+builtinUpstreams()+")")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS (API, capture and MCP proxies) with this certificate chain (PEM; reloaded on SIGHUP or change)")
	tlsKey := fs.String("tls-key", "", "the certificate's private key (PEM, mode 0600)")
	interceptListen := fs.String("intercept-listen", "", "serve the HTTPS_PROXY interception proxy on this address (HTTPS_PROXY=http://agent:TOKEN@ADDR; agents trust DATA/keys/intercept-ca.pem)")
	interceptHosts := fs.String("intercept-hosts", "", "file of the hosts whose TLS the interception proxy terminates and records, one host or *.suffix per line (default: the providers' API hosts)")
	interceptOther := fs.String("intercept-other", "tunnel", "what the interception proxy does with other hosts: tunnel (bytes passed through unread, to public addresses only: loopback, private, link-local, CGNAT, multicast, reserved and this host's addresses are refused; each tunnel is recorded as a capture.tunnel event) or refuse")
	var interceptAllow listFlag
	fs.Var(&interceptAllow, "intercept-allow", "an exception to the tunnel rule: a `CIDR`, IP address or HOST:PORT that tunnels may reach although internal (repeatable)")
	tunnelIdle := fs.Duration("intercept-tunnel-idle", capture.DefaultTunnelIdle, "close a tunnel through which no byte passed either way for this long")
	interceptResolve := upstreamFlags{}
	fs.Var(resolveFlags(interceptResolve), "intercept-resolve", "for tests: send `HOST=ADDR` to ADDR instead of HOST's address (repeatable)")
	caFile := fs.String("ca-file", "", "PEM file of certificate authorities to trust for https witnesses, besides the system's")
	upstreamCA := fs.String("upstream-ca", "", "for tests: PEM file of the roots the capture proxies verify upstream certificates with (default: the system's)")
	mcpUpstreams := upstreamFlags{}
	fs.Var(mcpUpstreams, "mcp-upstream", "MCP server `NAME=URL` (Streamable HTTP), proxied at /mcp/NAME/ with every tool call recorded (repeatable)")
	mcpPolicy := fs.String("mcp-tool-policy", "", "MCP tool policy file (YAML: default and per-token allow and deny lists; see docs/capture.md)")
	captureMode := fs.String("capture", "fail-closed", "capture proxy mode: fail-closed (a call goes upstream only once its request is recorded) or fail-open (calls proceed; gaps are recorded later)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	debugListen := fs.String("debug-listen", "", "if set, serve Go pprof profiles on this address (keep it on loopback)")
	otlpGRPCListen := fs.String("otlp-grpc-listen", "", "if set, serve OTLP/gRPC (trace and logs services, as POST /v1/traces and /v1/logs; a write token in the authorization metadata; TLS as --listen) on this address (see docs/otel.md)")
	metricsListen := fs.String("metrics-listen", "", "if set, serve Prometheus metrics at /metrics on this address to anyone, without TLS (keep it on loopback or a private network; on --listen, /metrics needs a global token with the metrics scope; see docs/metrics.md)")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.Fail(fs, "unexpected argument %q", fs.Arg(0))
	}
	if *maxConns < 1 || *maxConnsPerClient < 0 {
		return cli.Fail(fs, "--max-conns must be at least 1 and --max-conns-per-client at least 0")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return cli.Fail(fs, "--log-level: %v", err)
	}
	flagDSN := *dbDSN
	if *dbDSN == "" {
		*dbDSN = os.Getenv(dsnEnv)
	}
	switch *storage {
	case backend.S3:
		if *dbDSN == "" || *s3Bucket == "" {
			return cli.Fail(fs, "--storage s3 needs --db-dsn (or $%s) and --s3-bucket", dsnEnv)
		}
	case backend.POSIX:
		if *s3Bucket != "" || *s3Endpoint != "" || flagDSN != "" {
			return cli.Fail(fs, "--db-dsn and --s3-* need --storage s3")
		}
		*dbDSN = ""
	default:
		return cli.Fail(fs, "--storage %q: want posix or s3", *storage)
	}
	profiles, err := retention.ParseProfiles(*profilesFlag)
	if err != nil {
		return cli.Fail(fs, "--compliance: %v", err)
	}
	var complianceText []byte
	if *complianceConfig != "" {
		if complianceText, err = cli.ReadFile(*complianceConfig, maxConfigBytes); err != nil {
			return cli.Fail(fs, "--compliance-config: %v", err)
		}
	}
	logger0 := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	var tlsFiles *cli.TLSFiles
	if *tlsCert != "" || *tlsKey != "" {
		if tlsFiles, err = cli.LoadTLS(*tlsCert, *tlsKey, logger0); err != nil {
			return cli.Fail(fs, "%v", err)
		}
	}
	var intercept *server.InterceptConfig
	var upstreamRoots *x509.CertPool
	if *interceptListen != "" {
		intercept = &server.InterceptConfig{Other: *interceptOther, Resolve: interceptResolve, Allow: interceptAllow, TunnelIdle: *tunnelIdle}
		if *interceptHosts != "" {
			text, err := cli.ReadFile(*interceptHosts, maxConfigBytes)
			if err != nil {
				return cli.Fail(fs, "--intercept-hosts: %v", err)
			}
			for _, line := range strings.Split(string(text), "\n") {
				if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
					intercept.Hosts = append(intercept.Hosts, line)
				}
			}
		}
	}
	if *upstreamCA != "" {
		pool := x509.NewCertPool()
		b, err := cli.ReadFile(*upstreamCA, maxConfigBytes)
		if err != nil || !pool.AppendCertsFromPEM(b) {
			return cli.Fail(fs, "--upstream-ca: no PEM certificate (%v)", err)
		}
		upstreamRoots = pool
	}
	var witnessRoots *x509.CertPool
	if *caFile != "" {
		if witnessRoots, err = cli.CAPool(*caFile); err != nil {
			return cli.Fail(fs, "%v", err)
		}
	}
	var toolPolicy *server.MCPToolPolicy
	if *mcpPolicy != "" {
		text, err := cli.ReadFile(*mcpPolicy, maxConfigBytes)
		if err == nil {
			toolPolicy, err = server.ParseMCPToolPolicy(text)
		}
		if err != nil {
			return cli.Fail(fs, "--mcp-tool-policy: %v", err)
		}
	}
	reporter, err := compliance.NewReporter(complianceText, *chromium, nil)
	if err != nil {
		return cli.Fail(fs, "--compliance-config: %v", err)
	}
	logger := logger0
	slog.SetDefault(logger)
	klog.SetSlogLogger(logger)

	return exit(runServe(logger, *dataDir, *listen, *debugListen, *metricsListen, server.Config{
		DataDir: *dataDir, Origin: *origin, MaxBodyBytes: *maxBody, ReceiptWait: *receiptWait, ProxyBodyBudget: *proxyBudget,
		Storage: *storage, DBDSN: *dbDSN, DBMaxConns: *dbMaxConns, S3: backend.S3Config{Endpoint: *s3Endpoint, Bucket: *s3Bucket, Region: *s3Region},
		CheckpointInterval: *cpInterval, BatchMaxAge: *batchAge, IndexWait: *indexWait, JournalSegmentSize: *segSize,
		Upstreams: upstreams, CaptureMode: *captureMode, MCPUpstreams: mcpUpstreams, MCPToolPolicy: toolPolicy, Intercept: intercept, UpstreamRoots: upstreamRoots, WitnessRoots: witnessRoots,
		WitnessFailOpen: *failOpen, WitnessTimeout: *witnessTimeout, Logger: logger,
		PublicEntries: *publicEntries,
		Keys:          server.KeySources{MasterKeySource: *masterSource},
		Compliance:    profiles, ComplianceConfig: complianceText, Reporter: reporter,
		Console: consoleFactory(*consoleOn, *chromium, logger),
	}, *policyFile, connlimit.Limits{Max: *maxConns, PerClient: *maxConnsPerClient}, *signingKey, tlsFiles, *interceptListen, *otlpGRPCListen))
}

func keygen(args []string) int {
	fs := cli.NewFlagSet("log-server keygen", "log-server keygen --signing-key pkcs11:URI [--origin NAME]")
	uri := fs.String("signing-key", "", "where to create the key: an RFC 7512 pkcs11: URI naming token, object and module-path (required)")
	origin := fs.String("origin", server.DefaultOrigin, "log origin: the name of the checkpoint key")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if *uri == "" || fs.NArg() > 0 {
		return cli.Fail(fs, "--signing-key is required")
	}
	k, err := hsm.Generate(*uri)
	if err != nil {
		return exit(err)
	}
	defer k.Close()
	s, err := k.NoteSigner(*origin)
	if err != nil {
		return exit(err)
	}
	fmt.Println(s.VerifierKey())
	return 0
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// dsnEnv names the environment variable --db-dsn defaults to.
const dsnEnv = "LLMAUDIT_DB_DSN"

// maxConfigBytes caps a configuration file.
const maxConfigBytes = 1 << 20

// Timeouts of every listener's http.Server. A capture call lifts the read
// and write deadlines once its request body is read (a model may stream
// for minutes); API answers set their own write deadlines; the
// interception proxy lifts both once a CONNECT is answered, and its
// tunnels and terminated connections have their own idle deadlines.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 2 * time.Minute
	idleTimeout       = 2 * time.Minute
	interceptWrite    = time.Minute
	metricsWrite      = 30 * time.Second
)

// fitFiles logs the open-file limit and lowers lim.Max, if needed, so that
// listeners listeners fit within it.
func fitFiles(logger *slog.Logger, lim connlimit.Limits, listeners int) (connlimit.Limits, error) {
	soft, hard := connlimit.FileLimit()
	max, err := connlimit.Fit(soft, listeners, lim.Max)
	if err != nil {
		return lim, fmt.Errorf("open-file limit %d: %w", soft, err)
	}
	if max < lim.Max {
		logger.Warn("--max-conns lowered to fit the open-file limit (raise the hard limit: ulimit -Hn, LimitNOFILE=)",
			"max_conns", lim.Max, "lowered_to", max, "file_limit", soft, "listeners", listeners)
		lim.Max = max
	}
	logger.Info("connection budget", "file_limit", soft, "file_limit_hard", hard, "max_conns", lim.Max, "max_conns_per_client", lim.PerClient, "listeners", listeners)
	return lim, nil
}

func runServe(logger *slog.Logger, dataDir, listen, debugListen, metricsListen string, cfg server.Config, policyFile string, lim connlimit.Limits, signingKey string, tlsFiles *cli.TLSFiles, interceptListen, otlpGRPCListen string) error {
	if signingKey != "" {
		k, err := hsm.Open(signingKey)
		if err != nil {
			return fmt.Errorf("--signing-key: %w", err)
		}
		defer k.Close()
		cfg.Keys.SigningKey = k
	}
	if hx := os.Getenv(server.MasterKeyEnv); hx != "" {
		k, err := hex.DecodeString(strings.TrimSpace(hx))
		if err != nil || len(k) != vault.MasterKeySize {
			return fmt.Errorf("%s must be %d hex digits", server.MasterKeyEnv, 2*vault.MasterKeySize)
		}
		cfg.Keys.MasterKey = k
	}
	if policyFile != "" {
		p, err := cli.ReadFile(policyFile, maxConfigBytes)
		if err != nil {
			return fmt.Errorf("--witness-policy: %w", err)
		}
		cfg.WitnessPolicy = p
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The log's background work (sequencing, checkpoints) must outlive the
	// signal, so that shutdown can publish a final checkpoint.
	srv, err := server.Open(context.Background(), cfg)
	if err != nil {
		return err
	}
	for _, p := range srv.Created.Paths {
		logger.Info("created", "path", p)
	}
	abs, _ := filepath.Abs(dataDir)
	ready := []any{"origin", srv.Log().Origin(), "data", abs, "verifier_key", filepath.Join(abs, server.LogPubFile)}
	if tok := filepath.Join(abs, server.AdminToken); fileExists(tok) {
		ready = append(ready, "admin_token", tok)
	} else {
		// Another instance made the log (s3 storage): tokens are made with
		// log-server token create --db-dsn.
		ready = append(ready, "admin_token", "none here (log-server token create makes tokens)")
	}
	logger.Info("log ready", ready...)

	listeners := 1
	if srv.InterceptHandler() != nil {
		listeners++
	}
	if metricsListen != "" {
		listeners++
	}
	if otlpGRPCListen != "" {
		listeners++
	}
	if lim, err = fitFiles(logger, lim, listeners); err != nil {
		srv.Close(context.Background())
		return err
	}
	lim.Logger = logger
	raw, err := net.Listen("tcp", listen)
	if err != nil {
		srv.Close(context.Background())
		return err
	}
	apiLim := lim
	apiLim.Name = "api"
	ln := connlimit.New(raw, apiLim)
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln.Track(hs)
	if debugListen != "" {
		go func() {
			// http.DefaultServeMux carries the net/http/pprof handlers.
			logger.Warn("pprof server stopped", "error", http.ListenAndServe(debugListen, http.DefaultServeMux))
		}()
	}
	logger.Info("listening", "addr", ln.Addr().String(), "tls", tlsFiles != nil)
	errc := make(chan error, 1)
	if tlsFiles != nil {
		hs.TLSConfig = tlsFiles.Config()
		go tlsFiles.Watch(ctx, 2*time.Second)
		go func() { errc <- hs.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- hs.Serve(ln) }()
	}
	var is *http.Server
	if h := srv.InterceptHandler(); h != nil {
		rawIL, err := net.Listen("tcp", interceptListen)
		if err != nil {
			hs.Close()
			srv.Close(context.Background())
			return fmt.Errorf("--intercept-listen: %w", err)
		}
		icLim := lim
		icLim.Name = "intercept"
		il := connlimit.New(rawIL, icLim)
		is = &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, WriteTimeout: interceptWrite,
			IdleTimeout: idleTimeout, MaxHeaderBytes: 64 << 10, ErrorLog: hs.ErrorLog}
		il.Track(is)
		logger.Info("intercepting", "addr", il.Addr().String(), "ca", filepath.Join(abs, server.InterceptCA), "tls", tlsFiles != nil)
		if tlsFiles != nil {
			is.TLSConfig = tlsFiles.Config()
			go func() { errc <- is.ServeTLS(il, "", "") }()
		} else {
			go func() { errc <- is.Serve(il) }()
		}
	}
	var ms *http.Server
	if metricsListen != "" {
		rawML, err := net.Listen("tcp", metricsListen)
		if err != nil {
			hs.Close()
			if is != nil {
				is.Close()
			}
			srv.Close(context.Background())
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		mLim := lim
		mLim.Name = "metrics"
		ml := connlimit.New(rawML, mLim)
		ms = &http.Server{Handler: server.MetricsHandler(), ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readHeaderTimeout, WriteTimeout: metricsWrite,
			IdleTimeout: idleTimeout, MaxHeaderBytes: 64 << 10, ErrorLog: hs.ErrorLog}
		ml.Track(ms)
		logger.Info("serving metrics", "addr", ml.Addr().String(), "path", server.MetricsPath)
		go func() { errc <- ms.Serve(ml) }()
	}
	var gs *grpc.Server
	if otlpGRPCListen != "" {
		rawGL, err := net.Listen("tcp", otlpGRPCListen)
		if err != nil {
			hs.Close()
			if is != nil {
				is.Close()
			}
			if ms != nil {
				ms.Close()
			}
			srv.Close(context.Background())
			return fmt.Errorf("--otlp-grpc-listen: %w", err)
		}
		gLim := lim
		gLim.Name = "otlp-grpc"
		gl := connlimit.New(rawGL, gLim)
		var tc *tls.Config
		if tlsFiles != nil {
			tc = tlsFiles.Config()
		}
		gs = srv.OTLPGRPC(tc)
		logger.Info("serving OTLP/gRPC", "addr", gl.Addr().String(), "tls", tlsFiles != nil)
		go func() { errc <- gs.Serve(gl) }()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	logger.Info("shutting down")
	if gs != nil {
		// Exports in progress finish (10 s at most) while the log runs.
		t := time.AfterFunc(10*time.Second, gs.Stop)
		gs.GracefulStop()
		t.Stop()
	}
	if is != nil {
		is.Close()
	}
	if ms != nil {
		ms.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	herr := hs.Shutdown(sctx)
	cerr := srv.Close(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, herr, cerr)
}

var tokenSynopsis = map[string]string{
	"create": "log-server token create --data DIR --name NAME [--tenant T] [--scopes S,...] [--global] [--actor ID]...",
	"revoke": "log-server token revoke --data DIR --id ID",
	"list":   "log-server token list --data DIR",
}

func tokenCmd(args []string) int {
	if len(args) == 0 || tokenSynopsis[args[0]] == "" {
		fmt.Fprintf(os.Stderr, "Usage:\n  %s\n  %s\n  %s\n", tokenSynopsis["create"], tokenSynopsis["revoke"], tokenSynopsis["list"])
		return cli.ExitUsage
	}
	sub := args[0]
	fs := cli.NewFlagSet("log-server token "+sub, tokenSynopsis[sub])
	dataDir := fs.String("data", "./data", "data directory")
	dbDSN := fs.String("db-dsn", "", "the database of an s3-storage log, user:pass@tcp(HOST:3306)/NAME, instead of DATA/state.db (default: $"+dsnEnv+")")
	var name, tenant, scopes, id *string
	var global *bool
	var actors listFlag
	switch sub {
	case "create":
		name = fs.String("name", "", "token name (required; 1-128 characters of [A-Za-z0-9_.:@-])")
		tenant = fs.String("tenant", server.DefaultTenant, "tenant the token acts for")
		scopes = fs.String("scopes", "write", "comma-separated scopes: "+strings.Join(auth.Scopes(), ", "))
		global = fs.Bool("global", false, "act for every tenant (a log operator or log-wide auditor; needed to read entry bundles)")
		fs.Var(&actors, "actor", "an actor id the token may write as (repeatable; default: any)")
	case "revoke":
		id = fs.String("id", "", "token id (required)")
	}
	if code, ok := cli.Parse(fs, args[1:]); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.Fail(fs, "unexpected argument %q", fs.Arg(0))
	}
	var sc []string
	switch sub {
	case "create":
		var err error
		if sc, err = auth.ParseScopes(*scopes); err != nil {
			return cli.Fail(fs, "%v", err)
		}
		if *name == "" {
			return cli.Fail(fs, "--name is required")
		}
	case "revoke":
		if *id == "" {
			return cli.Fail(fs, "--id is required")
		}
	}
	var spec auth.Spec
	if sub == "create" {
		spec = auth.Spec{Name: *name, Tenant: *tenant, Scopes: sc, Global: *global, Actors: actors}
	}
	if *dbDSN == "" {
		*dbDSN = os.Getenv(dsnEnv)
	}
	return exit(runToken(sub, *dataDir, *dbDSN, spec, id))
}

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runToken(sub, dataDir, dsn string, spec auth.Spec, id *string) error {
	ctx := context.Background()
	db, err := backend.OpenState(ctx, dataDir, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	store, err := auth.Open(db)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		tok, p, err := store.Create(ctx, spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "created token id=%s name=%s tenant=%s scopes=%s%s (shown once; store it now)\n", p.ID, p.Name, p.Tenant, strings.Join(p.Scopes, ","), tokenFlags(p))
		fmt.Println(tok)
	case "revoke":
		if err := store.Revoke(ctx, *id); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "revoked %s (effective within %s)\n", *id, auth.CacheTTL)
	case "list":
		ps, err := store.List(ctx)
		if err != nil {
			return err
		}
		for _, p := range ps {
			fmt.Printf("%s\t%s\t%s\t%s%s\n", p.ID, p.Name, p.Tenant, strings.Join(p.Scopes, ","), tokenFlags(&p))
		}
	}
	return nil
}

// tokenFlags describes a token's reach beyond its tenant and scopes.
func tokenFlags(p *auth.Principal) string {
	var b strings.Builder
	if p.Global {
		b.WriteString(" global")
	}
	if len(p.Actors) > 0 {
		b.WriteString(" actors=" + strings.Join(p.Actors, ","))
	}
	return b.String()
}

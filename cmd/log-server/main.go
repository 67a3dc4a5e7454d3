// Command log-server runs an LLMAuditTrail log: the event API, the capture
// proxy, tlog-tiles reads and proofs, on one data directory.
//
//	log-server --data ./data                      serve (creating keys on first start)
//	log-server --config server.yaml               serve with the settings of a file (docs/config.md)
//	log-server config [--config FILE] [flags]     print the settings serve would use
//	log-server token create --data ./data --name NAME --tenant T --scopes write,read
//	log-server token revoke --data ./data --id ID
//	log-server token list --data ./data
package main

import (
	"cmp"
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

	"github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
	"github.com/llmaudittrail/llmaudittrail/internal/connlimit"
	"github.com/llmaudittrail/llmaudittrail/internal/hsm"
	"github.com/llmaudittrail/llmaudittrail/server"
	"github.com/llmaudittrail/llmaudittrail/timestamp"
	"github.com/llmaudittrail/llmaudittrail/tsa"
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
	case len(args) > 0 && args[0] == "config":
		code = configCmd(args[1:])
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

const serveSynopsis = `log-server [serve] [--config FILE] [--data DIR] [--listen ADDR] [flags]
log-server config [--config FILE] [flags]
log-server token create|revoke|list --data DIR [flags]
log-server keygen --signing-key pkcs11:URI [--origin NAME]
log-server mcp wrap --url URL --token-file FILE [--session ID] [--name NAME] -- COMMAND [ARGS...]`

func serve(args []string) int {
	c := defaultConfig()
	fs := cli.NewFlagSet("log-server", serveSynopsis)
	b, file := bindConfig(fs, &c)
	if code, ok := parseConfig(fs, b, file, &c, args); !ok {
		return code
	}
	lvl, _ := c.logLevel() // checked
	var err error
	var complianceText []byte
	if c.ComplianceConfig != "" {
		if complianceText, err = cli.ReadFile(c.ComplianceConfig, maxConfigBytes); err != nil {
			return cli.Fail(fs, "--compliance-config: %v", err)
		}
	}
	logger0 := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	var tlsFiles *cli.TLSFiles
	if c.TLSCert != "" || c.TLSKey != "" {
		if tlsFiles, err = cli.LoadTLS(c.TLSCert, c.TLSKey, logger0); err != nil {
			return cli.Fail(fs, "%v", err)
		}
	}
	var intercept *server.InterceptConfig
	var upstreamRoots *x509.CertPool
	if c.InterceptListen != "" {
		intercept = &server.InterceptConfig{Other: c.InterceptOther, Resolve: c.InterceptResolve, Allow: c.InterceptAllow, TunnelIdle: c.InterceptTunnelIdle}
		if c.InterceptHosts != "" {
			text, err := cli.ReadFile(c.InterceptHosts, maxConfigBytes)
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
	if c.UpstreamCA != "" {
		pool := x509.NewCertPool()
		pem, err := cli.ReadFile(c.UpstreamCA, maxConfigBytes)
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			return cli.Fail(fs, "--upstream-ca: no PEM certificate (%v)", err)
		}
		upstreamRoots = pool
	}
	var witnessRoots *x509.CertPool
	if c.CAFile != "" {
		if witnessRoots, err = cli.CAPool(c.CAFile); err != nil {
			return cli.Fail(fs, "%v", err)
		}
	}
	var toolPolicy *server.MCPToolPolicy
	if c.MCPToolPolicy != "" {
		text, err := cli.ReadFile(c.MCPToolPolicy, maxConfigBytes)
		if err == nil {
			toolPolicy, err = server.ParseMCPToolPolicy(text)
		}
		if err != nil {
			return cli.Fail(fs, "--mcp-tool-policy: %v", err)
		}
	}
	co := &consoleOptions{on: c.Console, chromium: c.Chromium, tokenSignIn: c.ConsoleTokenSignIn,
		oidcIssuer: c.OIDCIssuer, oidcClientID: c.OIDCClientID, oidcSecret: c.OIDCClientSecretFile, oidcRedirect: c.OIDCRedirectURL,
		oidcRoles: c.OIDCRoles, oidcName: c.OIDCName, oidcScopes: c.OIDCScopes, apiAudience: c.OIDCAPIAudience}
	if err := co.check(); err != nil {
		return cli.Fail(fs, "%v", err)
	}
	var tsas []tsa.Authority
	for i, u := range c.TSAURLs {
		chain, err := cli.ReadFile(c.TSAChains[i], timestamp.MaxChainBytes)
		if err == nil {
			_, err = timestamp.NewVerifier(chain)
		}
		if err != nil {
			return cli.Fail(fs, "--tsa-chain %s: %v", c.TSAChains[i], err)
		}
		tsas = append(tsas, tsa.Authority{URL: u, Chain: chain})
	}
	reporter, err := compliance.NewReporter(complianceText, c.Chromium, nil)
	if err != nil {
		return cli.Fail(fs, "--compliance-config: %v", err)
	}
	logger := logger0
	slog.SetDefault(logger)
	klog.SetSlogLogger(logger)
	setGC(c.GCPercent, os.Getenv, logger)

	cfg := server.Config{
		DataDir: c.DataDir, Origin: c.Origin, MaxBodyBytes: c.MaxBodyBytes, ReceiptWait: c.ReceiptWait, PushbackWait: cmp.Or(c.PushbackWait, -1), ProxyBodyBudget: c.ProxyBodyBudget,
		Storage: c.Storage, DBDSN: c.DBDSN, DBMaxConns: c.DBMaxConns,
		CheckpointInterval: c.CheckpointInterval, BatchMaxAge: c.BatchMaxAge, SequenceLinger: cmp.Or(c.SequenceLinger, -1), IndexWait: c.IndexWait, JournalSegmentSize: c.JournalSegmentSize,
		Upstreams: c.Upstreams, CaptureMode: c.CaptureMode, MCPUpstreams: c.MCPUpstreams, MCPToolPolicy: toolPolicy, Intercept: intercept, UpstreamRoots: upstreamRoots, WitnessRoots: witnessRoots,
		WitnessFailOpen: c.WitnessFailOpen, WitnessTimeout: c.WitnessTimeout, Logger: logger,
		PublicEntries: c.PublicEntries, LeafVersion: c.LeafVersion,
		Timestamps: tsas, TimestampInterval: c.TSAInterval,
		Keys:       server.KeySources{MasterKeySource: c.MasterKeySource},
		Compliance: c.profiles, ComplianceConfig: complianceText, Reporter: reporter,
		Console: consoleFactory(co, logger), AccessTokens: co.accessTokens(),
	}
	cfg.S3.Endpoint, cfg.S3.Bucket, cfg.S3.Region = c.S3Endpoint, c.S3Bucket, c.S3Region
	return exit(runServe(logger, &c, cfg, tlsFiles))
}

const configSynopsis = "log-server config [--config FILE] [flags]"

// configCmd prints the settings serve would run with, given the same
// arguments, as a --config file: with none, every key and its default.
func configCmd(args []string) int {
	c := defaultConfig()
	fs := cli.NewFlagSet("log-server config", configSynopsis)
	b, file := bindConfig(fs, &c)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage:\n  %s\n\n%s", configSynopsis, configHelp)
	}
	if code, ok := parseConfig(fs, b, file, &c, args); !ok {
		return code
	}
	fmt.Print(configHeader)
	if err := b.WriteYAML(os.Stdout); err != nil {
		return exit(err)
	}
	return 0
}

const configHelp = `Prints the settings that log-server serve would run with, given the same
--config file and flags, as a --config file: every key with its value and,
as a comment, its help. With neither, every key and its default (the example
in docs/config.md). --db-dsn is never printed.

Flags: --config FILE and those of log-server serve (log-server --help).
`

// configHeader begins what log-server config prints.
const configHeader = `# log-server settings: log-server serve --config FILE reads this file.
# Each key is the flag of that name with _ for -; a flag given on the
# command line overrides the key. Not here: --db-dsn, a secret (give the
# flag or $` + dsnEnv + `).

`

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

// runServe opens the server cfg (made from c) and serves it on c's
// listeners until SIGINT or SIGTERM.
func runServe(logger *slog.Logger, c *Config, cfg server.Config, tlsFiles *cli.TLSFiles) error {
	lim := connlimit.Limits{Max: c.MaxConns, PerClient: c.MaxConnsPerClient}
	otlpGRPCListen := c.OTLPGRPCListen
	if c.SigningKey != "" {
		k, err := hsm.Open(c.SigningKey)
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
	if c.WitnessPolicy != "" {
		p, err := cli.ReadFile(c.WitnessPolicy, maxConfigBytes)
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
	abs, _ := filepath.Abs(c.DataDir)
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
	if c.MetricsListen != "" {
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
	raw, err := net.Listen("tcp", c.Listen)
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
	if c.DebugListen != "" {
		go func() {
			// http.DefaultServeMux carries the net/http/pprof handlers.
			logger.Warn("pprof server stopped", "error", http.ListenAndServe(c.DebugListen, http.DefaultServeMux))
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
		rawIL, err := net.Listen("tcp", c.InterceptListen)
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
	if c.MetricsListen != "" {
		rawML, err := net.Listen("tcp", c.MetricsListen)
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

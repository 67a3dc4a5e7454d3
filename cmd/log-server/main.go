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
	"errors"
	"flag"
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

	"k8s.io/klog/v2"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/internal/sqlitedb"
	"github.com/llmaudittrail/llmaudittrail/server"
)

func main() {
	args := os.Args[1:]
	var err error
	switch {
	case len(args) > 0 && args[0] == "token":
		err = tokenCmd(args[1:])
	case len(args) > 0 && args[0] == "serve":
		err = serve(args[1:])
	default:
		err = serve(args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "log-server:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("log-server", flag.ContinueOnError)
	dataDir := fs.String("data", "./data", "data directory (created if missing)")
	origin := fs.String("origin", "", "log origin and checkpoint key name (default: the existing key's, or "+server.DefaultOrigin+")")
	listen := fs.String("listen", server.DefaultListen, "listen address")
	cpInterval := fs.Duration("checkpoint-interval", server.DefaultCheckpointInt, "how often to publish a checkpoint (min 100ms)")
	batchAge := fs.Duration("batch-max-age", server.DefaultBatchMaxAge, "longest time an event waits to be sequenced")
	maxBody := fs.Int64("max-body-bytes", server.DefaultMaxBodyBytes, "largest accepted request body")
	receiptWait := fs.Duration("receipt-wait", server.DefaultReceiptWait, "longest wait for ?wait=checkpoint")
	policyFile := fs.String("witness-policy", "", "witness policy file (witness/group/quorum lines); checkpoints are published only with quorum")
	failOpen := fs.Bool("witness-fail-open", false, "publish checkpoints even when the witness policy is not met")
	witnessTimeout := fs.Duration("witness-timeout", 5*time.Second, "longest wait for witnesses per checkpoint")
	upstreams := upstreamFlags{}
	fs.Var(upstreams, "upstream", "capture proxy upstream `NAME=BASE_URL`, served at /proxy/NAME/ (repeatable; built in: openai=https://api.openai.com, anthropic=https://api.anthropic.com)")
	captureMode := fs.String("capture", "fail-closed", "capture proxy mode: fail-closed (a call goes upstream only once its request is recorded) or fail-open (calls proceed; gaps are recorded later)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	debugListen := fs.String("debug-listen", "", "if set, serve Go pprof profiles on this address (keep it on loopback)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	slog.SetDefault(logger)
	klog.SetSlogLogger(logger)

	cfg := server.Config{
		DataDir: *dataDir, Origin: *origin, MaxBodyBytes: *maxBody, ReceiptWait: *receiptWait,
		CheckpointInterval: *cpInterval, BatchMaxAge: *batchAge,
		Upstreams: upstreams, CaptureMode: *captureMode,
		WitnessFailOpen: *failOpen, WitnessTimeout: *witnessTimeout, Logger: logger,
	}
	if *policyFile != "" {
		p, err := os.ReadFile(*policyFile)
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
	abs, _ := filepath.Abs(*dataDir)
	logger.Info("log ready", "origin", srv.Log().Origin(), "data", abs,
		"verifier_key", filepath.Join(abs, server.LogPubFile), "admin_token", filepath.Join(abs, server.AdminToken))

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		srv.Close(context.Background())
		return err
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if *debugListen != "" {
		go func() {
			// http.DefaultServeMux carries the net/http/pprof handlers.
			logger.Warn("pprof server stopped", "error", http.ListenAndServe(*debugListen, http.DefaultServeMux))
		}()
	}
	logger.Info("listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	herr := hs.Shutdown(sctx)
	cerr := srv.Close(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, herr, cerr)
}

func tokenCmd(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: log-server token create|revoke|list --data DIR ...")
	}
	sub := args[0]
	fs := flag.NewFlagSet("token "+sub, flag.ContinueOnError)
	dataDir := fs.String("data", "./data", "data directory")
	name := fs.String("name", "", "token name (create)")
	tenant := fs.String("tenant", server.DefaultTenant, "tenant the token acts for (create)")
	scopes := fs.String("scopes", "write", "comma-separated scopes: write, read, audit, admin (create)")
	id := fs.String("id", "", "token id (revoke)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(*dataDir, server.StateDB)); err != nil {
		return fmt.Errorf("no log in %s (start log-server --data %s once first): %w", *dataDir, *dataDir, err)
	}
	db, err := sqlitedb.Open(filepath.Join(*dataDir, server.StateDB), sqlitedb.Durable)
	if err != nil {
		return err
	}
	defer db.Close()
	store, err := auth.Open(db)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch sub {
	case "create":
		sc, err := auth.ParseScopes(*scopes)
		if err != nil {
			return err
		}
		if *name == "" {
			return errors.New("--name is required")
		}
		tok, p, err := store.Create(ctx, *name, *tenant, sc)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "created token id=%s name=%s tenant=%s scopes=%s (shown once; store it now)\n", p.ID, p.Name, p.Tenant, strings.Join(p.Scopes, ","))
		fmt.Println(tok)
	case "revoke":
		if *id == "" {
			return errors.New("--id is required")
		}
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
			fmt.Printf("%s\t%s\t%s\t%s\n", p.ID, p.Name, p.Tenant, strings.Join(p.Scopes, ","))
		}
	default:
		return fmt.Errorf("unknown token command %q (want create, revoke or list)", sub)
	}
	return nil
}

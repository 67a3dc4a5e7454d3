// Command witness is a C2SP tlog-witness server (package witness).
//
//	witness keygen --name NAME --data DIR
//
// writes DIR/witness.key (0600) and DIR/witness.pub, and prints the
// verifier key (cosignature/v1 form) that log operators put in their
// witness policy.
//
//	witness --data DIR --listen ADDR --config FILE
//
// serves POST /add-checkpoint and GET /<hex sha256(origin)>/checkpoint.
// FILE is YAML with the witness name and the logs it cosigns for:
//
//	name: witness.example.com/w1
//	logs:
//	  - origin: audit.example.com/log
//	    key: audit.example.com/log+1a2b3c4d+AW...
//
// The key is generated on first start if DIR has none. State is kept in
// DIR/witness.db. SIGINT or SIGTERM shut the server down gracefully.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/cli"
	"github.com/llmaudittrail/llmaudittrail/internal/connlimit"
	"github.com/llmaudittrail/llmaudittrail/internal/hsm"
	"github.com/llmaudittrail/llmaudittrail/witness"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "keygen" {
		os.Exit(keygen(os.Args[2:]))
	}
	os.Exit(serve(os.Args[1:]))
}

func keygen(args []string) int {
	fs := cli.NewFlagSet("witness keygen", "witness keygen --name NAME --data DIR [--signing-key pkcs11:URI]")
	name := fs.String("name", "", "URL-like name of the witness (e.g. witness.example.com/w1)")
	data := fs.String("data", "", "data directory to write witness.key and witness.pub into")
	signingKey := fs.String("signing-key", "", "create the key in a PKCS#11 token instead (RFC 7512 pkcs11: URI); only witness.pub is written")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if *name == "" || *data == "" || fs.NArg() != 0 {
		return cli.Fail(fs, "--name and --data are required")
	}
	if *signingKey != "" {
		k, err := hsm.Generate(*signingKey)
		if err != nil {
			fmt.Fprintf(os.Stderr, "witness keygen: %v\n", err)
			return 1
		}
		defer k.Close()
		key, err := witness.HSMKey(*data, *name, k)
		if err != nil {
			fmt.Fprintf(os.Stderr, "witness keygen: %v\n", err)
			return 1
		}
		fmt.Println(key.VerifierKey)
		return 0
	}
	vkey, err := witness.GenerateKey(*data, *name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "witness keygen: %v\n", err)
		return 1
	}
	fmt.Println(vkey)
	return 0
}

func serve(args []string) int {
	fs := cli.NewFlagSet("witness", `witness --data DIR --config FILE [--listen ADDR] [--signing-key pkcs11:URI]
witness keygen --name NAME --data DIR [--signing-key pkcs11:URI]`)
	data := fs.String("data", "", "data directory (key and database)")
	listen := fs.String("listen", "127.0.0.1:7380", "address to listen on for HTTP")
	configPath := fs.String("config", "", "YAML configuration file (name, logs)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	signingKey := fs.String("signing-key", "", "cosign with a key in a PKCS#11 token (RFC 7512 pkcs11: URI) instead of DATA/witness.key")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this certificate chain (PEM; reloaded on SIGHUP or change)")
	tlsKey := fs.String("tls-key", "", "the certificate's private key (PEM, mode 0600)")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if *data == "" || *configPath == "" || fs.NArg() != 0 {
		return cli.Fail(fs, "--data and --config are required")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return cli.Fail(fs, "--log-level: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var tlsFiles *cli.TLSFiles
	if *tlsCert != "" || *tlsKey != "" {
		var err error
		if tlsFiles, err = cli.LoadTLS(*tlsCert, *tlsKey, logger); err != nil {
			return cli.Fail(fs, "%v", err)
		}
	}
	if err := run(*data, *listen, *configPath, *signingKey, tlsFiles, logger); err != nil {
		logger.Error("witness failed", "error", err)
		return 1
	}
	return 0
}

func run(dataDir, addr, configPath, signingKey string, tlsFiles *cli.TLSFiles, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b, err := os.ReadFile(configPath)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	cfg, err := witness.ParseConfig(b)
	if err != nil {
		return err
	}
	var key *witness.Key
	if signingKey != "" {
		k, err := hsm.Open(signingKey)
		if err != nil {
			return fmt.Errorf("--signing-key: %w", err)
		}
		defer k.Close()
		if key, err = witness.HSMKey(dataDir, cfg.Name, k); err != nil {
			return err
		}
	}
	w, err := witness.OpenWithKey(ctx, dataDir, cfg, key, logger)
	if err != nil {
		return err
	}
	defer w.Close()
	logger.Info("witness ready", "name", cfg.Name, "vkey", w.VerifierKey(), "logs", len(cfg.Logs))

	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	l := connlimit.New(raw, connlimit.Limits{PerClient: connlimit.DefaultPerClient, Logger: logger, Name: "witness"})
	srv := &http.Server{
		Handler:           http.MaxBytesHandler(w.Handler(), witness.MaxRequestBytes),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	l.Track(srv)
	errc := make(chan error, 1)
	if tlsFiles != nil {
		srv.TLSConfig = tlsFiles.Config()
		go tlsFiles.Watch(ctx, 2*time.Second)
		go func() { errc <- srv.ServeTLS(l, "", "") }()
	} else {
		go func() { errc <- srv.Serve(l) }()
	}
	logger.Info("listening", "addr", l.Addr().String(), "tls", tlsFiles != nil)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal kills the process
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

// Command loadgen is the load tool of the log server: many clients, one or
// several server URLs (instances of one log), closed loop or a target rate,
// sessions shared between clients and instances; a progress line while it
// runs; throughput and latency percentiles at the end; and, with --verify,
// a verification of every acknowledged event (inclusion under a verified
// checkpoint, and each session's hash chain). As a baseline, --bare
// measures the bare Tessera POSIX appender with the same entry size.
//
//	loadgen --url http://127.0.0.1:8080 --token-file data/keys/admin.token -c 64 -d 30s --verify --log-key data/keys/log.pub
//	loadgen --url http://a:8080 --url http://b:8080 --token-file admin.token -c 64 -d 1m --rate 500 --sessions 16 --verify --log-key log.pub
//	loadgen --bare -c 64 --events 100000
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/llmaudittrail/llmaudittrail/internal/cli"
)

// urlFlags collects --url.
type urlFlags []string

func (u *urlFlags) String() string     { return strings.Join(*u, ",") }
func (u *urlFlags) Set(v string) error { *u = append(*u, v); return nil }

// pidFlags collects --pid.
type pidFlags []int

func (p *pidFlags) String() string { return fmt.Sprint(*p) }
func (p *pidFlags) Set(v string) error {
	var n int
	if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n <= 0 {
		return fmt.Errorf("%q is not a process id", v)
	}
	*p = append(*p, n)
	return nil
}

func main() {
	fs := cli.NewFlagSet("loadgen", `loadgen --url URL [--url URL2 ...] --token-file FILE -c N -d DURATION [--rate R] [--verify --log-key FILE] [flags]
loadgen --bare [-c N] [--events N]`)
	var cfg config
	fs.Var(&cfg.urls, "url", "log server `URL` (repeatable: clients are spread over the URLs, instances of one log)")
	fs.StringVar(&cfg.tokenFile, "token-file", "data/keys/admin.token", "file holding a write token (with --verify, a log-wide read token: a global one)")
	fs.IntVar(&cfg.clients, "c", 64, "concurrent clients")
	fs.DurationVar(&cfg.duration, "d", 30*time.Second, "how long to write")
	fs.IntVar(&cfg.events, "events", 0, "stop after this many events (0: run for -d)")
	fs.Float64Var(&cfg.rate, "rate", 0, "target events per second in all (open loop, latency measured from each event's scheduled time); 0: closed loop, each client writes as fast as it is answered")
	fs.IntVar(&cfg.sessions, "sessions", 0, "sessions shared by all clients, each written by several clients through several URLs (0: one session per client)")
	fs.IntVar(&cfg.payload, "payload", 1024, "payload bytes per event")
	fs.BoolVar(&cfg.verify, "verify", false, "at the end, verify every acknowledged event: included under a checkpoint signed by --log-key (and meeting --witness-policy), each session one hash chain")
	fs.StringVar(&cfg.logKey, "log-key", "", "with --verify: file with the log's note verifier key")
	fs.StringVar(&cfg.policyFile, "witness-policy", "", "with --verify: witness policy the checkpoint must meet")
	fs.StringVar(&cfg.wait, "wait", "index", "what a write waits for: durable (acknowledged once durable; indices are asked for afterwards) or index")
	fs.IntVar(&cfg.cpSample, "checkpoint-sample", 200, "measure time-to-checkpoint for every Nth event (0: off)")
	var pids pidFlags
	fs.Var(&pids, "pid", "server `PID`: report its RSS at the end (repeatable)")
	fs.DurationVar(&cfg.progress, "progress", 5*time.Second, "progress line interval (stderr)")
	fs.StringVar(&cfg.caFile, "ca-file", "", "PEM file of certificate authorities to trust for an https --url, besides the system's")
	fs.BoolVar(&cfg.tesseraAdd, "tessera-add", false, "a baseline: --url is Tessera's own conformance server (cmd/conformance/posix or aws; go -C tools/tessera tool -n posix), written with POST /add of --payload bytes")
	bare := fs.Bool("bare", false, "measure the bare Tessera POSIX appender instead of a server")
	batchAge := fs.Duration("batch-max-age", 10*time.Millisecond, "bare mode: batch max age (match the server)")
	if code, ok := cli.Parse(fs, os.Args[1:]); !ok {
		os.Exit(code)
	}
	if fs.NArg() > 0 {
		os.Exit(cli.Fail(fs, "unexpected argument %q", fs.Arg(0)))
	}
	cfg.pids = pids
	klog.SetSlogLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	switch {
	case cfg.clients < 1:
		os.Exit(cli.Fail(fs, "-c must be at least 1"))
	case cfg.duration <= 0:
		os.Exit(cli.Fail(fs, "-d must be positive"))
	case cfg.rate < 0 || cfg.sessions < 0 || cfg.events < 0 || cfg.payload < 0:
		os.Exit(cli.Fail(fs, "--rate, --sessions, --events and --payload cannot be negative"))
	case *bare && (len(cfg.urls) > 0 || cfg.verify):
		os.Exit(cli.Fail(fs, "--bare measures Tessera alone: no --url, no --verify"))
	case cfg.wait != "index" && cfg.wait != "durable":
		os.Exit(cli.Fail(fs, "--wait must be durable or index"))
	case cfg.tesseraAdd && cfg.verify:
		os.Exit(cli.Fail(fs, "--tessera-add writes raw entries: no --verify"))
	case !*bare && cfg.verify && cfg.logKey == "":
		os.Exit(cli.Fail(fs, "--verify needs --log-key"))
	}
	var err error
	if *bare {
		events := cfg.events
		if events == 0 {
			events = 1 << 62
		}
		err = runBare(cfg.clients, events, cfg.payload, cfg.duration, *batchAge, cfg.progress)
	} else {
		if len(cfg.urls) == 0 {
			cfg.urls = urlFlags{"http://127.0.0.1:8080"}
		}
		var failed bool
		failed, err = run(cfg, os.Stdout)
		if err == nil && failed {
			os.Exit(1)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

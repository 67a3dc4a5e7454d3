// Command replay rebuilds a session from the log with every event
// verified, shows it as a decision timeline, steps through it, and serves
// its recorded responses to an agent that re-runs against it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	// The capture registers the LLM providers (llmapi) that replay reads
	// the recorded calls with.
	_ "github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
	"github.com/llmaudittrail/llmaudittrail/llmapi"
	"github.com/llmaudittrail/llmaudittrail/replay"
)

const usage = `replay show SESSION --url URL --log-key FILE --token-file FILE [--witness-policy FILE] [--json|--html]
replay step SESSION --url URL --log-key FILE --token-file FILE [--witness-policy FILE]
replay serve SESSION --listen ADDR --url URL --log-key FILE --token-file FILE [--timing instant|recorded|scaled:F] [--all-differences] [--verdict FILE]`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(stdout, "usage:\n%s\n\nEach command's flags: replay COMMAND --help. See docs/replay.md.\n", usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "show":
		return show(args[1:], stdout, stderr)
	case "step":
		return step(args[1:], stdout, stderr)
	case "serve":
		return serve(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "replay: unknown command %q\nusage:\n%s\n", args[0], usage)
	return 2
}

// common are the flags every command has: where the log is and what its
// reads are verified against.
type common struct {
	url, logKey, tokenFile, policy, tenant, level, caFile *string
	noPayloads                                            *bool
}

func commonFlags(fs *flag.FlagSet) *common {
	return &common{
		url:        fs.String("url", "", "the log's base URL (required)"),
		caFile:     fs.String("ca-file", "", "PEM file of certificate authorities to trust for an https --url, besides the system's"),
		logKey:     fs.String("log-key", "", "file with the log's note verifier key (required unless --witness-policy names one log, as DATA/keys/policy does)"),
		tokenFile:  fs.String("token-file", "", "file (0600) with a global token of read scope (the log's tiles), and audit scope for payloads"),
		policy:     fs.String("witness-policy", "", "witness policy file: the checkpoint must meet it"),
		tenant:     fs.String("tenant", "", "the session's tenant (a global token; default: the token's)"),
		level:      fs.String("log-level", "warn", "debug, info, warn or error"),
		noPayloads: fs.Bool("no-payloads", false, "do not disclose payloads (no access.read event; payloads are not verified)"),
	}
}

// parse parses SESSION and the flags in either order.
func parse(fs *flag.FlagSet, args []string) (session string, code int, ok bool) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		session, args = args[0], args[1:]
	}
	if code, ok := cli.Parse(fs, args); !ok {
		return "", code, false
	}
	if session == "" && fs.NArg() > 0 {
		session = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return "", cli.Fail(fs, "unexpected arguments: %v", fs.Args()), false
	}
	if session == "" {
		return "", cli.Fail(fs, "no SESSION given"), false
	}
	return session, 0, true
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "replay: "+format+"\n", args...)
	return 2
}

const maxFileBytes = 1 << 20

func (c *common) source() (replay.Source, error) {
	var src replay.Source
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*c.level)); err != nil {
		return src, fmt.Errorf("--log-level: %w", err)
	}
	src.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	if *c.url == "" {
		return src, errors.New("--url is required")
	}
	var err error
	if src.Key, src.Policy, err = cli.ReadTrust(*c.logKey, *c.policy); err != nil {
		return src, err
	}
	if src.Log, err = logClient(*c.url, *c.tokenFile, *c.caFile); err != nil {
		return src, err
	}
	return src, nil
}

// providerNames are the names of the providers that have a default
// upstream, for the help text.
func providerNames() string {
	var names []string
	for _, p := range llmapi.Providers() {
		if p.Upstream != "" {
			names = append(names, p.Name)
		}
	}
	return strings.Join(names, ", ")
}

func logClient(url, tokenFile, caFile string) (*client.Client, error) {
	return cli.LogClient(url, tokenFile, caFile)
}

// rebuild rebuilds the session, with payloads unless told not to; a
// token without the audit scope falls back to no payloads, and says so.
func (c *common) rebuild(ctx context.Context, session string, stderr io.Writer, needPayloads bool) (*replay.Session, error) {
	src, err := c.source()
	if err != nil {
		return nil, err
	}
	q := replay.Query{Tenant: *c.tenant, Session: session, Payloads: !*c.noPayloads || needPayloads}
	start := time.Now()
	s, err := replay.Rebuild(ctx, src, q)
	if q.Payloads && !needPayloads && errors.Is(err, client.ErrForbidden) {
		fmt.Fprintln(stderr, "replay: the token has no audit scope: payloads are not disclosed, nor verified")
		q.Payloads = false
		s, err = replay.Rebuild(ctx, src, q)
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "rebuilt %d events of session %s in %s\n", len(s.Events), session, time.Since(start).Round(time.Millisecond))
	return s, nil
}

func show(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("replay show", "replay show SESSION --url URL --log-key FILE --token-file FILE [--witness-policy FILE] [--json|--html]")
	c := commonFlags(fs)
	asJSON := fs.Bool("json", false, "write the timeline as JSON")
	asHTML := fs.Bool("html", false, "write the timeline as an HTML page")
	session, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if *asJSON && *asHTML {
		return cli.Fail(fs, "--json and --html exclude each other")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := c.rebuild(ctx, session, stderr, false)
	if err != nil {
		return fail("%v", err)
	}
	tl := replay.NewTimeline(s)
	switch {
	case *asJSON:
		err = tl.WriteJSON(stdout)
	case *asHTML:
		err = tl.WriteHTML(stdout)
	default:
		err = tl.WriteText(stdout)
	}
	if err != nil {
		return fail("writing: %v", err)
	}
	if !s.Verified() {
		return 1
	}
	return 0
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("replay serve", "replay serve SESSION --listen ADDR --url URL --log-key FILE --token-file FILE [flags]")
	c := commonFlags(fs)
	listen := fs.String("listen", "127.0.0.1:8090", "address to serve the agent on: http://ADDR/proxy/UPSTREAM/..., UPSTREAM the upstream the session's calls were recorded through ("+providerNames()+", ...)")
	timing := fs.String("timing", "instant", "instant, recorded (as the capture timed it) or scaled:F (recorded times F)")
	all := fs.Bool("all-differences", false, "list every difference and keep answering from the record (default: the first decision-relevant difference ends the run)")
	volatile := fs.String("volatile", "", "comma-separated JSON paths of request fields not compared (metadata.trace_id,messages[*].name)")
	verdictFile := fs.String("verdict", "", "write the verdict (JSON) to this file")
	appendToken := fs.String("append-token", "", "file (0600) with a token of write and audit scope: append the verdict to the log as a replay.verdict event")
	verdictProof := fs.String("verdict-proof", "", "with --append-token: wait until a checkpoint covers the replay.verdict event and write its tlog-proof (c2sp.org/tlog-proof@v1) to this file")
	linger := fs.Duration("linger", 2*time.Second, "after the run has ended, answer (and flag) extra requests this long before the verdict")
	session, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	tm, err := replay.ParseTiming(*timing)
	if err != nil {
		return cli.Fail(fs, "--timing: %v", err)
	}
	var vols []string
	for _, v := range strings.Split(*volatile, ",") {
		if v = strings.TrimSpace(v); v != "" {
			vols = append(vols, v)
		}
	}
	if *verdictProof != "" && *appendToken == "" {
		return cli.Fail(fs, "--verdict-proof needs --append-token")
	}
	var appender *client.Client
	if *appendToken != "" {
		if appender, err = logClient(*c.url, *appendToken, *c.caFile); err != nil {
			return fail("--append-token: %v", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := c.rebuild(ctx, session, stderr, true)
	if err != nil {
		return fail("%v", err)
	}
	if !s.Verified() {
		for _, p := range s.Problems {
			fmt.Fprintf(stderr, "  %s\n", p)
		}
		return fail("session %s did not verify: it is not replayed", session)
	}
	r, err := replay.NewReplayer(s, replay.Options{Timing: tm, Volatile: vols, AllDifferences: *all})
	if err != nil {
		return fail("%v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fail("--listen: %v", err)
	}
	hs := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	fmt.Fprintf(stderr, "replaying %d recorded attempts of session %s on http://%s/proxy/UPSTREAM/..., UPSTREAM %s\n",
		r.Verdict().Recorded, session, ln.Addr(), strings.Join(r.Upstreams(), " or "))
	select {
	case <-r.Done():
		select {
		case <-time.After(*linger):
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	v := r.Verdict()
	out, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintf(stdout, "%s\n", out)
	if *verdictFile != "" {
		if err := os.WriteFile(*verdictFile, append(out, '\n'), 0o644); err != nil {
			return fail("--verdict: %v", err)
		}
	}
	if appender != nil {
		actx, acancel := sctx, context.CancelFunc(func() {})
		var opts []client.AppendOption
		if *verdictProof != "" {
			// The receipt waits for a (witnessed) checkpoint.
			actx, acancel = context.WithTimeout(context.Background(), 2*time.Minute)
			opts = append(opts, client.WaitForCheckpoint())
		}
		w, err := replay.AppendVerdict(actx, appender, v, opts...)
		acancel()
		if err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(stderr, "verdict appended to the log at entry %d\n", w.Index)
		if *verdictProof != "" {
			if w.Receipt == nil || w.Receipt.TlogProof == "" {
				return fail("--verdict-proof: the log answered no receipt for the verdict event at entry %d (%s)", w.Index, w.ReceiptError)
			}
			if err := os.WriteFile(*verdictProof, []byte(w.Receipt.TlogProof), 0o644); err != nil {
				return fail("--verdict-proof: %v", err)
			}
			fmt.Fprintf(stderr, "its tlog-proof is in %s\n", *verdictProof)
		}
	}
	switch v.Verdict {
	case replay.Reproduced:
		return 0
	case replay.Diverged:
		return 1
	}
	return 3
}

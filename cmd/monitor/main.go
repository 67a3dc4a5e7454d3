// Command monitor follows an LLMAuditTrail log, verifies it as it grows and
// runs anomaly rules over every new entry; it also audits a whole log once
// and verifies receipts.
//
//	monitor --url URL --log-key FILE [--witness-policy FILE] --rules FILE --state DIR [--webhook URL] [--append-token FILE] [--otlp-export URL]
//	monitor verify --url URL --log-key FILE [--witness-policy FILE] [--token-file FILE [--tenant-key FILE [--tenant NAME]]] [--tsa-chain FILE]... [--json]
//	monitor verify-receipt --log-key FILE [--witness-policy FILE] [--tsa-chain FILE]... RECEIPT.json|PROOF.tlog-proof...
//	monitor verify-disclosure --log-key FILE [--witness-policy FILE] DISCLOSURE.json...
//	monitor verify-signature --log-key FILE [--witness-policy FILE] [--url URL --token-file FILE] SIGNATURE.json...
//	monitor verify-signature --log-key FILE [--witness-policy FILE] --enrollment FILE [--record FILE] SIGNATURE.tlog-proof...
//	monitor report --url URL --log-key FILE --token-file FILE --profile P --from T --to T [--format F[,F...]] [--at SIZE|FILE] [--out FILE|DIR]
//	monitor verify-report --url URL --log-key FILE --token-file FILE [--anchor FILE] REPORT.json...
//
// Alerts are JSON lines on stdout; logs go to stderr. verify exits 0 only if
// everything verified (1: findings, 2: the audit could not run); so do
// verify-receipt, verify-disclosure, verify-signature and verify-report (1: one did not verify
// or recompute equal, an edited server answer among them; 2: the check could
// not run); report exits 1 when a control is not satisfied.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"
	"k8s.io/klog/v2"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
	"github.com/llmaudittrail/llmaudittrail/internal/keyfile"
	"github.com/llmaudittrail/llmaudittrail/monitor"
	"github.com/llmaudittrail/llmaudittrail/otlp"
	"github.com/llmaudittrail/llmaudittrail/signature"
	"github.com/llmaudittrail/llmaudittrail/timestamp"
	"github.com/llmaudittrail/llmaudittrail/verify"
)

func main() {
	args := os.Args[1:]
	var code int
	switch {
	case len(args) > 0 && args[0] == "verify":
		code = verifyLog(args[1:], os.Stdout, os.Stderr)
	case len(args) > 0 && args[0] == "verify-receipt":
		code = verifyReceipt(args[1:], os.Stdout, os.Stderr)
	case len(args) > 0 && args[0] == "verify-disclosure":
		code = verifyDisclosure(args[1:], os.Stdout)
	case len(args) > 0 && args[0] == "verify-signature":
		code = verifySignature(args[1:], os.Stdout)
	case len(args) > 0 && args[0] == "report":
		code = report(args[1:], os.Stdout, os.Stderr)
	case len(args) > 0 && args[0] == "verify-report":
		code = verifyReport(args[1:], os.Stdout, os.Stderr)
	case len(args) > 0 && args[0] == "follow":
		code = follow(args[1:])
	default:
		code = follow(args)
	}
	os.Exit(code)
}

func newLogger(level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	// The process-wide loggers (slog's default, and klog's, which Tessera's
	// client writes to) are set by the first command that runs: a process
	// runs one; the tests, which run many in one process beside servers that
	// log, set them once before they start.
	globalLoggers.Do(func() {
		slog.SetDefault(logger)
		klog.SetSlogLogger(logger)
	})
	return logger, nil
}

var globalLoggers sync.Once

// logFlags are the flags of every command that reads a log: where it is
// and what its reads are verified against.
type logFlags struct{ url, caFile, logKey, policyFile, tokenFile *string }

func addLogFlags(fs *flag.FlagSet, policyHelp, tokenHelp string) *logFlags {
	return &logFlags{
		url:        fs.String("url", "", "the log's base URL (required)"),
		caFile:     fs.String("ca-file", "", "PEM file of certificate authorities to trust for an https --url, besides the system's"),
		logKey:     fs.String("log-key", "", "file with the log's note verifier key (required unless --witness-policy names one log, as DATA/keys/policy does)"),
		policyFile: fs.String("witness-policy", "", policyHelp),
		tokenFile:  fs.String("token-file", "", tokenHelp),
	}
}

// open reads the verifier key and the policy, and makes the log client.
func (f *logFlags) open() (note.Verifier, *checkpoint.Policy, *client.Client, error) {
	key, policy, err := cli.ReadTrust(*f.logKey, *f.policyFile)
	if err != nil {
		return nil, nil, nil, err
	}
	lc, err := logClient(*f.url, *f.tokenFile, *f.caFile)
	if err != nil {
		return nil, nil, nil, err
	}
	return key, policy, lc, nil
}

// logClient is a client of the log at url with the token in tokenFile
// (none if empty), which must be mode 0600.
func logClient(url, tokenFile, caFile string) (*client.Client, error) {
	return cli.LogClient(url, tokenFile, caFile)
}

// maxConfigBytes caps a key, policy or rule file.
const maxConfigBytes = 1 << 20

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "monitor: "+format+"\n", args...)
	return 2
}

func follow(args []string) int {
	fs := cli.NewFlagSet("monitor", `monitor [follow] --url URL --log-key FILE --token-file FILE --rules FILE --state DIR [flags]
monitor verify --url URL --log-key FILE [flags]
monitor verify-receipt --log-key FILE [--witness-policy FILE] RECEIPT.json...
monitor verify-disclosure --log-key FILE [--witness-policy FILE] DISCLOSURE.json...
monitor verify-signature --log-key FILE [--witness-policy FILE] [--url URL --token-file FILE] SIGNATURE.json...
monitor report --url URL --log-key FILE --token-file FILE --profile P --from T --to T [--format json|oscal|html|pdf[,...]] [--at SIZE|FILE] [--out FILE|DIR]
monitor verify-report --url URL --log-key FILE --token-file FILE REPORT.json...`)
	lf := addLogFlags(fs, "witness policy file (C2SP tlog-policy such as DATA/keys/policy, or witness/group/quorum lines)",
		"file (0600) with a global read token: a private log serves its entries only with one")
	url, caFile := lf.url, lf.caFile
	rulesFile := fs.String("rules", "", "rule file (YAML with CEL expressions; required)")
	stateDir := fs.String("state", "", "state directory (required)")
	webhook := fs.String("webhook", "", "POST every alert as JSON to this URL")
	appendToken := fs.String("append-token", "", "file (0600) with a token of monitor scope: append every alert to the log as a monitor.alert event, and a monitor.status event every --status-interval")
	otlpExport := fs.String("otlp-export", "", "OTLP/HTTP logs endpoint (http://collector:4318/v1/logs): every verified entry as a log record, with its index, leaf hash and checkpoint, at least once (docs/otel.md)")
	otlpHeaders := fs.String("otlp-headers-file", "", "file (0600) with the --otlp-export headers, in OTEL_EXPORTER_OTLP_HEADERS syntax (Authorization=Bearer%20TOKEN)")
	statusInterval := fs.Duration("status-interval", monitor.DefaultStatusInterval, "with --append-token, how often to append a monitor.status event (what was verified, alerts since the last)")
	start := fs.String("start", "end", `where a new monitor starts: "end" (the log's size) or an entry index`)
	instance := fs.String("instance", monitor.DefaultInstance, "name of this monitor in appended alerts (session monitor.NAME)")
	poll := fs.Duration("poll", monitor.DefaultPoll, "how often to read the checkpoint")
	unreachable := fs.Duration("unreachable-after", monitor.DefaultUnreachableAfter, "health alert when the log (or an alert sink) fails for this long")
	quorumAfter := fs.Duration("quorum-after", monitor.DefaultQuorumAfter, "health alert when checkpoints lack the witness quorum for this long")
	maxAge := fs.Duration("max-checkpoint-age", 0, "health alert when the checkpoint (and its newest cosignature) is older than this (0: off)")
	witnessLag := fs.Duration("witness-lag", monitor.DefaultWitnessLag, "how long a witness may be ahead of the log before that is a split view")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.Fail(fs, "unexpected argument %q", fs.Arg(0))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger, err := newLogger(*level)
	if err != nil {
		return fail("%v", err)
	}
	if *url == "" || *rulesFile == "" || *stateDir == "" {
		return fail("--url, --log-key, --rules and --state are required")
	}
	key, policy, lc, err := lf.open()
	if err != nil {
		return fail("%v", err)
	}
	text, err := cli.ReadFile(*rulesFile, maxConfigBytes)
	if err != nil {
		return fail("--rules: %v", err)
	}
	rules, err := monitor.ParseRules(*rulesFile, text)
	if err != nil {
		return fail("%v", err)
	}
	hc, err := cli.HTTPClient(*caFile, 30*time.Second) // witnesses and the webhook
	if err != nil {
		return fail("%v", err)
	}
	cfg := monitor.Config{
		HTTPClient: hc,
		Log:        lc, LogKey: key, Policy: policy, Rules: rules, StateDir: *stateDir, Webhook: *webhook,
		Instance: *instance, StatusInterval: *statusInterval, Poll: *poll, UnreachableAfter: *unreachable, QuorumAfter: *quorumAfter,
		MaxCheckpointAge: *maxAge, WitnessLag: *witnessLag, Logger: logger, Start: monitor.StartAtEnd,
	}
	if *start != "end" {
		n, err := strconv.ParseInt(*start, 10, 64)
		if err != nil || n < 0 {
			return fail(`--start must be "end" or an entry index`)
		}
		cfg.Start = n
	}
	if *appendToken != "" {
		b, err := keyfile.Read(*appendToken)
		if err != nil {
			return fail("--append-token: %v", err)
		}
		pool, err := cli.CAPool(*caFile)
		if err != nil {
			return fail("%v", err)
		}
		if cfg.AppendTo, err = client.New(*url, client.WithToken(string(b)), client.WithRootCAs(pool)); err != nil {
			return fail("--url: %v", err)
		}
	}
	if *otlpExport != "" {
		var headers map[string]string
		if *otlpHeaders != "" {
			b, err := keyfile.Read(*otlpHeaders)
			if err != nil {
				return fail("--otlp-headers-file: %v", err)
			}
			if headers, err = otlp.ParseHeaders(string(b)); err != nil {
				return fail("--otlp-headers-file: %v", err)
			}
		}
		x := otlp.NewExporter(*otlpExport, headers, hc)
		cfg.Export = func(ctx context.Context, cp monitor.ExportCheckpoint, es []monitor.ExportEntry) error {
			out := make([]otlp.Entry, len(es))
			for i, e := range es {
				out[i] = otlp.Entry(e)
			}
			return x.Export(ctx, otlp.Checkpoint(cp), out)
		}
	} else if *otlpHeaders != "" {
		return fail("--otlp-headers-file needs --otlp-export")
	}
	m, err := monitor.New(cfg)
	if err != nil {
		return fail("%v", err)
	}
	defer m.Close()
	logger.Info("monitor running", "url", *url, "origin", key.Name(), "rules", len(rules.Names()), "state", *stateDir)
	if err := m.Run(ctx); err != nil {
		logger.Error("monitor stopped", "error", err)
		return 1
	}
	pos, size := m.Position()
	logger.Info("monitor stopped", "position", pos, "verified_size", size)
	return 0
}

// progress draws a progress bar on a terminal, or a line per 10% elsewhere.
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	last  int
}

func (p *progress) update(done, total uint64) {
	pct := 100
	if total > 0 {
		pct = int(done * 100 / total)
	}
	rate := float64(done) / max(time.Since(p.start).Seconds(), 1e-9)
	if p.tty {
		bar := strings.Repeat("#", pct/4) + strings.Repeat("-", 25-pct/4)
		fmt.Fprintf(p.w, "\r[%s] %3d%% %d/%d entries %.0f/s ", bar, pct, done, total, rate)
		return
	}
	if pct/10 > p.last/10 || done == total {
		fmt.Fprintf(p.w, "verified %d/%d entries (%d%%, %.0f/s)\n", done, total, pct, rate)
		p.last = pct
	}
}

// chainFiles collects a repeatable file flag.
type chainFiles []string

func (c *chainFiles) String() string     { return strings.Join(*c, ",") }
func (c *chainFiles) Set(v string) error { *c = append(*c, v); return nil }

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// verifyLog is monitor verify: verify.Audit, summarised or as JSON.
func verifyLog(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("monitor verify", "monitor verify --url URL --log-key FILE [--token-file FILE [--tenant-key FILE [--tenant NAME]]] [--witness-policy FILE] [--tsa-chain FILE]... [--json]")
	lf := addLogFlags(fs, "witness policy file",
		"file (0600) with a global read token (a private log serves its entries only with one), or, with --tenant-key, a read token of that tenant")
	url, caFile := lf.url, lf.caFile
	var tsaChains chainFiles
	fs.Var(&tsaChains, "tsa-chain", "PEM certificate chain of a timestamp authority the log uses, ending with its root (repeatable): every timestamp.issued token must chain to one of these roots, stamp its checkpoint, and no TSA's times may go backwards as the tree grows; without it tokens are counted, not checked")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a summary")
	tenantKeyFile := fs.String("tenant-key", "", "file with the tenant's keys of a log of leaf version 3 or 4, "+tenantKeyHelp+": verify that the token's tenant holds the body of every entry carrying its tag or the log-wide tag, and that no body of its tenant (or log-wide record) is under another tag")
	tenant := fs.String("tenant", "", "with --tenant-key, the tenant's name: a body of another tenant under its tag is a finding")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	logger, err := newLogger(*level)
	if err != nil {
		return fail("%v", err)
	}
	if *url == "" {
		return fail("--url is required")
	}
	key, policy, lc, err := lf.open()
	if err != nil {
		return fail("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &progress{w: stderr, tty: isTerminal(os.Stderr), start: time.Now(), last: -1}
	hc, err := cli.HTTPClient(*caFile, 30*time.Second) // witnesses
	if err != nil {
		return fail("%v", err)
	}
	tv, err := tsaVerifier(tsaChains)
	if err != nil {
		return fail("--tsa-chain: %v", err)
	}
	vc := verify.Config{Log: lc, LogKey: key, Policy: policy, Progress: p.update, Logger: logger, HTTPClient: hc, Timestamps: tv}
	if *tenantKeyFile != "" {
		k, lk, err := tenantKeys(*tenantKeyFile)
		if err != nil {
			return fail("--tenant-key: %v", err)
		}
		vc.TenantKey, vc.LogWideKey, vc.Tenant = k, lk, *tenant
	} else if *tenant != "" {
		return fail("--tenant needs --tenant-key")
	}
	rep, err := verify.Audit(ctx, vc)
	if p.tty {
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return fail("audit failed: %v", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		for _, f := range rep.Findings {
			where := ""
			if f.Index != nil {
				where = fmt.Sprintf(" [entry %d]", *f.Index)
			}
			fmt.Fprintf(stdout, "FAIL %s%s: %s\n", event.SafeText(f.Rule), where, event.SafeText(f.Message))
		}
		status := "OK: everything verified"
		if !rep.OK() {
			status = fmt.Sprintf("FAILED: %d finding(s)", len(rep.Findings))
		}
		secs := rep.Duration.Seconds()
		if vc.TenantKey != nil {
			also := ""
			if vc.LogWideKey != nil {
				also = " or the log-wide tag"
			}
			fmt.Fprintf(stdout, "tenant      %s: %d entries carry its tag%s, each body checked against its envelope\n", event.SafeText(rep.Tenant), rep.TenantEntries, also)
		}
		fmt.Fprintf(stdout, "log         %s\ncheckpoint  size %d, root %s\nentries     %d re-hashed in %.2fs (%.0f/s), %d bundles, %d tiles compared\nsessions    %d (seq and prev chains checked)\nsignatures  %d checked against the keys enrolled in the log\nwitnesses   %d compared\ntimestamps  %d, %d tokens verified with the --tsa-chain roots\n%s\n",
			rep.Origin, rep.Size, rep.Root, rep.Entries, secs, float64(rep.Entries)/max(secs, 1e-9), rep.Bundles, rep.Tiles, rep.Sessions, rep.Signatures, rep.Witnesses, rep.Timestamps, rep.TimestampsVerified, status)
	}
	if !rep.OK() {
		return 1
	}
	return 0
}

func verifyReceipt(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("monitor verify-receipt", "monitor verify-receipt --log-key FILE [--witness-policy FILE] [--tsa-chain FILE]... RECEIPT.json|PROOF.tlog-proof...\n"+
		"A receipt is the JSON of a write with ?wait=checkpoint (or its \"receipt\") or of GET /v1/entries/{index}; a\n"+
		"tlog-proof (c2sp.org/tlog-proof@v1) is the answer of GET /v1/entries/{index}/proof or a receipt's tlog_proof.")
	logKey := fs.String("log-key", "", "file with the log's note verifier key (required unless --witness-policy names one log, as DATA/keys/policy does)")
	policyFile := fs.String("witness-policy", "", "witness policy file")
	var tsaChains chainFiles
	fs.Var(&tsaChains, "tsa-chain", "PEM certificate chain of a timestamp authority, ending with its root (repeatable): the RFC 3161 tokens a receipt carries must verify with one of these roots, stamp their checkpoint, which must hold the entry; without it a receipt's tokens are not checked")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	tv, err := tsaVerifier(tsaChains)
	if err != nil {
		return fail("--tsa-chain: %v", err)
	}
	if fs.NArg() == 0 {
		return cli.Fail(fs, "no receipt or tlog-proof given")
	}
	key, policy, err := cli.ReadTrust(*logKey, *policyFile)
	if err != nil {
		return fail("%v", err)
	}
	v := api.NewReceiptVerifier(key, policy)
	code := 0
	for _, path := range fs.Args() {
		data, err := cli.ReadFile(path, api.MaxReceiptBytes)
		var vr *api.VerifiedReceipt
		var vts []api.VerifiedTimestamp
		if err == nil {
			var r *api.Receipt
			if r, err = api.ParseReceipt(data); err == nil {
				vr, err = v.Verify(r)
			}
			if err == nil && tv != nil {
				vts, err = v.VerifyTimestamps(r, tv)
			}
		}
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %s: %v\n", path, err)
			code = 1
			continue
		}
		desc := "leaf is not an audit event"
		if vr.Leaf == nil && vr.Envelope != nil {
			v := event.LeafVersionEnvelope
			if e, err := event.ParseEnvelope(vr.Envelope); err == nil {
				v = e.Version()
			}
			desc = fmt.Sprintf("an envelope of leaf version %d committing to body %x (the body is not in the proof)", v, vr.LeafHash)
		} else if e, err := vr.Event(); err == nil {
			desc = fmt.Sprintf("%s %s/%s seq %d id %s at %s", e.Kind, e.Tenant, e.Session, e.Seq, e.ID, e.Time)
		}
		fmt.Fprintf(stdout, "OK %s: index %d in tree of size %d (root %x): %s\n", path, vr.Index, vr.Checkpoint.Size, vr.Checkpoint.Hash, event.SafeText(desc))
		for _, t := range vts {
			fmt.Fprintf(stdout, "   existed no later than %s: RFC 3161 token of %s (%s) on the checkpoint of size %d\n",
				t.Stamp.Time.UTC().Format(time.RFC3339), event.SafeText(t.Stamp.TSA()), event.SafeText(t.TSA), t.Checkpoint.Size)
		}
	}
	return code
}

// tsaVerifier reads the --tsa-chain files (none: nil).
func tsaVerifier(files []string) (*timestamp.Verifier, error) {
	if len(files) == 0 {
		return nil, nil
	}
	var chains [][]byte
	for _, f := range files {
		b, err := cli.ReadFile(f, timestamp.MaxChainBytes)
		if err != nil {
			return nil, err
		}
		chains = append(chains, b)
	}
	return timestamp.NewVerifier(chains...)
}

func verifySignature(args []string, stdout io.Writer) int {
	fs := cli.NewFlagSet("monitor verify-signature", "monitor verify-signature --log-key FILE [--witness-policy FILE] [--url URL --token-file FILE] SIGNATURE.json...\n"+
		"monitor verify-signature --log-key FILE [--witness-policy FILE] --enrollment FILE [--record FILE] SIGNATURE.tlog-proof...\n"+
		"SIGNATURE.json is an export (GET /v1/signatures/{index}) or a saved POST /v1/signatures answer (with --url);\n"+
		"SIGNATURE.tlog-proof is the tlog-proof of the human.signature event (GET /v1/entries/{index}/proof, or the export's\n"+
		"event.tlog_proof), which carries the statement and the signature.")
	logKey := fs.String("log-key", "", "file with the log's note verifier key (required unless --witness-policy names one log, as DATA/keys/policy does)")
	policyFile := fs.String("witness-policy", "", "witness policy file")
	enrollment := fs.String("enrollment", "", "for a SIGNATURE.tlog-proof: the tlog-proof (or JSON receipt) of the event that enrolled the signer's key (required with one)")
	record := fs.String("record", "", "for a single SIGNATURE.tlog-proof: the tlog-proof (or JSON receipt) of the signed record")
	url := fs.String("url", "", "the log's base URL: with it, a saved answer of POST /v1/signatures is checked by fetching its export")
	tokenFile := fs.String("token-file", "", "with --url: file (0600) with a token that may read the signature")
	caFile := fs.String("ca-file", "", "with --url: PEM file of certificate authorities to trust for an https URL, besides the system's")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		return cli.Fail(fs, "no signature export given (GET /v1/signatures/{index} answers one, for the index of the human.signature event)")
	}
	key, policy, err := cli.ReadTrust(*logKey, *policyFile)
	if err != nil {
		return fail("%v", err)
	}
	var lc *client.Client
	if *url != "" {
		if lc, err = cli.LogClient(*url, *tokenFile, *caFile); err != nil {
			return fail("%v", err)
		}
	}
	var enrProof, recProof []byte
	if *enrollment != "" {
		if enrProof, err = cli.ReadFile(*enrollment, api.MaxReceiptBytes); err != nil {
			return fail("--enrollment: %v", err)
		}
	}
	if *record != "" {
		if fs.NArg() != 1 {
			return cli.Fail(fs, "--record goes with one SIGNATURE.tlog-proof")
		}
		if recProof, err = cli.ReadFile(*record, api.MaxReceiptBytes); err != nil {
			return fail("--record: %v", err)
		}
	}
	code := 0
	for _, path := range fs.Args() {
		data, err := cli.ReadFile(path, signature.MaxExportBytes)
		var posted *api.SignatureResponse
		proof := err == nil && api.IsTlogProof(data)
		if err == nil && !proof {
			if posted = signatureAnswer(data); posted != nil {
				data, err = exportOfAnswer(lc, posted)
			}
		}
		var v *signature.Verified
		switch {
		case err != nil:
		case proof && enrProof == nil:
			err = fmt.Errorf("a tlog-proof of a signature event needs --enrollment, the tlog-proof of the enrollment of the signer's key")
		case proof:
			v, err = signature.VerifyProofs(data, enrProof, recProof, key, policy)
		default:
			v, err = signature.VerifyExport(data, key, policy)
		}
		if err == nil && posted != nil {
			err = sameSignature(data, posted)
		}
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %s: %v\n", path, err)
			code = 1
			continue
		}
		s := v.Statement
		reason := ""
		if s.Reason != "" {
			reason = fmt.Sprintf(" (reason: %s)", strconv.Quote(s.Reason))
		}
		fmt.Fprintf(stdout, "OK %s: %s (%s, tenant %s) signed entry %d (leaf %s) of %s as %s%s at %s; key %s enrolled at entry %d",
			path, strconv.Quote(s.PrintedName), event.SafeText(s.Signer), event.SafeText(s.Tenant), s.Index, event.SafeText(s.LeafHash), event.SafeText(s.Origin),
			event.SafeText(s.Meaning), reason, event.SafeText(s.Time), s.KeyID[:16], v.EnrollmentIndex)
		if v.EventIndex != nil {
			fmt.Fprintf(stdout, "; signature event at entry %d", *v.EventIndex)
		}
		if v.RecordChecked {
			fmt.Fprint(stdout, "; record receipt checked")
		}
		if posted != nil {
			fmt.Fprint(stdout, "; the POST answer's statement and signature are the export's")
		}
		fmt.Fprintln(stdout)
	}
	return code
}

// signatureAnswer returns data read as the answer of POST /v1/signatures
// (saved as it came), or nil if it is not one.
func signatureAnswer(data []byte) *api.SignatureResponse {
	var keys map[string]json.RawMessage
	if json.Unmarshal(data, &keys) != nil || keys["statement_text"] == nil || keys["event"] == nil {
		return nil
	}
	var r api.SignatureResponse
	if json.Unmarshal(data, &r) != nil || r.Event.Index == 0 {
		return nil
	}
	return &r
}

// exportOfAnswer fetches the export of a signature whose POST answer was
// given: the answer holds no receipts, so on its own it proves nothing.
func exportOfAnswer(lc *client.Client, r *api.SignatureResponse) ([]byte, error) {
	if lc == nil {
		return nil, fmt.Errorf("this is the answer of POST /v1/signatures, which holds no receipts: check its export "+
			"(GET /v1/signatures/%d: the index of the signature event, not of the signed record), or pass --url and --token-file to fetch it", r.Event.Index)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return lc.SignatureExport(ctx, r.Event.Index)
}

// sameSignature checks that the export fetched for a POST answer carries
// the answer's statement and signature.
func sameSignature(export []byte, r *api.SignatureResponse) error {
	var x signature.Export
	if err := json.Unmarshal(export, &x); err != nil {
		return err
	}
	if x.Statement != r.StatementText || x.Signature != r.Signature {
		return fmt.Errorf("the log's export of signature event %d is not the statement and signature of the POST answer", r.Event.Index)
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
	"github.com/llmaudittrail/llmaudittrail/timestamp"
)

// report computes a compliance report from the log's tiles, with this
// process's own verification, and renders that one computation in every
// format asked for.
func report(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("monitor report", "monitor report --url URL --log-key FILE --token-file FILE --profile P --from T --to T [--format json|oscal|html|pdf[,...]] [--at SIZE|FILE] [flags]")
	lf := addLogFlags(fs, "witness policy file: the checkpoint must meet it",
		"file (0600) with a global token of read and audit scope (entry bundles, and the payload sample)")
	url := lf.url
	profile := fs.String("profile", "", "compliance profile: "+orList(compliance.ProfileNames())+" (required)")
	from := fs.String("from", "", "start of the period, RFC 3339 (required)")
	to := fs.String("to", "", "end of the period (excluded), RFC 3339 (required)")
	format := fs.String("format", api.FormatJSON, "json (the canonical report), oscal (OSCAL assessment-results), html or pdf; several, comma-separated (json,oscal,html,pdf), render one computation, one digest, into the directory --out")
	tenant := fs.String("tenant", api.AllTenants, `the tenant reported on ("*": every tenant)`)
	paper := fs.String("paper", "a4", "paper of the PDF: a4 or letter")
	config := fs.String("config", "", "compliance configuration file: compute with its parameters (its controls section, over what its profiles switch on) instead of those the log records (the server's compliance.config)")
	chromium := fs.String("chromium", "", "Chromium binary for PDFs (default: chromium on PATH)")
	at := fs.String("at", "", "pin the report: SIZE, the log's first SIZE entries (their tree proved consistent with the latest checkpoint), or FILE, a report (or the server's answer) whose checkpoint, size and parameters to use again, or a signed checkpoint (default: the latest checkpoint)")
	out := fs.String("out", "", "write the report to this file (default: stdout); with several formats, or an existing directory, write PROFILE-report.json, .oscal.json, .html and .pdf into this directory")
	tenantKeyFile := fs.String("tenant-key", "", "a report of the tenant --tenant on a log of leaf version 3 or 4: file with the tenant's keys, "+tenantKeyAnswerHelp+": compute the tenant's report from the public entry bundles and the bodies of its own and the log-wide entries (without it, the keys are read with the token, audit scope, and the read is logged)")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	logger, err := newLogger(*level)
	if err != nil {
		return fail("%v", err)
	}
	q := api.ReportQuery{Profile: *profile, Tenant: *tenant, Paper: *paper}
	var e1, e2 error
	q.From, e1 = time.Parse(time.RFC3339, *from)
	q.To, e2 = time.Parse(time.RFC3339, *to)
	if err := errors.Join(e1, e2); err != nil {
		return cli.Fail(fs, "--from and --to: %v", err)
	}
	var formats []string
	for f := range strings.SplitSeq(*format, ",") {
		if f = strings.TrimSpace(f); !slices.Contains(formats, f) {
			formats = append(formats, f)
		}
	}
	for _, f := range formats {
		fq := q
		fq.Format = f
		if err := fq.Check(); err != nil {
			return cli.Fail(fs, "%v", err)
		}
	}
	if *url == "" {
		return cli.Fail(fs, "--url is required")
	}
	dir := ""
	if st, err := os.Stat(*out); (err == nil && st.IsDir()) || len(formats) > 1 {
		if *out == "" {
			return cli.Fail(fs, "several formats are written into a directory: give --out DIR")
		}
		dir = *out
	}
	var params *compliance.Params // nil: the log's
	if *config != "" {
		text, err := cli.ReadFile(*config, maxConfigBytes)
		var p compliance.Params
		if err == nil {
			p, err = compliance.ParseParams(text)
		}
		if err != nil {
			return fail("--config: %v", err)
		}
		params = &p
	}
	key, policy, lc, err := lf.open()
	if err != nil {
		return fail("%v", err)
	}
	src := compliance.Source{Log: lc, Key: key, Policy: policy, Logger: logger}
	if *tenantKeyFile != "" {
		var name string
		if src.TenantKey, src.LogWideKey, name, err = reportTenantKeys(*tenantKeyFile); err != nil {
			return fail("--tenant-key: %v", err)
		}
		if name != q.Tenant {
			return cli.Fail(fs, "--tenant-key holds the keys of tenant %q: give --tenant %q", event.SafeText(name), event.SafeText(name))
		}
	}
	if *at != "" {
		var pinned *compliance.Report
		if src.At, src.AtSize, pinned, err = pinAt(*at); err != nil {
			return cli.Fail(fs, "--at: %v", err)
		}
		if pinned != nil && params == nil {
			params = &pinned.Parameters // the report's own, as verify-report recomputes it
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &progress{w: stderr, tty: isTerminal(os.Stderr), start: time.Now(), last: -1}
	src.Progress = p.update
	// One computation (one reading of the payload sample, each read logged
	// once), rendered in every format.
	cq := compliance.Query{Profile: q.Profile, Tenant: q.Tenant, From: q.From, To: q.To}
	var rep *compliance.Report
	if params != nil {
		rep, err = compliance.Compute(ctx, src, cq, *params)
	} else {
		rep, err = compliance.ComputeAsConfigured(ctx, src, cq)
	}
	if p.tty {
		fmt.Fprintln(stderr)
	}
	if errors.Is(err, compliance.ErrQuery) {
		return cli.Fail(fs, "%v", err)
	}
	if err != nil {
		return fail("computing the report: %v%s", err, tenantHint(err, src))
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fail("--out: %v", err)
		}
	}
	var digest string
	var wrote []string
	for _, f := range formats {
		doc, err := compliance.Document(ctx, rep, f, q.Paper, compliance.Renderer{Chromium: *chromium})
		if err != nil {
			return fail("rendering the report as %s: %v", f, err)
		}
		digest = doc.SHA256
		switch {
		case dir != "":
			path := filepath.Join(dir, rep.Profile+"-report"+reportExt[f])
			err = os.WriteFile(path, doc.Body, 0o644)
			wrote = append(wrote, path)
		case *out != "":
			err = os.WriteFile(*out, doc.Body, 0o644)
		default:
			_, err = stdout.Write(doc.Body)
		}
		if err != nil {
			return fail("writing the report: %v", err)
		}
	}
	s := rep.Summary
	pinned := ""
	if rep.Log.CheckpointSize > 0 {
		pinned = fmt.Sprintf(" (pinned, proved consistent with the checkpoint of size %d)", rep.Log.CheckpointSize)
	}
	fmt.Fprintf(stderr, "report %s over %s..%s at checkpoint size %d%s: %d satisfied, %d not satisfied, %d not applicable; sha256 %s\n",
		rep.Profile, rep.From, rep.To, rep.Log.Size, pinned, s.Satisfied, s.NotSatisfied, s.NotApplicable, digest)
	if len(wrote) > 0 {
		fmt.Fprintf(stderr, "wrote %s\n", strings.Join(wrote, ", "))
	}
	if s.NotSatisfied > 0 {
		return 1
	}
	return 0
}

// tenantHint explains a refusal of the log to a token that is not global.
func tenantHint(err error, src compliance.Source) string {
	if !errors.Is(err, client.ErrForbidden) || src.TenantKey != nil {
		return ""
	}
	return "; a tenant's report with the tenant's own token (read and audit scope) needs a log of leaf version 3 or 4 (--leaf-version 3 or 4); otherwise it needs a global token. On a log of leaf version 3 or 4 a tenant's report reads the tenant's keys: --tenant-key, or a token with the audit scope (GET /v1/tenant-key)"
}

// reportTenantKeys reads the --tenant-key of a report: both keys, for a
// tenant's report reads the log-wide records too.
func reportTenantKeys(path string) (*event.TenantKey, *event.TenantKey, string, error) {
	k, lk, name, err := tenantKeysOf(path)
	if err == nil && lk == nil {
		err = fmt.Errorf("%s holds no log-wide key: a tenant's report reads the log-wide records too (give the JSON answer of GET /v1/tenant-key)", path)
	}
	return k, lk, name, err
}

// reportExt names the file of each format in monitor report --out DIR.
var reportExt = map[string]string{api.FormatJSON: ".json", api.FormatOSCAL: ".oscal.json", api.FormatHTML: ".html", api.FormatPDF: ".pdf"}

// pinAt reads --at: a size, or a file holding a report (bare or the
// server's answer: its checkpoint and size, and the report) or a signed
// checkpoint.
func pinAt(s string) ([]byte, uint64, *compliance.Report, error) {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n == 0 {
			return nil, 0, nil, errors.New("a size of at least 1")
		}
		return nil, n, nil, nil
	}
	data, err := cli.ReadFile(s, compliance.MaxReportFileBytes)
	if err != nil {
		return nil, 0, nil, err
	}
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		r, err := compliance.ParseReport(t)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("%s: %w", s, err)
		}
		return []byte(r.Log.Checkpoint), r.Log.Size, r, nil
	}
	return data, 0, nil, nil // a signed checkpoint: Compute verifies it
}

// verifyReport recomputes reports and compares.
func verifyReport(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("monitor verify-report", "monitor verify-report --url URL --log-key FILE --token-file FILE [--witness-policy FILE] [--tsa-chain FILE]... [--anchor FILE] REPORT.json...")
	lf := addLogFlags(fs, "witness policy file (give the one the report was computed with)",
		"file (0600) with a global token of read and audit scope")
	url := lf.url
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	var tsaChains chainFiles
	fs.Var(&tsaChains, "tsa-chain", "PEM certificate chain of a timestamp authority, ending with its root (repeatable): the RFC 3161 tokens a server's answer carries must verify with one of these roots and stamp a checkpoint consistent with the report's tree, and those of the report.issued event's receipts a checkpoint that includes the event; without it they are not checked")
	tenantKeyFile := fs.String("tenant-key", "", "reports of one tenant on a log of leaf version 3 or 4: file with the tenant's keys, "+tenantKeyAnswerHelp+": recompute from the public entry bundles and the bodies of its own and the log-wide entries (without it, the keys are read with the token, audit scope, and the read is logged)")
	anchorFile := fs.String("anchor", "", "the tlog-proof (GET /v1/entries/{index}/proof, or the answer's receipt.tlog_proof) or JSON receipt of the report.issued event: it must carry the report's digest (one REPORT)")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	tv, err := tsaVerifier(tsaChains)
	if err != nil {
		return fail("--tsa-chain: %v", err)
	}
	if fs.NArg() == 0 {
		return cli.Fail(fs, "no report given (the JSON report, or the server's answer to GET /v1/reports/{profile})")
	}
	var anchor []byte
	if *anchorFile != "" {
		if fs.NArg() != 1 {
			return cli.Fail(fs, "--anchor goes with one REPORT")
		}
		var err error
		if anchor, err = cli.ReadFile(*anchorFile, api.MaxReceiptBytes); err != nil {
			return fail("--anchor: %v", err)
		}
	}
	if *url == "" {
		return cli.Fail(fs, "--url is required")
	}
	logger, err := newLogger(*level)
	if err != nil {
		return fail("%v", err)
	}
	key, policy, lc, err := lf.open()
	if err != nil {
		return fail("%v", err)
	}
	src := compliance.Source{Log: lc, Key: key, Policy: policy, Logger: logger}
	if *tenantKeyFile != "" {
		if src.TenantKey, src.LogWideKey, _, err = reportTenantKeys(*tenantKeyFile); err != nil {
			return fail("--tenant-key: %v", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := 0
	for _, path := range fs.Args() {
		data, err := cli.ReadFile(path, compliance.MaxReportFileBytes)
		var v *compliance.Verification
		if err == nil {
			v, err = compliance.VerifyAnchored(ctx, src, data, anchor)
		}
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "FAIL %s: %v%s\n", path, err, tenantHint(err, src))
			code = max(code, 1)
			if !errors.Is(err, compliance.ErrNotAnchored) && !errors.Is(err, compliance.ErrNotReport) {
				code = 2 // it could not run
			}
		case !v.Equal:
			fmt.Fprintf(stdout, "FAIL %s: recomputed at checkpoint size %d, it differs first in %s: %s\n", path, v.Report.Log.Size, event.SafeText(v.Difference), event.SafeText(v.Detail))
			code = max(code, 1)
		default:
			anchored := ""
			if v.Anchored != nil {
				anchored = fmt.Sprintf("; anchored by the report.issued event at entry %d", *v.Anchored)
			}
			vts, issued, err := reportTimestamps(data, v, key, policy, tv)
			if err != nil {
				fmt.Fprintf(stdout, "FAIL %s: recomputed identical, but %v\n", path, err)
				code = max(code, 1)
				continue
			}
			fmt.Fprintf(stdout, "OK %s: recomputed at checkpoint size %d: identical, sha256 %s%s\n", path, v.Report.Log.Size, v.SHA256, anchored)
			for _, t := range vts {
				fmt.Fprintf(stdout, "   its entries existed no later than %s: RFC 3161 token of %s (%s) on the checkpoint of size %d\n",
					t.Stamp.Time.UTC().Format(time.RFC3339), event.SafeText(t.Stamp.TSA()), event.SafeText(t.TSA), t.Checkpoint.Size)
			}
			for _, t := range issued {
				fmt.Fprintf(stdout, "   it was issued (the report.issued event at entry %d) no later than %s: RFC 3161 token of %s (%s) on the checkpoint of size %d\n",
					t.index, t.Stamp.Time.UTC().Format(time.RFC3339), event.SafeText(t.Stamp.TSA()), event.SafeText(t.TSA), t.Checkpoint.Size)
			}
		}
	}
	return code
}

// answerTimestamps is the rule for a report file read for its timestamps:
// any other keys, "timestamps" in exactly that case, no key twice anywhere.
var answerTimestamps = func() *strictjson.Object {
	anyKeys := &strictjson.Object{AnyKeys: true}
	anyKeys.Values = anyKeys
	return &strictjson.Object{Open: true, Keys: map[string]*strictjson.Object{"timestamps": anyKeys}, Values: anyKeys}
}()

// issuedTimestamp is a verified token of a receipt of the report.issued
// event at index: the event existed no later than its time.
type issuedTimestamp struct {
	api.VerifiedTimestamp
	index uint64
}

// reportTimestamps checks, with tv (nil: none checked), the timestamps a
// server's answer carries: those of the report's tree against the verified
// report's tree (its entries existed by then), and those of the receipts of
// its report.issued event against that event's entry (it was issued by
// then), each token once.
func reportTimestamps(data []byte, v *compliance.Verification, key note.Verifier, policy *checkpoint.Policy, tv *timestamp.Verifier) (tree []api.VerifiedTimestamp, issued []issuedTimestamp, err error) {
	if tv == nil {
		return nil, nil, nil
	}
	// The answer is the server's: read as strictly as any (no key twice,
	// no other case of "timestamps"), and refused, not skipped, when it
	// cannot be read.
	if err := strictjson.Check(data, answerTimestamps); err != nil {
		return nil, nil, fmt.Errorf("the answer's timestamps: %v", err)
	}
	var answer struct {
		Timestamps []api.Timestamp `json:"timestamps"`
	}
	if err := json.Unmarshal(data, &answer); err != nil {
		return nil, nil, fmt.Errorf("the answer's timestamps: %v", err)
	}
	if len(answer.Timestamps) > 0 {
		root, err := hex.DecodeString(v.Report.Log.Root)
		if err != nil {
			return nil, nil, fmt.Errorf("the report's root: %v", err)
		}
		if tree, err = api.VerifyTreeTimestamps(v.Report.Log.Size, root, answer.Timestamps, key, policy, tv); err != nil {
			return nil, nil, err
		}
	}
	// The tokens of the anchoring receipts are checked as well: a token the
	// answer carries and no one checked would be read as evidence.
	for _, r := range v.Receipts {
		ts, err := api.NewReceiptVerifier(key, policy).VerifyTimestamps(r, tv)
		if err != nil {
			return nil, nil, fmt.Errorf("the receipt of the report.issued event at entry %d: %v", r.Index, err)
		}
		for _, t := range ts {
			if !slices.ContainsFunc(issued, func(u issuedTimestamp) bool {
				return u.index == r.Index && u.TSA == t.TSA && u.Checkpoint.Size == t.Checkpoint.Size
			}) {
				issued = append(issued, issuedTimestamp{t, r.Index})
			}
		}
	}
	return tree, issued, nil
}

// orList writes names as "a, b or c".
func orList(names []string) string {
	if n := len(names); n > 1 {
		return strings.Join(names[:n-1], ", ") + " or " + names[n-1]
	}
	return strings.Join(names, "")
}

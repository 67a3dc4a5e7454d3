package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/compliance"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
)

// report computes a compliance report from the log's tiles, with this
// process's own verification.
func report(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("monitor report", "monitor report --url URL --log-key FILE --token-file FILE --profile P --from T --to T [--format json|oscal|html|pdf] [flags]")
	lf := addLogFlags(fs, "witness policy file: the checkpoint must meet it",
		"file (0600) with a global token of read and audit scope (entry bundles, and the payload sample)")
	url := lf.url
	profile := fs.String("profile", "", "compliance profile: "+orList(compliance.ProfileNames())+" (required)")
	from := fs.String("from", "", "start of the period, RFC 3339 (required)")
	to := fs.String("to", "", "end of the period (excluded), RFC 3339 (required)")
	format := fs.String("format", api.FormatJSON, "json (the canonical report), oscal (OSCAL assessment-results), html or pdf")
	tenant := fs.String("tenant", api.AllTenants, `the tenant reported on ("*": every tenant)`)
	paper := fs.String("paper", "a4", "paper of the PDF: a4 or letter")
	config := fs.String("config", "", "compliance configuration file (its controls section: gates and thresholds)")
	chromium := fs.String("chromium", "", "Chromium binary for PDFs (default: chromium on PATH)")
	out := fs.String("out", "", "write the report to this file (default: stdout)")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	logger, err := newLogger(*level)
	if err != nil {
		return fail("%v", err)
	}
	q := api.ReportQuery{Profile: *profile, Format: *format, Tenant: *tenant, Paper: *paper}
	var e1, e2 error
	q.From, e1 = time.Parse(time.RFC3339, *from)
	q.To, e2 = time.Parse(time.RFC3339, *to)
	if err := errors.Join(e1, e2); err != nil {
		return cli.Fail(fs, "--from and --to: %v", err)
	}
	if err := q.Check(); err != nil {
		return cli.Fail(fs, "%v", err)
	}
	if *url == "" {
		return cli.Fail(fs, "--url is required")
	}
	params := compliance.DefaultParams()
	if *config != "" {
		text, err := cli.ReadFile(*config, maxConfigBytes)
		if err == nil {
			params, err = compliance.ParseParams(text)
		}
		if err != nil {
			return fail("--config: %v", err)
		}
	}
	key, policy, lc, err := lf.open()
	if err != nil {
		return fail("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &progress{w: stderr, tty: isTerminal(os.Stderr), start: time.Now(), last: -1}
	rep, err := compliance.Compute(ctx, compliance.Source{Log: lc, Key: key, Policy: policy, Progress: p.update, Logger: logger},
		compliance.Query{Profile: q.Profile, Tenant: q.Tenant, From: q.From, To: q.To}, params)
	if p.tty {
		fmt.Fprintln(stderr)
	}
	if errors.Is(err, compliance.ErrQuery) {
		return cli.Fail(fs, "%v", err)
	}
	if err != nil {
		return fail("computing the report: %v", err)
	}
	doc, err := compliance.Document(ctx, rep, q.Format, q.Paper, compliance.Renderer{Chromium: *chromium})
	if err != nil {
		return fail("rendering the report: %v", err)
	}
	if *out != "" {
		err = os.WriteFile(*out, doc.Body, 0o644)
	} else {
		_, err = stdout.Write(doc.Body)
	}
	if err != nil {
		return fail("writing the report: %v", err)
	}
	s := rep.Summary
	fmt.Fprintf(stderr, "report %s over %s..%s at checkpoint size %d: %d satisfied, %d not satisfied, %d not applicable; sha256 %s\n",
		rep.Profile, rep.From, rep.To, rep.Log.Size, s.Satisfied, s.NotSatisfied, s.NotApplicable, doc.SHA256)
	if s.NotSatisfied > 0 {
		return 1
	}
	return 0
}

// verifyReport recomputes reports and compares.
func verifyReport(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("monitor verify-report", "monitor verify-report --url URL --log-key FILE --token-file FILE [--witness-policy FILE] REPORT.json...")
	lf := addLogFlags(fs, "witness policy file (give the one the report was computed with)",
		"file (0600) with a global token of read and audit scope")
	url := lf.url
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		return cli.Fail(fs, "no report given (the JSON report, or the server's answer to GET /v1/reports/{profile})")
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := 0
	for _, path := range fs.Args() {
		data, err := cli.ReadFile(path, compliance.MaxReportFileBytes)
		var v *compliance.Verification
		if err == nil {
			v, err = compliance.Verify(ctx, compliance.Source{Log: lc, Key: key, Policy: policy, Logger: logger}, data)
		}
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "FAIL %s: %v\n", path, err)
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
			fmt.Fprintf(stdout, "OK %s: recomputed at checkpoint size %d: identical, sha256 %s%s\n", path, v.Report.Log.Size, v.SHA256, anchored)
		}
	}
	return code
}

// orList writes names as "a, b or c".
func orList(names []string) string {
	if n := len(names); n > 1 {
		return strings.Join(names[:n-1], ", ") + " or " + names[n-1]
	}
	return strings.Join(names, "")
}

package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/cli"
)

// verifyDisclosure checks saved answers of GET /v1/events/{index}/disclosure
// offline: the receipt against the log key (and the witness policy), the
// digests against the leaf's field commitment, every disclosure against
// the digests. It prints the fields each revealed.
func verifyDisclosure(args []string, stdout io.Writer) int {
	fs := cli.NewFlagSet("monitor verify-disclosure", "monitor verify-disclosure --log-key FILE [--witness-policy FILE] DISCLOSURE.json...")
	logKey := fs.String("log-key", "", "file with the log's note verifier key (required)")
	policyFile := fs.String("witness-policy", "", "witness policy file")
	if code, ok := cli.Parse(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		return cli.Fail(fs, "no disclosure given (the saved answer of GET /v1/events/{index}/disclosure?fields=...)")
	}
	key, policy, err := cli.ReadTrust(*logKey, *policyFile)
	if err != nil {
		return fail("%v", err)
	}
	v := api.NewReceiptVerifier(key, policy)
	code := 0
	for _, path := range fs.Args() {
		data, err := cli.ReadFile(path, api.MaxDisclosureBytes)
		var vd *api.VerifiedDisclosure
		if err == nil {
			var d *api.DisclosureResponse
			if d, err = api.ParseDisclosure(data); err == nil {
				vd, err = v.VerifyDisclosure(d)
			}
		}
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %s: %s\n", path, event.SafeText(err.Error()))
			code = 1
			continue
		}
		cp := vd.Receipt.Checkpoint
		if e := vd.Event; e != nil {
			fmt.Fprintf(stdout, "OK %s: entry %d in tree of size %d (root %x): %s %s/%s seq %d id %s at %s; %d disclosures verified\n",
				path, vd.Receipt.Index, cp.Size, cp.Hash,
				event.SafeText(e.Kind), event.SafeText(e.Tenant), event.SafeText(e.Session), e.Seq, e.ID, event.SafeText(e.Time), len(vd.Fields.Fields))
		} else {
			// Leaf version 4: the event is what its body's disclosures show.
			fmt.Fprintf(stdout, "OK %s: entry %d in tree of size %d (root %x): id %s; %d body and %d payload disclosures verified\n",
				path, vd.Receipt.Index, cp.Size, cp.Hash, event.SafeText(vd.ID), len(vd.Body.Fields), len(vd.Fields.Fields))
			printFields(stdout, "body: ", vd.Body)
		}
		printFields(stdout, "", vd.Fields)
	}
	return code
}

// printFields prints the fields v revealed, one a line, after prefix.
func printFields(stdout io.Writer, prefix string, v *disclosure.Verified) {
	for _, f := range v.Complete() {
		b, _ := json.Marshal(f.Value)
		fmt.Fprintf(stdout, "  %s%s = %s\n", prefix, event.SafeText(disclosure.FormatPath(f.Path)), event.SafeText(string(b)))
	}
}

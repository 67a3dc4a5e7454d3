package compliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// MaxReportFileBytes caps a report read for verification.
const MaxReportFileBytes = 64 << 20

// Verification is what Verify found.
type Verification struct {
	// Equal: the recomputed report is byte for byte the one given.
	Equal bool
	// SHA256 is the given report's digest; Recomputed the recomputed one's.
	SHA256, Recomputed string
	// Difference names the first part that differs (a control id, or a
	// top-level field), and Detail says how.
	Difference, Detail string
	// Anchored is the index of the report.issued event whose receipt came
	// with the report (the server's answer) and verified, if it did.
	Anchored *uint64
	// Receipts are the receipts of the report.issued event that verified
	// (the answer's, the anchor given apart): a caller with timestamp
	// authorities checks the tokens they carry (VerifyTimestamps).
	Receipts []*api.Receipt
	Report   *Report // recomputed
}

// ErrNotAnchored: the server's answer carries a receipt that does not
// prove a report.issued event for this report.
var ErrNotAnchored = errors.New("the report's receipt does not anchor it")

// ErrNotReport: what was given is not a report this verifier can recompute
// (not a report's JSON, another version, a malformed period, a profile or
// parameters it does not know). Like a report that recomputes differently,
// it does not verify.
var ErrNotReport = errors.New("not a report this verifier reads")

// Verify recomputes a report from the log at the checkpoint it names, with
// the same profile, tenant, period and parameters, and compares. data is a
// bare report or the server's answer. For the answer it also checks that
// the answer's sha256 is its report's, and, with the answer's receipt, that
// the log holds a report.issued event carrying that digest. A report that
// recomputes differently, or an answer whose sha256 is not its report's, is
// a Verification that is not Equal; a receipt that does not anchor the
// report is ErrNotAnchored, and a document that is not a report is
// ErrNotReport; other errors mean that the verification could not run.
// src.At and src.AtSize are ignored: the report names its checkpoint (and
// the size it is pinned at).
func Verify(ctx context.Context, src Source, data []byte) (*Verification, error) {
	return VerifyAnchored(ctx, src, data, nil)
}

// VerifyAnchored is Verify with the anchor of the report given apart: the
// tlog-proof (c2sp.org/tlog-proof@v1, as GET /v1/entries/{index}/proof
// answers it) or JSON receipt of the report.issued event, which must carry
// the report's digest (ErrNotAnchored otherwise). A nil anchor is Verify;
// with both an anchor and an answer's receipt, both are checked.
func VerifyAnchored(ctx context.Context, src Source, data, anchor []byte) (*Verification, error) {
	var anchorReceipt *api.Receipt
	if anchor != nil {
		r, err := api.ParseReceipt(anchor)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotAnchored, err)
		}
		anchorReceipt = r
	}
	if len(data) > MaxReportFileBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrNotReport, MaxReportFileBytes)
	}
	var wrapper struct {
		Report  json.RawMessage `json:"report"`
		SHA256  string          `json:"sha256"`
		Receipt *api.Receipt    `json:"receipt"`
	}
	raw := data
	if json.Unmarshal(data, &wrapper) == nil && len(wrapper.Report) > 0 {
		raw = wrapper.Report
	}
	raw = bytes.TrimSpace(raw)
	v := &Verification{SHA256: Digest(raw)}
	given, err := ParseReport(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotReport, err)
	}
	from, err1 := time.Parse(time.RFC3339, given.From)
	to, err2 := time.Parse(time.RFC3339, given.To)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("%w: the report's period: %v", ErrNotReport, err)
	}
	p := given.Parameters
	src.At, src.AtSize = []byte(given.Log.Checkpoint), given.Log.Size
	rep, err := Compute(ctx, src, Query{Profile: given.Profile, Tenant: given.Tenant, From: from, To: to}, p)
	if errors.Is(err, ErrQuery) {
		return nil, fmt.Errorf("%w: %v", ErrNotReport, err)
	}
	if err != nil {
		return nil, err
	}
	canon, err := rep.Canonical()
	if err != nil {
		return nil, err
	}
	v.Report, v.Recomputed = rep, Digest(canon)
	edited := wrapper.SHA256 != "" && wrapper.SHA256 != v.SHA256
	switch {
	case !bytes.Equal(canon, raw):
		v.Difference, v.Detail = firstDifference(raw, canon)
		if edited {
			v.Detail += fmt.Sprintf(" (and the answer's sha256 %s is not its report's %s: the report was edited after it was issued)", wrapper.SHA256, v.SHA256)
		}
		return v, nil
	case edited:
		v.Difference = "sha256"
		v.Detail = fmt.Sprintf("the answer says sha256 %s, but its report, which is the one the log yields, hashes to %s", wrapper.SHA256, v.SHA256)
		return v, nil
	}
	for _, r := range []*api.Receipt{wrapper.Receipt, anchorReceipt} {
		if r == nil {
			continue
		}
		i, err := checkAnchor(src, r, v.SHA256)
		if err != nil {
			return nil, err
		}
		v.Anchored = &i
		v.Receipts = append(v.Receipts, r)
	}
	v.Equal = true
	return v, nil
}

// checkAnchor verifies the receipt of the report.issued event and that the
// event carries digest.
func checkAnchor(src Source, r *api.Receipt, digest string) (uint64, error) {
	vr, err := api.NewReceiptVerifier(src.Key, src.Policy).Verify(r)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNotAnchored, err)
	}
	l, err := event.ParseLeaf(vr.Leaf)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNotAnchored, err)
	}
	if l.Kind != event.KindReportIssued || l.Attributes.String(event.AttrReportSHA256) != digest || l.Writer == nil || l.Writer.Via != "server" {
		return 0, fmt.Errorf("%w: entry %d is a %s for %q", ErrNotAnchored, vr.Index, l.Kind, l.Attributes.String(event.AttrReportSHA256))
	}
	return vr.Index, nil
}

// firstDifference names the first control, or else the first top-level
// field, in which two encodings of a report differ in value; if none does,
// the given one is not in canonical form.
func firstDifference(given, recomputed []byte) (string, string) {
	var a, b map[string]json.RawMessage
	if json.Unmarshal(given, &a) != nil || json.Unmarshal(recomputed, &b) != nil {
		return "report", "not a JSON object"
	}
	// The controls first: the first that differs is what a reader needs.
	for _, f := range []string{"controls", "version", "profile", "title", "tenant", "from", "to", "log", "range", "entries", "parameters", "signatures", "summary"} {
		if sameJSON(a[f], b[f]) {
			continue
		}
		if f != "controls" {
			return f, fmt.Sprintf("given %s, recomputed %s", event.Shorten(string(a[f]), 300), event.Shorten(string(b[f]), 300))
		}
		var ca, cb []json.RawMessage
		json.Unmarshal(a[f], &ca)
		json.Unmarshal(b[f], &cb)
		for i := range max(len(ca), len(cb)) {
			if i >= len(ca) || i >= len(cb) {
				return "controls", fmt.Sprintf("given %d controls, recomputed %d", len(ca), len(cb))
			}
			if sameJSON(ca[i], cb[i]) {
				continue
			}
			var x, y ControlResult
			json.Unmarshal(ca[i], &x)
			json.Unmarshal(cb[i], &y)
			if x.Status != y.Status {
				return "control " + y.ID, fmt.Sprintf("given %s, recomputed %s: %s", x.Status, y.Status, y.Evidence.Summary)
			}
			return "control " + y.ID, fmt.Sprintf("the evidence differs: given %s, recomputed %s", event.Shorten(string(ca[i]), 300), event.Shorten(string(cb[i]), 300))
		}
	}
	if len(a) != len(b) {
		return "report", "the given report has fields the format does not"
	}
	return "encoding", "the values agree but the given report is not in canonical form (re-encoded?), so its SHA-256 is not the report's"
}

func sameJSON(x, y []byte) bool {
	if bytes.Equal(x, y) {
		return true
	}
	var a, b any
	dx := json.NewDecoder(bytes.NewReader(x))
	dx.UseNumber()
	dy := json.NewDecoder(bytes.NewReader(y))
	dy.UseNumber()
	if dx.Decode(&a) != nil || dy.Decode(&b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}

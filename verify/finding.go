package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/llmaudittrail/llmaudittrail/signature"
)

// Rules of the findings about a log's integrity. A monitor raises the same
// findings as alerts of the same rule names and IDs.
const (
	// RuleCheckpointSignature: the log served a checkpoint that does not
	// verify with the log key.
	RuleCheckpointSignature = "log.checkpoint_signature"
	// RuleWitnessQuorum: the log's checkpoint lacks the witness policy's
	// quorum (a monitor alerts when that lasts; an audit cannot go on).
	RuleWitnessQuorum = "health.witness_quorum"
	// RuleFork: the log signed a checkpoint that is not consistent with the
	// last verified one (a smaller tree, another root for the same size, or
	// a root that the entries and tiles it serves do not reproduce).
	RuleFork = "log.fork"
	// RuleEntryMismatch: an entry bundle holds data that does not hash to
	// the leaf the log's tiles (or the verifier's own tree) commit to.
	RuleEntryMismatch = "log.entry_mismatch"
	// RuleTileMismatch: a tile served by the log differs from the hashes
	// recomputed from the entries.
	RuleTileMismatch = "log.tile_mismatch"
	// RuleMalformedEntry: a verified entry is not a valid audit event leaf.
	RuleMalformedEntry = "log.malformed_entry"
	// RuleSplitView: a policy witness cosigned a checkpoint that is not
	// consistent with the log as it was verified.
	RuleSplitView = "witness.split_view"
	// RuleSessionChain: a session's events do not form its chain: the
	// first is not seq 0 without prev, a seq is skipped or repeated, or a
	// prev is not the leaf hash of the session's previous event.
	RuleSessionChain = "session.chain"
	// RuleSignature: a human.signature in the log does not verify, or an
	// enrollment breaks the rules (signature.Checker): a bad Ed25519
	// signature, a key that was not enrolled (or was revoked) when it
	// signed, a statement for another log, tenant or signer, a record that
	// is not the one at the statement's index, a statement that appears
	// twice, a signer id enrolled twice or a key enrolled for two signers.
	RuleSignature = "signature.invalid"
	// RuleBodyMissing: on a log of leaf version 3, the log did not serve
	// the body of an entry the auditor may read (every entry with a global
	// token; with a tenant key, every entry that carries the tenant's tag):
	// the operator withholds an event.
	RuleBodyMissing = "tenant.body_missing"
	// RuleBodyMismatch: a body the log served is not the one its entry's
	// envelope commits to, or belongs to another tenant than the auditor's.
	RuleBodyMismatch = "tenant.body_mismatch"
	// RuleWrongTag: the log served, as one of the auditor's tenant, the
	// body of an entry whose envelope does not carry the tenant's tag: an
	// event written where the tenant's auditor would not look for it.
	RuleWrongTag = "tenant.wrong_tag"
)

// SourceIntegrity is the Source of every finding: the log's data or
// signatures failed verification.
const SourceIntegrity = "integrity"

// Finding is one problem found in a log. Its JSON is that of the monitor's
// alerts (monitor.Alert), which carry the same findings.
type Finding struct {
	// ID is stable: the same finding gets the same ID in every audit and
	// from a monitor, so receivers can drop duplicates (FindingID).
	ID string `json:"id"`
	// Time is when a monitor raised the finding as an alert (RFC 3339,
	// UTC); an audit leaves it empty.
	Time     string `json:"time"`
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	// Index is the log index of the entry at fault, if one is.
	Index   *uint64 `json:"index,omitempty"`
	Message string  `json:"message"`
	Source  string  `json:"source"` // SourceIntegrity
	Origin  string  `json:"origin"`
	// The session at fault, for chain and signature findings.
	Tenant  string `json:"tenant,omitempty"`
	Session string `json:"session,omitempty"`
	// TreeSize is the size of the checkpoint the finding was made at.
	TreeSize uint64         `json:"tree_size,omitempty"`
	Details  map[string]any `json:"details,omitempty"`
}

// FindingID derives the stable ID of a finding (or of a monitor's alert)
// of rule in the log origin; key says what makes it unique.
func FindingID(origin, rule, key string) string {
	h := sha256.Sum256([]byte(origin + "\x00" + rule + "\x00" + key))
	return hex.EncodeToString(h[:16])
}

// RewrittenEntry is the finding about entry index, whose data in the log's
// entry bundle does not hash to the leaf hash in the log's level-0 tile
// (ScanResult.LeafMismatch). The caller sets its ID, Origin and TreeSize.
func RewrittenEntry(index uint64) Finding {
	return Finding{Rule: RuleEntryMismatch, Severity: "critical", Source: SourceIntegrity, Index: &index,
		Message: fmt.Sprintf("entry %d in the log's entry bundle does not hash to the leaf hash in the log's tiles: the bundle was rewritten", index)}
}

// RootMismatch is the finding about a checkpoint of size whose signed root
// is not the root its entries re-hash to. The caller sets its ID, Origin
// and TreeSize.
func RootMismatch(size uint64, signed, rehashed []byte) Finding {
	return Finding{Rule: RuleFork, Severity: "critical", Source: SourceIntegrity,
		Message: fmt.Sprintf("the log signed root %x for size %d, but its entries re-hash to %x", signed, size, rehashed)}
}

func signatureFinding(p signature.Problem, tenant, session string) Finding {
	i := p.Index
	return Finding{Rule: RuleSignature, Severity: "critical", Source: SourceIntegrity, Index: &i, Tenant: tenant, Session: session,
		Message: p.Message, Details: map[string]any{"problem": p.Code}}
}

package compliance

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Report is a compliance report: the canonical form is its JSON encoding
// (Canonical), which the report.issued event's digest covers. Everything in
// it follows from the log at one checkpoint, the period, the tenant and the
// parameters, so anyone who can read the log recomputes it byte for byte.
type Report struct {
	Version    int             `json:"version"`
	Profile    string          `json:"profile"`
	Title      string          `json:"title"`
	Tenant     string          `json:"tenant"` // "*": every tenant
	From       string          `json:"from"`   // RFC 3339, inclusive
	To         string          `json:"to"`     // exclusive
	Log        LogState        `json:"log"`
	Range      Range           `json:"range"`
	Entries    Entries         `json:"entries"`
	Parameters Params          `json:"parameters"`
	Controls   []ControlResult `json:"controls"`
	// Signatures shows every human signature in scope in the period, as
	// 21 CFR 11.50 wants it shown: printed name, time, meaning.
	Signatures []Manifestation `json:"signatures"`
	Summary    Summary         `json:"summary"`
}

// ReportVersion is the version of the report format.
const ReportVersion = 1

// LogState is the checkpoint a report was computed at.
type LogState struct {
	Origin string `json:"origin"`
	// Checkpoint is the signed note, with its witness cosignatures.
	Checkpoint       string `json:"checkpoint"`
	CheckpointSHA256 string `json:"checkpoint_sha256"`
	Size             uint64 `json:"size"`
	Root             string `json:"root"`
	// WitnessPolicy describes the policy the checkpoint was checked
	// against ("" if none); Cosigned names its witnesses that cosigned.
	WitnessPolicy string   `json:"witness_policy"`
	Cosigned      []string `json:"cosigned"`
	// CheckpointSize and ProofToCheckpoint are set when the report is
	// pinned below its checkpoint (monitor report --at): Size and Root are
	// then the tree of the log's first Size entries, and ProofToCheckpoint
	// the consistency proof from it to the checkpoint of CheckpointSize.
	// Otherwise Size and Root are the checkpoint's, and both are omitted.
	CheckpointSize    uint64   `json:"checkpoint_size,omitempty"`
	ProofToCheckpoint []string `json:"proof_to_checkpoint,omitempty"`
}

// Range is the part of the tree the period covers: from the size before
// its first entry to the checkpoint, with the consistency proof between
// them (PCAOB AS 1105.10).
type Range struct {
	StartSize        uint64   `json:"start_size"`
	StartRoot        string   `json:"start_root"`
	EndSize          uint64   `json:"end_size"`
	EndRoot          string   `json:"end_root"`
	ConsistencyProof []string `json:"consistency_proof"`
}

// Entries counts what the report covers.
type Entries struct {
	Total    uint64         `json:"total"`     // the tree's size
	InScope  int            `json:"in_scope"`  // of the tenant, any time
	InPeriod int            `json:"in_period"` // of the tenant, in the period
	ByKind   map[string]int `json:"by_kind"`   // in the period
}

// Statuses of a control.
const (
	Satisfied     = "satisfied"
	NotSatisfied  = "not-satisfied"
	NotApplicable = "not-applicable"
)

// ControlResult is one control's outcome.
type ControlResult struct {
	ID       string   `json:"id"`
	Citation string   `json:"citation"`
	Title    string   `json:"title"`
	Status   string   `json:"status"`
	Evidence Evidence `json:"evidence"`
}

// Evidence supports a control's status.
type Evidence struct {
	// Summary says in one sentence what was found.
	Summary string         `json:"summary"`
	Counts  map[string]int `json:"counts,omitempty"`
	Facts   map[string]any `json:"facts,omitempty"`
	// Offending lists the entries that fail the control (at most
	// MaxOffending; OffendingTotal counts them all).
	Offending      []Offense `json:"offending,omitempty"`
	OffendingTotal int       `json:"offending_total,omitempty"`
	// InclusionProofs, sampled, prove entries against the checkpoint.
	InclusionProofs []InclusionProof `json:"inclusion_proofs,omitempty"`
}

// MaxOffending caps the offending entries listed per control.
const MaxOffending = 1000

// Offense is an entry that fails a control.
type Offense struct {
	Index    uint64 `json:"index"`
	LeafHash string `json:"leaf_hash,omitempty"`
	Reason   string `json:"reason"`
}

// InclusionProof proves an entry against the report's checkpoint.
type InclusionProof struct {
	Index    uint64   `json:"index"`
	LeafHash string   `json:"leaf_hash"`
	TreeSize uint64   `json:"tree_size"`
	Hashes   []string `json:"hashes"`
}

// Manifestation is a signature as 21 CFR 11.50 shows it.
type Manifestation struct {
	Index          uint64 `json:"index"`
	Signer         string `json:"signer"`
	PrintedName    string `json:"printed_name"`
	Meaning        string `json:"meaning"`
	Reason         string `json:"reason,omitempty"`
	Time           string `json:"time"`
	Record         uint64 `json:"record"`
	RecordLeafHash string `json:"record_leaf_hash"`
	Valid          bool   `json:"valid"`
	Problem        string `json:"problem,omitempty"`
}

// Summary counts the controls by status.
type Summary struct {
	Satisfied     int `json:"satisfied"`
	NotSatisfied  int `json:"not_satisfied"`
	NotApplicable int `json:"not_applicable"`
}

// Canonical is the report's canonical encoding: Go's encoding/json of the
// Report (fields in declaration order, map keys sorted, compact).
func (r *Report) Canonical() ([]byte, error) { return json.Marshal(r) }

// Digest is the hex SHA-256 of the canonical encoding.
func Digest(canonical []byte) string {
	h := sha256.Sum256(canonical)
	return hex.EncodeToString(h[:])
}

// ParseReport reads a report: a bare one, or the server's answer
// {"report", "sha256", "event", "receipt"}.
func ParseReport(data []byte) (*Report, error) {
	var wrapper struct {
		Report json.RawMessage `json:"report"`
	}
	if json.Unmarshal(data, &wrapper) == nil && len(wrapper.Report) > 0 {
		data = wrapper.Report
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decoding the report: %w", err)
	}
	if r.Version != ReportVersion {
		return nil, fmt.Errorf("report version %d: this verifier reads version %d", r.Version, ReportVersion)
	}
	return &r, nil
}

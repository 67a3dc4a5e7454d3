package compliance

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	oscal "github.com/defenseunicorns/go-oscal/src/types/oscal-1-2-2"
	"github.com/google/uuid"
)

// OSCALVersion is the OSCAL version of the assessment results.
const OSCALVersion = "1.2.2"

// oscalNS is the namespace of the deterministic UUIDs and of our props.
var oscalNS = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://llmaudittrail.example/oscal"))

const propNS = "https://llmaudittrail.example/ns/oscal"

// maxOSCALEvidence caps the relevant-evidence items per observation.
const maxOSCALEvidence = 100

// OSCAL renders the report as OSCAL assessment-results: one result for
// the period, a reviewed control, an observation (with the offending
// entries and sampled inclusion proofs as relevant evidence) and a finding
// per control, and back-matter with the cosigned checkpoint and the
// canonical JSON report, each with its SHA-256. A not-applicable control
// is a finding in state "satisfied" with reason "other" and the prop
// status=not-applicable (OSCAL's objective states are only satisfied and
// not-satisfied). generated is the document's last-modified time.
func OSCAL(r *Report, canonical []byte, generated time.Time) ([]byte, error) {
	digest := Digest(canonical)
	id := func(parts ...string) string {
		return uuid.NewSHA1(oscalNS, fmt.Appendf(nil, "%s/%v", digest, parts)).String()
	}
	from, err := time.Parse(time.RFC3339, r.From)
	if err != nil {
		return nil, err
	}
	to, err := time.Parse(time.RFC3339, r.To)
	if err != nil {
		return nil, err
	}
	cpRes, repRes, planRes := id("checkpoint"), id("report"), id("plan")
	var include []oscal.AssessedControlsSelectControlById
	var observations []oscal.Observation
	var findings []oscal.Finding
	for _, c := range r.Controls {
		include = append(include, oscal.AssessedControlsSelectControlById{ControlId: c.ID})
		ev := []oscal.RelevantEvidence{{
			Href:        "#" + cpRes,
			Description: fmt.Sprintf("The log %s verified at the cosigned checkpoint of size %d, root %s.", r.Log.Origin, r.Log.Size, r.Log.Root),
		}}
		if r.Log.CheckpointSize > 0 {
			ev[0].Description = fmt.Sprintf("The log %s verified at the tree of size %d, root %s, proved consistent with the cosigned checkpoint of size %d.",
				r.Log.Origin, r.Log.Size, r.Log.Root, r.Log.CheckpointSize)
		}
		for i, o := range c.Evidence.Offending {
			if i == maxOSCALEvidence {
				break
			}
			ev = append(ev, oscal.RelevantEvidence{
				Href:        fmt.Sprintf("#%s", repRes),
				Description: nonEmpty(fmt.Sprintf("Log entry %d (leaf hash %s): %s", o.Index, orNone(o.LeafHash), o.Reason)),
				Props:       &[]oscal.Property{{Name: "log-index", Ns: propNS, Value: fmt.Sprint(o.Index)}},
			})
		}
		for i, p := range c.Evidence.InclusionProofs {
			if i == maxOSCALEvidence {
				break
			}
			ev = append(ev, oscal.RelevantEvidence{
				Href:        "#" + cpRes,
				Description: fmt.Sprintf("Inclusion proof of entry %d (leaf hash %s) in the tree of size %d: %v", p.Index, p.LeafHash, p.TreeSize, p.Hashes),
				Props:       &[]oscal.Property{{Name: "log-index", Ns: propNS, Value: fmt.Sprint(p.Index)}},
			})
		}
		obs := oscal.Observation{
			UUID: id("observation", c.ID), Title: c.ID, Description: nonEmpty(c.Evidence.Summary),
			Methods: []string{"TEST"}, Collected: generated, RelevantEvidence: &ev,
		}
		if len(c.Evidence.Counts) > 0 || len(c.Evidence.Facts) > 0 {
			b, _ := json.Marshal(map[string]any{"counts": c.Evidence.Counts, "facts": c.Evidence.Facts})
			obs.Remarks = string(b)
		}
		observations = append(observations, obs)
		st := oscal.ObjectiveStatus{State: "satisfied", Reason: "pass"}
		props := []oscal.Property{{Name: "status", Ns: propNS, Value: c.Status}}
		switch c.Status {
		case NotSatisfied:
			st = oscal.ObjectiveStatus{State: "not-satisfied", Reason: "fail"}
		case NotApplicable:
			st = oscal.ObjectiveStatus{State: "satisfied", Reason: "other", Remarks: "not applicable: " + c.Evidence.Summary}
		}
		findings = append(findings, oscal.Finding{
			UUID: id("finding", c.ID), Title: nonEmpty(c.ID + ": " + c.Title), Description: nonEmpty(c.Citation + ". " + c.Evidence.Summary),
			Target: oscal.FindingTarget{Type: "objective-id", TargetId: c.ID, Status: st, Title: c.Title},
			Props:  &props, RelatedObservations: &[]oscal.RelatedObservation{{ObservationUuid: id("observation", c.ID)}},
		})
	}
	tenant := r.Tenant
	if tenant == "*" {
		tenant = "every tenant"
	}
	end := to
	doc := oscal.OscalCompleteSchema{AssessmentResults: &oscal.AssessmentResults{
		UUID: id("assessment-results"),
		Metadata: oscal.Metadata{
			Title: r.Title + ": assessment results", LastModified: generated, Version: fmt.Sprint(r.Version), OscalVersion: OSCALVersion,
			Props: &[]oscal.Property{
				{Name: "report-sha256", Ns: propNS, Value: digest},
				{Name: "profile", Ns: propNS, Value: r.Profile},
				{Name: "tenant", Ns: propNS, Value: tenant},
			},
		},
		ImportAp: oscal.ImportAp{Href: "#" + planRes, Remarks: "The assessment plan is the profile's list of controls, evaluated over the verified log entries of the period."},
		Results: []oscal.Result{{
			UUID: id("result"), Title: fmt.Sprintf("%s, %s to %s, %s", r.Profile, r.From, r.To, tenant),
			Description: fmt.Sprintf("Controls of %s evaluated over the log entries of %s from %s to %s, verified at the checkpoint of size %d.", r.Profile, tenant, r.From, r.To, r.Log.Size),
			Start:       from, End: &end,
			ReviewedControls: oscal.ReviewedControls{ControlSelections: []oscal.AssessedControls{{IncludeControls: &include}}},
			Observations:     &observations, Findings: &findings,
		}},
		BackMatter: &oscal.BackMatter{Resources: &[]oscal.Resource{
			{
				UUID: cpRes, Title: "Cosigned checkpoint", Description: "The log's signed checkpoint, with its witness cosignatures, at which the report was computed.",
				Base64: &oscal.Base64{Filename: "checkpoint", MediaType: "text/plain", Value: base64.StdEncoding.EncodeToString([]byte(r.Log.Checkpoint))},
				Rlinks: &[]oscal.ResourceLink{{Href: "checkpoint", MediaType: "text/plain", Hashes: &[]oscal.Hash{{Algorithm: "SHA-256", Value: r.Log.CheckpointSHA256}}}},
			},
			{
				UUID: repRes, Title: "Canonical JSON report", Description: "The report this document renders; monitor verify-report recomputes it from the log.",
				Rlinks: &[]oscal.ResourceLink{{Href: "report.json", MediaType: "application/json", Hashes: &[]oscal.Hash{{Algorithm: "SHA-256", Value: digest}}}},
			},
			{UUID: planRes, Title: r.Title, Description: "The controls of the " + r.Profile + " profile (docs/compliance.md)."},
		}},
	}}
	return json.MarshalIndent(doc, "", "  ")
}

func nonEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

package governance

import (
	"context"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

// Report is a computed compliance report to anchor in the log: what it
// covers, its digest and the checkpoint it was computed at.
type Report struct {
	// Query names the profile, the period, the tenant and the format.
	Query api.ReportQuery
	// SHA256 is the hex digest of the canonical report.
	SHA256 string
	// CheckpointSize and CheckpointRoot (hex) are the checkpoint's.
	CheckpointSize uint64
	CheckpointRoot string
}

// IssueReport appends report.issued (event.SessionReports, in the
// reader's tenant), which anchors a report in the log: anyone who
// recomputes the report from the log's tiles at the same checkpoint finds
// its digest there.
func (c *Clerk) IssueReport(ctx context.Context, r auditlog.Reader, rep Report) (event.Appended, error) {
	q := rep.Query
	return c.record(ctx, r.Tenant, r, &event.Request{
		Session: event.SessionReports, Kind: event.KindReportIssued, Actor: event.ServerActor,
		Attributes: jsonAttrs(map[string]any{
			event.AttrReportProfile: q.Profile, event.AttrReportFrom: q.From.UTC().Format(time.RFC3339), event.AttrReportTo: q.To.UTC().Format(time.RFC3339),
			event.AttrReportTenant: q.Tenant, event.AttrReportFormat: q.Format, event.AttrReportSHA256: rep.SHA256,
			event.AttrReportCheckpointSize: rep.CheckpointSize, event.AttrReportCheckpointRoot: rep.CheckpointRoot,
		}),
	})
}

package governance

// The kinds of the events governance appends (besides the signer and
// signature kinds of package signature), each in its session of
// event.Session*.
const (
	// KindHoldPlaced and KindHoldReleased: a legal hold (event.SessionHolds).
	KindHoldPlaced   = "hold.placed"
	KindHoldReleased = "hold.released"
	// KindErasure: an erasure, with its legal basis (event.SessionErasures).
	KindErasure = "erasure"
	// KindRetentionSet: the retention floor in force for a tenant, or the
	// default (event.SessionRetention).
	KindRetentionSet = "retention.set"
	// KindTokenCreated and KindTokenRevoked: a token change
	// (event.SessionTokens).
	KindTokenCreated = "access.token_created"
	KindTokenRevoked = "access.token_revoked"
	// KindReportIssued: a compliance report, anchored by its digest
	// (event.SessionReports).
	KindReportIssued = "report.issued"
)

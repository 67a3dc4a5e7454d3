package event

// DefaultTenant is the tenant of the log's own records that belong to no
// tenant: the default scope's retention floor, a global monitor's status
// (the tenant of a token created without one; server.DefaultTenant and
// profile.DefaultTenant are this name).
const DefaultTenant = "default"

// LogWide reports whether l is a log-wide record: one that describes the
// log rather than one tenant's work, so that it counts in every tenant's
// compliance report and, on a log of leaf version 3, is tagged with the
// log-wide key that every tenant holds (docs/leaf-format.md "Log-wide
// records"). They are
//
//   - access.token_created and access.token_revoked of a global token
//     (token.global true), in the server's session access.tokens;
//   - monitor.status in the default tenant (a global monitor's);
//   - retention.set of the default scope: the default tenant's, in the
//     server's session retention.
//
// monitor.alert is not log-wide (an alert names the session it is about),
// nor is anything of another tenant than the default one but a global
// token's record. Tenant X's report reads the entries of tenant X and the
// log-wide records, whoever computes it.
func LogWide(l *Leaf) bool {
	switch l.Kind {
	case KindTokenCreated, KindTokenRevoked:
		return l.Session == SessionTokens && l.Attributes.Bool(AttrTokenGlobal)
	case KindMonitorStatus:
		return l.Tenant == DefaultTenant
	case KindRetentionSet:
		return l.Tenant == DefaultTenant && l.Session == SessionRetention
	}
	return false
}

// mayBeLogWide reports whether an event of kind may be a log-wide record
// (LogWide decides): a cheap test on the head before the leaf is parsed.
func mayBeLogWide(kind string) bool {
	switch kind {
	case KindTokenCreated, KindTokenRevoked, KindMonitorStatus, KindRetentionSet:
		return true
	}
	return false
}

// BodyLogWide reports whether the event body is a log-wide record
// (LogWide); a body that does not parse is not.
func BodyLogWide(body []byte) bool {
	h, err := ParseHead(body)
	if err != nil || !mayBeLogWide(h.Kind) {
		return false
	}
	l, err := ParseLeaf(body)
	return err == nil && LogWide(l)
}

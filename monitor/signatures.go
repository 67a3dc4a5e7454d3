package monitor

import "github.com/llmaudittrail/llmaudittrail/signature"

// RuleSignature: a human.signature in the log does not verify, or an
// enrollment breaks the rules (signature.Checker): a bad Ed25519
// signature, a key that was not enrolled (or was revoked) when it signed,
// a statement for another log, tenant or signer, a record that is not the
// one at the statement's index, a statement that appears twice, a signer
// id enrolled twice or a key enrolled for two signers.
const RuleSignature = "signature.invalid"

func signatureAlert(p signature.Problem, tenant, session string) Alert {
	i := p.Index
	return Alert{Rule: RuleSignature, Severity: "critical", Source: SourceIntegrity, Index: &i, Tenant: tenant, Session: session,
		Message: p.Message, Details: map[string]any{"problem": p.Code}}
}

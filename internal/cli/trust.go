package cli

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
)

// maxTrustBytes caps a key or policy file.
const maxTrustBytes = 1 << 20

// ReadTrust reads what a command verifies a log against: the log's note
// verifier key (the file of --log-key) and, if policyPath is not empty, the
// witness policy (--witness-policy), in either form checkpoint.ParsePolicy
// reads. A policy in C2SP tlog-policy form that lists exactly one log
// (DATA/keys/policy does) may stand in for --log-key; a policy that lists
// logs must list the --log-key's.
func ReadTrust(keyPath, policyPath string) (note.Verifier, *checkpoint.Policy, error) {
	var policy *checkpoint.Policy
	if policyPath != "" {
		b, err := ReadFile(policyPath, maxTrustBytes)
		if err != nil {
			return nil, nil, fmt.Errorf("--witness-policy: %w", err)
		}
		if policy, err = checkpoint.ParsePolicy(b); err != nil {
			return nil, nil, fmt.Errorf("--witness-policy: %w", err)
		}
	}
	if keyPath == "" {
		if policy != nil && len(policy.Logs()) == 1 {
			return policy.Logs()[0].Verifier, policy, nil
		}
		return nil, nil, errors.New("--log-key is required (the log's note verifier key, e.g. DATA/keys/log.pub), unless --witness-policy names one log (DATA/keys/policy)")
	}
	b, err := ReadFile(keyPath, maxTrustBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("--log-key: %w", err)
	}
	key, err := checkpoint.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, nil, fmt.Errorf("--log-key: %w", err)
	}
	if policy != nil {
		if err := policy.CheckLog(key); err != nil {
			return nil, nil, fmt.Errorf("--witness-policy: %w", err)
		}
	}
	return key, policy, nil
}

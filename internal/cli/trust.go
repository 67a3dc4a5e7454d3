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
// verifier key (the file of --log-key, required) and, if policyPath is not
// empty, the witness policy (--witness-policy).
func ReadTrust(keyPath, policyPath string) (note.Verifier, *checkpoint.Policy, error) {
	if keyPath == "" {
		return nil, nil, errors.New("--log-key is required (the log's note verifier key, e.g. DATA/keys/log.pub)")
	}
	b, err := ReadFile(keyPath, maxTrustBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("--log-key: %w", err)
	}
	key, err := checkpoint.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, nil, fmt.Errorf("--log-key: %w", err)
	}
	if policyPath == "" {
		return key, nil, nil
	}
	b, err = ReadFile(policyPath, maxTrustBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("--witness-policy: %w", err)
	}
	policy, err := checkpoint.ParsePolicy(b)
	if err != nil {
		return nil, nil, fmt.Errorf("--witness-policy: %w", err)
	}
	return key, policy, nil
}

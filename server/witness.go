package server

import (
	"fmt"

	fmtlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"

	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

// configureWitnesses applies the witness policy, if any, to the log config:
// Tessera asks the witnesses to cosign each checkpoint before publishing it
// and, unless WitnessFailOpen is set, publishes nothing without quorum. The
// same policy verifies every checkpoint the server puts in a receipt.
func (s *Server) configureWitnesses(lc *auditlog.Config) error {
	if len(s.cfg.WitnessPolicy) == 0 {
		return nil
	}
	wg, err := tessera.NewWitnessGroupFromPolicy(s.cfg.WitnessPolicy)
	if err != nil {
		return fmt.Errorf("parsing witness policy: %w", err)
	}
	policy, err := checkpoint.ParsePolicy(s.cfg.WitnessPolicy)
	if err != nil {
		return fmt.Errorf("parsing witness policy: %w", err)
	}
	lc.Witnesses = &wg
	lc.WitnessOptions = &tessera.WitnessOptions{FailOpen: s.cfg.WitnessFailOpen, Timeout: s.cfg.WitnessTimeout}
	if !s.cfg.WitnessFailOpen {
		// Fail-open checkpoints may lack quorum; receipts then carry what
		// was published and auditors apply the policy themselves.
		v := s.keys.Verifier
		lc.VerifyCheckpoint = func(raw []byte) (*fmtlog.Checkpoint, error) { return policy.Verify(raw, v) }
	}
	s.policy = policy
	return nil
}

package server

import (
	"fmt"

	"github.com/transparency-dev/tessera"

	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

// configureWitnesses applies the witness policy, if any, to the log config.
func (s *Server) configureWitnesses(lc *auditlog.Config) error {
	if len(s.cfg.WitnessPolicy) == 0 {
		return nil
	}
	wg, err := tessera.NewWitnessGroupFromPolicy(s.cfg.WitnessPolicy)
	if err != nil {
		return fmt.Errorf("parsing witness policy: %w", err)
	}
	lc.Witnesses = &wg
	lc.WitnessOptions = &tessera.WitnessOptions{FailOpen: s.cfg.WitnessFailOpen, Timeout: s.cfg.WitnessTimeout}
	return nil
}

package server

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"

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
	policy, err := checkpoint.ParsePolicy(s.cfg.WitnessPolicy)
	if err != nil {
		return err
	}
	if err := policy.CheckLog(s.keys.Verifier); err != nil {
		return fmt.Errorf("witness policy: it lists logs, and not this one (%s): %w", s.keys.VKey, err)
	}
	for _, w := range policy.Witnesses() {
		if w.URL == "" {
			return fmt.Errorf("witness policy: witness %s has no URL: the log server asks every witness of its policy to cosign, at URL/add-checkpoint", w.Name)
		}
	}
	wg, err := witnessGroup(policy)
	if err != nil {
		return fmt.Errorf("witness policy: %w", err)
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

// witnessGroup gives Tessera the policy's quorum tree, as parsed once by
// checkpoint.ParsePolicy.
func witnessGroup(p *checkpoint.Policy) (tessera.WitnessGroup, error) {
	if p.Quorum() == nil {
		return tessera.NewWitnessGroup(0), nil
	}
	return group(p.Quorum())
}

func group(n *checkpoint.Node) (tessera.WitnessGroup, error) {
	g := tessera.WitnessGroup{N: n.N}
	for _, c := range n.Children {
		if c.Witness != nil {
			u, err := url.Parse(c.Witness.URL)
			if err != nil {
				return g, err
			}
			w, err := tessera.NewWitness(c.Witness.VKey, u)
			if err != nil {
				return g, fmt.Errorf("witness %s: %w", c.Witness.Name, err)
			}
			g.Components = append(g.Components, w)
			continue
		}
		sub, err := group(c)
		if err != nil {
			return g, err
		}
		g.Components = append(g.Components, sub)
	}
	return g, nil
}

// writeAuditorPolicy writes keys/policy: the policy an auditor should verify
// this log's checkpoints with, in C2SP tlog-policy form (this log's key, the
// witnesses and the quorum of the server's policy, or "quorum none"). It is
// public, and rewritten at every start.
func (s *Server) writeAuditorPolicy() error {
	path := filepath.Join(s.cfg.DataDir, PolicyFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, s.policy.TlogPolicy(s.keys.VKey), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", PolicyFile, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", PolicyFile, err)
	}
	return nil
}

package event

import (
	"errors"
	"testing"
)

func TestPermitSession(t *testing.T) {
	agent := Actor{Type: "agent", ID: "bot"}
	for _, tc := range []struct {
		session string
		actor   Actor
		ok      bool
	}{
		{AccessSession("57c0a65de9ff81f4"), agent, false},
		{SessionTokens, agent, false},
		{"access", agent, false},
		{SessionHolds, agent, false},
		{SessionErasures, agent, false},
		{SessionRetention, agent, false},
		{SessionCompliance, agent, false},
		{SignerSession("dr-smith"), agent, false},
		{"signer", agent, false},
		{SessionReports, agent, false},
		{"s1", ServerActor, false},
		{"s1", Actor{Type: "system", ID: "log-server", OnBehalfOf: "x"}, false},

		{"s1", agent, true},
		{"accessory", agent, true},
		{"holds-2", agent, true},
		{"signers", agent, true},
		{"monitor.m1", Actor{Type: "system", ID: "monitor.m1"}, true},
		{"s1", Actor{Type: "system", ID: "capture"}, true},
		{"s1", Actor{Type: "agent", ID: "log-server"}, true},
	} {
		t.Run(tc.session+" "+tc.actor.Type+" "+tc.actor.ID, func(t *testing.T) {
			err := PermitSession(tc.session, tc.actor)
			if tc.ok && err != nil {
				t.Fatalf("PermitSession = %v, want nil", err)
			}
			if !tc.ok && !errors.Is(err, ErrReservedSession) {
				t.Fatalf("PermitSession = %v, want ErrReservedSession", err)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestVerifyEnvelopeLog: loadgen's --verify on a log of leaf version 3
// and one of version 4, with a global token (every bundle re-hashed, each envelope's body read
// and checked) and with a tenant's token (an inclusion proof per event,
// through the envelope), passes; an acked event whose leaf hash is not
// the log's fails.
func TestVerifyEnvelopeLog(t *testing.T) {
	for _, v := range []int{event.LeafVersionEnvelope, event.LeafVersionFields} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) { testVerifyEnvelopeLog(t, v) })
	}
}

func testVerifyEnvelopeLog(t *testing.T, v int) {
	s := servertest.Start(t, func(c *server.Config) { c.LeafVersion = v })
	ctx := context.Background()
	w := s.Client(s.Token(auth.Spec{Name: "w", Tenant: "bank-alpha", Scopes: []string{auth.ScopeWrite, auth.ScopeRead}}))
	var acks []acked
	for i := range 12 {
		out, err := w.Append(ctx, []*event.Request{{Session: fmt.Sprintf("s%d", i%3), Kind: "tool.call", Actor: event.Actor{Type: "agent", ID: "a"}}})
		if err != nil {
			t.Fatal(err)
		}
		a := out[0]
		if e, err := event.ParseEnvelope(a.Envelope); err != nil || e.Version() != v {
			t.Fatalf("the write answer's envelope is not of version %d: %q, %v", v, a.Envelope, err)
		}
		acks = append(acks, acked{id: a.ID, indexed: a.Indexed, session: a.Session, index: a.Index, seq: a.Seq, leafHash: a.LeafHash})
	}
	raw, err := os.ReadFile(s.LogPub)
	if err != nil {
		t.Fatal(err)
	}
	key, err := checkpoint.NewVerifier(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	for name, lc := range map[string]*client.Client{"global": s.Client(s.Admin), "tenant": w} {
		var out bytes.Buffer
		if err := verify(lc, key, nil, acks, &out); err != nil {
			t.Errorf("%s: verify = %v\n%s", name, err, out.String())
		}
	}
	bad := append([]acked(nil), acks...)
	bad[5].leafHash = event.LeafHash([]byte("another"))
	if err := verify(s.Client(s.Admin), key, nil, bad, &bytes.Buffer{}); err == nil {
		t.Error("verify passed an acked event the log does not hold")
	}
}

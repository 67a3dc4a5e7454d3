package client_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/checkpoint"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// TestFieldsOfBody: on a log of leaf version 4 the client asks for body
// and payload fields in one request, and the answer verifies.
func TestFieldsOfBody(t *testing.T) {
	s := servertest.Start(t, func(c *server.Config) { c.LeafVersion = event.LeafVersionFields })
	ctx := context.Background()
	c := s.Client(s.Admin)
	w, err := c.Append(ctx, []*event.Request{{Session: "s1", Kind: "llm.request", Actor: event.Actor{Type: "agent", ID: "a1"},
		Attributes: map[string]json.RawMessage{"gen_ai.request.model": json.RawMessage(`"gpt-4o"`)},
		Payload:    json.RawMessage(`{"model":"gpt-4o","messages":[{"role":"user","content":"secret"}]}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(w[0].FieldSalt) == 0 {
		t.Fatal("no field salt in the write answer")
	}
	d, err := c.FieldsOf(ctx, w[0].Index, []string{"model"}, []string{`attributes["gen_ai.request.model"]`, "seq"})
	if err != nil {
		t.Fatal(err)
	}
	lv, _ := checkpoint.NewVerifier(s.Srv.VerifierKey())
	vd, err := api.NewReceiptVerifier(lv, nil).VerifyDisclosure(d)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(map[string]any{"body": vd.Body.Claims, "payload": vd.Fields.Claims})
	// The body shows the id and payload commitment it always carries,
	// and the two fields asked for.
	var m struct {
		Body struct {
			Attributes map[string]string `json:"attributes"`
			Seq        *int              `json:"seq"`
			ID         string            `json:"id"`
			Kind       *string           `json:"kind"`
		} `json:"body"`
		Payload map[string]any `json:"payload"`
	}
	json.Unmarshal(got, &m)
	if m.Body.Attributes["gen_ai.request.model"] != "gpt-4o" || m.Body.Seq == nil || *m.Body.Seq != 0 || m.Body.ID != w[0].ID ||
		m.Body.Kind != nil || m.Payload["model"] != "gpt-4o" || len(m.Payload) != 1 {
		t.Errorf("disclosed %s", got)
	}
}

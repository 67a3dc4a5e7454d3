package client_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/disclosure"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// TestPayloadChecksTheFieldCommitment: a whole payload opens its leaf only
// if it opens the field commitment too, so that a log cannot commit to one
// payload whole and to other fields one by one.
func TestPayloadChecksTheFieldCommitment(t *testing.T) {
	salt := bytes.Repeat([]byte{3}, 32)
	payload := []byte(`{"model":"gpt-4o","usage":{"input_tokens":1}}`)
	other, _ := disclosure.Build(salt, []byte(`{"model":"gpt-3.5","usage":{"input_tokens":1}}`))
	own, _ := disclosure.Build(salt, payload)
	for _, c := range []struct {
		name, sd string
		want     error
	}{
		{"own fields", own.Hash(), nil},
		{"no field commitment", "", nil},
		{"another payload's fields", other.Hash(), client.ErrCommitment},
	} {
		t.Run(c.name, func(t *testing.T) {
			commit := event.NewCommitment(salt, payload, "application/json")
			commit.SD = c.sd
			l := &event.Leaf{V: event.LeafVersion, ID: "0123456789abcdef0123456789abcdef", Kind: "llm.request", Time: event.TimeFormat,
				Tenant: "t", Session: "s", Actor: event.Actor{Type: "agent", ID: "a"}, Writer: &event.Writer{Token: "w", Via: event.ViaAPI}, Payload: commit}
			leaf, _ := l.Marshal()
			acc, _ := (&event.Leaf{V: event.LeafVersion, ID: "fedcba9876543210fedcba9876543210", Kind: "access.read", Time: event.TimeFormat,
				Tenant: "t", Session: "access.w", Actor: event.Actor{Type: "human", ID: "token.w"}, Writer: &event.Writer{Token: "w", Via: event.ViaServer}}).Marshal()
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				json.NewEncoder(w).Encode(api.PayloadResponse{Index: 7, ID: l.ID, Leaf: base64.StdEncoding.EncodeToString(leaf), MediaType: "application/json",
					Size: len(payload), PayloadBase64: base64.StdEncoding.EncodeToString(payload), Salt: hex.EncodeToString(salt), Commitment: commit,
					Access: api.NewEventResponse(event.Appended{ID: "fedcba9876543210fedcba9876543210", Index: 8, Indexed: true, Session: "access.w", Leaf: acc, LeafHash: event.LeafHash(acc)})})
			}))
			defer hs.Close()
			cl, _ := client.New(hs.URL)
			_, err := cl.Payload(context.Background(), 7)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Payload = %v, want %v", err, c.want)
			}
		})
	}
}

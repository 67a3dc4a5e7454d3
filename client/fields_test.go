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
// if it opens the field commitment too, in the version the leaf names
// (sd_v), so that a log cannot commit to one payload whole and to other
// fields one by one: for a single read (Payload) and for a page of a
// session's payloads (SessionPayloads), which leaves the payload out.
func TestPayloadChecksTheFieldCommitment(t *testing.T) {
	salt := bytes.Repeat([]byte{3}, 32)
	payload := []byte(`{"model":"gpt-4o","usage":{"input_tokens":1}}`)
	other, _ := disclosure.Build(salt, []byte(`{"model":"gpt-3.5","usage":{"input_tokens":1}}`))
	own, _ := disclosure.Build(salt, payload)
	old, _ := disclosure.BuildVersion(disclosure.V1, salt, payload)
	for _, c := range []struct {
		name string
		sd   string
		sdv  int
		want error
	}{
		{"own fields", own.Hash(), 2, nil},
		{"own fields, version 1 (no sd_v)", old.Hash(), 0, nil},
		{"no field commitment", "", 0, nil},
		{"another payload's fields", other.Hash(), 2, client.ErrCommitment},
		{"own fields labelled version 1", own.Hash(), 0, client.ErrCommitment},
		{"version 1 fields labelled version 2", old.Hash(), 2, client.ErrCommitment},
	} {
		t.Run(c.name, func(t *testing.T) {
			commit := event.NewCommitment(salt, payload, "application/json")
			commit.SD, commit.SDV = c.sd, c.sdv
			l := &event.Leaf{V: event.LeafVersion, ID: "0123456789abcdef0123456789abcdef", Kind: "llm.request", Time: event.TimeFormat,
				Tenant: "t", Session: "s", Actor: event.Actor{Type: "agent", ID: "a"}, Writer: &event.Writer{Token: "w", Via: event.ViaAPI}, Payload: commit}
			leaf, err := l.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			acc, _ := (&event.Leaf{V: event.LeafVersion, ID: "fedcba9876543210fedcba9876543210", Kind: "access.read", Time: event.TimeFormat,
				Tenant: "t", Session: "access.w", Actor: event.Actor{Type: "human", ID: "token.w"}, Writer: &event.Writer{Token: "w", Via: event.ViaServer}}).Marshal()
			access := api.NewEventResponse(event.Appended{ID: "fedcba9876543210fedcba9876543210", Index: 8, Indexed: true, Session: "access.w", Leaf: acc, LeafHash: event.LeafHash(acc)})
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/sessions/s/payloads" {
					json.NewEncoder(w).Encode(api.SessionPayloadsResponse{Tenant: "t", Session: "s", Access: access, Events: []api.SessionPayloadEntry{{
						Index: 7, Leaf: base64.StdEncoding.EncodeToString(leaf), Status: api.PayloadOK, MediaType: "application/json",
						PayloadBase64: base64.StdEncoding.EncodeToString(payload), Salt: hex.EncodeToString(salt)}}})
					return
				}
				json.NewEncoder(w).Encode(api.PayloadResponse{Index: 7, ID: l.ID, Leaf: base64.StdEncoding.EncodeToString(leaf), MediaType: "application/json",
					Size: len(payload), PayloadBase64: base64.StdEncoding.EncodeToString(payload), Salt: hex.EncodeToString(salt), Commitment: commit,
					Access: access})
			}))
			defer hs.Close()
			cl, _ := client.New(hs.URL)
			_, err = cl.Payload(context.Background(), 7)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Payload = %v, want %v", err, c.want)
			}
			page, err := cl.SessionPayloads(context.Background(), "s", client.SessionQuery{})
			if err != nil || len(page.Events) != 1 {
				t.Fatalf("SessionPayloads = %v, %v", page, err)
			}
			p := page.Events[0]
			if c.want == nil && (p.Err != nil || !bytes.Equal(p.Payload, payload)) || c.want != nil && (!errors.Is(p.Err, c.want) || p.Payload != nil) {
				t.Fatalf("SessionPayloads: payload %q, error %v, want %v", p.Payload, p.Err, c.want)
			}
		})
	}
}

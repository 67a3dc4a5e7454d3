package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	auditlog "github.com/llmaudittrail/llmaudittrail/log"
)

func main() {
	payload := `{"model":"gpt-4o","messages":[{"role":"user","content":"Summarise the discharge note."}]}`
	salt, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	l := auditlog.Leaf{
		V: 1, ID: "5f2b8e0c9a7d4e31b6c0a1f2e3d4c5b6", Kind: "llm.request", Time: "2026-11-27T10:00:00.123456789Z",
		Tenant: "clinic-a", Session: "sess-42", Seq: 1,
		Prev:  "b1c2a3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
		Actor: auditlog.Actor{Type: "agent", ID: "triage-bot", OnBehalfOf: "dr.smith"},
		Attributes: map[string]any{
			"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
		},
		Payload: &auditlog.Commitment{Alg: "hmac-sha256", Digest: hex.EncodeToString(auditlog.Commit(salt, []byte(payload))), Size: len(payload), MediaType: "application/json"},
	}
	b, _ := l.Marshal()
	out := map[string]any{
		"comment":     "LLMAuditTrail leaf format v1 test vector: see docs/leaf-format.md. Rebuild: go run ./testdata/genvec (not needed unless the format changes).",
		"leaf_fields": l, "payload": payload, "salt": hex.EncodeToString(salt),
		"leaf": string(b), "leaf_hash": hex.EncodeToString(auditlog.LeafHash(b)),
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

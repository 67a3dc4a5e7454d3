package disclosure

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// conversation is a chat request of n turns with a few tools, as an agent
// sends it late in a session.
func conversation(n int) []byte {
	msgs := []any{map[string]any{"role": "system", "content": "You are a clinical triage assistant. " + strings.Repeat("Follow the protocol. ", 20)}}
	for i := range n {
		msgs = append(msgs, map[string]any{"role": "user", "content": fmt.Sprintf("Turn %d: %s", i, strings.Repeat("the patient reports symptoms ", 12))},
			map[string]any{"role": "assistant", "content": strings.Repeat("Noted, checking the record. ", 8)})
	}
	tools := []any{}
	for i := range 4 {
		tools = append(tools, map[string]any{"type": "function", "function": map[string]any{"name": fmt.Sprintf("tool_%d", i),
			"description": "Reads part of a record", "parameters": map[string]any{"type": "object", "properties": map[string]any{"id": map[string]any{"type": "string"}}}}})
	}
	b, _ := json.Marshal(map[string]any{"model": "gpt-4o", "messages": msgs, "tools": tools, "temperature": 0.2, "max_tokens": 1024})
	return b
}

// BenchmarkBuild is what the field commitment adds to an append with a
// JSON payload (Build, then the root hash; commitment: Commitment, which
// the append calls); hmac is the payload commitment
// over the same bytes, which every payload pays, measured in the same run.
func BenchmarkBuild(b *testing.B) {
	b.Run("prompt/bytes=1024/commitment", func(b *testing.B) {
		p := fmt.Appendf(nil, `{"prompt":%q}`, strings.Repeat("a", 1024-13)) // loadgen's payload
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			if _, err := Commitment(testSalt, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, turns := range []int{1, 20, 200} {
		p := conversation(turns)
		b.Run(fmt.Sprintf("turns=%d/bytes=%d/sd", turns, len(p)), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				t, err := Build(testSalt, p)
				if err != nil {
					b.Fatal(err)
				}
				_ = t.Hash()
			}
		})
		b.Run(fmt.Sprintf("turns=%d/bytes=%d/commitment", turns, len(p)), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, err := Commitment(testSalt, p); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("turns=%d/bytes=%d/hmac", turns, len(p)), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				m := hmac.New(sha256.New, testSalt)
				m.Write(p)
				m.Sum(nil)
			}
		})
	}
}

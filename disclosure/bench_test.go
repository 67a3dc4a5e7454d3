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

// BenchmarkBuild is what the field commitment costs for a JSON payload:
// sd is Build, then the root hash, in the current version (V2, with decoy
// digests), sd-v1 the same without decoys; commitment is Commitment, the
// same root hash without keeping the disclosures, which an append calls;
// prompt is loadgen's 1 KiB payload; hmac is the payload commitment over
// the same bytes, which every payload pays, measured in the same run. cpu-ns/op is the process's CPU time per
// operation (GC included), which a loaded machine inflates less than the
// wall time of ns/op.
func BenchmarkBuild(b *testing.B) {
	prompt := fmt.Appendf(nil, `{"prompt":%q}`, strings.Repeat("a", 1024-13)) // loadgen's payload
	b.Run(fmt.Sprintf("prompt/bytes=%d/sd", len(prompt)), func(b *testing.B) {
		b.SetBytes(int64(len(prompt)))
		cpu := cpuTime()
		for b.Loop() {
			t, err := Build(testSalt, prompt)
			if err != nil {
				b.Fatal(err)
			}
			_ = t.Hash()
		}
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	})
	b.Run(fmt.Sprintf("prompt/bytes=%d/commitment", len(prompt)), func(b *testing.B) {
		b.SetBytes(int64(len(prompt)))
		cpu := cpuTime()
		for b.Loop() {
			if _, err := Commitment(testSalt, prompt); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	})
	for _, turns := range []int{1, 20, 200} {
		p := conversation(turns)
		b.Run(fmt.Sprintf("turns=%d/bytes=%d/sd", turns, len(p)), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			cpu := cpuTime()
			for b.Loop() {
				t, err := Build(testSalt, p)
				if err != nil {
					b.Fatal(err)
				}
				_ = t.Hash()
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
		b.Run(fmt.Sprintf("turns=%d/bytes=%d/sd-v1", turns, len(p)), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			cpu := cpuTime()
			for b.Loop() {
				t, err := BuildVersion(V1, testSalt, p)
				if err != nil {
					b.Fatal(err)
				}
				_ = t.Hash()
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
		b.Run(fmt.Sprintf("turns=%d/bytes=%d/commitment", turns, len(p)), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			cpu := cpuTime()
			for b.Loop() {
				if _, err := Commitment(testSalt, p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
		b.Run(fmt.Sprintf("turns=%d/bytes=%d/hmac", turns, len(p)), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			cpu := cpuTime()
			for b.Loop() {
				m := hmac.New(sha256.New, testSalt)
				m.Write(p)
				m.Sum(nil)
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkCommitmentRecorded is the field commitment of a recorded call's
// two payloads as replay's BenchmarkRebuild has them (a 1 KiB chat request
// and its answer), as a reader checks it (CommitmentVersion, V2).
//
//	go test ./disclosure -run '^$' -bench CommitmentRecorded -benchmem
func BenchmarkCommitmentRecorded(b *testing.B) {
	req, _ := json.Marshal(map[string]any{"model": "gpt-4o", "messages": []map[string]string{{"role": "system", "content": "You are a careful agent."},
		{"role": "user", "content": "Question 7: " + strings.Repeat("context ", 110)}}})
	resp := []byte(`{"id":"chatcmpl-000007","object":"chat.completion","created":1764600000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Answer 7."},"finish_reason":"stop"}],"usage":{"prompt_tokens":262,"completion_tokens":4,"total_tokens":266}}`)
	for _, p := range []struct {
		name    string
		payload []byte
	}{{"request", req}, {"response", resp}} {
		b.Run(fmt.Sprintf("%s/bytes=%d", p.name, len(p.payload)), func(b *testing.B) {
			b.SetBytes(int64(len(p.payload)))
			cpu := cpuTime()
			for b.Loop() {
				if _, err := CommitmentVersion(V2, testSalt, p.payload); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

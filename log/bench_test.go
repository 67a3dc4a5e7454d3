package log

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// BenchmarkAppendDurable appends events with 1 KiB payloads from 64
// writers, one session each, acknowledged at durability: the engine's work
// per event without HTTP (prepare, leaf, seal, journal, then vault, Tessera
// and the session index behind). cpu-us/event is the process's CPU time per
// event, everything included.
//
//	go test ./log -run '^$' -bench AppendDurable -benchtime 4000x
func BenchmarkAppendDurable(b *testing.B) {
	l := newTestLog(b, nil)
	payload := json.RawMessage(`{"prompt":"` + strings.Repeat("a", 1000) + `"}`)
	var next atomic.Int64
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	start := ru.Utime.Nano() + ru.Stime.Nano()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		session := fmt.Sprintf("s%d", next.Add(1))
		for pb.Next() {
			r := req(session)
			r.Kind = "llm.request"
			r.Attributes = map[string]json.RawMessage{"gen_ai.request.model": json.RawMessage(`"gpt-4o-mini"`), "gen_ai.usage.input_tokens": json.RawMessage(`712`)}
			r.Payload = payload
			if _, err := l.AppendWait(context.Background(), "t", testWriter, []*event.Request{r}, WaitDurable); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if err := l.WaitIndexed(context.Background()); err != nil {
		b.Fatal(err)
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	b.ReportMetric(float64(ru.Utime.Nano()+ru.Stime.Nano()-start)/1000/float64(b.N), "cpu-us/event")
}

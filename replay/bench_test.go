package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/replay"
)

// benchSession writes a session of calls as the capture proxy records
// them: per call an llm.request with the request body (about 1 KiB, or
// with grow a conversation that grows by one exchange a call) and an
// llm.response with the answer, both as payloads.
func benchSession(b *testing.B, w *world, session string, calls int, grow bool) [][]byte {
	b.Helper()
	c, _ := client.New(w.ts.URL, client.WithToken(w.write))
	var bodies [][]byte
	msgs := []map[string]string{{"role": "system", "content": "You are a careful agent."}}
	var batch []*event.Request
	pending := 0
	for i := range calls {
		if !grow {
			msgs = msgs[:1]
		}
		msgs = append(msgs, map[string]string{"role": "user", "content": fmt.Sprintf("Question %d: %s", i, strings.Repeat("context ", 110))})
		req, _ := json.Marshal(map[string]any{"model": "gpt-4o", "messages": msgs})
		bodies = append(bodies, req)
		resp := fmt.Sprintf(`{"id":"chatcmpl-%06d","object":"chat.completion","created":1764600000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Answer %d."},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":4,"total_tokens":%d}}`, i, i, len(req)/4, len(req)/4+4)
		msgs = append(msgs, map[string]string{"role": "assistant", "content": fmt.Sprintf("Answer %d.", i)})
		attrs := func(kv ...any) map[string]json.RawMessage {
			m := map[string]json.RawMessage{}
			for j := 0; j+1 < len(kv); j += 2 {
				v, _ := json.Marshal(kv[j+1])
				m[kv[j].(string)] = v
			}
			return m
		}
		id := fmt.Sprintf("%032x", i+1)
		batch = append(batch,
			&event.Request{Session: session, Kind: "llm.request", Actor: event.Actor{Type: "agent", ID: "bench-bot"}, Payload: req,
				Attributes: attrs("capture.call.id", id, "capture.attempt", 0, "gen_ai.provider.name", "openai", "capture.upstream", "openai",
					"capture.api", "openai.chat.completions", "url.path", "/v1/chat/completions", "gen_ai.request.model", "gpt-4o")},
			&event.Request{Session: session, Kind: "llm.response", Actor: event.Actor{Type: "agent", ID: "bench-bot"}, Payload: json.RawMessage(resp),
				Attributes: attrs("capture.call.id", id, "capture.attempt", 0, "http.response.status_code", 200, "capture.outcome", "complete",
					"gen_ai.response.model", "gpt-4o-2024-08-06")})
		pending += len(req) + len(resp)
		if len(batch) >= 400 || pending > 1<<20 || i == calls-1 {
			pending = 0
			if _, err := c.Append(context.Background(), batch, client.WaitForCheckpoint()); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return bodies
}

// BenchmarkRebuild rebuilds a 20,000-event session (10,000 calls) with its
// payloads (every event proved included, the chain, every commitment) over
// loopback HTTP, from the session export (one stream) and by pages (the
// listing, the entry bundles and the payload pages, 1,000 events a
// request), each against the baseline of only reading what it reads,
// verifying nothing. Server and client share the machine.
//
//	go test ./replay -run '^$' -bench Rebuild -benchtime 5x
func BenchmarkRebuild(b *testing.B) {
	w := newWorld(b)
	const calls = 10_000
	benchSession(b, w, "bench", calls, false)
	src := w.source(w.ts.URL)
	pages := src
	pages.NoExport = true
	rebuild := func(b *testing.B, src replay.Source, via string) {
		defer cpuPerEvent(b, 2*calls)()
		for b.Loop() {
			s, err := replay.Rebuild(context.Background(), src, replay.Query{Session: "bench", Payloads: true})
			if err != nil {
				b.Fatal(err)
			}
			if !s.Verified() || len(s.Events) != 2*calls || s.Via != via || s.Events[2*calls-1].PayloadStatus != api.PayloadOK {
				b.Fatalf("%d events via %s, problems %v", len(s.Events), s.Via, s.Problems)
			}
		}
		b.ReportMetric(float64(2*calls)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}
	b.Run("pages/baseline-read-only", func(b *testing.B) {
		defer cpuPerEvent(b, 2*calls)()
		for b.Loop() {
			n := 0
			for from := uint64(0); ; {
				p, err := src.Log.Session(context.Background(), "bench", client.SessionQuery{FromSeq: from, Limit: 1000})
				if err != nil {
					b.Fatal(err)
				}
				n += len(p.Events)
				if len(p.Events) < 1000 {
					break
				}
				from = p.Events[len(p.Events)-1].Seq + 1
			}
			for from := uint64(0); ; {
				d, err := src.Log.SessionPayloads(context.Background(), "bench", client.SessionQuery{FromSeq: from})
				if err != nil {
					b.Fatal(err)
				}
				if d.NextSeq == nil {
					break
				}
				from = *d.NextSeq
			}
			if n != 2*calls {
				b.Fatalf("%d events", n)
			}
		}
		b.ReportMetric(float64(2*calls)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("pages/rebuild-with-payloads", func(b *testing.B) { rebuild(b, pages, replay.ViaPages) })
	b.Run("export/baseline-read-only", func(b *testing.B) {
		hc := src.Log.HTTPClient()
		hc.Timeout = 0
		n := int64(0)
		defer cpuPerEvent(b, 2*calls)()
		for b.Loop() {
			resp, err := hc.Get(w.ts.URL + "/v1/sessions/bench/export?payloads=true")
			if err != nil {
				b.Fatal(err)
			}
			if n, err = io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
				b.Fatalf("%d, %v", resp.StatusCode, err)
			}
			resp.Body.Close()
		}
		b.ReportMetric(float64(2*calls)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(n)/(2*calls), "bytes/event")
	})
	b.Run("export/rebuild-with-payloads", func(b *testing.B) { rebuild(b, src, replay.ViaExport) })
}

// cpuPerEvent reports the CPU time of the process (server and client: they
// share it) per event over the benchmark's loop; call the function it
// returns after the loop.
func cpuPerEvent(b *testing.B, events int) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		b.ReportMetric(float64((cpu()-start).Microseconds())/float64(events*b.N), "cpu-µs/event")
	}
}

// BenchmarkReplayCall measures a replayed call over loopback HTTP (a
// request compared with the recorded one, field by field, then the
// recorded answer), against the baseline of a handler that answers the
// same bytes without looking at the request.
//
//	go test ./replay -run '^$' -bench ReplayCall -benchtime 5x
func BenchmarkReplayCall(b *testing.B) {
	w := newWorld(b)
	const calls = 100
	bodies := benchSession(b, w, "calls", calls, true)
	src := w.source(w.ts.URL)
	s, err := replay.Rebuild(context.Background(), src, replay.Query{Session: "calls", Payloads: true})
	if err != nil {
		b.Fatal(err)
	}
	if !s.Verified() {
		b.Fatal(s.Problems)
	}
	answer := s.Events[1].Payload
	total := 0
	for _, body := range bodies {
		total += len(body)
	}
	b.Logf("%d calls, requests of %d bytes on average (a conversation growing to %d bytes)", calls, total/calls, len(bodies[len(bodies)-1]))
	post := func(url string, body []byte) {
		resp, err := http.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.Run("baseline-fixed-answer", func(b *testing.B) {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Write(answer)
		}))
		defer ts.Close()
		for b.Loop() {
			for _, body := range bodies {
				post(ts.URL+"/proxy/openai/v1/chat/completions", body)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*calls), "us/call")
	})
	b.Run("replay", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer() // setting up the replay is not a call's latency
			r, err := replay.NewReplayer(s, replay.Options{})
			if err != nil {
				b.Fatal(err)
			}
			ts := httptest.NewServer(r)
			b.StartTimer()
			for _, body := range bodies {
				post(ts.URL+"/proxy/openai/v1/chat/completions", body)
			}
			b.StopTimer()
			ts.Close()
			b.StartTimer()
			if v := r.Verdict(); v.Verdict != replay.Reproduced {
				b.Fatalf("%+v", v)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*calls), "us/call")
	})
}

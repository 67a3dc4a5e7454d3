package capture_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	auditlog "github.com/llmaudittrail/llmaudittrail/log"

	"github.com/openai/openai-go/v3"
	oaoption "github.com/openai/openai-go/v3/option"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/internal/servertest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// benchUpstream answers chat completions at once, streamed (6 events and
// [DONE]) or not, and keeps nothing: what the benchmark measures is what
// capture adds.
func benchUpstream(b *testing.B) *httptest.Server {
	body := `{"id":"chatcmpl-b","object":"chat.completion","created":1700000000,"model":"gpt-bench","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		strings.Repeat("lorem ipsum ", 40) + `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":100,"total_tokens":150}}`
	chunk := func(delta string) string {
		return `data: {"id":"chatcmpl-b","object":"chat.completion.chunk","created":1700000000,"model":"gpt-bench","choices":[{"index":0,"delta":` + delta + `,"finish_reason":null}]}` + "\n\n"
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(req), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range 6 {
			io.WriteString(w, chunk(fmt.Sprintf(`{"content":"token %d "}`, i)))
			rc.Flush()
		}
		io.WriteString(w, `data: {"id":"chatcmpl-b","object":"chat.completion.chunk","created":1700000000,"model":"gpt-bench","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":6,"total_tokens":56}}`+"\n\ndata: [DONE]\n\n")
	}))
	b.Cleanup(ts.Close)
	return ts
}

// benchServer is a log server with its proxy in one capture mode.
type benchServer struct {
	srv    *server.Server
	ts     *httptest.Server
	token  string
	events atomic.Int64 // events the benchmark caused
}

func newBenchServer(b *testing.B, upstream, mode string, batchAge time.Duration) *benchServer {
	st := servertest.Start(b, func(c *server.Config) {
		c.CheckpointInterval, c.BatchMaxAge = time.Second, batchAge
		c.Upstreams, c.CaptureMode = map[string]string{"openai": upstream}, mode
	})
	return &benchServer{srv: st.Srv, ts: st.HS, token: st.Token(auth.Spec{Name: "bench", Tenant: server.DefaultTenant, Scopes: []string{auth.ScopeWrite}})}
}

// settle waits until every event the benchmark caused is in the log, so
// that one variant's background records do not run into the next one's
// measurements (and so that the records are known to have happened).
func (s *benchServer) settle(b *testing.B) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		size, err := s.srv.Log().Reader().IntegratedSize(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if int64(size) >= s.events.Load() {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("log holds %d events, %d expected", size, s.events.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func pct(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, len(s)*p/100)]) / float64(time.Millisecond)
}

// BenchmarkCapture compares an OpenAI SDK call made directly with the same
// call through the capture proxy and through the Hook middleware, in
// FailOpen and FailClosed modes, with 1 and 64 concurrent agents, for a
// plain and a streamed chat completion. The upstream answers at once, so
// the figures are what capture adds. Metrics: p50-ms and p99-ms per call,
// added-p50-ms and added-p99-ms over the direct call of the same shape,
// and for streams ttfc-* (time to the first chunk). The log uses the
// server's default batching (10 ms) unless the name says batch=1ms.
//
//	go test ./capture -run '^$' -bench BenchmarkCapture -benchtime 300x
func BenchmarkCapture(b *testing.B) {
	up := benchUpstream(b)
	open := newBenchServer(b, up.URL, "fail-open", auditlog.DefaultBatchMaxAge)
	closed := newBenchServer(b, up.URL, "fail-closed", auditlog.DefaultBatchMaxAge)
	closedFast := newBenchServer(b, up.URL, "fail-closed", time.Millisecond)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 1024, IdleConnTimeout: time.Minute}}

	type variant struct {
		name   string
		srv    *benchServer // where events go, nil for direct
		client func(agent int) (openai.Client, context.Context)
	}
	hook := func(s *benchServer, mode capture.Mode) *capture.Hook {
		h, err := capture.NewHook(capture.NewHTTPRecorder(mustClient(s.ts.URL, s.token)), capture.WithMode(mode), capture.WithLogger(quiet))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close(context.Background()) })
		return h
	}
	direct := func(int) (openai.Client, context.Context) {
		return openai.NewClient(oaoption.WithHTTPClient(hc), oaoption.WithAPIKey(openaiKey), oaoption.WithBaseURL(up.URL+"/v1/")), context.Background()
	}
	viaProxy := func(s *benchServer) func(int) (openai.Client, context.Context) {
		return func(agent int) (openai.Client, context.Context) {
			return openai.NewClient(oaoption.WithHTTPClient(hc), oaoption.WithAPIKey(openaiKey), oaoption.WithBaseURL(s.ts.URL+"/proxy/openai/v1/"),
				oaoption.WithHeader(capture.HeaderToken, s.token), oaoption.WithHeader(capture.HeaderSession, fmt.Sprintf("bench-proxy-%d", agent))), context.Background()
		}
	}
	viaHook := func(h *capture.Hook) func(int) (openai.Client, context.Context) {
		return func(agent int) (openai.Client, context.Context) {
			return openai.NewClient(oaoption.WithHTTPClient(hc), oaoption.WithAPIKey(openaiKey), oaoption.WithBaseURL(up.URL+"/v1/"), oaoption.WithMiddleware(h.Middleware)),
				capture.ContextWithSession(context.Background(), fmt.Sprintf("bench-hook-%d", agent))
		}
	}
	hooks := map[*benchServer]*capture.Hook{
		open: hook(open, capture.FailOpen), closed: hook(closed, capture.FailClosed), closedFast: hook(closedFast, capture.FailClosed),
	}
	variants := []variant{
		{"direct", nil, direct},
		{"proxy/fail-open", open, viaProxy(open)},
		{"proxy/fail-closed", closed, viaProxy(closed)},
		{"proxy/fail-closed/batch=1ms", closedFast, viaProxy(closedFast)},
		{"middleware/fail-open", open, viaHook(hooks[open])},
		{"middleware/fail-closed", closed, viaHook(hooks[closed])},
		{"middleware/fail-closed/batch=1ms", closedFast, viaHook(hooks[closedFast])},
	}

	type baseline struct{ p50, p99, ttfc50 float64 }
	base := map[string]baseline{}
	for _, stream := range []bool{false, true} {
		for _, agents := range []int{1, 64} {
			shape := fmt.Sprintf("stream=%v/agents=%d", stream, agents)
			for _, v := range variants {
				b.Run(shape+"/"+v.name, func(b *testing.B) {
					clients := make([]openai.Client, agents)
					ctxs := make([]context.Context, agents)
					for i := range clients {
						clients[i], ctxs[i] = v.client(i)
					}
					lat := make([][]time.Duration, agents)
					ttfc := make([][]time.Duration, agents)
					var next atomic.Int64
					var wg sync.WaitGroup
					b.ResetTimer()
					cpu0 := processCPU()
					for a := range agents {
						wg.Go(func() {
							for next.Add(1) <= int64(b.N) {
								p := chatParams("gpt-bench", "benchmark prompt")
								start := time.Now()
								if !stream {
									if _, err := clients[a].Chat.Completions.New(ctxs[a], p); err != nil {
										b.Error(err)
										return
									}
								} else {
									p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
									s := clients[a].Chat.Completions.NewStreaming(ctxs[a], p)
									first := true
									for s.Next() {
										if first {
											ttfc[a] = append(ttfc[a], time.Since(start))
											first = false
										}
									}
									if s.Err() != nil {
										b.Error(s.Err())
										return
									}
								}
								lat[a] = append(lat[a], time.Since(start))
							}
						})
					}
					wg.Wait()
					b.StopTimer()
					all, firsts := slices.Concat(lat...), slices.Concat(ttfc...)
					if v.srv != nil {
						v.srv.events.Add(int64(2 * len(all)))
						if h := hooks[v.srv]; strings.HasPrefix(v.name, "middleware") {
							h.Flush(context.Background())
						}
						v.srv.settle(b)
					}
					// Up to the calls' records in the log: fail-open ones
					// may still be in the background when the last call ends.
					cpu := processCPU() - cpu0
					got := baseline{pct(all, 50), pct(all, 99), pct(firsts, 50)}
					b.ReportMetric(got.p50, "p50-ms")
					b.ReportMetric(got.p99, "p99-ms")
					// The whole process's CPU (agents, upstream, proxy and
					// log, up to the calls' records) per call; what capture
					// costs is its excess over direct.
					b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/call")
					if stream {
						b.ReportMetric(got.ttfc50, "ttfc-p50-ms")
						b.ReportMetric(pct(firsts, 99), "ttfc-p99-ms")
					}
					if v.srv == nil {
						base[shape] = got
					} else if d, ok := base[shape]; ok {
						b.ReportMetric(got.p50-d.p50, "added-p50-ms")
						b.ReportMetric(got.p99-d.p99, "added-p99-ms")
						if stream {
							b.ReportMetric(got.ttfc50-d.ttfc50, "added-ttfc-p50-ms")
						}
					}
				})
			}
		}
	}
}

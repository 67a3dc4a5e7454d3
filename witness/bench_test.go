package witness_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/internal/witnesstest"
)

// BenchmarkAddCheckpoint measures add-checkpoint over loopback HTTP for our
// witness (cmd/witness as a separate process) next to litewitness and
// omniwitness, in the same run. Each request grows a log by one entry (a
// full consistency proof, a durable state update and a cosignature).
//
//	serial:      one client, one log: latency of a single request.
//	parallel-4:  four clients, each growing its own log (not omniwitness,
//	             which answers 429 to concurrent writes).
//
// Reported: req/s (all clients together) and p50/p99 request latency in
// milliseconds. Request bodies are built before the timer starts.
//
//	go test -run '^$' -bench BenchmarkAddCheckpoint -benchtime 2000x ./witness/
func BenchmarkAddCheckpoint(b *testing.B) {
	peers := []struct {
		name  string
		start func(t testing.TB, origin, vkey string, more ...witnesstest.LogKey) *witnesstest.Peer
	}{
		{"ours", witnesstest.StartOurWitnessProcess},
		{"litewitness", witnesstest.StartLitewitness},
		{"omniwitness", witnesstest.StartOmniwitness},
	}
	for _, clients := range []int{1, 4} {
		mode := "serial"
		if clients > 1 {
			mode = fmt.Sprintf("parallel-%d", clients)
		}
		for _, p := range peers {
			if clients > 1 && p.name == "omniwitness" {
				// omniwitness answers 429 (pushback on SQLITE_BUSY) to
				// concurrent requests; it is measured serially only.
				continue
			}
			b.Run(mode+"/"+p.name, func(b *testing.B) {
				benchPeer(b, p.start, clients)
			})
		}
	}
}

// benchPeer is one sub-benchmark: the peer is started once and reused
// across the framework's calls with growing b.N.
func benchPeer(b *testing.B, start func(testing.TB, string, string, ...witnesstest.LogKey) *witnesstest.Peer, clients int) {
	logs := make([]*witnesstest.Log, clients)
	var more []witnesstest.LogKey
	for i := range logs {
		logs[i] = witnesstest.NewLog(b, fmt.Sprintf("bench.test/log%d", i))
		if i > 0 {
			more = append(more, witnesstest.LogKey{Origin: logs[i].Origin, VerifierKey: logs[i].VerifierKey})
		}
	}
	peer := start(b, logs[0].Origin, logs[0].VerifierKey, more...)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	url := peer.URL + "/add-checkpoint"

	// Bring every log to size 1000 so that proofs have realistic length.
	const base = 1000
	for _, l := range logs {
		l.Append(base)
		if status := postStatus(b, client, url, l.AddRequest(b, 0, base)); status != 200 {
			b.Fatalf("initial request: %d", status)
		}
	}

	perClient := (b.N + clients - 1) / clients
	bodies := make([][][]byte, clients)
	for c, l := range logs {
		cur := l.Size()
		l.Append(perClient)
		for i := range uint64(perClient) {
			bodies[c] = append(bodies[c], l.AddRequest(b, cur+i, cur+i+1))
		}
	}

	latencies := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	b.ResetTimer()
	startTime := time.Now()
	for c := range clients {
		wg.Go(func() {
			for _, body := range bodies[c] {
				t0 := time.Now()
				status := postStatus(b, client, url, body)
				latencies[c] = append(latencies[c], time.Since(t0))
				if status != 200 {
					b.Errorf("status %d", status)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(startTime)
	b.StopTimer()

	all := slices.Concat(latencies...)
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}

func postStatus(b *testing.B, client *http.Client, url string, body []byte) int {
	resp, err := client.Post(url, "text/plain", bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// BenchmarkLeafVersion compares, in one run, the full server (HTTP, JSON,
// vault, session chain, Tessera, session index; 1 KiB payloads, 64
// clients) appending events of leaf version 2 (the event is the entry),
// 3 (an envelope is the entry, the body is stored in the vault's database
// beside it) and 4 (an envelope of version 3 that also commits to the
// body's fields: the field tree is built per event). Besides the rate and
// cpu-us/event it reports entry-bytes (the mean size of what the entry
// bundles hold per entry) and body-bytes (what the bodies table holds
// besides, versions 3 and 4):
//
//	go test ./server -run '^$' -bench LeafVersion -benchtime 20000x
//	go test ./server -run '^$' -bench 'LeafVersion/v[34]' -benchtime 5000x
func BenchmarkLeafVersion(b *testing.B) {
	for _, v := range []int{event.LeafVersion, event.LeafVersionEnvelope, event.LeafVersionFields} {
		b.Run(fmt.Sprintf("v%d", v), func(b *testing.B) {
			const clients = 64
			s := newTestServer(b, func(c *Config) { c.LeafVersion = v })
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
			report(b, run(b, clients, func(i int) error {
				return post(hc, s.ts.URL+"/v1/events", s.admin, eventBody(i, clients))
			}))
			entries, bodies, n := entrySizes(b, s)
			b.ReportMetric(float64(entries)/float64(n), "entry-bytes")
			b.ReportMetric(float64(bodies)/float64(n), "body-bytes")
		})
	}
}

// entrySizes sums the sizes of the entries the log's bundles hold and, on a
// log of envelopes (version 3 or 4), of their bodies, over the published
// tree.
func entrySizes(b *testing.B, s *testServer) (entries, bodies, n int) {
	ctx := context.Background()
	var size uint64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		cp, _, err := s.srv.log.Checkpoint(ctx)
		if err == nil && cp.Size >= uint64(b.N) {
			size = cp.Size
			break
		}
	}
	if size == 0 {
		b.Fatal("no checkpoint covers the events")
	}
	for i := uint64(0); i < size; i += 256 {
		raw, err := s.srv.log.Reader().ReadEntryBundle(ctx, i/256, uint8(min(size-i, 256)%256))
		if err != nil {
			b.Fatal(err)
		}
		for len(raw) >= 2 {
			l := int(raw[0])<<8 | int(raw[1])
			entries += l
			raw = raw[2+l:]
			n++
		}
		if event.IsEnvelopeVersion(s.srv.log.LeafVersion()) {
			bs, err := s.srv.log.Bodies(ctx, "", i, min(i+256, size), size)
			if err != nil {
				b.Fatal(err)
			}
			for _, x := range bs {
				bodies += len(x.Body)
			}
		}
	}
	return entries, bodies, n
}

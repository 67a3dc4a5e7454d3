package replay_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"

	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/replay"
)

// The library's use, as docs/replay.md shows it: rebuild a session with
// its payloads, print its timeline, replay an agent against it and append
// the verdict. (Compiled, not run: it needs a log server.)
func Example() {
	ctx := context.Background()
	var src replay.Source // Log: a client with a global read+audit token; Key: the log's verifier
	s, err := replay.Rebuild(ctx, src, replay.Query{Session: "rx-1", Payloads: true})
	if err != nil {
		return // the session could not be read at all
	}
	for _, p := range s.Problems {
		fmt.Println(p) // entry 7 (seq 3): seq: ...
	}
	replay.NewTimeline(s).WriteText(os.Stdout)

	r, err := replay.NewReplayer(s, replay.Options{}) // an http.Handler
	if err != nil {
		return // replay.ErrNotReplayable: it did not verify, or a payload is missing
	}
	srv := httptest.NewServer(r)
	defer srv.Close()
	runAgent := func(baseURL string) {} // the agent, unchanged but for its base URL
	runAgent(srv.URL + "/proxy/openai/v1/")
	<-r.Done()
	v := r.Verdict() // v.Verdict: reproduced, diverged or incomplete; v.Differences
	var appendClient *client.Client
	replay.AppendVerdict(ctx, appendClient, v)
}

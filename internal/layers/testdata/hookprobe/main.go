// Command hookprobe is the smallest agent that records its calls: one
// capture.Hook posting to a log server, one request through its
// RoundTripper. Its binary size is what embedding the middleware costs
// (docs/performance.md); TestHookBinarySize builds it.
package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/client"
)

func main() {
	lc, err := client.New("http://127.0.0.1:8080", client.WithToken("lat_token"))
	if err != nil {
		panic(err)
	}
	hook, err := capture.NewHook(capture.NewHTTPRecorder(lc))
	if err != nil {
		panic(err)
	}
	hc := &http.Client{Transport: hook.RoundTripper(nil)}
	resp, err := hc.Get("http://127.0.0.1:1/v1/models")
	fmt.Println(resp, err)
	hook.Close(context.Background())
}

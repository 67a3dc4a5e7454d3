package capture_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	oaoption "github.com/openai/openai-go/v3/option"

	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/client"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// An agent records its OpenAI and Anthropic calls in a log server with one
// Hook: every attempt (the SDKs' retries included) becomes an llm.request
// event, durable before the call leaves the process, and an llm.response
// event.
func ExampleHook() {
	lc, err := client.New("http://127.0.0.1:8080", client.WithToken("lat_...write-token..."))
	if err != nil {
		log.Fatal(err)
	}
	hook, err := capture.NewHook(capture.NewHTTPRecorder(lc),
		capture.WithSession("claims-review-42"),
		capture.WithActor(event.Actor{Type: "agent", ID: "claims-agent", OnBehalfOf: "alice"}))
	if err != nil {
		log.Fatal(err)
	}
	defer hook.Close(context.Background()) // waits for the last records

	oc := openai.NewClient(oaoption.WithMiddleware(hook.Middleware))
	ac := anthropic.NewClient(anoption.WithMiddleware(hook.Middleware))
	_, _ = oc, ac

	// Any other HTTP client: wrap its transport.
	hc := &http.Client{Transport: hook.RoundTripper(http.DefaultTransport)}
	_ = hc

	// One call in another session.
	ctx := capture.ContextWithSession(context.Background(), "claims-review-43")
	_, err = oc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Summarise claim 43")},
	})
	if errors.Is(err, capture.ErrNotRecorded) {
		// Fail-closed: the log could not record the request, so nothing
		// was sent to the provider.
		fmt.Println("not sent:", err)
	}
}

// Command interceptprobe is an agent that knows nothing of the audit
// trail: the official OpenAI and Anthropic Go SDKs with their defaults
// (api.openai.com, api.anthropic.com) and keys from the environment. The
// interception tests run it with only HTTPS_PROXY and SSL_CERT_FILE set.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
)

func main() {
	ctx := context.Background()
	oa := openai.NewClient() // OPENAI_API_KEY
	r, err := oa.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Summarise ticket 8812.")}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "openai:", err)
		os.Exit(1)
	}
	an := anthropic.NewClient() // ANTHROPIC_API_KEY
	m, err := an.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-sonnet-4-5", MaxTokens: 256,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Classify this message."))}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "anthropic:", err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]string{"openai": r.Choices[0].Message.Content, "anthropic": m.Content[0].Text})
}

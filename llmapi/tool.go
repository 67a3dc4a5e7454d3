package llmapi

import "strings"

// ToolKey is the form in which tool names compare: the name with every "."
// read as "_". Models' function names may not contain dots (OpenAI's allow
// only letters, digits, "_" and "-"), so an agent offers the MCP tool
// dose.check to a model as dose_check, and the model's tool call and the
// MCP tools/call that answers it name one tool. The capture binds the two
// by this key (capture.ToolCallBinder), and the log server's MCP tool
// policy matches the names it lists by it.
func ToolKey(name string) string { return strings.ReplaceAll(name, ".", "_") }

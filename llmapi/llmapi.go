// Package llmapi is the registry of the LLM providers whose calls are
// recorded: for each, the names and hosts its calls are known by, its
// default upstream, and what a reader of the log needs of its wire format
// (the text of a recorded response, an error its SDKs raise, the tool
// results and ids in its requests).
//
// It is format alone, no I/O. Package capture registers each provider it
// reads (one file per provider, capture/NAME.go, and a line in
// capture/registry.go); the capture proxies and Hook, replay (timelines and
// the replay server), the console and the commands' help texts read the
// registry instead of naming providers. A program that reads providers
// from here links package capture (cmd/replay does, with a blank import).
package llmapi

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
)

// Provider is one LLM provider.
type Provider struct {
	// Name names the provider in the registry, and is the upstream name
	// its default upstream is served under (/proxy/NAME/).
	Name string
	// System is its gen_ai.provider.name, as the OpenTelemetry GenAI
	// semantic conventions spell it (openai, aws.bedrock, ...).
	System string
	// Hosts are its API hosts, each a host name or "*.suffix" (any host
	// below suffix): a call to one is a call to this provider, and the
	// interception proxy terminates TLS for them by default.
	Hosts []string
	// Upstream is the base URL of its default upstream, "" if it has none
	// (a host per customer resource, say).
	Upstream string
	// UpstreamPrefix: an upstream whose name begins with Name (azure-east
	// for azure) is this provider's too; otherwise only Name is.
	UpstreamPrefix bool
	// Credentials are the request headers that carry its API keys, besides
	// Authorization: never recorded (a keyed fingerprint is).
	Credentials []string
	// Headers are the request headers whose values are recorded: its API
	// version and feature flags, nothing that names a person or account.
	Headers []string
	// Format is its wire format; providers may share one (Azure OpenAI
	// speaks OpenAI's).
	Format Format
}

// Format is a wire format, as a reader of the log needs it. Every method
// reads unverified, possibly hostile data and must not panic.
type Format interface {
	// Name names the format: the first part of its APIs' capture.api
	// values ("openai" of "openai.chat.completions").
	Name() string
	// Text is the text a recorded response body carried, a JSON body or an
	// event stream (the concatenated text deltas); ok is false if the body
	// is not this format's or carries no text.
	Text(body []byte) (text string, ok bool)
	// ErrorBody is a JSON error body, as the format's SDKs parse it, for
	// an HTTP status, a machine-readable code and a message.
	ErrorBody(status int, code, message string) []byte
	// ToolResult reports whether item (an element of an array of a decoded
	// request) is the result of a tool call, and the id of the call it
	// answers ("" if the format has none: the tool's name then).
	ToolResult(item any) (callID string, ok bool)
	// IDPrefixes are the prefixes of the ids the provider mints and a
	// client sends back (call, toolu): such ids differ from run to run.
	IDPrefixes() []string
	// DecisionFields are the top-level request fields the model decides on
	// (messages, tools, temperature, ...).
	DecisionFields() []string
}

var (
	mu        sync.RWMutex
	providers []Provider
	formats   []Format
)

// Register adds p to the registry; call it from an init function (or a
// package-level variable's initialization) only. It panics if p has no
// name, system or format, or if its name is taken.
func Register(p Provider) {
	if p.Name == "" || p.System == "" || p.Format == nil || p.Format.Name() == "" {
		panic(fmt.Sprintf("llmapi: provider %q needs a name, a system and a format", p.Name))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, q := range providers {
		if q.Name == p.Name {
			panic(fmt.Sprintf("llmapi: provider %q registered twice", p.Name))
		}
	}
	providers = append(providers, p)
	for _, f := range formats {
		if f.Name() == p.Format.Name() {
			return
		}
	}
	formats = append(formats, p.Format)
}

// Providers are the registered providers, in the order of registration.
func Providers() []Provider {
	mu.RLock()
	defer mu.RUnlock()
	return append([]Provider(nil), providers...)
}

// Formats are the registered providers' formats, each once, in the order
// of registration: the first is the default format (OpenAI's, which every
// OpenAI-compatible server speaks).
func Formats() []Format {
	mu.RLock()
	defer mu.RUnlock()
	return append([]Format(nil), formats...)
}

// find is the first provider for which ok holds.
func find(ok func(Provider) bool) (Provider, bool) {
	mu.RLock()
	defer mu.RUnlock()
	for _, p := range providers {
		if ok(p) {
			return p, true
		}
	}
	return Provider{}, false
}

// Lookup is the provider registered as name.
func Lookup(name string) (Provider, bool) {
	return find(func(p Provider) bool { return p.Name == name })
}

// ForHost is the provider one of whose Hosts host is.
func ForHost(host string) (Provider, bool) {
	return find(func(p Provider) bool {
		for _, h := range p.Hosts {
			if MatchHost(h, host) {
				return true
			}
		}
		return false
	})
}

// ForUpstream is the provider an upstream name stands for: the one of that
// Name, or of a Name it begins with (UpstreamPrefix).
func ForUpstream(name string) (Provider, bool) {
	return find(func(p Provider) bool { return name == p.Name || (p.UpstreamPrefix && strings.HasPrefix(name, p.Name)) })
}

// ForSystem is the first provider whose System is system.
func ForSystem(system string) (Provider, bool) {
	return find(func(p Provider) bool { return p.System == system })
}

// ForFormat is the first provider of the format called name.
func ForFormat(name string) (Provider, bool) {
	return find(func(p Provider) bool { return p.Format.Name() == name })
}

// FormatOf is the format of a capture.api value (its part before the
// first dot), nil if none is registered.
func FormatOf(api string) Format {
	name, _, _ := strings.Cut(api, ".")
	return FormatNamed(name)
}

// FormatNamed is the registered format called name, nil if none.
func FormatNamed(name string) Format {
	mu.RLock()
	defer mu.RUnlock()
	for _, f := range formats {
		if f.Name() == name {
			return f
		}
	}
	return nil
}

// MatchHost reports whether host is pattern (a host name, or "*.suffix":
// any host below suffix), ignoring case and a trailing dot.
func MatchHost(pattern, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	pattern = strings.ToLower(pattern)
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(host, "."+suffix)
	}
	return host == pattern
}

// StreamData is the data of each event of a recorded event stream (the
// text after "data:" on each line that has it), without the "[DONE]"
// terminator: for Format.Text.
func StreamData(body []byte) [][]byte {
	var out [][]byte
	for line := range bytes.Lines(body) {
		d, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), []byte("data:"))
		if !ok {
			continue
		}
		d = bytes.TrimPrefix(d, []byte(" "))
		if string(d) == "[DONE]" {
			continue
		}
		out = append(out, d)
	}
	return out
}

// IsJSON reports whether a recorded body is JSON (an object or array)
// rather than an event stream.
func IsJSON(body []byte) bool {
	b := bytes.TrimSpace(body)
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}

package capture

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/llmaudittrail/llmaudittrail/llmapi"
)

// registered are the LLM providers the capture reads, registered with
// llmapi in this order: the first one's format is the default, for
// requests no format claims (OpenAI's, which every OpenAI-compatible server
// speaks), and formats are tried in this order. Each provider is one file,
// NAME.go, with its llmapi.Provider (name, system, hosts, default upstream,
// headers) and, if it speaks a format of its own, that format: a type that
// implements format. Adding a provider is adding its file and a line here.
var registered = registerAll(
	openAIProvider,
	anthropicProvider,
	geminiProvider,
	azureProvider,
	bedrockProvider,
)

func registerAll(ps ...llmapi.Provider) []llmapi.Provider {
	for _, p := range ps {
		register(p)
	}
	return ps
}

// format is a wire format the capture reads: what every reader of the log
// needs of it (llmapi.Format: its name, the text of a response, its error
// body, ...), and how its requests are classified and parsed and its
// responses and streams read.
type format interface {
	llmapi.Format
	// claims reports whether a request with these headers to an unknown
	// API of upstream hint (the upstream's name or host) is in this format,
	// so that the proxy's errors are written in it.
	claims(h http.Header, hint string) bool
	// match names the API of a POST to path (relative to the provider's
	// base), or ok false.
	match(path string, h http.Header, hint string) (api, operation string, ok bool)
	// parseRequest reads the GenAI parameters of a request body; an error
	// (from strictjson.Unmarshal: malformed or ambiguous JSON) refuses it.
	parseRequest(api string, body []byte) (requestInfo, error)
	// parseBody reads a complete successful JSON response body.
	parseBody(api string, body []byte) summary
	// newStream returns the reader of a response stream of api.
	newStream(api string, p *respParser) streamReader
}

// formats are the registered formats, the default first; they, and the
// header lists, change only while the package is initialized (register).
var formats []format

// register registers p with llmapi, its format with the capture, and its
// credential and recorded headers with those of every request. Call it only
// while the package is initialized (a package-level variable, or an init
// function of a test).
func register(p llmapi.Provider) {
	f, ok := p.Format.(format)
	if !ok {
		panic(fmt.Sprintf("capture: provider %q: its format %T is not one the capture reads", p.Name, p.Format))
	}
	llmapi.Register(p)
	if !slices.ContainsFunc(formats, func(g format) bool { return g.Name() == f.Name() }) {
		formats = append(formats, f)
	}
	for _, h := range p.Credentials {
		if h = http.CanonicalHeaderKey(h); !slices.Contains(credentialHeaders, h) {
			credentialHeaders = append(credentialHeaders, h)
		}
	}
	for _, h := range p.Headers {
		if h = http.CanonicalHeaderKey(h); !slices.Contains(recordedHeaders, h) {
			recordedHeaders = append(recordedHeaders, h)
		}
	}
}

// formatNamed is the format called name, the default format if none is.
func formatNamed(name string) format {
	for _, f := range formats {
		if f.Name() == name {
			return f
		}
	}
	return formats[0]
}

// formatOfAPI is the format of a known API, nil for apiOther.
func formatOfAPI(api string) format {
	name, _, ok := strings.Cut(api, ".")
	for _, f := range formats {
		if ok && f.Name() == name {
			return f
		}
	}
	return nil
}

// hinted is the provider an upstream's name or host (hint) names.
func hinted(hint string) (llmapi.Provider, bool) {
	host := hint
	if h, _, err := net.SplitHostPort(hint); err == nil {
		host = h
	}
	if p, ok := llmapi.ForHost(host); ok {
		return p, true
	}
	return llmapi.ForUpstream(hint)
}

// providerName is gen_ai.provider.name of a call that the proxy forwards
// to upstream (its name; for the interception proxy, the host) at host: the
// system of the provider whose host it is, or that the upstream's name
// stands for; else the upstream's name.
func providerName(upstream, host string) string {
	if p, ok := llmapi.ForHost(host); ok {
		return p.System
	}
	if p, ok := llmapi.ForUpstream(upstream); ok {
		return p.System
	}
	return upstream
}

// providerFor is gen_ai.provider.name of a request the Hook sees: the
// system of the provider whose host it is, else of the first provider of
// the request's format.
func providerFor(host, method, path string, hd http.Header) string {
	if p, ok := llmapi.ForHost(host); ok {
		return p.System
	}
	flavor := classify(method, path, hd, host).flavor
	if p, ok := llmapi.ForFormat(flavor); ok {
		return p.System
	}
	return flavor
}

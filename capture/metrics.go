package capture

import "time"

// Metrics receives the capture's measurements, for an operator's metrics:
// the log server feeds its Prometheus collectors with it (see
// docs/metrics.md); a program embedding a Hook may pass its own. Its methods
// are called on the call's path, so they must be fast, and safe for
// concurrent use. Without WithMetrics nothing is measured.
type Metrics interface {
	// Forwarded is called when an attempt is handed to the upstream, with
	// the time the capture held it: from its arrival (the proxy's handler,
	// or the Hook's RoundTrip) until then. That is the time the capture
	// adds to a call: reading the request body, checking the audit token
	// (proxies), reading the request, and in FailClosed mode waiting until
	// its llm.request event is durable. The upstream's time is not in it,
	// nor the response's, which passes through chunk by chunk. For an MCP
	// tools/call it runs from the capture's reading of the message.
	Forwarded(provider string, mode Mode, held time.Duration)
	// Ended is called once per attempt, when its outcome is known: for an
	// attempt that went upstream, OutcomeComplete, OutcomeAborted or
	// OutcomeUpstreamError, as recorded in its llm.response; otherwise
	// CallNotRecorded, CallRefused, or OutcomeAborted (the agent gave up
	// while its request was being recorded). An MCP tools/call (provider
	// MCPProvider) ends when it is forwarded (CallForwarded; its result is
	// recorded apart), denied (CallDenied), refused (CallRefused) or not
	// recorded (CallNotRecorded).
	Ended(provider string, mode Mode, outcome string)
}

// Outcomes passed to Metrics.Ended besides the attempt outcomes
// (OutcomeComplete, OutcomeAborted, OutcomeUpstreamError).
const (
	// CallNotRecorded: FailClosed, and the request could not be recorded;
	// it was not sent (ErrNotRecorded).
	CallNotRecorded = "not_recorded"
	// CallRefused: the request could not be read strictly; it was not sent
	// (ErrRefused).
	CallRefused = "refused"
	// CallDenied: the MCP tool policy denied the tools/call.
	CallDenied = "denied"
	// CallForwarded: the MCP tools/call went to the MCP server.
	CallForwarded = "forwarded"
)

// MCPProvider is the provider that MCP tools/call requests are measured
// under.
const MCPProvider = "mcp"

// WithMetrics sets where the capture reports its measurements (default:
// nowhere).
func WithMetrics(m Metrics) Option { return func(o *options) { o.metrics = m } }

// forwarded reports an attempt handed to the upstream after held.
func (c *core) forwarded(provider string, held time.Duration) {
	if c.o.metrics != nil {
		c.o.metrics.Forwarded(provider, c.o.mode, held)
	}
}

// ended reports an attempt's outcome.
func (c *core) ended(provider, outcome string) {
	if c.o.metrics != nil {
		c.o.metrics.Ended(provider, c.o.mode, outcome)
	}
}

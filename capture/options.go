package capture

import (
	"crypto/x509"
	"log/slog"
	"net/http"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Options are typed by the constructors that honour them, so that an option
// that would do nothing does not compile:
//
//	option                                    NewProxy  NewMCP  NewInterceptor  NewHook
//	Option (WithMode, WithLogger, ...,        yes       yes     yes             yes
//	  WithToolCallBinder, WithMetrics)
//	ServeOption (WithMaxRequestBytes,         yes       yes     yes             -
//	  WithBodyBudget, WithUpstreamRoots)
//	TransportOption (WithTransport)           yes       yes     -               -
//	WithToolPolicy                            -         yes     -               -
//	WithSession, WithActor, WithAgentID       -         -       -               yes
//
// The Interceptor takes no WithTransport: it dials the host each agent
// CONNECTs to (through InterceptConfig.Resolve), which a transport of the
// caller's would not.

// ProxyOption configures NewProxy.
type ProxyOption interface{ applyProxy(*options) }

// MCPOption configures NewMCP.
type MCPOption interface{ applyMCP(*options) }

// InterceptOption configures NewInterceptor.
type InterceptOption interface{ applyIntercept(*options) }

// HookOption configures NewHook.
type HookOption interface{ applyHook(*options) }

// ServeOption configures the captures that serve agents and call upstreams:
// NewProxy, NewMCP and NewInterceptor.
type ServeOption interface {
	ProxyOption
	MCPOption
	InterceptOption
}

// TransportOption configures the captures whose upstream transport may be
// replaced: NewProxy and NewMCP.
type TransportOption interface {
	ProxyOption
	MCPOption
}

// Option configures any capture: NewProxy, NewMCP, NewInterceptor or
// NewHook.
type Option func(*options)

func (f Option) applyProxy(o *options)     { f(o) }
func (f Option) applyMCP(o *options)       { f(o) }
func (f Option) applyIntercept(o *options) { f(o) }
func (f Option) applyHook(o *options)      { f(o) }

type serveOption func(*options)

func (f serveOption) applyProxy(o *options)     { f(o) }
func (f serveOption) applyMCP(o *options)       { f(o) }
func (f serveOption) applyIntercept(o *options) { f(o) }

type transportOption func(*options)

func (f transportOption) applyProxy(o *options) { f(o) }
func (f transportOption) applyMCP(o *options)   { f(o) }

type mcpOption func(*options)

func (f mcpOption) applyMCP(o *options) { f(o) }

type hookOption func(*options)

func (f hookOption) applyHook(o *options) { f(o) }

// LLMOption configures the captures of model calls: NewProxy,
// NewInterceptor or NewHook (not NewMCP, which sees tool calls only).
type LLMOption interface {
	ProxyOption
	InterceptOption
	HookOption
}

type llmOption func(*options)

func (f llmOption) applyProxy(o *options)     { f(o) }
func (f llmOption) applyIntercept(o *options) { f(o) }
func (f llmOption) applyHook(o *options)      { f(o) }

type options struct {
	mode             Mode
	fingerprintKey   []byte
	maxRequestBytes  int64
	maxRecordedBytes int
	recordTimeout    time.Duration
	recordLinger     time.Duration
	retryInterval    time.Duration
	transport        http.RoundTripper
	logger           *slog.Logger
	session          string
	actor            event.Actor
	agentID          string
	binder           *ToolCallBinder
	toolHistory      ToolResultHistory
	policy           ToolPolicy
	upstreamRoots    *x509.CertPool
	budget           *BodyBudget
	metrics          Metrics
}

// DefaultGapRetryInterval is the default of WithGapRetryInterval.
const DefaultGapRetryInterval = 2 * time.Second

func defaultOptions(maxRecorded int) options {
	return options{
		mode:             FailClosed,
		maxRequestBytes:  DefaultMaxRequestBytes,
		maxRecordedBytes: maxRecorded,
		recordTimeout:    DefaultRecordTimeout,
		recordLinger:     DefaultRecordLinger,
		retryInterval:    DefaultGapRetryInterval,
		actor:            event.Actor{Type: "agent", ID: "agent"},
	}
}

// WithMode sets the capture mode (default FailClosed).
func WithMode(m Mode) Option { return func(o *options) { o.mode = m } }

// WithFingerprintKey sets the HMAC key of credential fingerprints. Default:
// a random key per Proxy or Hook, so fingerprints are comparable only within
// one process; the log server derives a stable key from its master key.
func WithFingerprintKey(k []byte) Option {
	return func(o *options) { o.fingerprintKey = append([]byte(nil), k...) }
}

// WithMaxRecordedBytes caps how much of one body is stored in the vault
// (default DefaultMaxRecordedBytes; a Hook over an HTTPRecorder defaults to
// DefaultHTTPMaxRecordedBytes). A longer body is recorded truncated, with its
// full size and SHA-256 in capture.body.size and capture.body.sha256.
func WithMaxRecordedBytes(n int) Option { return func(o *options) { o.maxRecordedBytes = n } }

// WithRecordTimeout bounds one attempt to record events (default
// DefaultRecordTimeout).
func WithRecordTimeout(d time.Duration) Option { return func(o *options) { o.recordTimeout = d } }

// WithRecordLinger sets how long a record nobody waits for (a response, a
// tool call, a FailOpen request) may wait for the session's next event to
// share one append with it (default DefaultRecordLinger; 0 disables). A
// call made right after the previous call's response then waits for one
// append in FailClosed mode instead of two.
func WithRecordLinger(d time.Duration) Option { return func(o *options) { o.recordLinger = d } }

// WithGapRetryInterval sets how often unrecorded gaps are retried when no
// call comes to carry them (default DefaultGapRetryInterval).
func WithGapRetryInterval(d time.Duration) Option { return func(o *options) { o.retryInterval = d } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMaxRequestBytes caps the request bodies a capture accepts: the Proxy
// and the Interceptor answer 413 beyond the cap, the MCP capture a JSON-RPC
// error with 413 (default DefaultMaxRequestBytes). The MCP capture also
// reads no larger answer or event from its upstream.
func WithMaxRequestBytes(n int64) ServeOption {
	return serveOption(func(o *options) { o.maxRequestBytes = n })
}

// WithTransport replaces the upstream transport of a Proxy or an MCP
// capture (default: see WithUpstreamRoots). It should not ask for
// compressed bodies (http.Transport.DisableCompression), or what is
// recorded is what the agent receives only after decompression. It cannot
// be combined with WithUpstreamRoots.
func WithTransport(rt http.RoundTripper) TransportOption {
	return transportOption(func(o *options) { o.transport = rt })
}

// WithBodyBudget sets the budget of request bytes in memory at once
// (default: NewBodyBudget(0), one per Proxy, Interceptor or MCP); they may
// share one. It must hold at least WithMaxRequestBytes: a cap above
// DefaultBodyBudget needs a larger budget.
func WithBodyBudget(b *BodyBudget) ServeOption {
	return serveOption(func(o *options) { o.budget = b })
}

// WithUpstreamRoots sets the roots the capture's upstream transport
// verifies upstream certificates with (default: the system's). The
// transport is the same for the Proxy, the MCP capture and the
// Interceptor: TLS 1.2 or later, HTTP/2 where offered, no compression
// asked for, bounded connects but no bound on a call's first byte, and
// never through a proxy (HTTP_PROXY and HTTPS_PROXY are not read, so that
// the capture never calls upstream through its own interception listener).
func WithUpstreamRoots(pool *x509.CertPool) ServeOption {
	return serveOption(func(o *options) { o.upstreamRoots = pool })
}

// WithToolPolicy lets the MCP capture deny tools before they are called
// (default: every tool is allowed).
func WithToolPolicy(p ToolPolicy) MCPOption { return mcpOption(func(o *options) { o.policy = p }) }

// WithSession sets a Hook's session (default: a new random id, see
// Hook.Session). ContextWithSession overrides it per call.
func WithSession(id string) HookOption { return hookOption(func(o *options) { o.session = id }) }

// WithActor sets a Hook's actor (default {Type: "agent", ID: "agent"}).
func WithActor(a event.Actor) HookOption { return hookOption(func(o *options) { o.actor = a }) }

// WithAgentID sets gen_ai.agent.id on a Hook's events.
func WithAgentID(id string) HookOption { return hookOption(func(o *options) { o.agentID = id }) }

// WithToolCallBinder pairs the tool calls models ask for with the MCP
// tools/call that answers each: the Proxy, the Interceptor and the Hook
// note in b the tool calls of the responses they record, and the MCP
// capture sharing b binds a tools/call in the same session, with the same
// tool name and arguments, to the llm.response that asked for it (see
// ToolCallBinder). Default: none, nothing is bound.
func WithToolCallBinder(b *ToolCallBinder) Option { return func(o *options) { o.binder = b } }

// WithToolResultHistory tells the LLM captures which tool results a
// session holds already, for a session they have no memory of (after a
// restart, or one idle for an hour among many): h is asked once per such
// session, and the results it names are not recorded again when the agent
// resends them. Default: none; a session's results are remembered from the
// capture's start only, so after a restart those sent before it are
// recorded once more.
func WithToolResultHistory(h ToolResultHistory) LLMOption {
	return llmOption(func(o *options) { o.toolHistory = h })
}

package capture

import (
	"crypto/x509"
	"log/slog"
	"net/http"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
)

// Options are typed by what they configure, so that an option that would do
// nothing does not compile: NewProxy takes ProxyOptions, NewHook takes
// HookOptions, and an Option configures either.

// ProxyOption configures a Proxy.
type ProxyOption interface{ applyProxy(*options) }

// HookOption configures a Hook.
type HookOption interface{ applyHook(*options) }

// Option configures a Proxy or a Hook.
type Option func(*options)

func (f Option) applyProxy(o *options) { f(o) }
func (f Option) applyHook(o *options)  { f(o) }

type proxyOption func(*options)

func (f proxyOption) applyProxy(o *options) { f(o) }

type hookOption func(*options)

func (f hookOption) applyHook(o *options) { f(o) }

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

// WithMaxRequestBytes caps the request bodies the proxy accepts: it answers
// 413 beyond the cap (default DefaultMaxRequestBytes).
func WithMaxRequestBytes(n int64) ProxyOption {
	return proxyOption(func(o *options) { o.maxRequestBytes = n })
}

// WithTransport sets the proxy's upstream transport (default: a clone of
// http.DefaultTransport with compression disabled, so bodies are recorded as
// plaintext).
func WithTransport(rt http.RoundTripper) ProxyOption {
	return proxyOption(func(o *options) { o.transport = rt })
}

// WithBodyBudget sets the budget of request bytes in memory at once
// (default: NewBodyBudget(0), one per Proxy, Interceptor or MCP); they may
// share one. It must hold at least WithMaxRequestBytes: a cap above
// DefaultBodyBudget needs a larger budget.
func WithBodyBudget(b *BodyBudget) ProxyOption {
	return proxyOption(func(o *options) { o.budget = b })
}

// WithUpstreamRoots sets the roots the proxy's default transport verifies
// upstream certificates with (default: the system's).
func WithUpstreamRoots(pool *x509.CertPool) ProxyOption {
	return proxyOption(func(o *options) { o.upstreamRoots = pool })
}

// WithSession sets a Hook's session (default: a new random id, see
// Hook.Session). ContextWithSession overrides it per call.
func WithSession(id string) HookOption { return hookOption(func(o *options) { o.session = id }) }

// WithActor sets a Hook's actor (default {Type: "agent", ID: "agent"}).
func WithActor(a event.Actor) HookOption { return hookOption(func(o *options) { o.actor = a }) }

// WithAgentID sets gen_ai.agent.id on a Hook's events.
func WithAgentID(id string) HookOption { return hookOption(func(o *options) { o.agentID = id }) }

// WithToolCallBinder lets the proxy note the tool calls models ask for in b,
// so that the MCP capture sharing b binds the tools/call that answers one
// to the llm.response that asked for it.
func WithToolCallBinder(b *ToolCallBinder) Option { return func(o *options) { o.binder = b } }

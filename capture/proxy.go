package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/canonpath"
	"github.com/llmaudittrail/llmaudittrail/llmapi"
)

// finalWriteTimeout bounds the write of a response's last bytes.
const finalWriteTimeout = 30 * time.Second

// PathPrefix is where the proxy is mounted: /proxy/NAME/... goes to the
// upstream NAME.
const PathPrefix = "/proxy/"

// DefaultUpstreams are the upstreams every proxy knows unless overridden:
// each registered provider's (llmapi) that has a default upstream, under
// its name.
func DefaultUpstreams() map[string]string {
	out := map[string]string{}
	for _, p := range llmapi.Providers() {
		if p.Upstream != "" {
			out[p.Name] = p.Upstream
		}
	}
	return out
}

// upstreamName reports whether s names an upstream: [a-z0-9][a-z0-9_.-]{0,63}.
func upstreamName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if i > 0 {
			ok = ok || c == '_' || c == '.' || c == '-'
		}
		if !ok {
			return false
		}
	}
	return true
}

// ParseUpstream parses a NAME=BASE_URL flag value. NAME is 1-64 characters
// from [a-z0-9_.-]; BASE_URL is an http or https URL without query or
// fragment (a path is kept: https://host/openai + /v1/chat/completions).
func ParseUpstream(s string) (name, baseURL string, err error) {
	name, baseURL, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("upstream %q: want NAME=BASE_URL", s)
	}
	if _, err := parseBase(name, baseURL); err != nil {
		return "", "", err
	}
	return name, baseURL, nil
}

func parseBase(name, raw string) (*url.URL, error) {
	if !upstreamName(name) {
		return nil, fmt.Errorf("upstream name %q: use 1-64 characters from [a-z0-9_.-]", name)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", name, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("upstream %s: %q must be an http(s) URL with a host and no query, fragment or user info", name, raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u, nil
}

// unfitPath says why r's path is unfit to forward, nil if it is fit: a
// path that is not canonical (internal/canonpath), such as one with dot
// segments that could climb out of the upstream's base path, an escaped
// slash or backslash that the upstream might decode into one, or an escaped
// plain character that would make the path recorded and the path forwarded
// two spellings. The path forwarded is the client's escaped path, and the
// path recorded its decoding: for a canonical path both have the same
// segments. Escaped reserved characters (a model method's ":" written %3A)
// are fine.
func unfitPath(r *http.Request) error { return canonpath.Request(r) }

// Agent is an authenticated caller of the proxy.
type Agent struct {
	// Recorder records the agent's calls.
	Recorder Recorder
	// Tenant scopes the tracking of gaps: a capture.gap event is recorded
	// through the first Recorder of the tenant that works again.
	Tenant string
	// ID identifies the credential (e.g. the token id); attempts are
	// grouped into calls per ID.
	ID string
	// Name is the credential's name (the token's), for tool policies.
	Name string
	// Actor is the actor of the agent's events. X-Audit-On-Behalf-Of
	// overrides its OnBehalfOf per request.
	Actor event.Actor
}

// Authenticator checks an agent's audit token (the X-Audit-Token header).
// It returns ErrUnauthenticated or ErrForbidden when the proxy must answer
// 401 or 403; any other error is answered with 503.
type Authenticator func(ctx context.Context, token string) (*Agent, error)

// Proxy is the capture reverse proxy. It is an http.Handler for
// PathPrefix + "NAME/...", and safe for concurrent use.
type Proxy struct {
	c         *core
	upstreams map[string]*url.URL
	auth      Authenticator
	transport http.RoundTripper
	budget    *BodyBudget
}

// NewProxy returns a proxy to upstreams (name to base URL; see
// DefaultUpstreams) that authenticates agents with auth. Its options are the
// shared ones (Option: WithMode, WithFingerprintKey, WithMaxRecordedBytes,
// WithRecordTimeout, WithRecordLinger, WithGapRetryInterval, WithLogger,
// WithToolCallBinder, WithMetrics), ServeOptions (WithMaxRequestBytes,
// WithBodyBudget, WithUpstreamRoots) and WithTransport.
func NewProxy(upstreams map[string]string, auth Authenticator, opts ...ProxyOption) (*Proxy, error) {
	if auth == nil {
		return nil, errors.New("capture: an Authenticator is required")
	}
	o := defaultOptions(DefaultMaxRecordedBytes)
	for _, f := range opts {
		f.applyProxy(&o)
	}
	c, err := newCore("proxy", o)
	if err != nil {
		return nil, err
	}
	budget, err := bodyBudget(o)
	if err != nil {
		return nil, err
	}
	transport, err := upstreamRoundTripper(o)
	if err != nil {
		return nil, err
	}
	p := &Proxy{c: c, upstreams: map[string]*url.URL{}, auth: auth, transport: transport, budget: budget}
	for name, raw := range upstreams {
		u, err := parseBase(name, raw)
		if err != nil {
			return nil, err
		}
		p.upstreams[name] = u
	}
	return p, nil
}

// Mode is the proxy's capture mode.
func (p *Proxy) Mode() Mode { return p.c.o.mode }

// Close waits for background records, records pending gaps if it can, and
// returns an error if some missed events are left without a capture.gap
// event. Serve no more requests after Close.
func (p *Proxy) Close(ctx context.Context) error { return p.c.close(ctx) }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// bodyBudget is the option's budget, or a new one of DefaultBodyBudget.
func bodyBudget(o options) (*BodyBudget, error) {
	b := o.budget
	if b == nil {
		b = NewBodyBudget(0)
	}
	if b.Max() < o.maxRequestBytes {
		return nil, fmt.Errorf("capture: a body budget of %d bytes is below the largest request body (%d); set a larger one (WithBodyBudget)", b.Max(), o.maxRequestBytes)
	}
	b.fit(o.maxRequestBytes)
	return b, nil
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	received := time.Now()
	rest, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	name, path, _ := strings.Cut(rest, "/")
	path = "/" + path
	flavor := classify(r.Method, path, r.Header, name).flavor
	fail := func(status int, code, format string, args ...any) {
		writeProviderError(w, flavor, status, code, "LLMAuditTrail proxy: "+fmt.Sprintf(format, args...))
	}
	if err := unfitPath(r); err != nil {
		fail(http.StatusBadRequest, "bad_path", "%v: nothing was sent upstream", err)
		return
	}
	base, ok := p.upstreams[name]
	if !ok {
		fail(http.StatusNotFound, "unknown_upstream", "no upstream named %q is configured (--upstream NAME=BASE_URL)", event.Clip(name, 64))
		return
	}

	tok := r.Header.Get(HeaderToken)
	if tok == "" {
		fail(http.StatusUnauthorized, "missing_audit_token", "send your audit token (write scope) in the %s header", HeaderToken)
		return
	}
	agent, err := p.auth(r.Context(), tok)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		fail(http.StatusUnauthorized, "invalid_audit_token", "the %s is unknown or revoked", HeaderToken)
		return
	case errors.Is(err, ErrForbidden):
		fail(http.StatusForbidden, "insufficient_scope", "the %s lacks the write scope", HeaderToken)
		return
	case err != nil:
		p.c.logger.Error("capture: checking audit token", "error", err)
		fail(http.StatusServiceUnavailable, "audit_log_unavailable", "could not check the audit token; nothing was sent upstream")
		return
	}
	target := *base
	target.Path = base.Path + path
	if esc := r.URL.EscapedPath(); strings.HasPrefix(esc, PathPrefix+name+"/") {
		target.RawPath = base.EscapedPath() + strings.TrimPrefix(esc, PathPrefix+name)
		if target.RawPath == target.Path {
			target.RawPath = ""
		}
	}
	p.serveCall(w, r, received, agent, name, base, target, path, "", fail)
}

// serveCall records and forwards one call of agent to target (an upstream
// named name, whose base is base), received at received; defaultSession
// names the session when the request names none ("" makes one).
func (p *Proxy) serveCall(w http.ResponseWriter, r *http.Request, received time.Time, agent *Agent, name string, base *url.URL, target url.URL, path, defaultSession string,
	fail func(status int, code, format string, args ...any)) {
	session := r.Header.Get(HeaderSession)
	if session == "" {
		session = defaultSession
	}
	explicit := r.Header.Get(HeaderCall)
	agentID := r.Header.Get(HeaderAgent)
	subject := r.Header.Get(HeaderSubject)
	actor := agent.Actor
	if v := r.Header.Get(HeaderOnBehalfOf); v != "" {
		actor.OnBehalfOf = v
	}
	for _, h := range []struct{ name, v string }{{HeaderSession, session}, {HeaderCall, explicit}, {HeaderAgent, agentID}, {HeaderOnBehalfOf, actor.OnBehalfOf}, {HeaderSubject, subject}} {
		if h.v != "" && !event.ValidID(h.v) {
			fail(http.StatusBadRequest, "invalid_audit_header", "%s: use 1-%d characters from [A-Za-z0-9_.:@-], starting with a letter or digit", h.name, event.MaxIDLength)
			return
		}
	}
	if err := event.PermitSession(session, actor); session != "" && err != nil {
		fail(http.StatusForbidden, "reserved_session", "%s: %v: nothing was sent upstream", HeaderSession, err)
		return
	}

	max := p.c.o.maxRequestBytes
	if r.ContentLength > max {
		fail(http.StatusRequestEntityTooLarge, "request_too_large", "request body of %d bytes exceeds the proxy's limit of %d bytes", r.ContentLength, max)
		return
	}
	client := budgetClient(agent, r)
	body, hold, err := readBody(w, r, max, p.budget, client)
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			fail(http.StatusRequestEntityTooLarge, "request_too_large", "request body exceeds the proxy's limit of %d bytes", max)
		case errors.Is(err, errOverBudget):
			fail(http.StatusServiceUnavailable, "proxy_overloaded", "the proxy holds as many request bytes as its memory budget allows (%d); retry later", p.budget.Max())
		case errors.Is(err, errOverShare):
			fail(http.StatusServiceUnavailable, "proxy_overloaded", "your calls hold as many request bytes as one agent may (%d of the proxy's %d); retry later", p.budget.clientShare(), p.budget.Max())
		default:
			fail(http.StatusBadRequest, "bad_request_body", "reading the request body: %v", err)
		}
		return
	}
	// The body's bytes stay taken until it has gone upstream (and its
	// record has taken them: see begin).
	released := false
	release := func() {
		if !released {
			released = true
			hold.release()
		}
	}
	defer release()
	// A call may stream for longer than the server's read or write timeout
	// allows: lift both for the rest of this request.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})

	target.RawQuery = r.URL.RawQuery

	x, err := p.c.begin(r.Context(), &callSpec{
		rec: agent.Recorder, scope: agent.Tenant, principal: agent.ID, session: session,
		explicit: explicit, actor: actor, subject: subject, agentID: agentID, upstream: name, provider: providerName(name, base.Hostname()),
		server: base.Hostname(), method: r.Method, path: path, rawQuery: r.URL.RawQuery,
		header: r.Header, body: body, budget: p.budget, client: client, hold: hold, received: received,
	})
	if errors.Is(err, ErrRefused) {
		var re *RefusedError
		errors.As(err, &re)
		fail(http.StatusBadRequest, "strict_json_required",
			"the request body is not strict, unambiguous JSON (%s), so %s might read it otherwise than it is recorded: nothing was sent upstream",
			event.Clip(re.Err.Error(), 200), name)
		return
	}
	if errors.Is(err, ErrNotRecorded) {
		fail(http.StatusServiceUnavailable, "audit_log_unavailable",
			"the audit log could not record this request, so it was not sent to %s (capture mode fail-closed); retry later", name)
		return
	}
	if err != nil {
		return // the agent went away
	}

	out, err := http.NewRequestWithContext(r.Context(), r.Method, target.String(), bytes.NewReader(body))
	if err != nil {
		x.finish(endUpstream, err)
		fail(http.StatusBadRequest, "bad_request", "%v", err)
		return
	}
	out.Header = upstreamHeader(r.Header)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // add nothing of ours
	}
	h := w.Header()
	h.Set(HeaderSession, x.session)
	h.Set(HeaderCall, x.callID)
	if x.reqRes != nil {
		h.Set(HeaderRequestID, x.reqRes.ID)
	}

	resp, err := p.transport.RoundTrip(out)
	body, out = nil, nil
	release()
	if err != nil {
		if r.Context().Err() != nil {
			x.finish(endClient, context.Cause(r.Context()))
			return
		}
		x.finish(endUpstream, err)
		p.c.logger.Warn("capture: upstream unreachable", "upstream", name, "error", err)
		fail(http.StatusBadGateway, "upstream_unreachable", "could not reach upstream %s", name)
		return
	}
	defer resp.Body.Close()
	x.response(resp.StatusCode, resp.Header, resp.ContentLength)
	if resp.StatusCode >= 400 {
		// An SDK may act on an error's status alone (retry at once, without
		// reading the body): order the response's record before its next
		// request from here on; the session's records wait for it, so a
		// stalled agent gets a deadline.
		x.reserve()
		rc.SetWriteDeadline(time.Now().Add(finalWriteTimeout))
	}
	copyResponseHeader(h, resp.Header)
	w.WriteHeader(resp.StatusCode)
	rc.Flush()

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	how, cause := endEOF, error(nil)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			x.observe(buf[:n])
			if rerr == io.EOF || x.ending() {
				// The agent may act on these bytes as the end of the
				// response: order the response's record before its next
				// request. The session's records wait for this write, so a
				// stalled agent gets a deadline.
				x.reserve()
				rc.SetWriteDeadline(time.Now().Add(finalWriteTimeout))
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				how, cause, x.undelivered = endClient, werr, true
				break
			}
			if ferr := rc.Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
				how, cause, x.undelivered = endClient, ferr, true
				break
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if r.Context().Err() != nil {
				how, cause = endClient, context.Cause(r.Context())
			} else {
				how, cause = endUpstream, rerr
			}
			break
		}
	}
	resp.Body.Close()
	x.finish(how, cause)
	if how == endUpstream {
		// The upstream broke off: break the agent's response off too, so
		// that it sees what it would have seen without the proxy.
		panic(http.ErrAbortHandler)
	}
}

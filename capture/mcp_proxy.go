package capture

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
)

// MCPPathPrefix is where the Streamable HTTP proxy listens:
// /mcp/NAME/... goes to the upstream MCP server named NAME.
const MCPPathPrefix = "/mcp/"

// MCP headers.
const (
	headerMCPSession = "Mcp-Session-Id"
)

// MCP is the Model Context Protocol capture: a Streamable HTTP proxy
// (/mcp/NAME/... to a configured upstream MCP server) and the relay that
// the stdio wrapper sends every message through. Both observe each
// JSON-RPC message on the wire and record tool calls and their results,
// initialize and tools/list answers, resource reads and prompt gets.
type MCP struct {
	c         *core
	obs       *MCPObserver
	upstreams map[string]*url.URL
	auth      Authenticator
	transport http.RoundTripper
	budget    *BodyBudget // request bodies in memory (WithBodyBudget)

	mu    sync.Mutex
	conns map[string]*mcpConn // by agent id + connection (Mcp-Session-Id or relay connection id)
}

// NewMCP builds the MCP capture for the named upstream MCP servers (name
// to URL). Its options are the shared ones (Option: WithMode, WithLogger,
// WithToolCallBinder, ...), ServeOptions (WithMaxRequestBytes,
// WithBodyBudget, WithUpstreamRoots), WithTransport and WithToolPolicy.
func NewMCP(upstreams map[string]string, auth Authenticator, opts ...MCPOption) (*MCP, error) {
	if auth == nil {
		return nil, errors.New("capture: an Authenticator is required")
	}
	o := defaultOptions(DefaultMaxRecordedBytes)
	for _, f := range opts {
		f.applyMCP(&o)
	}
	c, err := newCore("mcp", o)
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
	m := &MCP{c: c, obs: newMCPObserver(c, o.policy, o.binder), upstreams: map[string]*url.URL{}, auth: auth,
		transport: transport, budget: budget, conns: map[string]*mcpConn{}}
	for name, raw := range upstreams {
		u, err := parseBase(name, raw)
		if err != nil {
			return nil, err
		}
		m.upstreams[name] = u
	}
	return m, nil
}

// Close stops retrying gap records.
func (m *MCP) Close(ctx context.Context) error { return m.c.close(ctx) }

// connIdle is how long an MCP connection's state is kept unused.
const connIdle = time.Hour

func (m *MCP) conn(agent *Agent, key, server, session, front string) *mcpConn {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := agent.ID + "\x00" + key
	cn := m.conns[k]
	if cn == nil {
		if len(m.conns) > 10_000 {
			for kk, c := range m.conns {
				if time.Since(c.used) > connIdle {
					delete(m.conns, kk)
				}
			}
		}
		cn = &mcpConn{agent: agent, server: server, session: session, front: front, pending: map[string]*mcpPending{}, used: time.Now()}
		m.conns[k] = cn
	}
	return cn
}

func (m *MCP) rename(agent *Agent, from, to string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cn, ok := m.conns[agent.ID+"\x00"+from]; ok {
		delete(m.conns, agent.ID+"\x00"+from)
		m.conns[agent.ID+"\x00"+to] = cn
	}
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// sessionFor is the audit session of an MCP connection: X-Audit-Session,
// else one named after the MCP session.
func sessionFor(h http.Header, mcpSession string) string {
	if s := h.Get(HeaderSession); s != "" {
		return s
	}
	id := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return -1
	}, mcpSession)
	if id == "" {
		id = randomID()
	}
	return event.Clip("mcp-"+id, 100)
}

func mcpHTTPError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(rpcErrorReply(json.RawMessage("null"), -32000, msg))
}

// ServeHTTP proxies /mcp/NAME/... to the upstream MCP server NAME. The
// audit token is X-Audit-Token, or, when that header is absent, the
// bearer token (then not forwarded: the upstream needs none).
func (m *MCP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := unfitPath(r); err != nil {
		mcpHTTPError(w, http.StatusBadRequest, err.Error())
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, MCPPathPrefix)
	name, path, _ := strings.Cut(rest, "/")
	base, ok := m.upstreams[name]
	if !ok {
		mcpHTTPError(w, http.StatusNotFound, "no MCP upstream named "+name)
		return
	}
	out := r.Header.Clone()
	token := out.Get(HeaderToken)
	if token == "" {
		token = strings.TrimPrefix(out.Get("Authorization"), "Bearer ")
		out.Del("Authorization")
	}
	for _, h := range []string{HeaderToken, HeaderSession, HeaderAgent, HeaderOnBehalfOf, HeaderSubject, HeaderCall} {
		out.Del(h)
	}
	agent, err := m.auth(r.Context(), token)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		mcpHTTPError(w, http.StatusUnauthorized, "an audit token (X-Audit-Token, or the bearer token) with the write scope is required")
		return
	case errors.Is(err, ErrForbidden):
		mcpHTTPError(w, http.StatusForbidden, "the audit token may not record calls")
		return
	case err != nil:
		mcpHTTPError(w, http.StatusServiceUnavailable, "checking the audit token: "+err.Error())
		return
	}
	if s := r.Header.Get(HeaderSession); s != "" {
		if !event.ValidID(s) {
			mcpHTTPError(w, http.StatusBadRequest, fmt.Sprintf("%s: use 1-%d characters from [A-Za-z0-9_.:@-], starting with a letter or digit", HeaderSession, event.MaxIDLength))
			return
		}
		if err := event.PermitSession(s, agent.Actor); err != nil {
			mcpHTTPError(w, http.StatusForbidden, HeaderSession+": "+err.Error())
			return
		}
	}
	// Only a POST carries a message; a body on anything else would go
	// upstream unread.
	switch {
	case r.Method == http.MethodPost:
	case r.ContentLength == 0 && (r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodDelete || r.Method == http.MethodOptions):
	default:
		w.Header().Set("Allow", "POST, GET, DELETE")
		mcpHTTPError(w, http.StatusMethodNotAllowed, "only a POST carries MCP messages; GET, HEAD, DELETE and OPTIONS carry no body")
		return
	}
	var body []byte
	var hold *bodyHold
	if r.Method == http.MethodPost {
		// Out of the proxies' shared memory budget (see readBody), held
		// until the upstream has answered.
		body, hold, err = readBody(w, r, m.c.o.maxRequestBytes, m.budget, budgetClient(agent, r))
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			mcpHTTPError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", m.c.o.maxRequestBytes))
			return
		case errors.Is(err, errOverBudget), errors.Is(err, errOverShare):
			w.Header().Set("Retry-After", "1")
			mcpHTTPError(w, http.StatusServiceUnavailable, fmt.Sprintf("the proxy holds as many request bytes as its memory budget allows (%d in all, %d for one agent); retry later", m.budget.Max(), m.budget.clientShare()))
			return
		case err != nil:
			mcpHTTPError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
			return
		}
	}
	released := false
	release := func() {
		if !released {
			released = true
			hold.release()
		}
	}
	defer release()
	mcpSession := r.Header.Get(headerMCPSession)
	key := mcpSession
	if sid := r.URL.Query().Get("sessionId"); key == "" && sid != "" {
		key = "sse-" + sid // the older HTTP+SSE transport: POSTs name their stream's session
	}
	if key == "" {
		key = "new-" + randomID() // an initialize: named once the upstream names the session
	}
	cn := m.conn(agent, key, name, sessionFor(r.Header, mcpSession), "mcp-http")
	// local answers the elements of a batch that the capture answered
	// itself (denied, refused, not recorded) while the rest goes upstream:
	// it is merged into the upstream's answer (mergeBatch).
	var local []byte
	if r.Method == http.MethodPost && len(body) > 0 {
		fwd, reply := m.obs.fromClient(r.Context(), cn, body, true)
		if reply != nil && fwd == nil {
			// An answer to a request is 200; one that answers no request
			// (a refused notification, a message whose id cannot be told)
			// is 400, as the MCP transport wants for input not accepted.
			w.Header().Set("Content-Type", "application/json")
			if unattributed(reply) {
				w.WriteHeader(http.StatusBadRequest)
			}
			w.Write(reply)
			return
		}
		body, local = fwd, reply
	}
	u := *base
	u.Path = base.Path + "/" + path
	if path == "" {
		u.Path = base.Path
	}
	u.RawQuery = r.URL.RawQuery
	var rb io.Reader = http.NoBody
	if body != nil {
		rb = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), rb)
	if err != nil {
		mcpHTTPError(w, http.StatusBadRequest, err.Error())
		return
	}
	req.Header = out
	req.Header.Del("Accept-Encoding")
	req.ContentLength = int64(len(body))
	resp, err := m.transport.RoundTrip(req)
	release()
	if err != nil {
		mcpHTTPError(w, http.StatusBadGateway, "the MCP upstream "+name+" is unreachable: "+err.Error())
		return
	}
	defer resp.Body.Close()
	if sid := resp.Header.Get(headerMCPSession); sid != "" && mcpSession == "" {
		cn.mu.Lock()
		if r.Header.Get(HeaderSession) == "" {
			cn.session = sessionFor(r.Header, sid)
		}
		cn.mu.Unlock()
		m.rename(agent, key, sid)
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	ct := resp.Header.Get("Content-Type")
	switch {
	case local != nil && !strings.HasPrefix(ct, "text/event-stream") && !strings.HasPrefix(ct, "application/json"):
		// The forwarded rest needed no answer (notifications): the
		// capture's answers are the whole answer.
		w.Header().Del("Content-Length")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(local)
		return
	case strings.HasPrefix(ct, "text/event-stream"):
		w.Header().Del("Content-Length") // the events are written anew
		w.WriteHeader(resp.StatusCode)
		if local != nil {
			// The capture's answers first, as one message event.
			fmt.Fprintf(w, "event: message\ndata: %s\n\n", local)
		}
		// The older HTTP+SSE transport: the stream's first event names
		// the endpoint to POST to, which must be ours; one elsewhere (the
		// client would post there, unobserved) or unreadable is refused.
		endpoint := func(data []byte) ([]byte, error) {
			ref, err := url.Parse(string(data))
			if err != nil {
				return nil, fmt.Errorf("%w: the endpoint is not a URL: %v", errForeignEndpoint, err)
			}
			abs := base.ResolveReference(ref)
			if abs.Scheme != base.Scheme || abs.Host != base.Host || abs.User != nil || !underPath(abs.Path, base.Path) {
				return nil, fmt.Errorf("%w: %s is not under the upstream %s", errForeignEndpoint, event.Clip(abs.Redacted(), 200), base.Redacted())
			}
			if sid := abs.Query().Get("sessionId"); sid != "" {
				cn.mu.Lock()
				if r.Header.Get(HeaderSession) == "" {
					cn.session = sessionFor(r.Header, sid)
				}
				cn.mu.Unlock()
				m.rename(agent, key, "sse-"+sid)
			}
			mine := url.URL{Path: MCPPathPrefix + name + strings.TrimPrefix(abs.Path, strings.TrimSuffix(base.Path, "/")), RawQuery: abs.RawQuery}
			return []byte(mine.String()), nil
		}
		m.relayEvents(r.Context(), cn, w, resp.Body, endpoint)
	case strings.HasPrefix(ct, "application/json"):
		b, err := io.ReadAll(io.LimitReader(resp.Body, m.c.o.maxRequestBytes))
		if err == nil {
			m.obs.fromServer(r.Context(), cn, b)
		}
		if local != nil {
			merged, merr := mergeBatch(b, local)
			if merr != nil && err == nil {
				m.obs.unreadableBatch(cn, body, b, merr)
			}
			b = merged
			w.Header().Del("Content-Length")
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(b)
	default:
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}
}

// errForeignEndpoint: an SSE endpoint event that does not name the
// upstream (see relayEvents).
var errForeignEndpoint = errors.New("the MCP server's endpoint event names another place")

// underPath reports whether p is base or below it.
func underPath(p, base string) bool {
	b := strings.TrimSuffix(base, "/")
	return p == b || strings.HasPrefix(p, b+"/")
}

// relayEvents passes an event stream through event by event, observing
// each message before it is written. Lines may end with CRLF, LF or CR
// alone (the SSE rule); they are written on with LF, so that the client
// reads the events the capture read. An endpoint event is checked and
// rewritten by endpoint once the whole event is read (its fields may come
// in any order); one that endpoint refuses is recorded as mcp.refused and
// ends the stream with an error event instead.
func (m *MCP) relayEvents(ctx context.Context, cn *mcpConn, w http.ResponseWriter, body io.Reader, endpoint func([]byte) ([]byte, error)) {
	rc := http.NewResponseController(w)
	lr := sseLines{br: bufio.NewReaderSize(body, 64<<10)}
	max := int(m.c.o.maxRequestBytes)
	var ev bytes.Buffer   // the event's lines, each ended by LF
	var data bytes.Buffer // its data, each line ended by LF
	name := ""
	for {
		line, err := lr.next(max)
		if err == nil || len(line) > 0 {
			if n, ok := bytes.CutPrefix(line, []byte("event:")); ok {
				name = string(bytes.TrimSpace(n))
			}
			if d, ok := bytes.CutPrefix(line, []byte("data:")); ok {
				data.Write(bytes.TrimPrefix(d, []byte(" ")))
				data.WriteByte('\n')
			}
			if len(line) > 0 {
				ev.Write(line)
				ev.WriteByte('\n')
			}
		}
		if (len(line) == 0 || err != nil) && ev.Len() > 0 {
			if name == "endpoint" {
				mine, eerr := endpoint(bytes.TrimSuffix(data.Bytes(), []byte("\n")))
				if eerr != nil {
					m.obs.refuseEndpoint(cn, data.Bytes(), eerr)
					fmt.Fprintf(w, "event: error\ndata: %s\n\n", rpcErrorReply(json.RawMessage("null"), RPCBadUpstream,
						"LLMAuditTrail: the MCP server's endpoint is not under the upstream the audit capture observes; the stream was ended: "+event.Clip(eerr.Error(), 300)))
					rc.Flush()
					return
				}
				ev.Reset()
				fmt.Fprintf(&ev, "event: endpoint\ndata: %s\n", mine)
			} else if data.Len() > 0 {
				m.obs.fromServer(ctx, cn, data.Bytes())
			}
			ev.WriteByte('\n')
			if _, werr := w.Write(ev.Bytes()); werr != nil {
				return
			}
			rc.Flush()
			ev.Reset()
			data.Reset()
			name = ""
		}
		if err != nil || ev.Len() > max {
			return
		}
	}
}

// sseLines reads the lines of an event stream, ended by CRLF, LF or CR.
type sseLines struct {
	br     *bufio.Reader
	skipLF bool // the last line ended with CR: an LF next belongs to it
}

// errLineTooLong: a line of an event stream longer than the capture reads.
var errLineTooLong = errors.New("event stream line too long")

// next returns the next line without its end; at the end of the stream,
// what is left (maybe empty) and the error.
func (l *sseLines) next(max int) ([]byte, error) {
	var line []byte
	for {
		if l.br.Buffered() == 0 {
			if _, err := l.br.Peek(1); err != nil {
				return line, err
			}
		}
		buf, _ := l.br.Peek(l.br.Buffered())
		if l.skipLF {
			l.skipLF = false
			if buf[0] == '\n' {
				l.br.Discard(1)
				continue
			}
		}
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			line = append(line, buf...)
			l.br.Discard(len(buf))
			if len(line) > max {
				return line, errLineTooLong
			}
			continue
		}
		line = append(line, buf[:i]...)
		l.skipLF = buf[i] == '\r'
		l.br.Discard(i + 1)
		return line, nil
	}
}

// Relay observes one message of a stdio MCP connection for agent, after
// the messages of the server in req.Earlier; a numbered message
// (req.Seq) the connection has observed already is not observed again. A
// session that agent may not write in (a server session, see
// event.PermitSession) fails with an error wrapping
// event.ErrReservedSession, before anything is observed or recorded; other
// errors say the request is malformed.
func (m *MCP) Relay(ctx context.Context, agent *Agent, req api.MCPRelayRequest) (api.MCPRelayResponse, error) {
	if req.Conn == "" || !event.ValidID(req.Session) || req.Server == "" || len(req.Server) > 64 {
		return api.MCPRelayResponse{}, errors.New("conn, server and a valid session are required")
	}
	if err := event.PermitSession(req.Session, agent.Actor); err != nil {
		return api.MCPRelayResponse{}, fmt.Errorf("session: %w", err)
	}
	if req.From != "client" && req.From != "server" {
		return api.MCPRelayResponse{}, errors.New(`from must be "client" or "server"`)
	}
	if req.Seq >= math.MaxUint64-uint64(len(req.Earlier)) {
		// The number after the request's last must be a number too.
		return api.MCPRelayResponse{}, errors.New("seq: the request's numbers run past the largest")
	}
	cn := m.conn(agent, "stdio-"+req.Conn, req.Server, req.Session, "mcp-stdio")
	// One request of a connection at a time, in the order they come: the
	// wrapper sends one at a time, and one it tries again (its answer was
	// lost) waits here for the first and then skips what it observed.
	cn.relayMu.Lock()
	defer cn.relayMu.Unlock()
	n := req.Seq
	if n > cn.relayNext && cn.relayNext != 0 {
		// Numbers skipped since the last request: messages the wrapper
		// gave up (its requests failed, or were refused). The first
		// request of a connection has nothing to follow: a connection the
		// log server forgot (idle, or a restart) starts afresh.
		m.obs.relayGap(cn, cn.relayNext, n-1)
	}
	if n != 0 {
		cn.relayAt = time.Now().UTC()
	}
	fresh := func() bool { // whether message n is new on the connection
		if n == 0 {
			return true
		}
		ok := n >= cn.relayNext
		if ok {
			cn.relayNext = n + 1
		}
		n++
		return ok
	}
	for _, msg := range req.Earlier { // already passed on to the client
		if fresh() {
			m.obs.fromServer(ctx, cn, msg)
		}
	}
	isNew := fresh()
	if req.From == "server" {
		if isNew {
			m.obs.fromServer(ctx, cn, req.Message)
		}
		return api.MCPRelayResponse{Forward: req.Message}, nil
	}
	if !isNew {
		return api.MCPRelayResponse{}, fmt.Errorf("message %d of the connection was observed already", n-1)
	}
	fwd, reply := m.obs.fromClient(ctx, cn, req.Message, false)
	return api.MCPRelayResponse{Forward: fwd, Reply: reply}, nil
}

// unattributed reports whether reply, one of the capture's own answers,
// is a single error to id null.
func unattributed(reply []byte) bool {
	var one rpcMessage
	return json.Unmarshal(reply, &one) == nil && string(one.ID) == "null"
}

// mergeBatch returns the upstream's answer to a batch with the capture's
// own answers (local, a JSON array) added: one array of every answer. An
// upstream answer that is not an array (one message) becomes its first
// element. One that is not JSON cannot be merged: the answer is then the
// capture's answers and an error to id null (RPCBadUpstream) in place of
// the upstream's, and err says why.
func mergeBatch(upstream, local []byte) ([]byte, error) {
	var out []json.RawMessage
	var err error
	if t := bytes.TrimSpace(upstream); len(t) > 0 {
		switch {
		case !strictjson.IsJSON(t):
			err = fmt.Errorf("%w: the MCP server's answer to a batch is not JSON", strictjson.ErrMalformed)
		case t[0] == '[':
			if e := json.Unmarshal(t, &out); e != nil {
				err = fmt.Errorf("%w: %v", strictjson.ErrMalformed, e)
			}
		default:
			out = append(out, json.RawMessage(t))
		}
	}
	var mine []json.RawMessage
	json.Unmarshal(local, &mine)
	out = append(out, mine...)
	if err != nil {
		out = append(out, rpcErrorReply(json.RawMessage("null"), RPCBadUpstream,
			"LLMAuditTrail: the MCP server's answer to the rest of the batch is not JSON the audit capture can read; it was recorded and not passed on"))
	}
	b, _ := json.Marshal(out)
	return b, err
}

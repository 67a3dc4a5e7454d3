package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/event"
)

// openProxy builds the capture proxy from the configuration: the default
// upstreams overlaid with Config.Upstreams, the capture mode, and a
// credential fingerprint key derived from the vault master key (so that
// fingerprints stay comparable across restarts without another secret file).
func (s *Server) openProxy() error {
	mode, err := capture.ParseMode(s.cfg.CaptureMode)
	if err != nil {
		return err
	}
	ups := capture.DefaultUpstreams()
	for name, u := range s.cfg.Upstreams {
		ups[name] = u
	}
	m := hmac.New(sha256.New, s.keys.MasterKey)
	m.Write([]byte("llmaudittrail capture credential fingerprint v1"))
	// The three captures take the same options: the LLM captures note the
	// tool calls models ask for in binder, and the MCP capture binds the
	// tools/call that answers one to them; request bodies share one memory
	// budget; upstreams are verified with the same roots.
	binder := capture.NewToolCallBinder()
	bodies := capture.NewBodyBudget(s.cfg.ProxyBodyBudget)
	shared := []capture.ServeOption{
		capture.WithMode(mode),
		capture.WithFingerprintKey(m.Sum(nil)),
		capture.WithLogger(s.logger),
		capture.WithToolCallBinder(binder),
		capture.WithMetrics(captureMetrics{}),
		capture.WithBodyBudget(bodies),
		capture.WithUpstreamRoots(s.cfg.UpstreamRoots),
	}
	var proxyOpts []capture.ProxyOption
	var mcpOpts []capture.MCPOption
	var interceptOpts []capture.InterceptOption
	for _, o := range shared {
		proxyOpts, mcpOpts, interceptOpts = append(proxyOpts, o), append(mcpOpts, o), append(interceptOpts, o)
	}
	// What the model-call captures alone take.
	history := capture.WithToolResultHistory(s.toolResultHistory)
	proxyOpts, interceptOpts = append(proxyOpts, history), append(interceptOpts, history)
	if s.cfg.MCPToolPolicy != nil {
		mcpOpts = append(mcpOpts, capture.WithToolPolicy(s.cfg.MCPToolPolicy.decide))
	}
	if s.proxy, err = capture.NewProxy(ups, s.authenticateAgent, proxyOpts...); err != nil {
		return err
	}
	if s.mcp, err = capture.NewMCP(s.cfg.MCPUpstreams, s.authenticateAgent, mcpOpts...); err != nil {
		return err
	}
	if s.cfg.Intercept == nil {
		return nil
	}
	ic := s.cfg.Intercept
	s.intcp, err = capture.NewInterceptor(capture.InterceptConfig{Hosts: ic.Hosts, Other: ic.Other, TunnelAllow: ic.Allow, TunnelIdle: ic.TunnelIdle,
		CACert: filepath.Join(s.cfg.DataDir, InterceptCA), CAKey: filepath.Join(s.cfg.DataDir, InterceptKey),
		Resolve: ic.Resolve}, s.authenticateAgent, interceptOpts...)
	return err
}

// InterceptConfig configures the interception proxy (see
// capture.InterceptConfig).
type InterceptConfig struct {
	Hosts   []string          // the allowlist (default capture.DefaultInterceptHosts())
	Other   string            // tunnel (default) or refuse
	Resolve map[string]string // tests: host to address
	// Allow are the exceptions to the tunnel rule: CIDR, IP address or
	// HOST:PORT (see capture.InterceptConfig.TunnelAllow).
	Allow []string
	// TunnelIdle closes a tunnel idle this long (0:
	// capture.DefaultTunnelIdle).
	TunnelIdle time.Duration
}

// InterceptHandler serves the interception proxy (CONNECT), nil when it
// is not configured.
func (s *Server) InterceptHandler() http.Handler {
	if s.intcp == nil {
		return nil
	}
	return s.intcp
}

// authenticateAgent maps an X-Audit-Token to the agent it belongs to: its
// events are recorded in the token's tenant, written by the token via the
// proxy, with the token's name (or id) as actor, or, for a token bound to
// actors, the first of them unless the name is one.
func (s *Server) authenticateAgent(ctx context.Context, token string) (*capture.Agent, error) {
	p, err := s.tokens.Check(ctx, strings.TrimSpace(token))
	if errors.Is(err, auth.ErrUnauthenticated) {
		return nil, capture.ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	return s.agentFor(ctx, p)
}

// agentFor is the capture's view of a write token.
func (s *Server) agentFor(ctx context.Context, p *auth.Principal) (*capture.Agent, error) {
	if !p.Has(auth.ScopeWrite) {
		return nil, capture.ErrForbidden
	}
	if err := s.ensureLogged(ctx, p); err != nil {
		return nil, err
	}
	id := p.Name
	if !event.ValidID(id) {
		id = "token." + p.ID
	}
	if !p.MayActAs(id) {
		id = p.Actors[0]
	}
	return &capture.Agent{
		Recorder: s.Recorder(p.Tenant, p.ID),
		Tenant:   p.Tenant,
		ID:       p.ID,
		Name:     p.Name,
		Actor:    event.Actor{Type: "agent", ID: id},
	}, nil
}

// withProxy sends /proxy/... to the capture proxy and everything else to
// next. The proxy sits outside the API middleware: it caps bodies itself and
// answers errors in the provider's format, and it must not be compressed or
// given a write timeout.
func (s *Server) withProxy(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, capture.PathPrefix) {
			s.proxy.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, capture.MCPPathPrefix) {
			s.mcp.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// toolResultHistory is what the LLM captures ask for a session they have no
// memory of (after a restart): the keys of the tool.result events they
// derived from its requests, read from the session index and the leaves
// (only the session's tool.result leaves are read). Events durable in the
// journal but not yet indexed are not seen.
func (s *Server) toolResultHistory(ctx context.Context, tenant, session string) ([]string, error) {
	const page = 1000
	size, err := s.log.Reader().IntegratedSize(ctx)
	if err != nil {
		return nil, err
	}
	var keys []string
	named := map[string]int{} // results without a call id, by tool name
	for from := uint64(0); ; {
		entries, err := s.log.Index().Session(ctx, tenant, session, from, page)
		if err != nil {
			return nil, err
		}
		for _, en := range entries {
			if en.Kind != event.KindToolResult || en.Index >= size {
				continue
			}
			data, err := s.log.ReadLeaf(ctx, en.Index, size)
			if err != nil {
				return nil, err
			}
			leaf, err := event.ParseLeaf(data)
			if err != nil {
				return nil, err
			}
			a := leaf.Attributes
			if a.String(event.AttrCaptureToolResultSource) != event.KindLLMRequest {
				continue // an MCP result, or one the agent posted
			}
			if id := a.String(event.AttrGenAIToolCallID); id != "" {
				keys = append(keys, id)
			} else if name := a.String(event.AttrGenAIToolName); name != "" {
				keys = append(keys, name+"#"+strconv.Itoa(named[name]))
				named[name]++
			}
		}
		if len(entries) < page {
			return keys, nil
		}
		from = entries[len(entries)-1].Seq + 1
	}
}

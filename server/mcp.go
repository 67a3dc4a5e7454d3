package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/llmaudittrail/llmaudittrail/api"
	"github.com/llmaudittrail/llmaudittrail/auth"
	"github.com/llmaudittrail/llmaudittrail/capture"
	"github.com/llmaudittrail/llmaudittrail/event"
	"github.com/llmaudittrail/llmaudittrail/internal/strictjson"
	"github.com/llmaudittrail/llmaudittrail/llmapi"
)

// MCPToolPolicy allows and denies MCP tools per token name; Default holds
// for tokens not listed. Tool names compare with "." and "_" alike
// (llmapi.ToolKey).
type MCPToolPolicy struct {
	Default ToolRule            `yaml:"default"`
	Tokens  map[string]ToolRule `yaml:"tokens"`
}

// ToolRule: with Allow, only those tools; never those in Deny.
type ToolRule struct {
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
}

// ParseMCPToolPolicy parses a policy file (YAML).
func ParseMCPToolPolicy(text []byte) (*MCPToolPolicy, error) {
	var p MCPToolPolicy
	dec := yaml.NewDecoder(strings.NewReader(string(text)))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("MCP tool policy: %w", err)
	}
	return &p, nil
}

func listed(list []string, tool string) bool {
	return slices.ContainsFunc(list, func(t string) bool { return llmapi.ToolKey(t) == llmapi.ToolKey(tool) })
}

func (p *MCPToolPolicy) decide(agent *capture.Agent, server, tool string) (bool, string) {
	rule, ok := p.Tokens[agent.Name]
	who := "token " + agent.Name
	if !ok {
		rule, who = p.Default, "the default rule"
	}
	switch {
	case listed(rule.Deny, tool):
		return false, who + " denies " + tool
	case len(rule.Allow) > 0 && !listed(rule.Allow, tool):
		return false, who + " allows only " + strings.Join(rule.Allow, ", ")
	}
	return true, ""
}

var relayKeys = &strictjson.Object{Keys: map[string]*strictjson.Object{
	"conn": nil, "server": nil, "session": nil, "from": nil, "message": nil, "earlier": nil, "seq": nil,
}}

// maxRelayMessage caps one relayed MCP message.
const maxRelayMessage = 4 << 20

// maxRelayEarlier caps the earlier messages of one relay request.
const maxRelayEarlier = 1024

// postMCPRelay observes one message of a stdio MCP connection (the
// wrapper, log-server mcp wrap, sends each through here) and says what
// to forward and what to answer.
func (s *Server) postMCPRelay(r *http.Request, p *auth.Principal) (int, any, error) {
	body, err := readBody(r)
	if err != nil {
		return 0, nil, err
	}
	// Keys exactly as sent, none unknown, none twice: after that check one
	// decode reads what was sent (capture.Relay reads the message itself
	// strictly).
	if err := strictjson.Check(body, relayKeys); err != nil {
		return 0, nil, errorf(http.StatusBadRequest, "bad_relay", "%v", err)
	}
	var req api.MCPRelayRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, nil, errorf(http.StatusBadRequest, "bad_relay", "%v", err)
	}
	if len(req.Earlier) > maxRelayEarlier {
		return 0, nil, errorf(http.StatusRequestEntityTooLarge, "too_large", "more than %d earlier messages", maxRelayEarlier)
	}
	for _, m := range req.Earlier {
		if len(m) > maxRelayMessage {
			return 0, nil, errorf(http.StatusRequestEntityTooLarge, "too_large", "an earlier message larger than %d bytes", maxRelayMessage)
		}
	}
	if len(req.Message) > maxRelayMessage {
		return 0, nil, errorf(http.StatusRequestEntityTooLarge, "too_large", "message larger than %d bytes", maxRelayMessage)
	}
	agent, err := s.agentFor(r.Context(), p)
	if err != nil {
		return 0, nil, err
	}
	res, err := s.mcp.Relay(r.Context(), agent, req)
	if errors.Is(err, event.ErrReservedSession) {
		return 0, nil, err // 403 reserved_session
	}
	if err != nil {
		return 0, nil, errorf(http.StatusBadRequest, "bad_relay", "%v", err)
	}
	return http.StatusOK, res, nil
}

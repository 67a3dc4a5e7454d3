package capture_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/llmaudittrail/llmaudittrail/internal/providertest"
	"github.com/llmaudittrail/llmaudittrail/internal/tlstest"
	"github.com/llmaudittrail/llmaudittrail/server"
)

// nodeWorld: the provider fake on TLS for api.openai.com and
// generativelanguage.googleapis.com (the log server resolves both to it),
// and the log server's interception proxy, which refuses every other host:
// nothing an agent sends leaves loopback.
type nodeWorld struct {
	*env
	proxyURL *url.URL // HTTPS_PROXY, the audit token as password
	caFile   string   // the interception CA (NODE_EXTRA_CA_CERTS)
	fake     *providertest.Fake
	tokenID  string
}

func newNodeWorld(t *testing.T) *nodeWorld {
	upCA := tlstest.NewCA(t)
	pf := providertest.New(t)
	provider := tlsFake(t, upCA, pf.Config.Handler, "api.openai.com", "generativelanguage.googleapis.com")
	addr := strings.TrimPrefix(provider.URL, "https://")
	e := newEnv(t, "fail-closed", func(c *server.Config, _ *httptest.Server) {
		c.UpstreamRoots = upCA.Pool()
		c.Intercept = &server.InterceptConfig{Other: "refuse", Resolve: map[string]string{
			"api.openai.com": addr, "generativelanguage.googleapis.com": addr}}
	})
	proxy := httptest.NewServer(e.srv.InterceptHandler())
	t.Cleanup(proxy.Close)
	w := &nodeWorld{env: e, fake: pf, caFile: filepath.Join(e.dir, server.InterceptCA)}
	w.proxyURL, _ = url.Parse(proxy.URL)
	w.proxyURL.User = url.UserPassword("agent", e.writeToken)
	p, err := e.srv.Tokens().Check(context.Background(), e.writeToken)
	if err != nil {
		t.Fatal(err)
	}
	w.tokenID = p.ID
	return w
}

// nodeAnswer is what testdata/npm/intercept.mjs printed, and the names the
// node process tried to resolve (testdata/npm/nodns.mjs refuses them all).
type nodeAnswer struct {
	Model, Content, Error string
	lookups               []string
}

// runNodeAgent runs testdata/npm/intercept.mjs SDK WIRING on the machine's
// node with only HTTPS_PROXY, NODE_EXTRA_CA_CERTS, SESSION, the key and
// extra in its environment, and with name resolution refused.
func (w *nodeWorld) runNodeAgent(t *testing.T, node, sdk, wiring, session string, extra ...string) nodeAnswer {
	t.Helper()
	cmd := exec.Command(node, "--import", "./nodns.mjs", "intercept.mjs", sdk, wiring)
	cmd.Dir = "../testdata/npm"
	cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"),
		"HTTPS_PROXY=" + w.proxyURL.String(), "NODE_EXTRA_CA_CERTS=" + w.caFile, "SESSION=" + session,
		"OPENAI_API_KEY=" + providertest.OpenAIKey, "GEMINI_API_KEY=" + geminiKey}, extra...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node intercept.mjs %s %s: %v\n%s\n%s", sdk, wiring, err, out, stderr.Bytes())
	}
	var a nodeAnswer
	if err := json.Unmarshal(out, &a); err != nil {
		t.Fatalf("node intercept.mjs %s %s printed %s (%v)\n%s", sdk, wiring, out, err, stderr.Bytes())
	}
	for _, l := range strings.Split(stderr.String(), "\n") {
		if name, ok := strings.CutPrefix(l, "dns.lookup "); ok {
			a.lookups = append(a.lookups, name)
		}
	}
	t.Logf("node intercept.mjs %s %s: %+v", sdk, wiring, a)
	return a
}

// needNPMSDKs returns node's path, or skips when node or the npm SDKs
// (npm ci --prefix testdata/npm, which .ci/run does) are missing: unless
// LLMAUDIT_TEST_REQUIRE names node, then it fails.
func needNPMSDKs(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat("../testdata/npm/node_modules/undici")
	}
	if err == nil {
		return node
	}
	for _, r := range strings.Split(os.Getenv("LLMAUDIT_TEST_REQUIRE"), ",") {
		if strings.TrimSpace(r) == "node" {
			t.Fatalf("node and the npm SDKs are required (LLMAUDIT_TEST_REQUIRE=%s): %v (npm ci --prefix testdata/npm)", os.Getenv("LLMAUDIT_TEST_REQUIRE"), err)
		}
	}
	t.Skipf("node and the npm SDKs: %v (npm ci --prefix testdata/npm)", err)
	return ""
}

// nodeVersion is the major and minor version of the machine's node.
func nodeVersion(t *testing.T, node string) (major, minor int) {
	t.Helper()
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	v := strings.Split(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), ".")
	if len(v) < 2 {
		t.Fatalf("node --version: %q", out)
	}
	major, err1 := strconv.Atoi(v[0])
	minor, err2 := strconv.Atoi(v[1])
	if err1 != nil || err2 != nil {
		t.Fatalf("node --version: %q", out)
	}
	return major, minor
}

// hasEnvProxy: NODE_USE_ENV_PROXY=1 makes fetch use HTTPS_PROXY from Node
// 24.0.0 on, and from 22.21.0 on the 22 line (Node's doc/api/cli.md and the
// v22.21.0 release notes).
func hasEnvProxy(major, minor int) bool { return major >= 24 || major == 22 && minor >= 21 }

// TestInterceptNodeSDKs: the official npm openai and @google/genai SDKs on
// the machine's node, reaching api.openai.com and
// generativelanguage.googleapis.com through HTTPS_PROXY with undici's
// EnvHttpProxyAgent (per client or as the global dispatcher) and the
// interception CA in NODE_EXTRA_CA_CERTS, are recorded as
// llm.request/llm.response with capture.front intercept, as
// docs/capture.md says. Without the dispatcher the SDK ignores HTTPS_PROXY
// and looks api.openai.com up itself (on Node 20, NODE_USE_ENV_PROXY=1
// changes nothing; from Node 24 it routes fetch through the proxy). The
// node process resolves no name at all: every lookup fails and is
// reported, so none of this leaves loopback.
func TestInterceptNodeSDKs(t *testing.T) {
	node := needNPMSDKs(t)
	major, minor := nodeVersion(t, node)
	w := newNodeWorld(t)

	// captured: the SDK got the fake's answer through the proxy, and the
	// log holds one llm.request (with want) and its llm.response.
	captured := func(t *testing.T, a nodeAnswer, session, served string, want map[string]any) {
		t.Helper()
		if a.Error != "" || a.Model != served || !strings.HasPrefix(a.Content, "Based on") {
			t.Fatalf("the SDK answered %+v, want %s's answer", a, served)
		}
		if len(a.lookups) != 0 {
			t.Errorf("node looked up %v: through the proxy it resolves nothing", a.lookups)
		}
		calls := splitCalls(t, w.events(session, 2))
		if len(calls) != 1 {
			t.Fatalf("%d calls recorded, want 1", len(calls))
		}
		wantAttrs(t, calls[0].req, want)
		wantAttrs(t, calls[0].resp, map[string]any{"capture.outcome": "complete", "http.response.status_code": 200, "gen_ai.response.model": served})
		if calls[0].req.Leaf.Session != session {
			t.Errorf("session %q, want %q", calls[0].req.Leaf.Session, session)
		}
	}
	// direct: the SDK went around the proxy, resolving the provider's host
	// itself; nothing reached the provider or the log.
	direct := func(t *testing.T, a nodeAnswer, session string, before int) {
		t.Helper()
		if a.Model != "" || !strings.Contains(a.Error, "ENOTFOUND api.openai.com") {
			t.Fatalf("the SDK answered %+v, want it to fail resolving api.openai.com itself", a)
		}
		if !slices.Equal(a.lookups, []string{"api.openai.com"}) {
			t.Errorf("node looked up %v, want [api.openai.com]", a.lookups)
		}
		if n := w.fake.Requests(); n != before {
			t.Errorf("the provider received %d requests, want none", n-before)
		}
		for _, s := range []string{session, "intercept." + w.tokenID} {
			if evs := w.events(s, 0); len(evs) != 0 {
				t.Errorf("session %s holds %v: nothing went through the proxy", s, kinds(evs))
			}
		}
	}

	openai := map[string]any{"capture.front": "intercept", "gen_ai.provider.name": "openai", "capture.api": "openai.chat.completions",
		"url.path": "/v1/chat/completions", "server.address": "api.openai.com", "gen_ai.request.model": "gpt-4o",
		"http.request.header.x-stainless-lang": "js", "http.request.header.x-stainless-runtime": "node"}
	t.Run("openai/dispatcher", func(t *testing.T) {
		a := w.runNodeAgent(t, node, "openai", "dispatcher", "node-openai")
		captured(t, a, "node-openai", "gpt-4o-2024-08-06", openai)
	})
	t.Run("openai/global", func(t *testing.T) {
		a := w.runNodeAgent(t, node, "openai", "global", "node-openai-global")
		captured(t, a, "node-openai-global", "gpt-4o-2024-08-06", openai)
	})
	gemini := map[string]any{"capture.front": "intercept", "gen_ai.provider.name": "gcp.gemini",
		"capture.api": "gemini.generate_content", "url.path": "/v1/models/gemini-2.5-flash:generateContent",
		"server.address": "generativelanguage.googleapis.com", "gen_ai.request.model": "gemini-2.5-flash"}
	t.Run("gemini/dispatcher", func(t *testing.T) {
		a := w.runNodeAgent(t, node, "gemini", "dispatcher", "node-gemini")
		captured(t, a, "node-gemini", "gemini-2.5-flash-001", gemini)
	})
	t.Run("gemini/global", func(t *testing.T) {
		a := w.runNodeAgent(t, node, "gemini", "global", "node-gemini-global")
		captured(t, a, "node-gemini-global", "gemini-2.5-flash-001", gemini)
	})
	t.Run("openai/none", func(t *testing.T) {
		before := w.fake.Requests()
		a := w.runNodeAgent(t, node, "openai", "none", "node-openai-none")
		direct(t, a, "node-openai-none", before)
	})
	t.Run("openai/none/NODE_USE_ENV_PROXY=1", func(t *testing.T) {
		before := w.fake.Requests()
		a := w.runNodeAgent(t, node, "openai", "none", "node-openai-env", "NODE_USE_ENV_PROXY=1")
		if hasEnvProxy(major, minor) {
			captured(t, a, "node-openai-env", "gpt-4o-2024-08-06", openai)
			return
		}
		t.Logf("node v%d.%d has no NODE_USE_ENV_PROXY: the SDK must ignore HTTPS_PROXY", major, minor)
		direct(t, a, "node-openai-env", before)
	})
	// The provider keys and the audit token (the proxy password) are
	// forwarded or checked, never recorded.
	w.close()
	for _, secret := range []string{providertest.OpenAIKey, geminiKey, w.writeToken} {
		secretNowhere(t, w.dir, secret)
	}
}
